"""The media relay on loopback: real UDP sockets play the phones of both call legs."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import AsyncIterator

import pytest

from ringwell.media import MediaRelay, MediaSession, PortExhausted, PortPool
from ringwell.media.rtp import RtpHeader
from tests.peers.ports import free_port

HOST = "127.0.0.1"
FOREIGN = "127.0.0.2"  # lo answers for all of 127/8: another machine as far as the relay knows
WAIT = 2.0


def free_range(pairs: int) -> tuple[int, int]:
    """An even-aligned run of ``2 * pairs`` UDP ports on HOST, free right now."""
    low = free_port(2 * pairs + 1)
    low += low % 2
    return low, low + 2 * pairs - 1


class Phone:
    """A UDP socket standing in for a phone's RTP or RTCP port; collects what it receives."""

    def __init__(self, host: str = HOST, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.addr: tuple[str, int] = self.sock.getsockname()
        self.port = self.addr[1]
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self._arrived = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                self.received.append(self.sock.recvfrom(65535))
            except BlockingIOError:
                break
        self._arrived.set()

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, (HOST, port))

    async def wait_for(self, count: int, timeout: float = WAIT) -> list[bytes]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return [data for data, _ in self.received]

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


def rtp(seq: int, ssrc: int, *, pt: int = 0, marker: bool = False, payload: bytes | None = None) -> bytes:
    header = RtpHeader(2, False, False, 0, marker, pt, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc).serialize()
    return header + (os.urandom(160) if payload is None else payload)


def rr(reporter: int, ssrc: int, fraction: int, cumulative: int, highest: int, jitter: int) -> bytes:
    block = struct.pack("!IB", ssrc, fraction) + cumulative.to_bytes(3, "big", signed=True)
    block += struct.pack("!IIII", highest, jitter, 0, 0)
    return struct.pack("!BBHI", 0x81, 201, 7, reporter) + block


def sr_sdes(reporter: int) -> bytes:
    sr = struct.pack("!BBHI", 0x80, 200, 6, reporter) + struct.pack("!IIIII", 1, 2, 3, 4, 5)
    sdes = struct.pack("!BBHI", 0x81, 202, 3, reporter) + b"\x01\x05alice\x00"
    return sr + sdes


async def send_paced(phone: Phone, packets: list[bytes], port: int) -> None:
    """Send in small bursts so that no socket buffer on the way overflows."""
    for i in range(0, len(packets), 10):
        for data in packets[i : i + 10]:
            phone.send(data, port)
        await asyncio.sleep(0.001)


@pytest.fixture
def pool() -> PortPool:
    return PortPool(*free_range(8))


@pytest.fixture
async def relay(pool: PortPool) -> AsyncIterator[MediaRelay]:
    relay = MediaRelay(pool, HOST)
    relay.start()
    yield relay
    await relay.stop()
    assert pool.in_use == 0


@pytest.fixture
async def phones() -> AsyncIterator[list[Phone]]:
    made: list[Phone] = []
    yield made
    for phone in made:
        phone.close()


def phone(made: list[Phone], host: str = HOST) -> Phone:
    p = Phone(host)
    made.append(p)
    return p


# -- relaying ------------------------------------------------------------------------------------


async def relay_200_each_way(relay: MediaRelay, made: list[Phone]) -> None:
    session = relay.create("call-1")
    alice, bob = phone(made), phone(made)
    session.a.set_remote(HOST, alice.port, alice.port + 1)
    session.b.set_remote(HOST, bob.port, bob.port + 1)
    # PCMU with an RFC 4733 event (PT 101, marker on its first packet) in the middle.
    from_alice = [rtp(i, 0xA, pt=101 if 90 <= i < 95 else 0, marker=i == 90) for i in range(200)]
    from_bob = [rtp(65500 + i, 0xB, pt=8) for i in range(200)]  # PCMA, sequence numbers wrap
    await asyncio.gather(
        send_paced(alice, from_alice, session.a.local_port), send_paced(bob, from_bob, session.b.local_port)
    )
    assert await bob.wait_for(200) == from_alice
    assert await alice.wait_for(200) == from_bob
    assert {src for _, src in bob.received} == {(HOST, session.b.local_port)}
    assert {src for _, src in alice.received} == {(HOST, session.a.local_port)}

    summary = session.summary()
    for side, sender, pts in (("a", alice, [0, 101]), ("b", bob, [8])):
        s = summary[side]
        assert s["packets_received"] == s["packets_forwarded"] == 200
        assert s["bytes_received"] == s["bytes_forwarded"] == 200 * 172
        assert (s["lost"], s["foreign_dropped"], s["unrouted_dropped"], s["send_errors"]) == (0, 0, 0, 0)
        assert s["stream"]["expected"] == 200
        assert s["payload_types"] == pts
        assert s["latched"] == {"host": HOST, "port": sender.port}
    assert session.last_rtp is not None


