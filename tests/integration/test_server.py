"""The running server on loopback (in this process): transports, digest REGISTER, bad input,
brute-force blocking, retransmissions and fairness under a flood."""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from datetime import UTC, datetime

import pytest

from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.registrations import repository as bindings_repo
from ringwell.server import RingwellServer
from ringwell.settings import ensure_config, load_settings
from tests.peers.ports import free_port
from tests.sipclient import Client
from tests.sipdata import REFUSALS, vectors


@pytest.fixture
async def server(tmp_path):
    ensure_config(tmp_path)
    sip, tls, http = free_port(), free_port(), free_port()
    settings = load_settings(tmp_path, {
        "RINGWELL_BIND": "127.0.0.1", "RINGWELL_SIP_PORT": str(sip), "RINGWELL_TLS_PORT": str(tls),
        "RINGWELL_HTTP_PORT": str(http), "RINGWELL_AUTH_FAILURES_PER_SOURCE": "8",
        "RINGWELL_AUTH_FAILURES_PER_USER": "6", "RINGWELL_MAX_MESSAGE_SIZE": "8000",
        "RINGWELL_DIGEST_ALGORITHMS": "SHA-256,MD5",
    })
    srv = RingwellServer(settings)
    await srv.start()
    accounts = AccountsService(srv.sessions, settings.sip_realm)
    await accounts.create_org("Acme")
    await accounts.create_user("Acme", UserSpec("alice@example.com", "101", "alice", "alice-secret"))
    await accounts.create_user("Acme", UserSpec("bob@example.com", "102", "bob", "bob-secret-1"))
    try:
        yield srv
    finally:
        await srv.stop()


async def client(srv, transport="udp", local="127.0.0.1"):
    port = srv.settings.tls_port if transport == "tls" else srv.settings.sip_port
    return await Client(transport, "127.0.0.1", port).open(local)


async def stored_bindings(srv):
    await srv.store.flush()
    async with srv.sessions() as session:
        return await bindings_repo.listing(session, datetime.now(UTC))


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
async def test_register_with_digest_on_every_transport(server, transport, algorithm):
    c = await client(server, transport)
    try:
        ok = await c.register("alice", "alice-secret", algorithm=algorithm)
        assert ok.status == 200, ok.reason
        contacts = ok.headers.get_all("contact")
        assert len(contacts) == 1 and f"transport={transport}" in contacts[0] and "expires=600" in contacts[0]
        assert ok.headers.get("date", ).endswith("GMT")
    finally:
        await c.close()
    ((row, username, org),) = await stored_bindings(server)
    assert (username, org, row.transport) == ("alice", "Acme", transport)


async def test_wrong_password_and_unknown_user_look_the_same(server):
    c = await client(server)
    try:
        wrong = await c.register("alice", "not-the-password")
        unknown = await c.register("mallory", "whatever-password")
    finally:
        await c.close()
    assert wrong.status == unknown.status == 401
    for response in (wrong, unknown):
        challenges = response.headers.get_all("www-authenticate")
        assert [("stale" in v, 'realm="ringwell"' in v) for v in challenges] == [(False, True), (False, True)]
        assert response.reason == "Unauthorized"
    assert await stored_bindings(server) == []
    log = (server.settings.data_dir / "security.log").read_text()
    assert "auth-failure src=127.0.0.1" in log and "user=alice" in log and "user=mallory" in log


async def test_replayed_authorization_is_refused(server):
    c = await client(server)
    try:
        assert (await c.register("alice", "alice-secret")).status == 200
        # Send the authenticated REGISTER again as a new transaction: same nonce and nc.
        log = server.settings.data_dir / "security.log"
        before = log.read_text() if log.exists() else ""
        authorized = c.last_authorized
        c.send(authorized.replace(b"z9hG4bK", b"z9hG4bKreplay", 1))  # a new transaction, same credentials
        challenge = await c.final()
        assert challenge.status == 401
        assert all("stale=true" in v for v in challenge.headers.get_all("www-authenticate"))
        assert (log.read_text() if log.exists() else "") == before  # not counted as a failed login
        assert len(await stored_bindings(server)) == 1
    finally:
        await c.close()


async def test_stale_nonce_gets_stale_true(server):
    from ringwell.sip import digest

    c = await client(server)
    try:
        old = server.endpoint.nonces.issue(time.time() - 10_000)
        chal = digest.Challenge("ringwell", old, "SHA-256", ("auth",))
        auth = digest.authorize(chal, "REGISTER", "sip:x", "alice", "alice-secret")
        c.send(c.build("REGISTER", extra=f"Contact: <sip:alice@127.0.0.1:9>\r\nAuthorization: {auth}\r\n"))
        response = await c.final()
        assert response.status == 401
        assert all("stale=true" in v for v in response.headers.get_all("www-authenticate"))
    finally:
        await c.close()


