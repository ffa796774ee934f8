"""Rental periods: whole calendar months that do not drift at short months."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringwell.features.numbers.periods import add_months


def at(y, m, d):
    return datetime(y, m, d, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(("start", "months", "anchor", "expected"), [
    (at(2026, 3, 15), 1, None, at(2026, 4, 15)),
    (at(2026, 12, 15), 1, None, at(2027, 1, 15)),  # over the year's end
    (at(2026, 1, 31), 1, None, at(2026, 2, 28)),  # clamped to the short month
    (at(2028, 1, 31), 1, None, at(2028, 2, 29)),  # leap year
    (at(2026, 2, 28), 1, 31, at(2026, 3, 31)),  # the anchor day comes back
    (at(2026, 4, 30), 1, 31, at(2026, 5, 31)),
    (at(2026, 1, 31), 13, None, at(2027, 2, 28)),
])
def test_add_months(start, months, anchor, expected):
    assert add_months(start, months, anchor) == expected


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
       st.integers(min_value=1, max_value=36))
def test_month_by_month_equals_all_at_once(start, months):
    """Renewing month by month (anchored on the rental's day) ends where adding the months at once does."""
    moment = start
    for _ in range(months):
        moment = add_months(moment, 1, start.day)
    assert moment == add_months(start, months)
    assert moment > start and moment.time() == start.time()