async def test_relays_200_packets_each_way_byte_identical(relay, phones):
    await relay_200_each_way(relay, phones)


def test_relays_under_uvloop(pool):
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        relay = MediaRelay(pool, HOST)
        relay.start()
        made: list[Phone] = []
        try:
            await relay_200_each_way(relay, made)
        finally:
            for p in made:
                p.close()
            await relay.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    assert pool.in_use == 0


async def test_loss_seen_by_the_relay(relay, phones):
    session = relay.create("lossy")
    alice, bob = phone(phones), phone(phones)
    session.a.set_remote(HOST, alice.port, alice.port + 1)
    session.b.set_remote(HOST, bob.port, bob.port + 1)
    sent = [rtp(i, 7) for i in range(20) if i not in (5, 6, 12)]
    await send_paced(alice, sent, session.a.local_port)
    await bob.wait_for(len(sent))
    a = session.summary()["a"]
    assert (a["lost"], a["stream"]["expected"], a["stream"]["max_gap"]) == (3, 20, 2)


# -- where media goes: SDP address, latching, foreign sources --------------------------------------


async def test_latches_to_the_source_port_of_the_callers_rtp(relay, phones):
    session = relay.create("nat")
    sdp_port, nat_port, bob = phone(phones), phone(phones), phone(phones)  # same IP, different ports
    session.a.set_remote(HOST, sdp_port.port, sdp_port.port + 1)
    session.b.set_remote(HOST, bob.port, bob.port + 1)

    bob.send(early := rtp(1, 0xB), session.b.local_port)  # before A's first packet: to A's SDP port
    assert await sdp_port.wait_for(1) == [early]

    nat_port.send(first := rtp(1, 0xA), session.a.local_port)
    assert await bob.wait_for(1) == [first]
    assert session.a.latched == (HOST, nat_port.port)

    bob.send(reply := rtp(2, 0xB), session.b.local_port)
    assert await nat_port.wait_for(1) == [reply]
    assert len(sdp_port.received) == 1


async def test_a_foreign_ip_does_not_latch_and_is_dropped(relay, phones):
    session = relay.create("foreign")
    alice, stranger, bob = phone(phones), phone(phones, FOREIGN), phone(phones)
    session.a.set_remote(HOST, alice.port, alice.port + 1)
    session.b.set_remote(HOST, bob.port, bob.port + 1)

    stranger.send(rtp(1, 0xE), session.a.local_port)
    alice.send(legit := rtp(1, 0xA), session.a.local_port)  # same queue: handled after the stranger's
    assert await bob.wait_for(1) == [legit]
    assert session.a.latched == (HOST, alice.port)
    stranger.send(rtp(2, 0xE), session.a.local_port)  # after the latch too
    alice.send(legit2 := rtp(2, 0xA), session.a.local_port)
    assert await bob.wait_for(2) == [legit, legit2]

    bob.send(reply := rtp(1, 0xB), session.b.local_port)
    assert await alice.wait_for(1) == [reply]
    assert stranger.received == []
    a = session.summary()["a"]
    assert (a["foreign_dropped"], a["packets_received"], a["ssrc"]) == (2, 2, 0xA)