async def test_repeated_failures_block_the_source_and_log_it(server):
    c = await client(server, local="127.0.0.3")
    good = await client(server, local="127.0.0.4")
    try:
        statuses = [(await c.register(f"user{i}", "bad-password")).status for i in range(8)]
        assert statuses == [401] * 8
        blocked = await c.register("alice", "alice-secret")
        assert blocked.status == 403
        assert (await good.register("alice", "alice-secret")).status == 200  # others are not affected
    finally:
        await c.close()
        await good.close()
    log = (server.settings.data_dir / "security.log").read_text()
    assert "blocked src=127.0.0.3 seconds=300" in log


async def test_repeated_failures_for_one_user_block_that_user(server):
    attackers = [await client(server, local=f"127.0.0.{10 + i}") for i in range(6)]
    try:
        for c in attackers:
            assert (await c.register("bob", "guess-guess")).status == 401
        legit = await client(server, local="127.0.0.30")
        assert (await legit.register("bob", "bob-secret-1")).status == 403
        assert (await legit.register("alice", "alice-secret")).status == 200
        await legit.close()
    finally:
        for c in attackers:
            await c.close()
    assert "blocked-user user=bob" in (server.settings.data_dir / "security.log").read_text()


async def test_unregister_and_contact_star(server):
    c = await client(server)
    try:
        assert (await c.register("alice", "alice-secret", contact="<sip:alice@127.0.0.1:7001>")).status == 200
        assert (await c.register("alice", "alice-secret", contact="<sip:alice@127.0.0.1:7002>")).status == 200
        assert len(await stored_bindings(server)) == 2
        gone = await c.register("alice", "alice-secret", contact="<sip:alice@127.0.0.1:7001>", expires=0)
        assert gone.status == 200 and len(gone.headers.get_all("contact")) == 1
        assert len(await stored_bindings(server)) == 1
        star = await c.register("alice", "alice-secret", contact="*", expires=0)
        assert star.status == 200 and star.headers.get_all("contact") == []
        assert await stored_bindings(server) == []
    finally:
        await c.close()


async def test_options_is_answered_without_authentication(server):
    c = await client(server)
    try:
        c.send(c.build("OPTIONS"))
        ok = await c.final()
        assert ok.status == 200 and "REGISTER" in ok.headers.get("allow")
        assert f"rport={c.local[1]}" in ok.headers.get("via") and "received=127.0.0.1" in ok.headers.get("via")
    finally:
        await c.close()


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: one OPTIONS\r\n\r\n", 400, "cseq"),
        (b"OPTIONS sip:x SIP/3.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKb\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n", 505, "version"),
        (b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKc\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nRequire: teleportation\r\n\r\n", 420, "extension"),
        (b"FROBNICATE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKd\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 FROBNICATE\r\n\r\n", 501, "implemented"),
        (b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKe\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nX: " + b"y" * 9000 + b"\r\n\r\n", 513, "large"),
    ],
    ids=["bad-cseq", "version", "require", "unknown-method", "too-large"],
)
async def test_bad_requests_get_the_right_status_and_reason(server, data, status, words):
    c = await client(server)
    try:
        c.send(data)
        raw = await c.recv_raw()
        status_line = raw.split(b"\r\n", 1)[0].decode()
        _, code, reason = status_line.split(" ", 2)
        assert int(code) == status
        assert words in reason.lower()
        if status == 420:
            assert b"\r\nUnsupported: teleportation\r\n" in raw
    finally:
        await c.close()


async def test_garbage_and_stray_responses_are_dropped_and_the_server_lives_on(server):
    c = await client(server)
    try:
        for junk in (b"\x00\xff" * 50, b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9\r\n\r\n",
                     b"SIP/2.0 4294967301 Huge\r\n\r\n", b"hello"):
            c.send(junk)
        with pytest.raises(TimeoutError):
            await c.recv_raw(timeout=0.5)
        c.send(c.build("OPTIONS"))
        assert (await c.final()).status == 200
    finally:
        await c.close()
    assert server.endpoint.stats.malformed >= 3


async def test_udp_retransmissions_are_absorbed(server):
    c = await client(server)
    try:
        data = c.build("REGISTER", extra="Contact: <sip:alice@127.0.0.1:9>\r\n")
        c.send(data)
        first = await c.recv_raw()
        c.send(data)
        c.send(data)
        again = [await c.recv_raw(), await c.recv_raw()]
        assert again == [first, first]  # the same 401, same nonce and tag: not a new transaction
    finally:
        await c.close()


