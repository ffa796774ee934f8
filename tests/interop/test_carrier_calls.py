"""Calls to and from the phone network through carrier trunks, with SIPp and baresip.

SIPp plays the carriers on loopback (``tests/peers/sipp_carrier.py``): a gateway that challenges
Ringwell's INVITE with 407 and checks its credentials, gateways that answer 503 or 486, and a
carrier calling a rented number. Extensions are SIPp callers (digest to Ringwell) and, for the
main outbound call, baresip. What a user would notice is checked: the number format and caller
ID the carrier received, the exact charge of a 37 s call on a 1/1 and a 60/60 deck and that the
balance moved by exactly that, the cut-off when credit runs out, no overdraft under 20
parallel calls, blocked destinations, failover and no retry after busy.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.ports import LOOPBACK, free_port
from tests.peers.proc import BoundedProcess
from tests.peers.server import RingwellServer
from tests.peers.sipp import SippResult, Transport, run_sipp, write_users_csv
from tests.peers.sipp_calls import UAC, start_sipp, write_scenario
from tests.peers.sipp_carrier import CARRIER_PASSWORD, CARRIER_REGISTRAR, CARRIER_UAC, CARRIER_UAS, CARRIER_USER

pytestmark = pytest.mark.peers

# org -> (sell deck, {sip username: extension}, credit)
ORGS = {
    "Dial11": ("sell-1-1", {"alice": "101"}, "10.00"),
    "Dial60": ("sell-60-60", {"bob": "101"}, "10.00"),
    "Tight": ("sell-1-1", {"carol": "101"}, "0.05"),  # 30 s at $0.10/min
    "Crowd": ("sell-1-1", {"dave": "101"}, "0.50"),  # 5 first slices of 60 s
}
RENTED = "+14155550123"  # Dial11's number: its caller ID, and what the carrier calls


def password(user: str) -> str:
    return f"{user}-Secret9"


class Carrier:
    """A SIPp UAS on a trunk's port, running one scenario in the background."""

    def __init__(self, server: RingwellServer, tmp: Path, port: int, scenario: str, *, calls: int = 1,
                 hold_ms: int = 0, seconds: float = 90.0, transport: Transport = "udp") -> None:
        self.workdir = tmp / f"carrier-{port}-{scenario}"
        extra: tuple[str, ...] = ("-d", str(hold_ms)) if hold_ms else ()
        self.proc: BoundedProcess = start_sipp(
            server.sip_port, write_scenario(tmp, f"carrier-{scenario}", CARRIER_UAS[scenario]), self.workdir,
            local_port=port, calls=calls, seconds=seconds, extra_args=extra, transport=transport)
        time.sleep(0.3)

    def logs(self) -> str:
        path = self.workdir / "logs.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def finish(self, timeout: float = 30.0) -> str:
        self.proc.wait(timeout)
        rc = self.proc.terminate()
        errors = self.workdir / "errors.log"
        assert rc == 0, f"carrier rc={rc}\n{errors.read_text(errors='replace') if errors.exists() else ''}"
        return self.logs()

    def stop(self) -> None:
        if self.proc.running():
            self.proc.terminate(1.0)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("carrier")
    server = RingwellServer(tmp, extra_env={"RINGWELL_CREDIT_SLICE": "60"})
    ports = {name: free_port() for name in ("main", "fo-dead", "fo-a", "fo-b", "busy-a", "busy-b", "tcp")}
    server.start()
    try:
        decks = tmp / "decks"
        decks.mkdir()
        header = "prefix,description,price_per_minute,connection_fee,increments,effective_date\n"
        (decks / "sell11.csv").write_text(header + "1,North America,0.10,0,1/1,2020-01-01\n"
                                          + "44,United Kingdom,0.20,0,1/1,2020-01-01\n")
        (decks / "sell60.csv").write_text(header + "1,North America,0.10,0,60/60,2020-01-01\n")
        (decks / "buy-main.csv").write_text(header + "1415,San Francisco,0.004,0,1/1,2020-01-01\n")
        (decks / "buy-fo.csv").write_text(header + "1212,New York,0.004,0,1/1,2020-01-01\n")
        (decks / "buy-busy.csv").write_text(header + "1646,New York mobile,0.004,0,1/1,2020-01-01\n")
        (decks / "buy-tcp.csv").write_text(header + "1718,Brooklyn,0.004,0,1/1,2020-01-01\n")
        for deck, name in (("sell-1-1", "sell11"), ("sell-60-60", "sell60"), ("buy-main", "buy-main"),
                           ("buy-fo", "buy-fo"), ("buy-busy", "buy-busy"), ("buy-tcp", "buy-tcp")):
            server.admin("import-rates", "--deck", deck, str(decks / f"{name}.csv"))
        for org, (deck, users, credit) in ORGS.items():
            server.add_users(org, users, password)
            server.admin("assign-deck", "--org", org, "--deck", deck)
            server.admin("credit", "--org", org, "--amount", credit, "--reason", "test credit", "--operator", "ci")
            server.admin("set-fraud-caps", "--org", org, "--max-concurrent", "50", "--calls-per-minute", "100",
                         "--daily-spend", "100.00")
        trunk = ("--host", LOOPBACK, "--number-format", "e164-noplus")
        server.admin("add-trunk", "--name", "main", *trunk, "--port", str(ports["main"]), "--username", CARRIER_USER,
                     "--password", CARRIER_PASSWORD, "--buy-deck", "buy-main")
        server.admin("add-trunk", "--name", "fo-dead", *trunk, "--port", str(ports["fo-dead"]), "--priority", "0",
                     "--buy-deck", "buy-fo")  # nothing ever listens there
        server.admin("add-trunk", "--name", "fo-a", *trunk, "--port", str(ports["fo-a"]), "--priority", "1",
                     "--buy-deck", "buy-fo")
        server.admin("add-trunk", "--name", "fo-b", *trunk, "--port", str(ports["fo-b"]), "--priority", "2",
                     "--buy-deck", "buy-fo")
        server.admin("add-trunk", "--name", "busy-a", *trunk, "--port", str(ports["busy-a"]), "--priority", "1",
                     "--buy-deck", "buy-busy")
        server.admin("add-trunk", "--name", "busy-b", *trunk, "--port", str(ports["busy-b"]), "--priority", "2",
                     "--buy-deck", "buy-busy")
        server.admin("add-trunk", "--name", "over-tcp", "--host", LOOPBACK, "--port", str(ports["tcp"]),
                     "--transport", "tcp", "--buy-deck", "buy-tcp")
        (tmp / "numbers.csv").write_text("number,country,type,monthly_price,setup_price,trunk\n"
                                         f"{RENTED},US,fixed,1.00,0.00,main\n")
        server.admin("import-numbers", str(tmp / "numbers.csv"))
        server.admin("rent-number", "--org", "Dial11", RENTED)
        server.admin("route-number", RENTED, "--extension", "101")
        time.sleep(5.5)  # the server reloads trunks every 5 s
        yield server, ports
    finally:
        server.stop()


