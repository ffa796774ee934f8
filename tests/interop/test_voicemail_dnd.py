"""Do-not-disturb with real phones: no device rings; the mailbox answers, or the caller hears busy.

Voicemail is on by default. alice (101) has do-not-disturb on and her mailbox on: bob's baresip
calls her and is answered by her voicemail box within a second or two — her own baresip, registered,
never sees an INVITE, and the call record says ``voicemail``. carol (103) has do-not-disturb on and
her mailbox switched off: bob's call is refused 486 Busy Here, her baresip never rings, and the
record says ``busy``.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from ringwell.features.accounts.service import UserSpec
from ringwell.features.cdr.models import CallRecord
from ringwell.server import RingwellServer
from tests.audio import speech_wav
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.inprocess import inprocess_server
from tests.peers.ports import LOOPBACK

pytestmark = [pytest.mark.peers, pytest.mark.timeout(90)]

ORG = "Acme"


@pytest.fixture
async def ringwell(tmp_path):
    async with inprocess_server(tmp_path) as server:
        assert server.settings.voicemail_enabled  # the default
        yield server


async def _record(server: RingwellServer, dialled: str, timeout: float = 15.0) -> CallRecord:
    """The closed call record of the call to ``dialled``."""
    deadline = time.monotonic() + timeout
    while True:
        await server.cdr.flush()
        async with server.sessions() as session:
            row = (await session.execute(select(CallRecord).where(
                CallRecord.callee_number == dialled, CallRecord.state == "closed"))).scalar_one_or_none()
        if row is not None:
            return row
        assert time.monotonic() < deadline, f"no closed call record for {dialled}"
        await asyncio.sleep(0.2)


def _invites(phone: Baresip) -> list[str]:
    return [entry.start_line for entry in phone.sip_trace() if entry.method == "INVITE"]


async def test_do_not_disturb_sends_calls_to_the_mailbox_or_answers_busy(ringwell, tmp_path):
    server: RingwellServer = ringwell
    accounts = server.accounts
    await accounts.create_org(ORG)
    alice = await accounts.create_user(ORG, UserSpec("alice@example.com", "101", "alice", "alice-secret-1"))
    await accounts.create_user(ORG, UserSpec("bob@example.com", "102", "bob", "bob-secret-12"))
    carol = await accounts.create_user(ORG, UserSpec("carol@example.com", "103", "carol", "carol-secret-1"))
    org_id = alice.user.org_id
    await accounts.update_user(org_id, alice.user.id, granter_role="owner", dnd=True)
    await accounts.update_user(org_id, carol.user.id, granter_role="owner", dnd=True, voicemail_enabled=False)
    await accounts.set_ring_timeout(ORG, "101", 20)  # were her phone rung, the box would answer after 20 s
    sip_port = server.settings.sip_port
    voice = speech_wav(tmp_path / "bob.wav", "Hi Alice, it is Bob. Please call me back about the delivery.")
    quiet = ("mwi=no", "pubint=0", "audio_codecs=pcmu")
    phones = {
        name: Baresip(tmp_path / name, BaresipAccount(name, password, sip_port, extra=quiet),
                      audio_source=voice, seconds=60)
        for name, password in (("alice", "alice-secret-1"), ("carol", "carol-secret-1"), ("bob", "bob-secret-12"))
    }
    try:
        for phone in phones.values():
            await asyncio.to_thread(phone.start)
            await asyncio.to_thread(phone.wait_registered, 15)
        bob = phones["bob"]

        # alice: straight to her mailbox, her phone silent.
        started = time.monotonic()
        await asyncio.to_thread(bob.dial, f"sip:101@{LOOPBACK}:{sip_port}")
        await asyncio.to_thread(bob.wait_event, "CALL_ESTABLISHED", timeout=10)
        assert time.monotonic() - started < 8, "the mailbox answered only after ringing"
        await asyncio.sleep(2.0)  # the greeting plays
        await asyncio.to_thread(bob.command, "hangup")
        await asyncio.to_thread(bob.wait_event, "CALL_CLOSED", timeout=10)
        record = await _record(server, "101")
        assert record.disposition == "voicemail" and record.answered_at is not None, (
            record.disposition, record.sip_status, record.sip_reason)
        assert _invites(phones["alice"]) == [], "alice's phone rang despite do-not-disturb"

        # carol: no mailbox, so busy — and her phone silent too.
        await asyncio.to_thread(bob.dial, f"sip:103@{LOOPBACK}:{sip_port}")
        await asyncio.to_thread(bob.wait_event, "CALL_CLOSED", timeout=10)
        statuses = [entry.status for entry in bob.sip_trace() if entry.status and entry.cseq
                    and entry.cseq.endswith("INVITE")]
        assert 486 in statuses, statuses
        record = await _record(server, "103")
        assert (record.disposition, record.sip_status, record.sip_reason) == ("busy", 486, "Do not disturb")
        assert record.answered_at is None
        assert _invites(phones["carol"]) == [], "carol's phone rang despite do-not-disturb"
    finally:
        for phone in phones.values():
            await asyncio.to_thread(phone.stop)
