"""Consent records on SQLite and PostgreSQL: defaults off, opt-in and opt-out recorded with the words
shown, the history of what changed, the one-year purge on a frozen clock, and the recording
announcement recorded for the users on a call once it was played (driven through the real
``CallRecordings`` with a relayed media session and espeak-ng's prompt)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from ringwell.blobs import BlobStore, KeyRing, MasterKey
from ringwell.features.privacy.consent import GPC_TEXT, TEXTS, ConsentService, Subject, recording_announced
from ringwell.features.privacy.models_consent import ConsentRecord, Purpose, Source
from ringwell.features.recordings.models import Mode
from ringwell.features.recordings.service import CallParties, RecordingService
from ringwell.media import MediaRelay, PortPool
from ringwell.media.prompts import PromptCache
from ringwell.pbx.recording import ANNOUNCEMENT, CallRecordings
from tests.integration.test_media_apps import HOST, Peer, free_range


@pytest.fixture
def consent(sessions):
    return ConsentService(sessions)


async def rows(sessions, **where) -> list[ConsentRecord]:
    async with sessions() as session:
        query = select(ConsentRecord).order_by(ConsentRecord.at, ConsentRecord.id)
        for key, value in where.items():
            query = query.where(getattr(ConsentRecord, key) == value)
        return list((await session.execute(query)).scalars().all())


async def test_cpni_marketing_is_off_until_the_person_opts_in_and_each_change_is_kept(consent, acme, sessions):
    alice = Subject.person(acme["acme"], acme["alice"])
    assert await consent.current(alice, Purpose.CPNI_MARKETING) is False
    assert await consent.current(alice, Purpose.MARKETING_EMAIL) is False
    # Declining what was never given records nothing; opting in does, with the exact notice.
    assert await consent.choose(alice, Purpose.CPNI_MARKETING, False, Source.PORTAL) is None
    t0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
    granted = await consent.choose(alice, Purpose.CPNI_MARKETING, True, Source.PORTAL, now=t0)
    assert granted is not None and granted.text_shown == TEXTS[Purpose.CPNI_MARKETING].text
    assert await consent.current(alice, Purpose.CPNI_MARKETING) is True
    assert await consent.choose(alice, Purpose.CPNI_MARKETING, True, Source.API) is None  # no change
    t1 = t0 + timedelta(days=10)
    await consent.choose(alice, Purpose.CPNI_MARKETING, False, Source.API, now=t1)
    assert await consent.current(alice, Purpose.CPNI_MARKETING) is False
    history = await consent.history(alice)
    assert [(r.granted, r.source, r.at, r.superseded_at) for r in history] == [
        (False, "api", t1, None), (True, "portal", t0, t1)]
    # Another person, and the same person's other purposes, are untouched.
    assert await consent.current(Subject.person(acme["acme"], acme["bob"]), Purpose.CPNI_MARKETING) is False
    assert await consent.current(alice, Purpose.MARKETING_EMAIL) is False
    state = await consent.state(alice)
    assert state[Purpose.CPNI_MARKETING].since == t1 and state[Purpose.MARKETING_EMAIL].is_default


async def test_records_superseded_over_a_year_ago_are_purged_the_current_ones_stay(consent, acme, sessions):
    alice = Subject.person(acme["acme"], acme["alice"])
    visitor = Subject.visitor("visitor-0123456789abcdef")
    with time_machine.travel(datetime(2025, 1, 10, tzinfo=UTC), tick=False):
        await consent.choose(alice, Purpose.MARKETING_EMAIL, True, Source.PORTAL)
        await consent.record(visitor, Purpose.ANALYTICS_COOKIES, True, Source.COOKIE_BANNER, "words",
                             text_version="cookies-1")
    with time_machine.travel(datetime(2025, 6, 1, tzinfo=UTC), tick=False):
        await consent.choose(alice, Purpose.MARKETING_EMAIL, False, Source.PORTAL)  # changed: kept a year from now
    assert await consent.purge(datetime(2026, 5, 31, tzinfo=UTC)) == 0  # not yet a year after the change
    assert await consent.purge(datetime(2026, 6, 2, tzinfo=UTC)) == 1
    left = await rows(sessions)
    assert [(r.purpose, r.granted) for r in left] == [("analytics_cookies", True), ("marketing_email", False)]
    assert await consent.current(alice, Purpose.MARKETING_EMAIL) is False  # the current choice never goes
    assert await consent.current(visitor, Purpose.ANALYTICS_COOKIES) is True


async def test_an_erased_persons_records_end_now_and_go_a_year_later(consent, acme, sessions):
    alice = Subject.person(acme["acme"], acme["alice"])
    await consent.choose(alice, Purpose.CPNI_MARKETING, True, Source.PORTAL)
    erased = datetime.now(UTC)
    assert await consent.end_person(acme["acme"], acme["alice"], now=erased) == 1
    assert await consent.current(alice, Purpose.CPNI_MARKETING) is False
    assert await consent.purge(erased + timedelta(days=364)) == 0
    assert await consent.purge(erased + timedelta(days=367)) == 1


async def test_gpc_is_recorded_once_as_an_analytics_opt_out(consent, acme, sessions):
    alice = Subject.person(acme["acme"], acme["alice"])
    await consent.record(alice, Purpose.ANALYTICS_COOKIES, True, Source.COOKIE_BANNER, "words", text_version="c")
    assert await consent.honour_gpc(alice) is True
    assert await consent.honour_gpc(alice) is False
    assert await consent.current(alice, Purpose.ANALYTICS_COOKIES) is False
    (latest, *_) = await consent.history(alice)
    assert (latest.source, latest.text_shown) == ("gpc", GPC_TEXT.text)


@pytest.fixture
def pool() -> PortPool:
    return PortPool(*free_range(4))


async def _recorded_call(sessions, tmp_path, pool, parties: CallParties, *, hang_up_at_once: bool = False,
                         on_announced=None) -> tuple[CallRecordings, str]:
    store = BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), tmp_path / "blobs")
    service = RecordingService(sessions, store, retention_days=30)
    await service.set_policy(parties.org_id, "org", Mode.ALWAYS)
    live = CallRecordings(service, PromptCache(tmp_path), on_announced=on_announced)
    relay = MediaRelay(pool, HOST)
    relay.start()
    alice, bob = Peer(), Peer()
    try:
        session = relay.create("recorded")
        session.a.set_remote(HOST, alice.port, alice.port + 1)
        session.b.set_remote(HOST, bob.port, bob.port + 1)
        live.answered("call-7", session, "PCMU", parties)
        if hang_up_at_once:
            await asyncio.sleep(0.3)  # still announcing
            live.ended("call-7")
            await asyncio.sleep(0.5)
            return live, "ended"
        for _ in range(200):  # the prompt lasts about two seconds
            if live.state("call-7") == "recording":
                break
            await asyncio.sleep(0.05)
        state = live.state("call-7")
        live.ended("call-7")
        await live.stop()
        return live, state
    finally:
        alice.close()
        bob.close()
        await relay.stop()


async def test_the_recording_announcement_is_recorded_for_the_users_on_the_call(consent, acme, sessions, tmp_path,
                                                                                pool):
    parties = CallParties(acme["acme"], "internal", acme["alice"], acme["bob"])
    before = datetime.now(UTC)
    _, state = await _recorded_call(sessions, tmp_path, pool, parties, on_announced=recording_announced(consent))
    assert state == "recording"
    told = await rows(sessions, purpose="recording_announcement")
    assert sorted(r.user_id for r in told) == sorted([acme["alice"], acme["bob"]])
    for record in told:
        assert (record.org_id, record.source, record.call_record_id) == (acme["acme"], "announcement", "call-7")
        assert record.text_shown == ANNOUNCEMENT and record.granted
        assert before <= record.at and record.superseded_at == record.at  # a notice: purged a year after the call
    alice_history = await consent.history(Subject.person(acme["acme"], acme["alice"]))
    assert [r.purpose for r in alice_history] == ["recording_announcement"]


async def test_an_inbound_call_from_outside_records_the_org_and_its_user_only(consent, acme, sessions, tmp_path, pool):
    parties = CallParties(acme["acme"], "inbound", None, acme["bob"], "+14155550100")
    await _recorded_call(sessions, tmp_path, pool, parties, on_announced=recording_announced(consent))
    told = await rows(sessions, purpose="recording_announcement")
    assert [(r.org_id, r.user_id) for r in told] == [(acme["acme"], acme["bob"])]


async def test_no_record_when_the_call_ends_before_the_announcement_did(consent, acme, sessions, tmp_path, pool):
    parties = CallParties(acme["acme"], "internal", acme["alice"], acme["bob"])
    await _recorded_call(sessions, tmp_path, pool, parties, hang_up_at_once=True,
                         on_announced=recording_announced(consent))
    assert await rows(sessions, purpose="recording_announcement") == []


async def test_a_failing_consent_hook_does_not_stop_the_recording(acme, sessions, tmp_path, pool, caplog):
    async def broken(*_: object) -> None:
        raise RuntimeError("database gone")

    parties = CallParties(acme["acme"], "internal", acme["alice"], acme["bob"])
    _, state = await _recorded_call(sessions, tmp_path, pool, parties, on_announced=broken)
    assert state == "recording"  # recording began all the same
    assert "could not be recorded as consent" in caplog.text
