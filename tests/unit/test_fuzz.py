"""Properties: the parser returns a message or raises RemoteProtocolError — nothing else —
whole and byte by byte through the TCP framer; truncated and corrupted messages too."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.framing import KEEPALIVE, NEED_DATA, StreamFramer
from ringwell.sip.message import Request, Response, parse_message
from tests.golden import golden_messages
from tests.sipdata import vectors

SEEDS = [v.data for v in vectors()] + [m for _, m in golden_messages()]


def _parses(data: bytes) -> bool:
    try:
        parse_message(data)
    except RemoteProtocolError:
        return False
    return True


VALID = [d for d in SEEDS if _parses(d)]


INSERTS = [b"\r\n", b" ", b",", b";", b":", b"<", b'"', b"\x00", b"%", "²".encode()]


def outcome(data: bytes, datagram: bool = True) -> object:
    try:
        message = parse_message(data, datagram=datagram)
    except RemoteProtocolError as exc:
        assert 400 <= exc.status_hint <= 599
        return exc
    assert isinstance(message, Request | Response)
    return message


@given(st.binary(max_size=2048))
@settings(max_examples=400, deadline=None)
def test_random_bytes(data):
    outcome(data)


@given(st.sampled_from(SEEDS), st.data())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_messages(seed, data):
    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "flip" and buf:
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.sampled_from(INSERTS))
        elif op == "delete" and buf:
            del buf[pos]
        elif op == "truncate":
            del buf[pos:]
    outcome(bytes(buf))


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_every_truncation_of_every_seed(seed):
    data = SEEDS[seed]
    for cut in range(0, len(data), max(1, len(data) // 97)):
        outcome(data[:cut])


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_corruptions_of_every_seed(seed):
    rng = random.Random(seed)
    data = SEEDS[seed]
    for _ in range(60):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        outcome(bytes(buf))


def _with_length(data: bytes) -> bytes:
    """A message made valid for a stream: exact Content-Length."""
    message = parse_message(data)
    return message.encode()


STREAMABLE = [_with_length(d) for d in VALID]


@given(st.lists(st.sampled_from(STREAMABLE), min_size=1, max_size=5), st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_framer_byte_by_byte_yields_the_same_messages(messages, data):
    keepalive_at = data.draw(st.integers(0, len(messages)))
    stream = b"".join(
        (b"\r\n\r\n" if i == keepalive_at else b"") + m for i, m in enumerate(messages)
    )
    framer = StreamFramer()
    got: list[bytes] = []
    keepalives = 0
    for byte in stream:
        framer.feed(bytes([byte]))
        while (event := framer.next_event()) is not NEED_DATA:
            if event is KEEPALIVE:
                keepalives += 1
            else:
                got.append(event)
    assert got == messages
    assert keepalives == (1 if keepalive_at < len(messages) else 0)
    for raw in got:
        assert isinstance(outcome(raw, datagram=False), Request | Response)


@given(st.binary(max_size=3000))
@settings(max_examples=300, deadline=None)
def test_framer_on_garbage_only_raises_protocol_errors(data):
    framer = StreamFramer(max_size=2048)
    framer.feed(data)
    try:
        while (event := framer.next_event()) is not NEED_DATA:
            if isinstance(event, bytes):
                outcome(event, datagram=False)
    except RemoteProtocolError:
        pass


def test_framer_refuses_oversize_and_missing_length():
    framer = StreamFramer(max_size=100)
    framer.feed(b"OPTIONS sip:a SIP/2.0\r\n" + b"X: " + b"y" * 200)
    with pytest.raises(RemoteProtocolError) as info:
        framer.next_event()
    assert info.value.status_hint == 513
    framer = StreamFramer()
    framer.feed(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="Content-Length"):
        framer.next_event()