def balance(server: RingwellServer, org: str) -> dict[str, Any]:
    data = json.loads(server.admin("balance", "--org", org, "--json"))
    assert isinstance(data, dict)
    return data


def records(server: RingwellServer, org: str) -> list[dict[str, Any]]:
    data = json.loads(server.admin("calls", "--org", org, "--json", "--limit", "200"))
    assert isinstance(data, list)
    return data


def wait_records(server: RingwellServer, org: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        closed = [r for r in records(server, org) if r["state"] == "closed"]
        if len(closed) >= count:
            return closed
        if time.monotonic() > deadline:
            raise AssertionError(f"{org}: {len(closed)} closed records of {count}: {records(server, org)}")
        time.sleep(0.3)


def sipp_call(server: RingwellServer, tmp: Path, user: str, dialled: str, scenario: str, *, hold_ms: int = 500,
              calls: int = 1, seconds: float = 30.0, extra: tuple[str, ...] = ()) -> SippResult:
    users = write_users_csv(tmp / f"caller-{user}.csv", [(user, password(user))])
    return run_sipp(server.sip_port, write_scenario(tmp, f"uac-{scenario}", UAC[scenario]),
                    tmp / f"uac-{user}-{scenario}-{dialled.strip('+')}", users_csv=users, keys={}, calls=calls,
                    sipp_timeout=seconds, extra_args=("-s", dialled, "-d", str(hold_ms), *extra))


def test_37_s_calls_are_charged_exactly_on_1_1_and_60_60_decks(net, tmp_path, voices):
    """baresip (Dial11, 1/1 deck) and SIPp (Dial60, 60/60 deck) call +1 415 555 0100 at once; the
    carrier challenges, checks the credentials, answers and hangs up after 37 s."""
    server, ports = net
    before = {org: balance(server, org)["balance_minor"] for org in ("Dial11", "Dial60")}
    carrier = Carrier(server, tmp_path, ports["main"], "auth_hangup", calls=2, hold_ms=37_000)
    alice = Baresip(tmp_path / "baresip", BaresipAccount(
        "alice", password("alice"), server.sip_port, "udp", extra=("mwi=no", "pubint=0", "audio_codecs=pcmu")),
        audio_source=voices, seconds=90)
    results: dict[str, SippResult] = {}
    try:
        alice.start()
        alice.wait_registered(15)
        bob = threading.Thread(target=lambda: results.setdefault(
            "bob", sipp_call(server, tmp_path, "bob", "+14155550100", "wait_bye", seconds=60)))
        bob.start()
        alice.dial(f"sip:+14155550100@{LOOPBACK}:{server.sip_port}")
        alice.wait_event("CALL_ESTABLISHED", timeout=15)
        alice.wait_event("CALL_CLOSED", timeout=50)
        bob.join(60)
        logs = carrier.finish(20)
    finally:
        alice.stop()
        carrier.stop()
    assert results["bob"].ok, results["bob"].errors
    # The carrier got its number format (E.164 without '+'), the org's caller ID, valid credentials.
    assert logs.count("auth=ok") == 2 and "auth=bad" not in logs, logs
    seen = re.findall(r"ruri=(\S+) from=(.*?) to=", logs)
    assert len(seen) == 2 and all(ruri.startswith("sip:14155550100@") for ruri, _ in seen), seen
    assert any("sip:14155550123@" in sender for _, sender in seen), "Dial11 calls with its rented number"
    # exact charges: $0.10/min; 37 s on 1/1 = 6.1666 cents -> 7 cents; on 60/60 = 60 s = 10 cents
    for org, cents, billable in (("Dial11", 7, 37), ("Dial60", 10, 60)):
        record = wait_records(server, org, 1)[0]
        assert record["direction"] == "outbound" and record["disposition"] == "answered", record
        assert record["callee_number"] == "+14155550100"
        assert 36.5 <= record["talk_seconds"] < 37.5, record
        assert record["billable_seconds"] == billable and record["charge_minor"] == cents, record
        assert record["rate_prefix"] == "1" and record["currency"] == "USD"
        assert record["cost_minor"] == 1, record  # buy rate $0.004/min: 0.2467 cents -> 1 cent
        assert record["trunk_id"]
        after = balance(server, org)
        assert before[org] - after["balance_minor"] == cents, (org, before[org], after)
        assert after["reserved_minor"] == 0


def test_carrier_calls_a_rented_number_and_the_routed_extension_answers(net, tmp_path, voices):
    server, ports = net
    alice = Baresip(tmp_path / "baresip-in", BaresipAccount(
        "alice", password("alice"), server.sip_port, "udp",
        extra=("mwi=no", "pubint=0", "audio_codecs=pcmu", "answermode=auto")), audio_source=voices, seconds=60)
    count = len(records(server, "Dial11"))
    try:
        alice.start()
        alice.wait_registered(15)
        # the carrier sends the number as its trunk's format says (E.164 without '+'), from the trunk's port
        result = run_sipp(server.sip_port, write_scenario(tmp_path, "carrier-uac", CARRIER_UAC),
                          tmp_path / "carrier-uac", local_port=ports["main"], sipp_timeout=30,
                          extra_args=("-s", RENTED.lstrip("+"), "-d", "2000"))
        assert result.ok, result.errors + result.stderr
    finally:
        alice.stop()
    recs = wait_records(server, "Dial11", count + 1)
    record = recs[0]
    assert record["direction"] == "inbound" and record["callee_number"] == RENTED, record
    assert record["caller_number"] == "+12125550199" and record["callee_extension"] == "101"
    assert record["disposition"] == "answered" and record["trunk_id"], record
    assert record["charge_minor"] is None  # inbound calls are not charged per minute


def test_credit_for_30_s_cuts_the_call_at_30_s(net, tmp_path):
    server, ports = net
    carrier = Carrier(server, tmp_path, ports["main"], "auth_wait")
    try:
        result = sipp_call(server, tmp_path, "carol", "+14155550100", "wait_bye", seconds=60)
        logs = carrier.finish(20)
    finally:
        carrier.stop()
    assert result.ok, result.errors
    assert 'bye reason= SIP;cause=402;text="Credit exhausted"' in logs, logs
    record = wait_records(server, "Tight", 1)[0]
    assert record["hangup_by"] == "system" and record["sip_reason"] == "Credit exhausted", record
    assert 29.0 <= record["talk_seconds"] <= 31.0, record
    assert record["charge_minor"] == 5
    after = balance(server, "Tight")
    assert after["balance_minor"] == 0 and after["reserved_minor"] == 0, after
    # with nothing left, the next call is refused before it rings anyone
    refused = sipp_call(server, tmp_path, "carol", "+14155550100", "payment_required")
    assert refused.ok, refused.errors
    blocked = wait_records(server, "Tight", 2)[0]
    assert blocked["disposition"] == "blocked" and blocked["sip_status"] == 402


def test_20_parallel_calls_never_overdraw_and_the_ledger_balances(net, tmp_path):
    server, ports = net
    carrier = Carrier(server, tmp_path, ports["main"], "auth_wait", calls=20, seconds=60)
    try:
        result = sipp_call(server, tmp_path, "dave", "+14155550100", "call", hold_ms=3000, calls=20, seconds=40,
                           extra=("-r", "20", "-l", "20"))
    finally:
        carrier.stop()
    recs = wait_records(server, "Crowd", 20, timeout=30)
    answered = [r for r in recs if r["disposition"] == "answered"]
    blocked = [r for r in recs if r["disposition"] == "blocked"]
    # $0.50 covers five first slices of 60 s at $0.10/min: five calls go through, the rest get 402
    assert len(answered) == 5 and len(blocked) == 15, (len(answered), len(blocked), result.errors[-2000:])
    assert all(r["sip_status"] == 402 for r in blocked)
    charged = sum(r["charge_minor"] for r in answered)
    after = balance(server, "Crowd")
    assert after["balance_minor"] == 50 - charged >= 0 and after["reserved_minor"] == 0, after
    verify = json.loads(server.admin("balance", "--org", "Crowd", "--json", "--verify"))
    assert verify["verified"] is True, verify


def test_blocked_destination_gets_403_and_a_blocked_record(net, tmp_path):
    server, _ports = net
    count = len(records(server, "Dial11"))
    result = sipp_call(server, tmp_path, "alice", "+88213123456", "forbidden")  # a satellite (high-risk) range
    assert result.ok, result.errors
    record = wait_records(server, "Dial11", count + 1)[0]
    assert record["disposition"] == "blocked" and record["sip_status"] == 403, record
    unparseable = sipp_call(server, tmp_path, "alice", "+1", "address_incomplete")
    assert unparseable.ok, unparseable.errors


def test_a_silent_trunk_then_a_503_the_call_goes_out_on_the_third(net, tmp_path):
    """fo-dead never answers (given up after 5 s, not Timer B's 32 s), fo-a answers 503, fo-b answers."""
    server, ports = net
    first = Carrier(server, tmp_path, ports["fo-a"], "fail_503")
    second = Carrier(server, tmp_path, ports["fo-b"], "answer_wait")
    started = time.monotonic()
    try:
        result = sipp_call(server, tmp_path, "alice", "+12125550100", "call", hold_ms=1000)
        first.finish(10)
        second.finish(10)
    finally:
        first.stop()
        second.stop()
    assert result.ok, result.errors
    assert 5.0 <= time.monotonic() - started < 15.0
    record = next(r for r in wait_records(server, "Dial11", 1) if r["callee_number"] == "+12125550100")
    trunks = {t["name"]: t for t in json.loads(server.admin("trunks", "--json"))}
    assert record["disposition"] == "answered" and record["trunk_id"] == trunks["fo-b"]["id"], record


def test_a_tcp_trunk_is_connected_and_carries_the_call(net, tmp_path):
    server, ports = net
    carrier = Carrier(server, tmp_path, ports["tcp"], "answer_wait", transport="tcp")
    try:
        time.sleep(2.5)  # Ringwell (re)connects to TCP trunks every 2 s
        result = sipp_call(server, tmp_path, "alice", "+17185550100", "call", hold_ms=1000)
        logs = carrier.finish(10)
    finally:
        carrier.stop()
    assert result.ok, result.errors
    assert "ruri=sip:+17185550100@" in logs and "bye reason=" in logs, logs  # this trunk takes E.164 with +
    received = (carrier.workdir / "messages.log").read_text(errors="replace")
    assert "TCP message received" in received and "UDP message" not in received
    record = next(r for r in wait_records(server, "Dial11", 1) if r["callee_number"] == "+17185550100")
    trunks = {t["name"]: t for t in json.loads(server.admin("trunks", "--json"))}
    assert record["disposition"] == "answered" and record["trunk_id"] == trunks["over-tcp"]["id"], record


def test_486_from_the_first_trunk_is_not_retried(net, tmp_path):
    server, ports = net
    first = Carrier(server, tmp_path, ports["busy-a"], "busy_486")
    second = Carrier(server, tmp_path, ports["busy-b"], "answer_wait", seconds=15)
    try:
        result = sipp_call(server, tmp_path, "alice", "+16465550100", "busy")
        first.finish(10)
        time.sleep(1.0)
        assert "ruri=" not in second.logs(), "the second trunk must not be dialled after a 486"
    finally:
        first.stop()
        second.stop()
    assert result.ok, result.errors
    record = next(r for r in wait_records(server, "Dial11", 1) if r["callee_number"] == "+16465550100")
    assert record["disposition"] == "busy" and record["sip_status"] == 486, record


def test_a_trunk_registers_to_its_carrier_and_keeps_the_registration_alive(net, tmp_path):
    server, _ports = net
    port = free_port()
    registrar = start_sipp(server.sip_port, write_scenario(tmp_path, "registrar", CARRIER_REGISTRAR),
                           tmp_path / "registrar", local_port=port, seconds=40)
    try:
        server.admin("add-trunk", "--name", "registered", "--host", LOOPBACK, "--port", str(port), "--username",
                     CARRIER_USER, "--password", CARRIER_PASSWORD, "--register", "--register-expires", "120",
                     "--buy-deck", "buy-none")
        deadline = time.monotonic() + 30
        while "register2 auth=ok" not in ((tmp_path / "registrar" / "logs.log").read_text(errors="replace")
                                          if (tmp_path / "registrar" / "logs.log").exists() else ""):
            assert time.monotonic() < deadline, "no refreshed registration within 30 s"
            time.sleep(0.5)
        state = server.health()["trunks"]["registered"]
        registrar.wait(10)
    finally:
        registrar.terminate(1.0)
        server.admin("remove-trunk", "--name", "registered")
    logs = (tmp_path / "registrar" / "logs.log").read_text(errors="replace")
    assert "auth=bad" not in logs
    # our Contact points at Ringwell's SIP port; we asked for 120 s and refreshed the 10 s granted at half
    assert re.search(rf"register1 auth=ok contact=sip:{CARRIER_USER}@127\.0\.0\.1:{server.sip_port};"
                     r"transport=udp asked=120", logs), logs
    assert state["state"] == "registered" and 0 <= state["expires_in"] <= 10, state


def test_caller_id_verification_call_collects_the_code_by_dtmf(net, tmp_path, voices):
    """Ringwell calls the number to verify (here baresip stands behind a trunk of its own) and
    the user keys in the code the CLI showed; the number is then verified for that user."""
    server, _ports = net
    phone = Baresip(tmp_path / "baresip-verify", BaresipAccount(
        "13055550142", "unused", server.sip_port, "udp", regint=0,
        extra=("mwi=no", "pubint=0", "audio_codecs=pcmu", "answermode=auto")), audio_source=voices, seconds=60)
    decks = tmp_path / "buy-verify.csv"
    decks.write_text("prefix,description,price_per_minute\n1305,Miami,0.004\n")
    server.admin("import-rates", "--deck", "buy-verify", str(decks))
    server.admin("add-trunk", "--name", "to-owner", "--host", LOOPBACK, "--port", str(phone.sip_port),
                 "--buy-deck", "buy-verify", "--number-format", "e164-noplus")  # baresip answers its own user
    try:
        phone.start()
        time.sleep(5.5)  # the server reloads trunks every 5 s
        out = server.admin("verify-caller-id", "--org", "Dial11", "--extension", "101", "(305) 555-0142")
        code = re.search(r"verification code: (\d{6})", out)
        assert code, out
        phone.wait_event("CALL_ESTABLISHED", timeout=15)
        time.sleep(0.5)
        phone.command("sndcode", code.group(1))
        deadline = time.monotonic() + 15
        while "+13055550142" not in json.loads(server.admin("caller-ids", "--org", "Dial11", "--extension", "101",
                                                              "--json"))["verified"]:
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.5)
        phone.wait_event("CALL_CLOSED", timeout=10)  # Ringwell hangs up once it has six digits
    finally:
        phone.stop()
        server.admin("remove-trunk", "--name", "to-owner")
    # exactly that number is verified for that user
    assert json.loads(server.admin("caller-ids", "--org", "Dial11", "--extension", "101", "--json"))["verified"] == [
        "+13055550142"]


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    from tests.audio import speech_wav

    tmp = tmp_path_factory.mktemp("carrier-voice")
    return speech_wav(tmp / "caller.wav", "Calling the phone network through a carrier trunk. " * 16, voice="en-us")
