"""SIPp scenarios through Ringwell's B2BUA: answered calls, busy, no answer, CANCEL, BYE from the
callee, hold and resume, retransmissions, another organization's extension; each leaves the
call record a user would expect in ``ringwell admin calls``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.peers.ports import free_port
from tests.peers.proc import BoundedProcess
from tests.peers.server import RingwellServer
from tests.peers.sipp import SippResult, run_sipp, write_register_scenario, write_users_csv
from tests.peers.sipp_calls import UAC, UAS, start_sipp, write_scenario

pytestmark = pytest.mark.peers

# username -> extension; callers are 1xx, callees 2xx; "other" is in another organization
ACME = {"alice": "101", "bob": "201", "carol": "202", "dave": "203", "erin": "204", "frank": "205", "gina": "206",
        "hank": "207", "ivan": "208", "judy": "209"}
OTHER = {"oscar": "301"}


def password(user: str) -> str:
    return f"{user}-Secret9"


@pytest.fixture(scope="module")
def ringwell(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ringwell-calls")
    # No mailboxes: these scenarios are what a caller gets when nobody answers (486, 480, 408...);
    # with voicemail on the box would answer them (tests/interop/test_voicemail_dnd.py).
    server = RingwellServer(tmp, extra_env={"RINGWELL_MIN_EXPIRES": "1", "RINGWELL_VOICEMAIL_ENABLED": "false"})
    server.start()
    try:
        server.add_users("Acme", ACME, password)
        server.add_users("Other", OTHER, password)
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def nothing_left_behind(ringwell):
    """After every scenario no call is up and every RTP port is back in the pool."""
    yield
    deadline = time.monotonic() + 5
    while (health := ringwell.health())["calls"] or health["media_sessions"]:
        assert time.monotonic() < deadline, f"left behind: {health}"
        time.sleep(0.2)


def calls(server: RingwellServer, org: str = "Acme") -> list[dict[str, Any]]:
    data = json.loads(server.admin("calls", "--org", org, "--json"))
    assert isinstance(data, list)
    return data


def wait_call(server: RingwellServer, sip_callee: str, *, closed: bool = True, timeout: float = 10.0,
              org: str = "Acme") -> dict[str, Any]:
    """The newest record whose callee_number is ``sip_callee``, once written (and closed)."""
    deadline = time.monotonic() + timeout
    while True:
        mine = [c for c in calls(server, org) if c["callee_number"] == sip_callee]
        if mine and (not closed or mine[0]["state"] == "closed"):
            return mine[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {'closed ' if closed else ''}record for {sip_callee}: {mine}")
        time.sleep(0.25)


class Callee:
    """A SIPp UAS registered as ``user`` and running ``scenario`` in the background."""

    def __init__(self, server: RingwellServer, tmp: Path, user: str, scenario: str, *, hold_ms: int = 0,
                 seconds: float = 30.0, extra: tuple[str, ...] = ()) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        reg = run_sipp(server.sip_port, write_register_scenario(tmp), tmp / f"reg-{user}",
                       users_csv=write_users_csv(tmp / f"{user}.csv", [(user, password(user))]),
                       local_port=self.port, expires=120)
        assert reg.ok, reg.errors
        if hold_ms:
            extra = ("-d", str(hold_ms), *extra)
        self.proc: BoundedProcess = start_sipp(
            server.sip_port, write_scenario(tmp, f"uas-{scenario}", UAS[scenario]), tmp / f"uas-{user}",
            local_port=self.port, seconds=seconds, extra_args=extra)
        self.workdir = tmp / f"uas-{user}"
        time.sleep(0.3)

    def finish(self, timeout: float = 20.0) -> str:
        self.proc.wait(timeout)
        rc = self.proc.terminate()
        logs = (self.workdir / "logs.log").read_text(errors="replace") if (self.workdir / "logs.log").exists() else ""
        errors = (self.workdir / "errors.log").read_text(errors="replace") if (
            self.workdir / "errors.log").exists() else ""
        assert rc == 0, f"UAS rc={rc}\n{errors}\n{self.proc.log_text()[-2000:]}"
        return logs

    def stop(self) -> None:
        if self.proc.running():
            self.proc.terminate(1.0)


def call(server: RingwellServer, tmp: Path, caller: str, dialled: str, scenario: str, *, hold_ms: int = 500,
         extra: tuple[str, ...] = (), seconds: float = 20.0) -> SippResult:
    users = write_users_csv(tmp / f"caller-{caller}.csv", [(caller, password(caller))])
    return run_sipp(server.sip_port, write_scenario(tmp, f"uac-{scenario}", UAC[scenario]), tmp / f"uac-{scenario}",
                    users_csv=users, keys={}, sipp_timeout=seconds,
                    extra_args=("-s", dialled, "-d", str(hold_ms), *extra))


def test_answered_call_by_extension_with_topology_hiding(ringwell, tmp_path):
    bob = Callee(ringwell, tmp_path, "bob", "answer")
    try:
        result = call(ringwell, tmp_path, "alice", "201", "call", hold_ms=1000)
        assert result.ok, result.errors + result.stderr
        logs = bob.finish()
    finally:
        bob.stop()
    # Topology hiding: the callee never sees the caller's Call-ID, Via or Contact.
    uas_messages = (tmp_path / "uas-bob" / "messages.log").read_text(errors="replace")
    caller_call_id = next(line for line in result.messages.splitlines() if line.startswith("Call-ID:"))
    assert caller_call_id not in uas_messages
    assert f":{result.command[result.command.index('-p') + 1]}" not in uas_messages
    assert "from=" in logs
    record = wait_call(ringwell, "201")
    assert record["disposition"] == "answered"
    assert record["caller_extension"] == "101" and record["callee_extension"] == "201"
    assert record["hangup_by"] == "caller"
    assert 0.8 <= record["talk_seconds"] <= 3.0, record
    assert record["codec"] == "PCMU"
    assert record["answered_at"] and record["ended_at"]


def test_busy_callee_gives_486_and_a_busy_record(ringwell, tmp_path):
    carol = Callee(ringwell, tmp_path, "carol", "busy")
    try:
        result = call(ringwell, tmp_path, "alice", "carol", "busy")
        assert result.ok, result.errors
        carol.finish()
    finally:
        carol.stop()
    record = wait_call(ringwell, "carol")
    assert record["disposition"] == "busy" and record["sip_status"] == 486
    assert record["talk_seconds"] == 0


def test_nobody_registered_gives_480(ringwell, tmp_path):
    result = call(ringwell, tmp_path, "alice", "208", "unavailable")  # ivan exists but has no device
    assert result.ok, result.errors
    record = wait_call(ringwell, "208")
    assert record["disposition"] == "failed" and record["sip_status"] == 480
    assert record["callee_extension"] == "208"


def test_unknown_extension_and_other_organization_get_404(ringwell, tmp_path):
    for dialled in ("998", "301", "oscar"):  # (999 is an emergency number everywhere: it never reaches 404)
        result = call(ringwell, tmp_path, "alice", dialled, "not_found")
        assert result.ok, f"{dialled}: {result.errors}"
    assert all(c["callee_number"] != "301" or c["sip_status"] == 404 for c in calls(ringwell))
    assert not calls(ringwell, "Other"), "nothing may reach or be recorded in another organization"


def test_caller_cancels_while_ringing(ringwell, tmp_path):
    dave = Callee(ringwell, tmp_path, "dave", "ring")
    try:
        result = call(ringwell, tmp_path, "alice", "203", "cancel")
        assert result.ok, result.errors
        logs = dave.finish()
    finally:
        dave.stop()
    assert "cancel reason=" in logs
    record = wait_call(ringwell, "203")
    assert record["disposition"] == "cancelled" and record["hangup_by"] == "caller"
    assert record["sip_status"] == 487 and record["answered_at"] is None
    assert 0.7 <= record["ring_seconds"] <= 5, record


def test_callee_hangs_up(ringwell, tmp_path):
    erin = Callee(ringwell, tmp_path, "erin", "bye", hold_ms=1500)
    try:
        result = call(ringwell, tmp_path, "alice", "204", "wait_bye")
        assert result.ok, result.errors
        erin.finish()
    finally:
        erin.stop()
    record = wait_call(ringwell, "204")
    assert record["disposition"] == "answered" and record["hangup_by"] == "callee"
    assert 1.2 <= record["talk_seconds"] <= 4, record


def test_hold_and_resume_reinvites_are_relayed(ringwell, tmp_path):
    frank = Callee(ringwell, tmp_path, "frank", "hold")
    try:
        result = call(ringwell, tmp_path, "alice", "205", "hold")
        assert result.ok, result.errors
        logs = frank.finish()
    finally:
        frank.stop()
    # the callee saw the hold offer and then the resume offer, each from Ringwell
    assert "hold offer a=sendonly" in logs and "resume offer a=sendrecv" in logs
    uas = (tmp_path / "uas-frank" / "messages.log").read_text(errors="replace")
    assert uas.count("INVITE sip:") == 3
    record = wait_call(ringwell, "205")
    assert record["disposition"] == "answered" and record["hangup_by"] == "caller"


def test_retransmissions_are_absorbed(ringwell, tmp_path):
    """SIPp drops 30 % of what it receives: INVITEs, 200s and BYEs are retransmitted, the call completes."""
    gina = Callee(ringwell, tmp_path, "gina", "answer")
    try:
        result = call(ringwell, tmp_path, "alice", "206", "call", hold_ms=500, extra=("-lost", "30"), seconds=40)
        assert result.ok, result.errors
        gina.finish(40)
    finally:
        gina.stop()
    record = wait_call(ringwell, "206")
    assert record["disposition"] == "answered"
    # exactly one call record for the call, however many INVITEs arrived
    assert len([c for c in calls(ringwell) if c["callee_number"] == "206"]) == 1


def test_forking_first_answer_wins_the_other_gets_cancel_with_reason(ringwell, tmp_path):
    ringer = Callee(ringwell, tmp_path / "ringer", "hank", "ring")
    answerer = Callee(ringwell, tmp_path / "answerer", "hank", "answer")
    try:
        assert len(ringwell.wait_registration("hank")) == 2
        result = call(ringwell, tmp_path, "alice", "207", "call", hold_ms=800)
        assert result.ok, result.errors
        answerer.finish()
        logs = ringer.finish()
    finally:
        ringer.stop()
        answerer.stop()
    assert 'cancel reason= SIP;cause=200;text="Call completed elsewhere"' in logs
    (record,) = [c for c in calls(ringwell) if c["callee_number"] == "207"]
    assert record["disposition"] == "answered"


def test_no_answer_within_the_ring_timeout_gives_480(ringwell, tmp_path):
    ringwell.admin("set-ring-timeout", "--org", "Acme", "--extension", "209", "--seconds", "2")
    judy = Callee(ringwell, tmp_path, "judy", "ring")
    try:
        result = call(ringwell, tmp_path, "alice", "209", "unavailable")
        assert result.ok, result.errors
        logs = judy.finish()
    finally:
        judy.stop()
    assert 'cancel reason= SIP;cause=480;text="No answer"' in logs
    record = wait_call(ringwell, "209")
    assert record["disposition"] == "no-answer" and record["sip_status"] == 480
    assert 1.8 <= record["ring_seconds"] <= 4, record