async def test_the_signalling_host_may_latch(relay, phones):
    # A phone behind NAT: its SDP holds a private address; its RTP comes from the SIP source IP.
    session = relay.create("sig")
    phone_public, bob = phone(phones, FOREIGN), phone(phones)
    session.a.set_remote("127.0.0.9", 4000, 4001, signalling_host=FOREIGN)
    session.b.set_remote(HOST, bob.port, bob.port + 1)
    phone_public.send(first := rtp(1, 0xA), session.a.local_port)
    assert await bob.wait_for(1) == [first]
    assert session.a.latched == (FOREIGN, phone_public.port)


async def test_set_remote_again_clears_the_latch(relay, phones):
    session = relay.create("fork")
    first_fork, second_fork, second_fork_nat, alice = phone(phones), phone(phones), phone(phones), phone(phones)
    session.a.set_remote(HOST, alice.port, alice.port + 1)
    session.b.set_remote(HOST, first_fork.port, first_fork.port + 1)
    first_fork.send(rtp(1, 0x1), session.b.local_port)
    await alice.wait_for(1)
    assert session.b.latched == (HOST, first_fork.port)

    session.b.set_remote(HOST, second_fork.port, second_fork.port + 1)  # another fork answered
    assert session.b.latched is None
    alice.send(to_sdp := rtp(1, 0xA), session.a.local_port)
    assert await second_fork.wait_for(1) == [to_sdp]

    second_fork_nat.send(rtp(1, 0x2), session.b.local_port)
    await alice.wait_for(2)
    assert session.b.latched == (HOST, second_fork_nat.port)
    alice.send(latched := rtp(2, 0xA), session.a.local_port)
    assert await second_fork_nat.wait_for(1) == [latched]
    assert len(first_fork.received) == 0
    assert session.b.summary()["ssrc_changes"] == 1


async def test_media_towards_an_unknown_leg_is_dropped_and_counted(relay, phones):
    session = relay.create("early")
    alice, bob = phone(phones), phone(phones)
    session.a.set_remote(HOST, alice.port, alice.port + 1)
    bob.send(rtp(1, 0xB), session.b.local_port)  # B's address is not known yet: not its media
    alice.send(rtp(1, 0xA), session.a.local_port)  # nowhere to send it
    alice.send(rtp(2, 0xA), session.a.local_port)
    await asyncio.sleep(0.05)
    assert (session.a.packets_received, session.a.unrouted_dropped, session.b.foreign_dropped) == (2, 2, 1)
    assert bob.received == []

    session.b.set_remote(HOST, bob.port, bob.port + 1)
    alice.send(third := rtp(3, 0xA), session.a.local_port)
    assert await bob.wait_for(1) == [third]

    session.b.set_remote("0.0.0.0", bob.port, bob.port + 1)  # RFC 3264 §8.4 hold: send nothing
    alice.send(rtp(4, 0xA), session.a.local_port)
    await asyncio.sleep(0.05)
    assert session.a.unrouted_dropped == 3
    assert len(bob.received) == 1


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        ("phone.example.com", 4000, "media address must be an IP address"),
        ("::1", 4000, "not of the relay's address family"),
        (HOST, 70000, "media port must be within 0-65535, got 70000"),
    ],
)
async def test_set_remote_rejects_what_cannot_be_sent_to(relay, host, port, message):
    session = relay.create("bad")
    with pytest.raises(ValueError, match=message):
        session.a.set_remote(host, port, 4001)
    assert session.a.rtp_dest is None


async def test_invalid_packets_are_dropped(relay, phones):
    session = relay.create("junk")
    alice, bob = phone(phones), phone(phones)
    session.a.set_remote(HOST, alice.port, alice.port + 1)
    session.b.set_remote(HOST, bob.port, bob.port + 1)
    alice.send(b"\x00\x01\x00\x00" + b"\x21\x12\xa4\x42" + b"\x00" * 12, session.a.local_port)  # STUN
    alice.send(b"\x80\x00", session.a.local_port)  # too short
    alice.send(ok := rtp(1, 0xA), session.a.local_port)
    assert await bob.wait_for(1) == [ok]
    assert session.a.invalid_dropped == 2


# -- RTCP ------------------------------------------------------------------------------------------


