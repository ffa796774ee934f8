"""Anchored media and call records under the conditions phones and servers really meet:
RTP from another port than the SDP said (NAT), no free RTP ports, a silent call, and the
server killed with calls up."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.interop.test_calls_sipp import Callee, call
from tests.peers.ports import LOOPBACK, free_port
from tests.peers.proc import BoundedProcess
from tests.peers.pyua import Caller, rtp_packet
from tests.peers.server import RingwellServer
from tests.peers.sipp import write_users_csv
from tests.peers.sipp_calls import UAC, start_sipp, write_scenario

pytestmark = pytest.mark.peers

USERS = {"alice": "101", "amy": "102", "bob": "201", "carl": "202"}


def password(user: str) -> str:
    return f"{user}-Secret9"


def start_server(tmp: Path, **kwargs: Any) -> RingwellServer:
    server = RingwellServer(tmp, **kwargs)
    server.start()
    server.add_users("Acme", USERS, password)
    return server


def records(server: RingwellServer) -> list[dict[str, Any]]:
    data = json.loads(server.admin("calls", "--json"))
    assert isinstance(data, list)
    return data


def wait_records(server: RingwellServer, check, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not check(rows := records(server)):
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    return rows


def background_call(server: RingwellServer, tmp: Path, caller: str, dialled: str, hold_ms: int) -> BoundedProcess:
    """A SIPp caller that dials, talks (no RTP) for ``hold_ms`` and hangs up, in the background."""
    tmp.mkdir(parents=True, exist_ok=True)
    users = write_users_csv(tmp / f"caller-{caller}.csv", [(caller, password(caller))])
    return start_sipp(server.sip_port, write_scenario(tmp, "uac-call", UAC["call"]), tmp / f"uac-{caller}",
                      local_port=free_port(), seconds=40,
                      extra_args=("-inf", str(users), "-s", dialled, "-d", str(hold_ms)))


def exchange(sock: socket.socket, relay_port: int, count: int = 50) -> int:
    """Send ``count`` RTP packets to the relay, 20 ms apart; returns how many came back (echoed)."""
    back = 0
    for seq in range(count):
        sock.sendto(rtp_packet(seq, 0x1234), (LOOPBACK, relay_port))
        deadline = time.monotonic() + 0.02
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                sock.recvfrom(2048)
                back += 1
            except (TimeoutError, BlockingIOError):
                break
    sock.settimeout(0.3)
    try:
        while True:
            sock.recvfrom(2048)
            back += 1
    except TimeoutError:
        pass
    return back


def test_media_flows_when_rtp_comes_from_another_port_than_the_sdp_said(tmp_path):
    """No packaged softphone sends RTP from another port than its SDP names (a NAT does), so the
    caller here is ``tests.peers.pyua``; the callee is SIPp echoing the RTP it gets."""
    server = start_server(tmp_path)
    bob = Callee(server, tmp_path, "bob", "answer", seconds=30, extra=("-rtp_echo",))
    announced, actual = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(
        socket.AF_INET, socket.SOCK_DGRAM)
    caller = Caller(server.sip_port, "alice", password("alice"))
    try:
        for sock in (announced, actual):
            sock.bind((LOOPBACK, 0))
        response = caller.invite("201", announced.getsockname()[1])
        assert response.status == 200, response
        relay_port = int(re.search(rb"m=audio (\d+)", response.body).group(1))  # type: ignore[union-attr]
        echoed = exchange(actual, relay_port)
        announced.settimeout(0.2)
        with pytest.raises(TimeoutError):
            announced.recvfrom(2048)  # nothing goes to the port the SDP named once RTP latched
        assert echoed >= 40, f"only {echoed}/50 packets came back to the port the RTP came from"
        assert caller.bye().status == 200
        bob.finish()
        (record,) = records(server)
        side_a = record["media"]["a"]
        assert side_a["latched"]["port"] == actual.getsockname()[1]
        assert side_a["packets_received"] >= 50
    finally:
        caller.close()
        announced.close()
        actual.close()
        bob.stop()
        server.stop()


def test_no_free_rtp_ports_answers_503_and_ports_come_back(tmp_path):
    low = free_port(8)
    low += low % 2  # RTP ports are even: exactly two pairs, enough for one call
    server = start_server(tmp_path, extra_env={"RINGWELL_RTP_PORTS": f"{low}-{low + 3}"})
    bob = Callee(server, tmp_path / "one", "bob", "answer", seconds=30)
    carl = Callee(server, tmp_path / "two", "carl", "answer", seconds=30)
    first = background_call(server, tmp_path, "alice", "201", hold_ms=3000)
    try:
        wait_records(server, lambda rows: any(r["answered_at"] for r in rows))
        refused = call(server, tmp_path, "amy", "202", "no_media_ports")
        assert refused.ok, refused.errors
        first.wait(15)
        assert first.terminate() == 0
        bob.finish()
        again = call(server, tmp_path, "amy", "202", "call", hold_ms=300)
        assert again.ok, f"the ports of the ended call are free again: {again.errors}"
        carl.finish()
        rows = wait_records(server, lambda rows: len(rows) == 3 and all(r["state"] == "closed" for r in rows))
        by_status = sorted((r["disposition"], r["sip_status"]) for r in rows)
        assert by_status == [("answered", 200), ("answered", 200), ("failed", 503)], by_status
        assert "Traceback" not in server.log_tail(20000)
    finally:
        first.terminate(1.0)
        bob.stop()
        carl.stop()
        server.stop()


def test_a_call_without_rtp_is_hung_up_after_the_media_timeout(tmp_path):
    server = start_server(tmp_path, extra_env={"RINGWELL_MEDIA_TIMEOUT": "2"})
    bob = Callee(server, tmp_path, "bob", "answer", seconds=30)
    try:
        started = time.monotonic()
        result = call(server, tmp_path, "alice", "201", "wait_bye")  # answered, then Ringwell's BYE
        waited = time.monotonic() - started
        assert result.ok, result.errors
        bob.finish(15)  # the callee gets its BYE too
        assert 2 <= waited <= 10, waited
        (record,) = wait_records(server, lambda rows: rows and rows[0]["state"] == "closed")
        assert record["hangup_by"] == "system" and record["disposition"] == "answered"
        assert "Media timeout" in record["sip_reason"]
    finally:
        bob.stop()
        server.stop()


def test_kill_9_with_calls_up_leaves_every_call_record_closed(tmp_path):
    server = start_server(tmp_path)
    bob = Callee(server, tmp_path / "one", "bob", "answer", seconds=40)
    carl = Callee(server, tmp_path / "two", "carl", "ring", seconds=40)
    talking = background_call(server, tmp_path / "talk", "alice", "201", hold_ms=30000)
    ringing = background_call(server, tmp_path / "ring", "amy", "202", hold_ms=30000)
    try:
        wait_records(server, lambda rows: len(rows) == 2 and any(r["answered_at"] for r in rows))
        open_now = [r for r in records(server) if r["state"] == "open"]
        assert len(open_now) == 2, open_now
        server.kill()
        server.start()
        rows = records(server)
        assert len(rows) == 2
        for row in rows:
            assert row["state"] == "closed" and row["disposition"] == "interrupted", row
            assert row["ended_at"] == row["last_alive_at"]
        answered = next(r for r in rows if r["callee_number"] == "201")
        assert answered["answered_at"] is not None and answered["talk_seconds"] >= 0
        unanswered = next(r for r in rows if r["callee_number"] == "202")
        assert unanswered["answered_at"] is None
    finally:
        for peer in (talking, ringing):
            peer.terminate(1.0)
        bob.stop()
        carl.stop()
        server.stop()
