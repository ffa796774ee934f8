"""Page cursors: a position round-trips; anything a client made up is the slice's own error."""

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringwell.errors import Invalid
from ringwell.storage.cursor import decode_cursor, decode_position, encode_cursor, encode_position


class Bad(Invalid):
    error_id = "invalid_cursor"


def test_a_position_round_trips_in_utc():
    at = datetime(2026, 12, 7, 9, 30, 1, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert decode_position(encode_position(at, "abc-1"), Bad("bad")) == (at.astimezone(UTC), "abc-1")


@pytest.mark.parametrize("cursor", [
    "", "!!!", "a" * 401, encode_cursor(["0001-01-01T00:00:00+01:00", "x"]),
    encode_cursor(["2026-12-07T00:00:00", "x"]), encode_cursor(["yesterday", "x"]), encode_cursor({"t": 1}),
    encode_cursor(["2026-12-07T00:00:00+00:00", "x\x00"]), encode_cursor(["2026-12-07T00:00:00+00:00", ""]),
])
def test_anything_else_is_the_slices_error(cursor):
    with pytest.raises(Bad):
        decode_position(cursor, Bad("bad"))


@given(st.text(max_size=500))
def test_garbage_never_escapes_as_another_exception(text):
    with contextlib.suppress(Bad):
        decode_cursor(text, Bad("bad"))
