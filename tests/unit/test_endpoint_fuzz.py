"""Property: whatever arrives, the endpoint answers or drops it — it never raises, never
answers 500, and never leaves a transaction unanswered."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringwell.pbx.endpoint import CredentialCache, SipEndpoint
from ringwell.pbx.registrar import Registrar, RegistrarLimits
from ringwell.pbx.security import AuthGuard, GuardLimits
from ringwell.sip.digest import NonceManager
from ringwell.sip.transaction import State
from ringwell.transport.source import Source
from tests.golden import golden_messages
from tests.sipdata import vectors

SEEDS = [v.data for v in vectors() if v.kind == "request"] + [m for _, m in golden_messages()]
SEEDS.append(
    b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKab\r\nFrom: <sip:a@x>;tag=1\r\n"
    b"To: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\nContact: <sip:a@127.0.0.1:9>\r\n"
    b'Authorization: Digest username="a", realm="ringwell", nonce="bm9ub25jZQ==", uri="sip:x", '
    b'response="0123456789abcdef0123456789abcdef", algorithm=MD5-sess, qop=auth, nc=00000001, cnonce="x"\r\n'
    b'Require: "x, y\r\nContent-Length: 0\r\n\r\n'
)


async def _none(_username: str) -> None:
    return None


def endpoint() -> SipEndpoint:
    return SipEndpoint(
        realm="ringwell", registrar=Registrar(RegistrarLimits()), credentials=CredentialCache(_none),
        guard=AuthGuard(GuardLimits()), nonces=NonceManager(b"k" * 32),
    )


def handle_all(messages: list[bytes]) -> list[bytes]:
    async def run() -> list[bytes]:
        ep = endpoint()
        out: list[bytes] = []
        for data in messages:
            ep.handle(data, Source("udp", "127.0.0.1", 5999), out.append)
        for _ in range(3):
            await asyncio.sleep(0)  # credential look-ups finish
        for entry in ep._txns.values():
            assert entry.txn.state is not State.TRYING, entry.txn.request
            assert entry.txn.state is not State.PROCEEDING or entry.txn.request.method == "INVITE"
        await ep.stop()
        return out

    return asyncio.run(run())


@given(st.sampled_from(SEEDS), st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_endpoint_survives_mutated_requests(seed, data):
    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(0, 6))):
        pos = data.draw(st.integers(0, max(0, len(buf) - 1)))
        choice = data.draw(st.sampled_from([b'"', b",", b";", b"\r\n", b"\xc3\xa9", "²".encode(), b"-sess", b"\x00"]))
        if data.draw(st.booleans()) and buf:
            del buf[pos]
        else:
            buf[pos:pos] = choice
    out = handle_all([bytes(buf)])
    assert not any(o.startswith(b"SIP/2.0 500") for o in out), out


def test_every_seed_is_answered_without_a_500():
    out = handle_all(SEEDS)
    assert out and not any(o.startswith(b"SIP/2.0 500") for o in out)
