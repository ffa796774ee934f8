"""Real softphones call each other through Ringwell and hear each other.

baresip (alice) calls linphonec (bob) by extension; both registered with digest auth. Each
plays its own espeak-ng sentence and records what it hears; each recording must match what
the other side sent (``tests.audio.similarity`` ≥ 0.9), and the DTMF ``123#`` baresip sends
(RFC 4733 through the relay) must reach linphonec. The call record shows the answered call.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.audio import similarity, speech_wav
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.linphone import Linphone
from tests.peers.ports import LOOPBACK
from tests.peers.server import RingwellServer

pytestmark = pytest.mark.peers

USERS = {"alice": "101", "bob": "201", "carol": "202"}


def password(user: str) -> str:
    return f"{user}-Secret9"


@pytest.fixture(scope="module")
def ringwell(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ringwell-peers")
    server = RingwellServer(tmp)
    server.start()
    try:
        server.add_users("Acme", USERS, password)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("voices")
    caller = speech_wav(tmp / "caller.wav", "One two three four five. Calls through Ringwell are anchored. "
                        "Six seven eight nine ten. The caller keeps talking for a while.", voice="en-us")
    callee = speech_wav(tmp / "callee.wav", "The quick brown fox jumps over the lazy dog. "
                        "Hello from the callee side of this call.", voice="en-us+f3")
    return caller, callee


@pytest.mark.parametrize(("caller_transport", "callee_transport"), [("udp", "udp"), ("tls", "tcp")])
def test_baresip_calls_linphonec_both_hear_each_other_and_dtmf_arrives(
    ringwell, tmp_path, voices, caller_transport, callee_transport
):
    caller_wav, callee_wav = voices
    callee = "bob" if callee_transport == "udp" else "carol"
    extension = USERS[callee]
    bob = Linphone(tmp_path / "linphone", callee, transport=callee_transport, seconds=90)
    bob.start()
    port = ringwell.tls_port if caller_transport == "tls" else ringwell.sip_port
    alice = Baresip(tmp_path / "baresip", BaresipAccount(
        "alice", password("alice"), port, caller_transport, extra=("mwi=no", "pubint=0", "audio_codecs=pcmu")),
        audio_source=caller_wav, seconds=90)
    try:
        heard_by_bob = tmp_path / "bob-heard.wav"
        bob.prepare_media(callee_wav, heard_by_bob, autoanswer=True)
        bob.register(callee, password(callee), LOOPBACK, ringwell.sip_port)
        bob.wait_registered(15)
        alice.start()
        alice.wait_registered(15)
        since = len(bob.output())
        alice.dial(f"sip:{extension}@{LOOPBACK}:{port};transport={caller_transport}")
        alice.wait_event("CALL_ESTABLISHED", timeout=15)
        bob.wait_output(r"connected", since=since, timeout=10)
        time.sleep(2.0)
        alice.command("sndcode", "123#")
        for digit in ("1", "2", "3", "#"):
            bob.wait_output(rf"Receiving tone {re.escape(digit)} ", since=since, timeout=10)
        # baresip hangs up when its WAV ends (aufile: end of file)
        alice.wait_event("CALL_CLOSED", timeout=20)
        bob.wait_output(r"ended|terminated", since=since, timeout=10)
        time.sleep(0.5)
    finally:
        alice.stop()
        bob.stop()
    heard_by_alice, sent_by_alice = alice.recordings()
    to_bob = similarity(sent_by_alice, heard_by_bob)
    to_alice = similarity(callee_wav, heard_by_alice, loops=4)  # linphonec loops its file
    assert to_bob >= 0.9, f"bob heard alice with similarity {to_bob:.3f}"
    assert to_alice >= 0.9, f"alice heard bob with similarity {to_alice:.3f}"
    # a different sentence is not mistaken for it
    assert similarity(callee_wav, heard_by_bob, loops=4) < 0.5
    records = [c for c in json.loads(ringwell.admin("calls", "--json")) if c["callee_number"] == extension]
    assert len(records) == 1
    record = records[0]
    assert record["disposition"] == "answered" and record["hangup_by"] == "caller" and record["codec"] == "PCMU"
    media = record["media"]
    assert media["a"]["packets_received"] > 200 and media["b"]["packets_received"] > 200, media
