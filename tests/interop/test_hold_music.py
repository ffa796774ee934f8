"""Music on hold: baresip (alice) holds her call with linphonec (bob), who hears the org's hold music.

The organization uploaded its hold music through the service (a spoken sentence, so that it can
be told apart by correlation). While alice holds (baresip's ``hold``: a sendonly re-INVITE relayed
by Ringwell), what bob's phone records is that music (≥ 0.9); after ``resume`` he hears alice again.
"""

from __future__ import annotations

import asyncio

import pytest

from ringwell.server import RingwellServer
from tests.audio import similarity, speech_wav
from tests.interop.test_call_recording import _call, _samples, _write_wav, ringwell, voices  # noqa: F401
from tests.peers.baresip import Baresip

pytestmark = [pytest.mark.peers, pytest.mark.timeout(150)]


async def test_the_held_party_hears_the_orgs_hold_music_until_resumed(ringwell, tmp_path, voices):  # noqa: F811
    server: RingwellServer = ringwell
    org_id = server.test_org_id  # type: ignore[attr-defined]
    music = speech_wav(tmp_path / "music.wav", "Thank you for holding. Your call is important to us. "
                       "Please stay on the line.", voice="en-gb")
    await server.hold_music.upload(org_id, music.read_bytes())
    playing: list[int] = []

    async def hold_a_while(alice: Baresip) -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(alice.command, "hold")
        await asyncio.sleep(6.0)
        assert server.calls.hold_music is not None
        playing.append(server.calls.hold_music.playing)
        await asyncio.to_thread(alice.command, "resume")

    _, heard_by_bob = await _call(server, tmp_path, voices, then=hold_a_while)
    samples, rate = _samples(heard_by_bob)
    held = _write_wav(tmp_path / "held.wav", samples[int(3.5 * rate):int(7.5 * rate)], rate)
    after = _write_wav(tmp_path / "after.wav", samples[int(9.0 * rate):], rate)
    assert similarity(music, held, loops=3) >= 0.9, "bob did not hear the hold music while held"
    assert similarity(voices[0], after) >= 0.9, "bob did not hear alice again after she resumed"
    assert similarity(voices[0], held) < 0.5
    assert playing == [1] and server.calls.hold_music is not None and server.calls.hold_music.playing == 0