async def test_rtcp_is_relayed_latched_and_its_reports_read(relay, phones):
    session = relay.create("rtcp")
    alice_rtcp_nat, bob_rtcp = phone(phones), phone(phones)
    session.a.set_remote(HOST, 4000, 4001)  # SDP ports nobody listens on
    session.b.set_remote(HOST, 4002, bob_rtcp.port)

    alice_rtcp_nat.send(sr := sr_sdes(0xA), session.a.local_rtcp_port)
    assert await bob_rtcp.wait_for(1) == [sr]
    assert bob_rtcp.received[0][1] == (HOST, session.b.local_rtcp_port)
    assert session.a.latched_rtcp == (HOST, alice_rtcp_nat.port)
    assert session.a.latched is None  # RTP latches on its own

    report = rr(0xB, 0xA, fraction=64, cumulative=5, highest=1000, jitter=80)
    bob_rtcp.send(report, session.b.local_rtcp_port)
    assert await alice_rtcp_nat.wait_for(1) == [report]

    b = session.summary()["b"]
    assert (b["rtcp_received"], b["rtcp_forwarded"], b["rtcp_reports"]) == (1, 1, 1)
    assert b["reported_fraction_lost"] == 0.25
    assert b["reported_cumulative_lost"] == 5
    assert b["reported_jitter_ms"] == 10.0  # 80 timestamp units at 8 kHz
    a = session.summary()["a"]
    assert (a["rtcp_received"], a["rtcp_reports"], a["rtcp_malformed"]) == (1, 0, 0)


async def test_rtcp_multiplexed_on_the_rtp_port_is_relayed_not_counted_as_rtp(relay, phones):
    session = relay.create("mux")
    alice, bob = phone(phones), phone(phones)
    session.a.set_remote(HOST, alice.port, alice.port)
    session.b.set_remote(HOST, bob.port, bob.port)
    report = rr(0xA, 0xB, fraction=128, cumulative=1, highest=10, jitter=8)
    alice.send(report, session.a.local_port)
    assert await bob.wait_for(1) == [report]
    a = session.summary()["a"]
    assert (a["packets_received"], a["rtcp_received"], a["reported_fraction_lost"]) == (0, 1, 0.5)


# -- ports -----------------------------------------------------------------------------------------


async def test_create_raises_port_exhausted_and_works_again_after_close():
    pool = PortPool(*free_range(5))
    relay = MediaRelay(pool, HOST)
    try:
        first, second = relay.create("1"), relay.create("2")
        assert (pool.in_use, pool.available) == (4, 1)
        with pytest.raises(PortExhausted):
            relay.create("3")  # one pair left: the half-allocated pair goes back
        assert (pool.in_use, pool.available, relay.sessions) == (4, 1, 2)
        first.close()
        first.close()  # idempotent
        assert (pool.in_use, relay.sessions) == (2, 1)
        third = relay.create("3")
        assert third.a.local_port not in (second.a.local_port, second.b.local_port)
    finally:
        await relay.stop()
        await relay.stop()
    assert (pool.in_use, pool.available, relay.sessions) == (0, 5, 0)


async def test_close_releases_the_ports(relay, pool, phones):
    session = relay.create("c")
    ports = [session.a.local_port, session.a.local_rtcp_port, session.b.local_port, session.b.local_rtcp_port]
    assert all(p % 2 == 0 for p in ports[::2]) and ports[1] == ports[0] + 1 and ports[3] == ports[2] + 1
    assert all(pool.low <= p <= pool.high for p in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError):
        s.bind((HOST, ports[0]))
    session.close()
    assert (relay.sessions, pool.in_use) == (0, 0)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST, port))


def test_pool_round_robin_and_skips_pairs_in_use_elsewhere():
    low, high = free_range(3)
    pool = PortPool(low, high)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((HOST, low + 1))  # the RTCP port of the first pair
        rtp_sock, rtcp_sock = pool.allocate(HOST)
    port = rtp_sock.getsockname()[1]
    assert (port, rtcp_sock.getsockname()[1]) == (low + 2, low + 3)
    assert not rtp_sock.getblocking()
    rtp_sock.close()
    rtcp_sock.close()
    pool.release(port)
    again = pool.allocate(HOST)
    assert again[0].getsockname()[1] == low + 4  # not the pair just released
    for s in again:
        s.close()
    pool.release(low + 4)
    with pytest.raises(ValueError, match="is not allocated"):
        pool.release(low + 4)


