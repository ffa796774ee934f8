"""A real call through ``ringwell serve`` (SIPp caller and callee) produces the call webhooks
``call.started``, ``call.answered`` and ``call.ended``, in order, signed, about the call in the
call history — received by a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from ringwell.features.audit.service import SYSTEM, AuditLog
from ringwell.features.webhooks.service import WebhooksService
from ringwell.features.webhooks.signing import verify
from ringwell.mail import mailer_from
from ringwell.settings import load_settings
from ringwell.storage.engine import create_engine, session_factory
from tests.interop.test_calls_sipp import Callee, call, password, wait_call
from tests.peers.http_receiver import Receiver
from tests.peers.server import RingwellServer

pytestmark = pytest.mark.peers


async def add_endpoint(server: RingwellServer, org_id: str, url: str) -> str:
    """Add the endpoint as the API does (same service, the server's database); returns the secret."""
    settings = dataclasses.replace(load_settings(server.data_dir, env={}), webhook_allow_private=True)
    engine = create_engine(settings.effective_database_url)
    try:
        sessions = session_factory(engine)
        service = WebhooksService(sessions, audit=AuditLog(sessions), mailer=mailer_from(settings), settings=settings)
        created = await service.create_endpoint(org_id, url=url, actor=SYSTEM,
                                                events=["call.started", "call.answered", "call.ended"])
    finally:
        await engine.dispose()
    return created.secret


def test_an_answered_call_sends_started_answered_and_ended(tmp_path):
    server = RingwellServer(tmp_path, extra_env={"RINGWELL_WEBHOOK_ALLOW_PRIVATE": "true",
                                                 "RINGWELL_WEBHOOK_FIRST_RETRY": "0.5"})
    with Receiver() as receiver, server:
        org_id = server.create_org("Acme").strip()
        server.create_user("Acme", "alice@example.com", "101", "alice", password("alice"))
        server.create_user("Acme", "bob@example.com", "201", "bob", password("bob"))
        secret = asyncio.run(add_endpoint(server, org_id, receiver.url))

        bob = Callee(server, tmp_path, "bob", "answer")
        try:
            result = call(server, tmp_path, "alice", "201", "call", hold_ms=1000)
            assert result.ok, result.errors + result.stderr
            bob.finish()
        finally:
            bob.stop()
        requests = receiver.wait(3, timeout=30)
        time.sleep(0.5)
        assert len(receiver.requests) == 3, [r.headers["ringwell-event"] for r in receiver.requests]

    events = []
    for request in requests:
        verify(secret, request.body, request.headers["ringwell-signature"], now=time.time())
        events.append(request.json())
    assert [e["type"] for e in events] == ["call.started", "call.answered", "call.ended"]
    assert [r.headers["ringwell-event"] for r in requests] == [e["type"] for e in events]
    assert len({e["id"] for e in events}) == 3 and {e["org_id"] for e in events} == {org_id}
    started, answered, ended = (e["data"] for e in events)
    record = wait_call(server, "201")
    assert started["call_id"] == answered["call_id"] == ended["call_id"] == record["id"]
    assert (started["from"], started["to"], started["direction"]) == ("101", "201", "internal")
    assert answered["to_extension"] == "201" and answered["answered_at"] >= started["started_at"]
    assert ended["disposition"] == "answered" and ended["hangup_by"] == "caller"
    assert 0.8 <= ended["talk_seconds"] <= 3.0 and ended["ended_at"] > ended["answered_at"]
    assert ended["charge"] is None and ended["billable_seconds"] is None  # an internal call is free
    # Nothing about SIP itself leaves the server.
    for request in requests:
        assert b"sip" not in request.body.lower() and b"PCMU" not in request.body
