"""Anchored media and call records under the conditions phones and servers really meet:
RTP from another port than the SDP said (NAT), no free RTP ports, a silent call, and the
server killed with calls up."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.interop.test_calls_sipp import Callee
from tests.peers.ports import LOOPBACK, free_port
from tests.peers.pyua import Caller, rtp_packet
from tests.peers.server import RingwellServer

pytestmark = pytest.mark.peers

USERS = {"alice": "101", "amy": "102", "bob": "201", "carl": "202"}


def password(user: str) -> str:
    return f"{user}-Secret9"


def start_server(tmp: Path, **kwargs: Any) -> RingwellServer:
    server = RingwellServer(tmp, **kwargs)
    server.start()
    server.admin("create-org", "--name", "Acme")
    rows = "email,extension,sip_username,sip_password\n" + "".join(
        f"{u}@example.com,{ext},{u},{password(u)}\n" for u, ext in USERS.items())
    (tmp / "users.csv").write_text(rows)
    server.admin("bulk-users", "--org", "Acme", "--csv", str(tmp / "users.csv"))
    return server


def records(server: RingwellServer) -> list[dict[str, Any]]:
    data = json.loads(server.admin("calls", "--json"))
    assert isinstance(data, list)
    return data


def answered_port(caller: Caller) -> int:
    assert caller.answer is not None
    match = re.search(rb"m=audio (\d+)", caller.answer.body)
    assert match, caller.answer.body
    return int(match.group(1))


def udp_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, port))
    sock.settimeout(0.05)
    return sock


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
    server = start_server(tmp_path)
    bob = Callee(server, tmp_path, "bob", "answer", seconds=30)
    announced, actual = udp_socket(), udp_socket()  # SDP says one port, RTP comes from another (NAT)
    caller = Caller(server.sip_port, "alice", password("alice"))
    try:
        bob.proc.terminate(1.0)  # replace the plain UAS by one that echoes RTP
        from tests.peers.sipp_calls import UAS, start_sipp, write_scenario

        bob.proc = start_sipp(server.sip_port, write_scenario(tmp_path, "uas-echo", UAS["answer"]),
                              tmp_path / "uas-bob", local_port=bob.port, seconds=30, extra_args=("-rtp_echo",))
        time.sleep(0.3)
        response = caller.invite("201", announced.getsockname()[1])
        assert response.status == 200, response
        echoed = exchange(actual, answered_port(caller))
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
    first = Caller(server.sip_port, "alice", password("alice"))
    second = Caller(server.sip_port, "amy", password("amy"))
    third = Caller(server.sip_port, "amy", password("amy"))
    try:
        assert first.invite("201", free_port()).status == 200
        refused = second.invite("202", free_port())
        assert refused.status == 503, refused
        assert first.bye().status == 200
        time.sleep(0.2)
        assert third.invite("202", free_port()).status == 200, "the ports of the ended call are free again"
        assert third.bye().status == 200
        bob.finish()
        carl.finish()
        by_status = sorted((r["disposition"], r["sip_status"]) for r in records(server))
        assert by_status == [("answered", 200), ("answered", 200), ("failed", 503)], by_status
        assert "Traceback" not in server.log_tail(20000)
    finally:
        for c in (first, second, third):
            c.close()
        bob.stop()
        carl.stop()
        server.stop()


def test_a_call_without_rtp_is_hung_up_after_the_media_timeout(tmp_path):
    server = start_server(tmp_path, extra_env={"RINGWELL_MEDIA_TIMEOUT": "2"})
    bob = Callee(server, tmp_path, "bob", "answer", seconds=30)
    caller = Caller(server.sip_port, "alice", password("alice"))
    try:
        assert caller.invite("201", free_port()).status == 200
        started = time.monotonic()
        bob.finish(15)  # the UAS gets Ringwell's BYE and ends
        waited = time.monotonic() - started
        with pytest.raises(TimeoutError):
            caller.recv(1.0)  # the caller's BYE is answered inside recv()
        assert getattr(caller, "byes_received", 0) >= 1  # (and its retransmissions while unread)
        assert 1.5 <= waited <= 8, waited
        (record,) = records(server)
        assert record["hangup_by"] == "system" and record["disposition"] == "answered"
        assert "Media timeout" in record["sip_reason"]
    finally:
        caller.close()
        bob.stop()
        server.stop()


def test_kill_9_with_calls_up_leaves_every_call_record_closed(tmp_path):
    server = start_server(tmp_path)
    bob = Callee(server, tmp_path / "one", "bob", "answer", seconds=40)
    carl = Callee(server, tmp_path / "two", "carl", "ring", seconds=40)
    talking = Caller(server.sip_port, "alice", password("alice"))
    ringing = Caller(server.sip_port, "amy", password("amy"))
    try:
        assert talking.invite("201", free_port()).status == 200
        ringing.sock.sendto(b"", (LOOPBACK, 9))  # keep the socket warm; the INVITE below is left ringing
        import threading

        def ring_forever() -> None:
            with contextlib.suppress(OSError, TimeoutError):  # the server dies under it
                ringing.invite("202", free_port(), timeout=4)

        ring = threading.Thread(target=ring_forever, daemon=True)
        ring.start()
        time.sleep(1.5)
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
        ring.join(10)
    finally:
        talking.close()
        ringing.close()
        bob.stop()
        carl.stop()
        server.stop()