@pytest.mark.parametrize(("low", "high"), [(0, 100), (100, 99), (20001, 20002), (20000, 70000)])
def test_pool_rejects_bad_ranges(low, high):
    with pytest.raises(ValueError):
        PortPool(low, high)


def test_pool_odd_low_starts_at_the_next_even_port():
    pool = PortPool(20001, 20006)  # pairs 20002/20003 and 20004/20005
    assert pool.available == 2


# -- media timeout ---------------------------------------------------------------------------------


async def test_media_timeout_fires_once_for_an_armed_silent_session(pool, phones):
    timed_out: list[MediaSession] = []
    relay = MediaRelay(pool, HOST, timeout=0.5, on_timeout=timed_out.append)
    relay.start()
    relay.start()  # idempotent
    try:
        silent, unarmed, talking = relay.create("silent"), relay.create("unarmed"), relay.create("talking")
        alice, bob = phone(phones), phone(phones)
        talking.a.set_remote(HOST, alice.port, alice.port + 1)
        talking.b.set_remote(HOST, bob.port, bob.port + 1)
        started = time.monotonic()
        silent.arm()
        talking.arm()
        fired_at = None
        seq = 0
        while time.monotonic() - started < 1.4:
            alice.send(rtp(seq, 0xA), talking.a.local_port)
            seq += 1
            await asyncio.sleep(0.05)
            if timed_out and fired_at is None:
                fired_at = time.monotonic() - started
        assert timed_out == [silent]
        assert fired_at is not None and 0.5 <= fired_at < 0.9
        assert silent.timed_out and not unarmed.timed_out and not talking.timed_out
    finally:
        await relay.stop()


async def test_check_timeouts_on_a_fake_clock(relay: MediaRelay):
    session = relay.create("fake-clock")
    now = time.monotonic()
    assert relay.check_timeouts(now + 3600) == []  # not armed
    session.arm()
    assert relay.check_timeouts(now + 30) == []
    assert relay.check_timeouts(now + 61) == [session]
    assert relay.check_timeouts(now + 120) == []  # once
    session.last_rtp = now + 100
    session.arm()  # re-armed, e.g. after a hold
    assert relay.check_timeouts(session.idle_since() + 59) == []
    # + 60.001, not + 60: (t + 60) - t can come out a hair under 60 in floating point
    assert relay.check_timeouts(session.idle_since() + 60.001) == [session]
    session.disarm()
    session.timed_out = False
    assert relay.check_timeouts(now + 10_000) == []


async def test_a_failing_timeout_handler_does_not_stop_the_checker(pool, caplog):
    calls: list[str] = []

    def handler(session: MediaSession) -> None:
        calls.append(session.label)
        raise RuntimeError("boom")

    relay = MediaRelay(pool, HOST, timeout=60.0, on_timeout=handler)
    try:
        first, second = relay.create("x"), relay.create("y")
        first.arm()
        second.arm()
        assert len(relay.check_timeouts(time.monotonic() + 61)) == 2
        assert sorted(calls) == ["x", "y"]
        assert "media-timeout handler failed" in caplog.text
    finally:
        await relay.stop()


async def test_a_closed_session_leaves_no_garbage_cycles():
    """Per-call objects must be freed by reference counting alone (the server freezes older
    objects for the cyclic collector every second, so a cycle would be a leak)."""
    import gc

    relay = MediaRelay(PortPool(*free_range(8)), "127.0.0.1", timeout=60.0)
    relay.start()
    try:
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                session = relay.create("cycle-check")
                session.a.set_remote("127.0.0.1", 40000, 40001)
                session.arm()
                session.summary()
                session.close()
                session.summary()  # still readable after close (the call record reads it)
            del session
            assert gc.collect() == 0
        finally:
            gc.enable()
    finally:
        await relay.stop()
