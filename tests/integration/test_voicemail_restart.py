"""A message left without a transcript when the server stopped is transcribed after the restart.

The first server stores a message (real espeak-ng speech through μ-law, as a call delivers it) but
stops before its transcript is made — as after a crash or a full queue. The second server, on the
same data directory and database, reads the encrypted audio back, transcribes it with the packaged
Whisper tiny.en model and stores the transcript, which the search then finds.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ringwell.features.accounts.service import UserSpec
from ringwell.server import RingwellServer
from ringwell.settings import Settings, ensure_config, load_settings
from ringwell.transcribe.score import normalize
from tests.integration.test_transcribe import VOICEMAIL, _phone_speech
from tests.peers.ports import LOOPBACK, free_port

pytestmark = pytest.mark.timeout(120)


def _settings(tmp_path) -> Settings:
    ensure_config(tmp_path)
    rtp = free_port(40)
    return load_settings(tmp_path, {
        "RINGWELL_BIND": LOOPBACK, "RINGWELL_SIP_PORT": str(free_port()), "RINGWELL_TLS_PORT": str(free_port()),
        "RINGWELL_HTTP_PORT": str(free_port()), "RINGWELL_RTP_PORTS": f"{rtp}-{rtp + 39}",
    })


async def test_a_pending_transcript_is_made_after_a_restart(tmp_path):
    pcm = _phone_speech(tmp_path, VOICEMAIL)
    first = RingwellServer(_settings(tmp_path))
    await first.start()
    try:
        await first.accounts.create_org("Acme")
        alice = await first.accounts.create_user("Acme", UserSpec("alice@example.com", "101", "alice", "password1"))
        org_id, user_id = alice.user.org_id, alice.user.id
        # Stored, but the server stops before transcribing it (nothing is handed to the worker).
        message = await first.voicemail.deposit(org_id, user_id, "+13127048261", None, pcm)
        assert message is not None
        deleted = await first.voicemail.deposit(org_id, user_id, "+13127048261", None, pcm)
        assert deleted is not None
    finally:
        await first.stop()
    assert first.transcripts.done == 0

    second = RingwellServer(_settings(tmp_path))
    await second.start()
    try:
        await second.voicemail.delete(org_id, deleted.id)  # deleted while it waited: simply skipped
        deadline = time.monotonic() + 90
        while (row := await second.voicemail.get(org_id, message.id)).transcript_status == "pending":
            assert time.monotonic() < deadline, "the pending message was not transcribed after the restart"
            await asyncio.sleep(0.25)
        assert row.transcript_status == "done"
        text = await second.voicemail.transcript(org_id, message.id)
        words = normalize(text)
        assert "robert" in words and "northwindlogistics" in "".join(words), text
        # ... and it is searchable like any other transcript.
        assert [m.id for m in await second.voicemail.list(org_id, query="robert logistics")] == [message.id]
        assert second.transcripts.resumed >= 1 and second.transcripts.failed == 0
    finally:
        await second.stop()
