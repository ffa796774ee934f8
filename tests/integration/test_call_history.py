"""The call history (``cdr.history``) on SQLite and PostgreSQL: newest first, filters, keyset pages
that never skip or repeat a call, the CSV rows and the daily summary."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

import ringwell.storage.models  # noqa: F401 - every table on Base.metadata
from ringwell.features.cdr import history
from ringwell.features.cdr import repository as repo
from ringwell.features.cdr.errors import CallNotFound, InvalidCallQuery
from ringwell.features.cdr.history import CallFilter
from ringwell.storage.base import new_id

T0 = datetime(2026, 3, 10, 12, 0, 0, 250000, tzinfo=UTC)


@pytest.fixture
def ids(acme):
    """Acme (alice 101, bob 102) and Other (carol 201): the ``acme`` fixture of conftest."""
    return acme


def call(org_id, at, *, direction="internal", disposition="answered", caller_user=None, caller_ext="101",
         caller_number=None, callee_user=None, callee_ext="102", callee_number="102", talk=None, charge=None,
         currency=None, call_id=None):
    return {
        "id": call_id or new_id(), "org_id": org_id, "sip_call_id": f"{new_id()}@10.0.0.5", "direction": direction,
        "caller_user_id": caller_user, "caller_extension": caller_ext, "caller_number": caller_number,
        "callee_user_id": callee_user, "callee_extension": callee_ext, "callee_number": callee_number,
        "started_at": at, "answered_at": at + timedelta(seconds=3) if disposition == "answered" else None,
        "ended_at": at + timedelta(seconds=60), "last_alive_at": at + timedelta(seconds=60), "ring_seconds": 3.0,
        "talk_seconds": talk, "state": "closed", "disposition": disposition, "hangup_by": "caller",
        "sip_status": 200 if disposition == "answered" else 486, "charge_minor": charge, "currency": currency,
    }


async def insert(sessions, rows):
    async with sessions() as session, session.begin():
        await repo.insert_calls(session, rows)


def newest_first(rows):
    return [row["id"] for row in sorted(rows, key=lambda r: (r["started_at"], r["id"]), reverse=True)]


async def all_pages(sessions, org_id, flt, limit):
    seen, cursor, pages = [], None, 0
    while True:
        page = await history.call_page(sessions, org_id, flt, cursor, limit)
        pages += 1
        seen += [row.id for row in page.items]
        assert len(page.items) <= limit
        if page.next_cursor is None:
            return seen, pages
        assert len(page.items) == limit
        cursor = page.next_cursor


async def test_pages_are_newest_first_and_cover_every_call_once_even_with_equal_start_times(sessions, ids):
    rng = random.Random(5)
    # 137 calls on only 9 distinct start times: most pages end in the middle of a run of equal times.
    times = [T0 + timedelta(seconds=rng.choice([0, 0, 0, 1, 2, 2, 60, 3600, -86400]), microseconds=0)
             for _ in range(137)]
    mine = [call(ids["acme"], at) for at in times]
    theirs = [call(ids["other"], T0 + timedelta(seconds=i), caller_ext="201", callee_ext="202") for i in range(20)]
    await insert(sessions, mine + theirs)

    for limit in (1, 7, 50, 200):
        seen, pages = await all_pages(sessions, ids["acme"], CallFilter(), limit)
        assert seen == newest_first(mine), limit
        assert pages == -(-137 // limit)  # the last page says so itself: no empty page after it
    first = await history.call_page(sessions, ids["acme"], CallFilter(), None, 200)
    assert all(row.org_id == ids["acme"] for row in first.items) and first.next_cursor is None
    starts = [row.started_at for row in first.items]
    assert starts == sorted(starts, reverse=True) and starts[0].tzinfo is not None


async def test_a_page_continues_after_its_cursor_when_newer_calls_arrive(sessions, ids):
    rows = [call(ids["acme"], T0 - timedelta(minutes=i)) for i in range(10)]
    await insert(sessions, rows)
    page = await history.call_page(sessions, ids["acme"], CallFilter(), None, 4)
    await insert(sessions, [call(ids["acme"], T0 + timedelta(hours=1))])  # a new call at the top
    rest = await history.call_page(sessions, ids["acme"], CallFilter(), page.next_cursor, 10)
    assert [r.id for r in page.items + rest.items] == newest_first(rows)


async def test_filters_narrow_the_history(sessions, ids):
    acme = ids["acme"]
    alice_out = call(acme, T0, direction="outbound", caller_user=ids["alice"], caller_number="+14155550100",
                     callee_ext=None, callee_number="+442079460000", talk=61.4, charge=13, currency="USD")
    inbound_bob = call(acme, T0 - timedelta(hours=1), direction="inbound", caller_ext=None,
                       caller_number="+13125550199", callee_user=ids["bob"], callee_number="+14155550100")
    busy = call(acme, T0 - timedelta(days=1), disposition="busy", caller_user=ids["alice"], callee_user=ids["bob"])
    old = call(acme, T0 - timedelta(days=30), disposition="no-answer", caller_ext="103", callee_ext="104",
               callee_number="104")
    other = call(ids["other"], T0, direction="outbound", caller_user=ids["carol"], caller_number="+14155550100",
                 callee_number="+442079460000")
    await insert(sessions, [alice_out, inbound_bob, busy, old, other])

    async def found(**filters):
        page = await history.call_page(sessions, acme, CallFilter(**filters), None, 200)
        return [row.id for row in page.items]

    assert await found() == [alice_out["id"], inbound_bob["id"], busy["id"], old["id"]]
    assert await found(direction="outbound") == [alice_out["id"]]
    assert await found(direction="inbound") == [inbound_bob["id"]]
    assert await found(disposition="busy") == [busy["id"]]
    assert await found(disposition="no-answer", direction="internal") == [old["id"]]
    assert await found(since=T0 - timedelta(days=2)) == [alice_out["id"], inbound_bob["id"], busy["id"]]
    assert await found(until=T0) == [inbound_bob["id"], busy["id"], old["id"]]  # until is exclusive
    assert await found(since=T0 - timedelta(hours=1), until=T0) == [inbound_bob["id"]]
    # Another zone is the same instant.
    assert await found(since=datetime(2026, 3, 10, 3, 0, 0, 250000, tzinfo=timezone(timedelta(hours=-5)))) == [
        alice_out["id"], inbound_bob["id"]]
    assert await found(user_id=ids["alice"]) == [alice_out["id"], busy["id"]]
    assert await found(user_id=ids["bob"]) == [inbound_bob["id"], busy["id"]]
    assert await found(user_id=ids["carol"]) == []  # another org's user: none of this org's calls
    # A number matches either party's number, written as people write it.
    assert await found(number="+14155550100") == [alice_out["id"], inbound_bob["id"]]
    assert await found(number="+1 (415) 555-0100") == [alice_out["id"], inbound_bob["id"]]
    assert await found(number="14155550100") == [alice_out["id"], inbound_bob["id"]]
    assert await found(number="0044 20 7946 0000") == [alice_out["id"]]
    assert await found(number="+1415555010") == []  # exact, not a prefix
    # An extension matches the caller's or the callee's extension.
    assert await found(number="104") == [old["id"]]
    assert await found(number="102") == [inbound_bob["id"], busy["id"]]  # bob's extension took both
    assert await found(number="101", disposition="busy") == [busy["id"]]


@pytest.mark.parametrize("flt", [
    CallFilter(since=datetime(2026, 3, 1)),
    CallFilter(until=datetime(2026, 3, 1)),
    CallFilter(since=T0, until=T0),
    CallFilter(since=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))),  # before year 1 in UTC
    CallFilter(direction="sideways"),
    CallFilter(disposition="maybe"),
    CallFilter(number=""),
    CallFilter(number="1" * 65),
    CallFilter(number="drop table;"),
    CallFilter(user_id="x" * 37),
])
async def test_invalid_filters_are_refused(sessions, ids, flt):
    with pytest.raises(InvalidCallQuery):
        await history.call_page(sessions, ids["acme"], flt)


async def test_a_tampered_cursor_is_refused(sessions, ids):
    await insert(sessions, [call(ids["acme"], T0 - timedelta(minutes=i)) for i in range(3)])
    page = await history.call_page(sessions, ids["acme"], CallFilter(), None, 1)
    assert page.next_cursor is not None
    raw = json.loads(base64.urlsafe_b64decode(page.next_cursor + "=" * (-len(page.next_cursor) % 4)))
    assert isinstance(raw, list) and len(raw) == 2

    def b64(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    for bad in [page.next_cursor[:-3] + "!!!", "x", "", "A" * 500, b64(["yesterday", "x"]),
                b64(["2026-03-01T00:00:00", "x"]), b64(["0001-01-01T00:00:00+01:00", "x"]),
                b64([raw[0]]), b64([1, 2]), b64("text"), b64({"t": raw[0], "i": raw[1]}),
                b64([raw[0], 5]), base64.urlsafe_b64encode(b"\xff\xfe").decode()]:
        with pytest.raises(InvalidCallQuery) as caught:
            await history.call_page(sessions, ids["acme"], CallFilter(), bad, 1)
        assert caught.value.details == {"field": "cursor"}
    with pytest.raises(InvalidCallQuery):
        await history.call_page(sessions, ids["acme"], CallFilter(), None, 201)


async def test_iter_calls_yields_every_match_newest_first_in_batches(sessions, ids):
    rows = [call(ids["acme"], T0 - timedelta(seconds=i // 3), disposition="answered" if i % 4 else "busy")
            for i in range(95)]
    await insert(sessions, [*rows, call(ids["other"], T0)])
    got = [row.id async for row in history.iter_calls(sessions, ids["acme"], CallFilter(), batch=7)]
    assert got == newest_first(rows)
    busy = [row.id async for row in history.iter_calls(sessions, ids["acme"], CallFilter(disposition="busy"),
                                                        batch=5)]
    assert busy == newest_first([r for r in rows if r["disposition"] == "busy"])
    exact = [row.id async for row in history.iter_calls(sessions, ids["acme"], CallFilter(), batch=95)]
    assert exact == got


async def test_get_call_is_scoped_to_the_org_and_optionally_a_user(sessions, ids):
    mine = call(ids["acme"], T0, caller_user=ids["alice"])
    theirs = call(ids["other"], T0)
    await insert(sessions, [mine, theirs])
    assert (await history.get_call(sessions, ids["acme"], mine["id"])).id == mine["id"]
    assert (await history.get_call(sessions, ids["acme"], mine["id"], ids["alice"])).id == mine["id"]
    for org, call_id, user in [("acme", theirs["id"], None), ("acme", mine["id"], ids["bob"]),
                               ("acme", "nope" * 20, None), ("other", mine["id"], None)]:
        with pytest.raises(CallNotFound):
            await history.get_call(sessions, ids[org], call_id, user)


async def test_csv_rows_follow_the_columns_and_defuse_formulas(sessions, ids):
    row = call(ids["acme"], T0, direction="outbound", caller_number="+14155550100", callee_ext=None,
               callee_number="=HYPERLINK(\"http://evil\")", talk=61.4, charge=1305, currency="USD")
    await insert(sessions, [row])
    record = await history.get_call(sessions, ids["acme"], row["id"])
    cells = dict(zip(history.CSV_COLUMNS, history.csv_row(record), strict=True))
    assert cells["id"] == row["id"]
    assert cells["started_at"] == "2026-03-10T12:00:00.250000Z"
    assert cells["from"] == "'+14155550100" and cells["from_extension"] == "101"
    assert cells["to"] == "'=HYPERLINK(\"http://evil\")"
    assert (cells["charge"], cells["currency"], cells["talk_seconds"]) == ("13.05", "USD", "61.400")
    assert (cells["disposition"], cells["to_extension"], cells["codec"]) == ("answered", "", "")
    for text, safe in [("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("101", "101"), ("", "")]:
        assert history.csv_safe(text) == safe


async def test_daily_summary_counts_each_utc_day_oldest_first_with_empty_days(sessions, ids):
    now = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    rows = [
        call(ids["acme"], datetime(2026, 3, 10, 0, 0, tzinfo=UTC), talk=30.4, charge=5, currency="USD"),
        call(ids["acme"], datetime(2026, 3, 10, 8, 59, tzinfo=UTC), disposition="busy"),
        call(ids["acme"], datetime(2026, 3, 9, 23, 59, 59, 999999, tzinfo=UTC), talk=10.2, charge=2, currency="USD"),
        call(ids["acme"], datetime(2026, 3, 7, 12, 0, tzinfo=UTC), talk=0.4),
        call(ids["acme"], datetime(2026, 3, 6, 23, 59, tzinfo=UTC)),  # before the window
        call(ids["other"], datetime(2026, 3, 10, 1, 0, tzinfo=UTC), talk=99.0, charge=50, currency="USD"),
    ]
    await insert(sessions, rows)
    summary = await history.daily_summary(sessions, ids["acme"], 4, now)
    assert [(s.day, s.calls, s.answered, s.talk_seconds, s.charge_minor) for s in summary] == [
        (date(2026, 3, 7), 1, 1, 0, 0),
        (date(2026, 3, 8), 0, 0, 0, 0),
        (date(2026, 3, 9), 1, 1, 10, 2),
        (date(2026, 3, 10), 2, 1, 30, 5),
    ]
    # "now" in another zone (still 9 March there) is the same instant: the UTC day of 10 March.
    later = await history.daily_summary(sessions, ids["acme"], 1, now.astimezone(timezone(timedelta(hours=-10))))
    assert [(s.day, s.calls) for s in later] == [(date(2026, 3, 10), 2)]
    with pytest.raises(InvalidCallQuery):
        await history.daily_summary(sessions, ids["acme"], 0, now)


async def test_a_members_daily_summary_counts_only_calls_they_took_part_in(sessions, ids):
    now = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    at = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    await insert(sessions, [
        call(ids["acme"], at, caller_user=ids["alice"], talk=20.0, charge=3, currency="USD"),
        call(ids["acme"], at, callee_user=ids["alice"], disposition="no-answer"),
        call(ids["acme"], at, caller_user=ids["bob"], talk=50.0, charge=9, currency="USD"),
    ])
    [alice] = await history.daily_summary(sessions, ids["acme"], 1, now, ids["alice"])
    [everyone] = await history.daily_summary(sessions, ids["acme"], 1, now)
    assert (alice.calls, alice.answered, alice.talk_seconds, alice.charge_minor) == (2, 1, 20, 3)
    assert (everyone.calls, everyone.charge_minor) == (3, 12)


async def test_a_rare_filter_examines_a_bounded_window_per_page_and_still_finds_every_match(sessions, ids,
                                                                                             monkeypatch):
    monkeypatch.setattr(history, "SCAN_BUDGET", 10)
    rows = [call(ids["acme"], T0 - timedelta(seconds=i // 2), caller_user=ids["alice"] if i % 13 == 0 else None)
            for i in range(100)]
    await insert(sessions, rows)
    wanted = newest_first([r for r in rows if r["caller_user_id"] == ids["alice"]])
    assert len(wanted) == 8
    flt = CallFilter(user_id=ids["alice"])
    first = await history.call_page(sessions, ids["acme"], flt, None, 50)
    # Only the first 10 calls were examined: one match, and a cursor to go on from.
    assert [r.id for r in first.items] == wanted[:1] and first.next_cursor is not None
    seen, pages = await all_pages_relaxed(sessions, ids["acme"], flt, 3)
    assert seen == wanted and pages == 10  # 100 calls / 10 per page, the last one saying it is the last
    # The first page ending exactly at a full page of matches goes on from its last call, not the window's end.
    dense = await history.call_page(sessions, ids["acme"], CallFilter(disposition="answered"), None, 4)
    assert [r.id for r in dense.items] == newest_first(rows)[:4]
    after = await history.call_page(sessions, ids["acme"], CallFilter(disposition="answered"), dense.next_cursor, 4)
    assert [r.id for r in after.items] == newest_first(rows)[4:8]
    # Exports are not limited by a page's budget: every match, in order.
    assert [r.id async for r in history.iter_calls(sessions, ids["acme"], flt, batch=2)] == wanted


async def all_pages_relaxed(sessions, org_id, flt, limit):
    """Follow next_cursor to the end (pages may hold fewer than ``limit`` calls)."""
    seen, cursor, pages = [], None, 0
    while True:
        page = await history.call_page(sessions, org_id, flt, cursor, limit)
        pages += 1
        assert len(page.items) <= limit
        seen += [row.id for row in page.items]
        if page.next_cursor is None:
            return seen, pages
        cursor = page.next_cursor
