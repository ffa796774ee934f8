"""Webhooks end to end: the API and portal of the real app, the delivery worker running, and a
real HTTP receiver on loopback checking signatures with the secret the API returned once."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from email import message_from_bytes
from email.message import Message

import pytest
from sqlalchemy import select, update

from ringwell.features.accounts.models import Organization
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import SYSTEM
from ringwell.features.billing.models import TransactionKind
from ringwell.features.webhooks.service import WebhooksService
from ringwell.features.webhooks.signing import SignatureError, verify
from tests.peers.http_receiver import Received, Receiver

BASE = {"webhook_allow_private": True, "webhook_first_retry": 0.2, "webhook_timeout": 3.0}


@pytest.fixture
def web_settings():
    return dict(BASE)


@pytest.fixture
async def worker(web):
    service = web.services.webhooks
    service.start(ledger=web.services.ledger)
    try:
        yield service
    finally:
        await service.stop()


def api(org_id: str, path: str = "") -> str:
    return f"/api/v1/orgs/{org_id}/webhooks{path}"


async def add_endpoint(tenant, url: str, events: list[str] | None = None) -> dict:
    response = await tenant.api.post(api(tenant.org.id), json={"url": url, "events": events or ["*"],
                                                                 "description": "test receiver"})
    assert response.status_code == 201, response.text
    return response.json()


def check_signed(request: Received, secret: str) -> dict:
    """What a receiver does: verify the signature over the raw body, then parse it."""
    verify(secret, request.body, request.headers["ringwell-signature"], now=time.time())
    return request.json()


async def wait_for(predicate, timeout: float = 15.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(step)


async def delivery_of(tenant, endpoint_id: str, status: str | None = None) -> dict | None:
    page = (await tenant.api.get(api(tenant.org.id, f"/{endpoint_id}/deliveries"))).json()
    items = [d for d in page["items"] if status is None or d["status"] == status]
    return items[0] if items else None


async def detail(tenant, delivery_id: str) -> dict:
    response = await tenant.api.get(f"/api/v1/orgs/{tenant.org.id}/webhook-deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def audit_actions(web, org_id: str) -> list[AuditEvent]:
    async with web.services.sessions() as session:
        rows = await session.execute(select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.at))
        return list(rows.scalars())


async def test_delivered_with_a_valid_signature_and_the_secret_is_shown_once(web, worker):
    tenant = await web.tenant("Acme")
    with Receiver() as receiver:
        created = await add_endpoint(tenant, receiver.url, ["number.rented"])
        secret = created["secret"]
        assert secret.startswith("whsec_")
        # Never again: not in the endpoint, the list, or the audit trail.
        shown = await tenant.api.get(api(tenant.org.id, f"/{created['id']}"))
        listed = await tenant.api.get(api(tenant.org.id))
        assert "secret" not in shown.json() and secret not in shown.text and secret not in listed.text
        assert [e["id"] for e in listed.json()["items"]] == [created["id"]]

        event_id = await worker.publish(tenant.org.id, "number.rented", {"number": "+15555550100"})
        await worker.publish(tenant.org.id, "call.ended", {"call_id": "x"})  # not subscribed: not sent
        (request,) = await receiver.arrived(1)
        body = check_signed(request, secret)
        assert body["id"] == event_id and body["type"] == "number.rented" and body["org_id"] == tenant.org.id
        assert body["data"] == {"number": "+15555550100"} and body["created_at"].endswith("Z")
        headers = request.headers
        assert headers["ringwell-event"] == "number.rented"
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"].startswith("Ringwell-Webhooks/")
        with pytest.raises(SignatureError):
            verify(secret, request.body + b" ", headers["ringwell-signature"], now=time.time())

        delivered = await wait_for(lambda: delivery_of(tenant, created["id"], "delivered"))
        assert headers["ringwell-delivery"] == delivered["id"]
        assert delivered["event_id"] == event_id and delivered["last_status"] == 200
        full = await detail(tenant, delivered["id"])
        assert full["payload"].encode() == request.body  # exactly the bytes that were signed
        assert [(a["status"], a["manual"]) for a in full["attempt_log"]] == [(200, False)]
        await asyncio.sleep(0.3)
        assert len(receiver.requests) == 1
    events = await audit_actions(web, tenant.org.id)
    create = next(e for e in events if e.action == "webhooks.create")
    assert create.api_key_id is not None and create.target_id == created["id"]  # the API key acted
    assert secret not in str(create.details)


async def test_a_receiver_answering_500_is_retried_with_growing_waits_then_delivered(web, worker):
    tenant = await web.tenant("Acme")
    with Receiver([500, 500]) as receiver:
        created = await add_endpoint(tenant, receiver.url)
        event_id = await worker.publish(tenant.org.id, "balance.low", {"balance_minor": 10})
        requests = await receiver.arrived(3)
        bodies = [check_signed(r, created["secret"]) for r in requests]
        assert [r.answered for r in requests] == [500, 500, 200]
        assert {b["id"] for b in bodies} == {event_id}
        assert len({r.body for r in requests}) == 1  # the same body every time
        first_wait, second_wait = requests[1].at - requests[0].at, requests[2].at - requests[1].at
        assert first_wait >= 0.2 and second_wait >= 0.4  # webhook_first_retry, then doubled
        delivered = await wait_for(lambda: delivery_of(tenant, created["id"], "delivered"))
    full = await detail(tenant, delivered["id"])
    assert [a["status"] for a in full["attempt_log"]] == [500, 500, 200]
    assert full["attempts"] == 3 and full["last_error"] is None and full["next_attempt_at"] is None
    endpoint = (await tenant.api.get(api(tenant.org.id, f"/{created['id']}"))).json()
    assert endpoint["enabled"] and endpoint["failing_since"] is None  # the success ended the run of failures


async def test_replay_sends_the_same_event_with_a_fresh_signature(web, worker):
    tenant = await web.tenant("Acme")
    with Receiver() as receiver:
        created = await add_endpoint(tenant, receiver.url)
        event_id = await worker.publish(tenant.org.id, "user.created", {"user_id": "u1"})
        (first,) = await receiver.arrived(1)
        delivered = await wait_for(lambda: delivery_of(tenant, created["id"], "delivered"))
        await asyncio.sleep(1.1)  # so the fresh signature has a later timestamp
        replayed = await tenant.api.post(f"/api/v1/orgs/{tenant.org.id}/webhook-deliveries/{delivered['id']}/replay")
        assert replayed.status_code == 200, replayed.text
        second = receiver.requests[1]
        assert check_signed(second, created["secret"])["id"] == event_id
        assert second.body == first.body and second.headers["ringwell-delivery"] == delivered["id"]
        assert second.headers["ringwell-signature"] != first.headers["ringwell-signature"]
        assert int(second.headers["ringwell-signature"][2:12]) > int(first.headers["ringwell-signature"][2:12])
        log = replayed.json()["attempt_log"]
        assert [(a["status"], a["manual"]) for a in log] == [(200, False), (200, True)]
        assert replayed.json()["status"] == "delivered" and replayed.json()["attempts"] == 1
    assert "webhooks.replay" in [e.action for e in await audit_actions(web, tenant.org.id)]


async def test_test_event_and_secret_rotation(web, worker):
    tenant = await web.tenant("Acme")
    with Receiver() as receiver:
        created = await add_endpoint(tenant, receiver.url, ["call.ended"])
        sent = await tenant.api.post(api(tenant.org.id, f"/{created['id']}/test"))
        assert sent.status_code == 200, sent.text
        assert sent.json()["status"] == "delivered" and sent.json()["event_type"] == "webhook.test"
        (request,) = receiver.requests
        assert check_signed(request, created["secret"])["type"] == "webhook.test"

        rotated = await tenant.api.post(api(tenant.org.id, f"/{created['id']}/rotate-secret"))
        assert rotated.status_code == 200
        new_secret = rotated.json()["secret"]
        assert new_secret != created["secret"]
        await tenant.api.post(api(tenant.org.id, f"/{created['id']}/test"))
        latest = receiver.requests[-1]
        check_signed(latest, new_secret)
        with pytest.raises(SignatureError):
            check_signed(latest, created["secret"])

        # A disabled endpoint gets no test event (409) and no events at all.
        patched = await tenant.api.patch(api(tenant.org.id, f"/{created['id']}"), json={"enabled": False})
        assert patched.json()["enabled"] is False and patched.json()["disabled_reason"] == "disabled by a user"
        refused = await tenant.api.post(api(tenant.org.id, f"/{created['id']}/test"))
        assert refused.status_code == 409 and refused.json()["error_id"] == "webhook_endpoint_disabled"
        await worker.publish(tenant.org.id, "call.ended", {"call_id": "c"})
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == 2
    actions = [e.action for e in await audit_actions(web, tenant.org.id)]
    assert {"webhooks.test", "webhooks.rotate_secret", "webhooks.update"} <= set(actions)


@pytest.mark.parametrize("web_settings", [{**BASE, "webhook_retry_window": 1}])
async def test_persistent_failure_disables_the_endpoint_and_tells_the_admins(web, worker):
    tenant = await web.tenant("Acme")
    admin = await web.member(tenant.org, "admin")
    member = await web.member(tenant.org, "member")
    with Receiver(default=500) as receiver:
        created = await add_endpoint(tenant, receiver.url)
        await worker.publish(tenant.org.id, "number.released", {"number": "+15555550100"})

        async def disabled():
            endpoint = (await tenant.api.get(api(tenant.org.id, f"/{created['id']}"))).json()
            return endpoint if not endpoint["enabled"] else None

        endpoint = await wait_for(disabled)
        count = len(receiver.requests)
        assert count >= 2 and all(r.answered == 500 for r in receiver.requests)
        assert "every delivery failed for 1 seconds" in endpoint["disabled_reason"]
        assert "HTTP 500" in endpoint["disabled_reason"]
        failed = await wait_for(lambda: delivery_of(tenant, created["id"], "failed"))
        assert failed["last_status"] == 500
        # Nothing more is sent to it.
        await worker.publish(tenant.org.id, "number.released", {"number": "+15555550101"})
        await asyncio.sleep(0.6)
        assert len(receiver.requests) == count

    outbox = web.services.settings.data_dir / "outbox"
    mails: list[Message] = await wait_for(lambda: _mails(outbox, 2))
    assert sorted(m["To"] for m in mails) == sorted([tenant.owner.email, admin.email])
    assert member.email not in [m["To"] for m in mails]
    text = mails[0].get_payload(decode=True).decode()
    assert mails[0]["Subject"] == "Webhook endpoint disabled" and receiver.url in text
    assert f"/settings/webhooks/{created['id']}" in text
    (event,) = [e for e in await audit_actions(web, tenant.org.id) if e.action == "webhooks.disabled"]
    assert event.actor_user_id is None and event.api_key_id is None and event.target_id == created["id"]

    enabled = await tenant.api.patch(api(tenant.org.id, f"/{created['id']}"), json={"enabled": True})
    assert enabled.json()["enabled"] and enabled.json()["disabled_reason"] is None
    assert enabled.json()["failing_since"] is None


async def _mails(outbox, count: int) -> list[Message] | None:
    files = sorted(outbox.glob("*.eml")) if outbox.exists() else []
    return [message_from_bytes(f.read_bytes()) for f in files] if len(files) >= count else None


@pytest.mark.parametrize("web_settings", [{**BASE, "webhook_allow_private": False}])
async def test_private_addresses_and_bad_input_are_refused(web):
    tenant = await web.tenant("Acme")
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]/hook", "http://10.0.0.7/",
                "http://169.254.169.254/latest/meta-data", "http://[::ffff:127.0.0.1]/"):
        response = await tenant.api.post(api(tenant.org.id), json={"url": url, "events": ["*"]})
        assert response.status_code == 422, url
        assert response.json()["error_id"] == "invalid_webhook_url" and "public" in response.json()["message"]
    for body, error in [
        ({"url": "ftp://example.com/x", "events": ["*"]}, "invalid_webhook_url"),
        ({"url": "https://u:p@8.8.8.8/x", "events": ["*"]}, "invalid_webhook_url"),
        ({"url": "https://8.8.8.8/x", "events": ["call.exploded"]}, "invalid_request"),
        ({"url": "https://8.8.8.8/x", "events": []}, "invalid_request"),
        ({"url": "https://8.8.8.8/x", "events": ["webhook.test"]}, "invalid_request"),
        ({"url": "https://8.8.8.8/x", "events": ["*"], "description": "x" * 201}, "invalid_request"),
        ({"url": "https://8.8.8.8/x", "events": ["*"], "secret": "mine"}, "invalid_request"),
        ({"url": "https://8.8.8.8/x", "events": ["*"], "description": "a\x00b"}, "invalid_webhook_data"),
        ({"url": "https://8.8.8.8/\x00", "events": ["*"]}, "invalid_webhook_url"),
    ]:
        response = await tenant.api.post(api(tenant.org.id), json=body)
        assert (response.status_code, response.json()["error_id"]) == (422, error), body
    # A public address is accepted (nothing is sent until an event happens).
    ok = await tenant.api.post(api(tenant.org.id), json={"url": "https://8.8.8.8/hook", "events": ["call.ended"]})
    assert ok.status_code == 201
    moved = await tenant.api.patch(api(tenant.org.id, f"/{ok.json()['id']}"), json={"url": "http://192.168.0.10/"})
    assert moved.status_code == 422 and moved.json()["error_id"] == "invalid_webhook_url"
    for garbage in ("/%00", "/" + "a" * 37, "/x%20y"):
        response = await tenant.api.get(api(tenant.org.id, garbage))
        assert response.status_code == 422, garbage
    bad_cursor = await tenant.api.get(api(tenant.org.id, f"/{ok.json()['id']}/deliveries"),
                                      params={"cursor": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgIlx1MDAwMCJd"})
    assert bad_cursor.status_code == 422  # ["2026-01-01T00:00:00+00:00", "\u0000"]


@pytest.mark.parametrize("web_settings", [{**BASE, "webhook_allow_private": False}])
async def test_a_url_that_now_points_inside_is_not_called(web):
    """The address is checked again at every attempt (a name may resolve elsewhere later): an
    endpoint saved when private addresses were allowed gets nothing once they are not."""
    tenant = await web.tenant("Acme")
    settings = web.services.settings
    lenient = WebhooksService(web.services.sessions, audit=web.services.audit, mailer=web.services.mailer,
                              settings=dataclasses.replace(settings, webhook_allow_private=True))
    with Receiver() as receiver:
        created = await lenient.create_endpoint(tenant.org.id, url=receiver.url, events=["*"], actor=SYSTEM)
        sent = await tenant.api.post(api(tenant.org.id, f"/{created.endpoint.id}/test"))
        assert sent.status_code == 200
        (attempt,) = sent.json()["attempt_log"]
        assert attempt["status"] is None and "not a public address" in attempt["error"]
        assert sent.json()["status"] == "pending" and sent.json()["next_attempt_at"]  # retried on schedule
        await asyncio.sleep(0.2)
        assert receiver.requests == []


async def test_another_orgs_endpoints_and_deliveries_are_not_found(web, worker):
    a = await web.tenant("Alpha")
    b = await web.tenant("Beta")
    with Receiver() as receiver:
        created = await add_endpoint(a, receiver.url)
        await worker.publish(a.org.id, "number.rented", {"number": "+15555550100"})
        await receiver.arrived(1)
        delivery = await wait_for(lambda: delivery_of(a, created["id"], "delivered"))
    eid, did = created["id"], delivery["id"]
    for method, path, body in [
        ("GET", api(b.org.id, f"/{eid}"), None),
        ("PATCH", api(b.org.id, f"/{eid}"), {"enabled": False}),
        ("DELETE", api(b.org.id, f"/{eid}"), None),
        ("POST", api(b.org.id, f"/{eid}/rotate-secret"), None),
        ("POST", api(b.org.id, f"/{eid}/test"), None),
        ("GET", api(b.org.id, f"/{eid}/deliveries"), None),
    ]:
        response = await b.api.request(method, path, json=body)
        assert (response.status_code, response.json()["error_id"]) == (404, "webhook_endpoint_not_found"), path
    for method, path in [("GET", f"/api/v1/orgs/{b.org.id}/webhook-deliveries/{did}"),
                         ("POST", f"/api/v1/orgs/{b.org.id}/webhook-deliveries/{did}/replay")]:
        response = await b.api.request(method, path)
        assert (response.status_code, response.json()["error_id"]) == (404, "webhook_delivery_not_found")
    # Naming A's org in the path: the org itself is not found.
    response = await b.api.get(api(a.org.id, f"/{eid}"))
    assert (response.status_code, response.json()["error_id"]) == (404, "organization_not_found")
    # A member of A cannot manage webhooks; neither can an API key without the scope.
    member = await web.logged_in(await web.member(a.org, "member"))
    assert (await member.get(api(a.org.id))).status_code == 403
    reader, _ = await web.api_client(a.org, ["calls.read"])
    assert (await reader.get(api(a.org.id))).status_code == 403
    # Still there, untouched.
    assert (await a.api.get(api(a.org.id, f"/{eid}"))).json()["enabled"] is True
    assert len(receiver.requests) == 1


async def test_deliveries_are_paged_newest_first_and_delete_removes_the_log(web):
    tenant = await web.tenant("Acme")
    created = await add_endpoint(tenant, "http://127.0.0.1:9/never")  # the worker is not running
    ids = [await web.services.webhooks.publish(tenant.org.id, "user.created", {"n": n}) for n in range(3)]
    first = (await tenant.api.get(api(tenant.org.id, f"/{created['id']}/deliveries"), params={"limit": 2})).json()
    assert [d["event_id"] for d in first["items"]] == ids[:0:-1] and first["next_cursor"]
    rest = (await tenant.api.get(api(tenant.org.id, f"/{created['id']}/deliveries"),
                                 params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [d["event_id"] for d in rest["items"]] == ids[:1] and rest["next_cursor"] is None
    assert all(d["status"] == "pending" for d in first["items"] + rest["items"])
    bad = await tenant.api.get(api(tenant.org.id, f"/{created['id']}/deliveries"), params={"cursor": "nonsense"})
    assert (bad.status_code, bad.json()["error_id"]) == (422, "invalid_cursor")

    deleted = await tenant.api.delete(api(tenant.org.id, f"/{created['id']}"))
    assert deleted.status_code == 204
    assert (await tenant.api.get(api(tenant.org.id, f"/{created['id']}"))).status_code == 404
    gone = await tenant.api.get(f"/api/v1/orgs/{tenant.org.id}/webhook-deliveries/{first['items'][0]['id']}")
    assert gone.status_code == 404
    assert "webhooks.delete" in [e.action for e in await audit_actions(web, tenant.org.id)]


async def test_balance_low_fires_once_per_drop(web, worker):
    tenant = await web.tenant("Acme")
    ledger = web.services.ledger
    async with web.services.sessions() as session, session.begin():
        await session.execute(update(Organization).where(Organization.id == tenant.org.id)
                              .values(low_balance_minor=500))
    with Receiver() as receiver:
        created = await add_endpoint(tenant, receiver.url, ["balance.low"])
        await worker.check_balances()  # 0.00 < 5.00
        await worker.check_balances()  # still low: not again
        (request,) = await receiver.arrived(1)
        body = check_signed(request, created["secret"])
        assert body["type"] == "balance.low"
        assert body["data"] == {"balance_minor": 0, "balance": "0.00", "threshold_minor": 500, "threshold": "5.00",
                                "currency": "USD"}
        await ledger.top_up(tenant.org.id, 1000, provider="test", reference="t1")
        await worker.check_balances()  # recovered: armed again
        await ledger.try_charge(tenant.org.id, 700, TransactionKind.NUMBER_RENTAL, "test charge")
        await worker.check_balances()  # 3.00 < 5.00: a new drop
        second = (await receiver.arrived(2))[1]
        assert check_signed(second, created["secret"])["data"]["balance_minor"] == 300
        await asyncio.sleep(0.3)
        assert len(receiver.requests) == 2


async def test_call_path_events_are_queued_without_waiting_and_sent_in_order(web, worker):
    tenant = await web.tenant("Acme")
    with Receiver() as receiver:
        created = await add_endpoint(tenant, receiver.url, ["call.started", "call.answered", "call.ended"])
        service = web.services.webhooks
        for kind in ("call.started", "call.answered", "call.ended"):
            service.emit(tenant.org.id, kind, {"call_id": "c1"})
        service.emit(tenant.org.id, "call.exploded", {})  # a bug in the caller: logged, not raised
        requests = await receiver.arrived(3)
        assert [check_signed(r, created["secret"])["type"] for r in requests] == [
            "call.started", "call.answered", "call.ended"]
        assert service.queued == 0 and service.dropped == 0


async def test_events_still_queued_at_shutdown_reach_the_outbox(web):
    tenant = await web.tenant("Acme")
    created = await add_endpoint(tenant, "http://127.0.0.1:9/never")
    service = web.services.webhooks  # not started: nothing moves the queue but stop()
    service.emit(tenant.org.id, "call.started", {"call_id": "c1"})
    service.emit(tenant.org.id, "call.ended", {"call_id": "c1"})
    assert await delivery_of(tenant, created["id"]) is None
    await service.stop()
    page = (await tenant.api.get(api(tenant.org.id, f"/{created['id']}/deliveries"))).json()
    assert [d["event_type"] for d in page["items"]] == ["call.ended", "call.started"]  # newest first
    assert service.queued == 0


async def test_portal_pages(web, worker):
    tenant = await web.tenant("Acme")
    client = tenant.client
    csrf = client.headers["X-CSRF-Token"]
    with Receiver() as receiver:
        page = await client.get("/settings/webhooks")
        assert page.status_code == 200 and "No endpoints yet" in page.text
        assert "style=" not in page.text and "<script>" not in page.text  # the CSP allows neither
        refused = await client.post("/settings/webhooks", data={"csrf_token": csrf, "url": "gopher://x",
                                                                "events": ["*"]})
        assert refused.status_code == 422 and "https://" in refused.text
        created = await client.post("/settings/webhooks", data={
            "csrf_token": csrf, "url": receiver.url, "description": "CRM", "events": ["call.ended", "user.created"]})
        assert created.status_code == 201
        secret = created.text.split('id="webhook-secret">', 1)[1].split("<", 1)[0]
        assert secret.startswith("whsec_")
        listing = await client.get("/settings/webhooks")
        assert secret not in listing.text and receiver.url in listing.text
        (endpoint,) = (await tenant.api.get(api(tenant.org.id))).json()["items"]
        assert endpoint["events"] == ["call.ended", "user.created"] and endpoint["description"] == "CRM"

        tested = await client.post(f"/settings/webhooks/{endpoint['id']}/test", data={"csrf_token": csrf})
        assert tested.status_code == 303
        (request,) = receiver.requests
        check_signed(request, secret)
        delivery_page = await client.get(tested.headers["location"])
        assert delivery_page.status_code == 200
        assert "webhook.test" in delivery_page.text and "HTTP 200" in delivery_page.text
        replay = await client.post(tested.headers["location"] + "/replay", data={"csrf_token": csrf})
        assert replay.status_code == 303 and len(receiver.requests) == 2
        assert "replay" in (await client.get(replay.headers["location"])).text

        saved = await client.post(f"/settings/webhooks/{endpoint['id']}", data={
            "csrf_token": csrf, "url": receiver.url, "description": "", "events": ["*"]})
        assert saved.status_code == 303
        detail_page = await client.get(saved.headers["location"])
        assert "Saved." in detail_page.text and "webhook.test" in detail_page.text
        assert (await tenant.api.get(api(tenant.org.id, f"/{endpoint['id']}"))).json()["events"] == ["*"]
        rotated = await client.post(f"/settings/webhooks/{endpoint['id']}/rotate", data={"csrf_token": csrf})
        assert rotated.status_code == 200 and "whsec_" in rotated.text and secret not in rotated.text
        assert (await client.post(f"/settings/webhooks/{endpoint['id']}/disable",
                                  data={"csrf_token": csrf})).status_code == 303
        assert "disabled" in (await client.get(f"/settings/webhooks/{endpoint['id']}")).text
        no_csrf = await client.post(f"/settings/webhooks/{endpoint['id']}/delete", data={},
                                    headers={"X-CSRF-Token": ""})
        assert no_csrf.status_code == 403
        gone = await client.post(f"/settings/webhooks/{endpoint['id']}/delete", data={"csrf_token": csrf})
        assert gone.status_code == 303 and (await client.get(f"/settings/webhooks/{endpoint['id']}")).status_code == 404

    other = await web.tenant("Other")
    (their,) = [await add_endpoint(other, "http://127.0.0.1:9/x")]
    assert (await client.get(f"/settings/webhooks/{their['id']}")).status_code == 404
    member = await web.logged_in(await web.member(tenant.org, "member"))
    assert (await member.get("/settings/webhooks")).status_code == 403