async def test_tcp_keepalive_and_framing_error(server):
    c = await client(server, "tcp")
    try:
        c.send(b"\r\n\r\n")
        assert await c._reader.readexactly(2) == b"\r\n"
        c.send(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKq\r\n\r\n")
        assert await asyncio.wait_for(c._reader.read(100), 3) == b""  # no Content-Length: closed
    finally:
        await c.close()


@pytest.mark.parametrize("vector", [v for v in vectors() if v.kind == "request"], ids=lambda v: v.id)
async def test_torture_requests_over_udp(server, vector):
    c = await client(server)
    try:
        c.send(vector.data)
        expected = {vector.expect, *vector.also}
        try:
            while True:
                raw = await c.recv_raw(timeout=1.0)
                status = int(raw.split(b" ", 2)[1])
                if status >= 200:
                    break
        except TimeoutError:
            assert "drop" in expected, f"{vector.id}: no answer"
            return
        assert status in REFUSALS | {200, 401, 405, 407, 480, 481, 501}, f"{vector.id}: {raw[:60]!r}"
        got = status if status in REFUSALS | {501, 401} else "valid"
        if got == 401 and 401 not in expected:
            got = "valid"  # a REGISTER that is fine gets challenged
        if status == 407:
            got = "valid"  # an INVITE that is fine gets challenged before it can be a call
        assert got in expected, f"{vector.id}: {raw[:60]!r}"
    finally:
        await c.close()


FLOODER = """
import socket, sys, time, os
port, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.9", 0)); p = s.getsockname()[1]
t = ("OPTIONS sip:x SIP/2.0\\r\\nVia: SIP/2.0/UDP 127.0.0.9:%d;branch=z9hG4bK%%s\\r\\nFrom: <sip:f@x>;tag=1\\r\\n"
     "To: <sip:f@x>\\r\\nCall-ID: flood\\r\\nCSeq: 1 OPTIONS\\r\\nContent-Length: 0\\r\\n\\r\\n" % p)
sent, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    for _ in range(rate // 100):
        s.sendto((t % os.urandom(6).hex()).encode(), ("127.0.0.1", port)); sent += 1
    time.sleep(max(0.0, start + sent / rate - time.monotonic()))
print(sent)
"""


async def test_a_flood_from_one_source_does_not_starve_another(server):
    """One source sends more OPTIONS than the server can answer; another is still served promptly.

    The flood comes from another process at a fixed rate, above what the server processes but
    below what it can read, so the test shows the fair intake rather than kernel buffer drops.
    """
    flooder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOODER, str(server.settings.sip_port), "40000", "3",
        stdout=asyncio.subprocess.PIPE,
    )
    c = await client(server, local="127.0.0.8")
    latencies = []
    try:
        await asyncio.sleep(0.5)
        for _ in range(20):
            start = time.monotonic()
            c.send(c.build("OPTIONS"))
            assert (await c.final(timeout=2.0)).status == 200
            latencies.append(time.monotonic() - start)
            await asyncio.sleep(0.05)
    finally:
        await c.close()
        out, _ = await asyncio.wait_for(flooder.communicate(), 20)
    assert int(out) > 60_000
    assert server.endpoint.intake.dropped > 0  # the flood overflowed its own queue ...
    assert max(latencies) < 1.0, latencies  # ... while the other source was served promptly


async def test_tls_uses_a_configured_certificate_or_generates_one(tmp_path):
    from tests.peers.certs import make_self_signed

    async def served_certificate(extra):
        data = tmp_path / f"data{len(extra)}"
        ensure_config(data)
        settings = load_settings(data, {
            "RINGWELL_BIND": "127.0.0.1", "RINGWELL_SIP_PORT": str(free_port()), "RINGWELL_TLS_PORT": str(free_port()),
            "RINGWELL_HTTP_PORT": str(free_port()), **extra,
        })
        srv = RingwellServer(settings)
        await srv.start()
        try:
            c = await Client("tls", "127.0.0.1", settings.tls_port).open()
            der = c._writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            await c.close()
        finally:
            await srv.stop()
        return der, data

    generated, data = await served_certificate({})
    assert (data / "tls" / "cert.pem").exists()
    assert oct((data / "tls" / "key.pem").stat().st_mode & 0o777) == "0o600"
    mine = make_self_signed(tmp_path / "mine")
    configured, _ = await served_certificate({"RINGWELL_TLS_CERT": str(mine.cert), "RINGWELL_TLS_KEY": str(mine.key)})
    pem = mine.cert.read_text()
    assert ssl.DER_cert_to_PEM_cert(configured).split() == pem.split()
    assert configured != generated


async def test_healthz_reports_calls_media_and_event_loop_stalls(server):
    import httpx

    async with httpx.AsyncClient(trust_env=False) as http:
        await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        loop.call_soon(time.sleep, 0.3)  # a 300 ms stall, as a long collector pause would be
        await asyncio.sleep(0.5)
        health = (await http.get(f"http://127.0.0.1:{server.settings.http_port}/healthz")).json()
    assert health["status"] == "ok" and health["calls"] == 0 and health["media_sessions"] == 0
    assert health["loop_lag_ms"]["worst"] >= 250, health
