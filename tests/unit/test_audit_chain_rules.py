"""The audit hash chain's recipe and the rules that name the first broken event (pure, no database)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ringwell.features.audit.chain import FIELDS, GENESIS, ChainChecker, Problem, canonical, event_hash, format_time

T0 = datetime(2026, 12, 7, 15, 0, 0, 120000, tzinfo=UTC)


def event(seq: int, **changes):
    fields = dict.fromkeys(FIELDS)
    fields.update(id=f"e{seq}", seq=seq, at=T0 + timedelta(seconds=seq), action="users.update", outcome="ok",
                  details={"b": [1, 2], "a": "Zoë"})
    fields.update(changes)
    return fields


def chain(n: int):
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        fields = event(seq)
        digest = event_hash(prev, fields)
        rows.append((fields, prev, digest))
        prev = digest
    return rows


def test_the_encoding_is_canonical_and_the_hash_is_the_documented_recipe():
    fields = event(1)
    encoded = canonical(fields)
    assert encoded.startswith(b'{"action":"users.update","actor_org_id":null,')
    assert b'"at":"2026-12-07T15:00:01.120000Z"' in encoded and "Zoë".encode() in encoded
    assert b'"details":{"a":"Z' in encoded  # nested keys sorted too
    assert event_hash(GENESIS, fields) == hashlib.sha256(GENESIS.encode() + b"\n" + encoded).hexdigest()
    # What the database hands back is hashed identically: a tuple read back as a list, another zone.
    same = event(1, details={"a": "Zoë", "b": (1, 2)}, at=(T0 + timedelta(seconds=1)).astimezone(timezone(
        timedelta(hours=-5))))
    assert canonical(same) == encoded
    assert event_hash(GENESIS, event(1, reason="x")) != event_hash(GENESIS, fields)


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 1, 1))


def test_an_intact_chain_checks_out_and_its_end_must_match_the_head():
    rows = chain(5)
    checker = ChainChecker()
    assert all(checker.feed(*row) is None for row in rows)
    assert checker.finish(5, rows[-1][2]) is None and checker.count == 5
    truncated = ChainChecker()
    for row in rows[:3]:
        truncated.feed(*row)
    broken = truncated.finish(5, rows[-1][2])
    assert broken is not None and broken.problem is Problem.REMOVED and broken.event_id is None


def test_an_edited_event_is_named():
    rows = chain(4)
    fields, prev, digest = rows[2]
    rows[2] = ({**fields, "target_id": "someone"}, prev, digest)
    checker = ChainChecker()
    results = [checker.feed(*row) for row in rows]
    assert results[:2] == [None, None]
    assert results[2] is not None and (results[2].problem, results[2].event_id, results[2].seq) == (
        Problem.EDITED, "e3", 3)
    assert checker.finish(4, rows[-1][2]) is results[2]  # the first break stays the answer


def test_a_removed_event_names_the_one_after_the_gap():
    rows = chain(5)
    del rows[1]
    checker = ChainChecker()
    broken = next(b for b in (checker.feed(*row) for row in rows) if b is not None)
    assert (broken.problem, broken.event_id, broken.seq) == (Problem.REMOVED, "e3", 3)
    assert "seq 2 expected" in broken.explanation


def test_an_event_chained_to_an_earlier_one_or_out_of_order_is_reordered():
    rows = chain(3)
    forked = event(4)
    rows.append((forked, rows[1][2], event_hash(rows[1][2], forked)))  # chained after seq 2, not 3
    checker = ChainChecker()
    broken = next(b for b in (checker.feed(*row) for row in rows) if b is not None)
    assert (broken.problem, broken.event_id) == (Problem.REORDERED, "e4") and "after event seq 2" in broken.explanation
    backwards = chain(3)
    checker = ChainChecker()
    broken = next(b for b in (checker.feed(*row) for row in [*backwards, backwards[1]]) if b is not None)
    assert (broken.problem, broken.event_id) == (Problem.REORDERED, "e2")


def test_a_purged_trail_starts_from_its_anchor():
    rows = chain(6)
    checker = ChainChecker(3, rows[2][2])
    assert all(checker.feed(*row) is None for row in rows[3:])
    assert checker.finish(6, rows[-1][2]) is None
    wrong_anchor = ChainChecker(2, rows[1][2])
    assert wrong_anchor.feed(*rows[3]) is not None
