"""Tenant isolation, walked over the whole API: every operation of the OpenAPI document is called
with a second org's credentials and the first org's ids, and must answer as designed.

- another org's ``/orgs/{org_id}/...`` → 404 ``organization_not_found`` (as for an org that does
  not exist), with the intruder's session and with its API key;
- the intruder's own org id but the victim's user, number, call, key, webhook or delivery id →
  404 (the resource is simply not found in the intruder's org);
- ``/operator/...`` → 403 for a customer; ``/me`` → 200, the intruder's own data;
- no credentials at all → 401.

No response contains anything of the victim's that the request did not itself carry (ids,
names, emails, SIP user names and passwords, numbers, keys, secrets), and afterwards the
victim's data is exactly as it was. A new route is covered automatically; a new path parameter
name or a new kind of path fails the walk until it is taught here (``PATH_VALUES``, ``kind``).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from sqlalchemy import func, select

from ringwell.features.accounts.models import OrgKind, SipCredential
from ringwell.features.accounts.service import UserSpec
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor
from ringwell.features.auth.models import ApiKey
from ringwell.features.cdr.models import CallRecord
from ringwell.features.privacy.models_holds import LegalHold
from ringwell.features.privacy.models_incidents import Incident
from ringwell.features.privacy.models_requests import DataRequest
from ringwell.features.recordings.models import Mode, Recording, Trigger
from ringwell.features.recordings.routes import recording_service
from ringwell.features.trunks.models import Trunk
from ringwell.features.voicemail.mailbox_routes import hold_music_service, mailbox_service
from ringwell.features.voicemail.models import Voicemail
from ringwell.features.voicemail.routes import voicemail_service
from ringwell.features.voicemail.service import pcm_to_wav
from ringwell.features.webhooks.models import WebhookDelivery, WebhookEndpoint
from ringwell.media.oggopus import CONTENT_TYPE, OggOpusWriter

API = "/api/v1"
METHODS = ("get", "post", "put", "patch", "delete")

# Operations the walk does not call, each with the reason (keep empty unless there is one).
SKIPPED: dict[tuple[str, str], str] = {
    ("get", "/api/v1/privacy/register"): "public: the data register holds no data of any org",
}

# A person's own choices and requests: only a logged-in person has them (an API key gets 403), and
# what they answer (choices, a list of requests) need not name the caller's org.
PERSON_ONLY = ("/api/v1/me/consents", "/api/v1/me/privacy/requests")

# Path parameters → the name of the victim's value in Victim.ids; True: a resource that belongs
# to one org (so the intruder's own org id with the victim's value must be 404 too).
PATH_VALUES: dict[str, tuple[str, bool]] = {
    "user_id": ("user_id", True),
    "key_id": ("key_id", True),
    "e164": ("e164", True),
    "call_id": ("call_id", True),
    "endpoint_id": ("endpoint_id", True),
    "delivery_id": ("delivery_id", True),
    "voicemail_id": ("voicemail_id", True),
    "recording_id": ("recording_id", True),
    "trunk_id": ("trunk_id", False),  # the operator's trunks are nobody's tenant data
    "request_id": ("request_id", True),
    "hold_id": ("hold_id", False),  # operator-only routes: a customer gets 403 whatever the id
    "incident_id": ("incident_id", False),
    "notice": ("notice", False),
    "item": ("item", False),
}

INVENTORY = ("number,country,type,monthly_price,setup_price,trunk\n"
             "+1 415 555 0170,US,fixed,2.50,1.00,walker-trunk\n"
             "+1 415 555 0171,US,fixed,2.50,1.00,walker-trunk\n")
VICTIM_NUMBER = "+14155550170"
VICTIM_EXTENSION = "4242"


@pytest.fixture
def web_settings() -> dict[str, object]:
    return {"webhook_allow_private": True}  # the victim's endpoint is on loopback (nothing is sent to it)


@dataclass
class Victim:
    tenant: Any
    ids: dict[str, str]
    secrets: set[str] = field(default_factory=set)  # every string of the victim's that must not leak
    keys: list[str] = field(default_factory=list)  # its API keys in clear


async def _seed_victim(web) -> Victim:
    """An org with real data in every slice, through the services (as the product makes it)."""
    tag = secrets.token_hex(4)
    tenant = await web.tenant(f"Victim {tag}")
    org = tenant.org
    svc = web.services
    user = await svc.accounts.create_user(org.name, UserSpec(f"victim-{tag}@example.com", VICTIM_EXTENSION,
                                                             f"victimsip{tag}", f"victim-sip-pw-{tag}"))
    async with svc.sessions() as session, session.begin():
        session.add(Trunk(name="walker-trunk", host="192.0.2.10"))
    assert await svc.numbers.import_numbers(INVENTORY.splitlines(keepends=True)) == 2
    await svc.ledger.adjust(org.id, 10_000, "walker credit", "tester")
    now = datetime.now(UTC)
    await svc.numbers.rent(org.id, VICTIM_NUMBER, now)
    await svc.numbers.route(VICTIM_NUMBER, VICTIM_EXTENSION, org_id=org.id)
    calls = [CallRecord(org_id=org.id, sip_call_id=f"victim-call-{tag}-{i}@example.com", direction="inbound",
                        caller_number=f"+1212555{tag_digits(tag)}{i}", callee_number=VICTIM_NUMBER,
                        callee_extension=VICTIM_EXTENSION, callee_user_id=user.user.id,
                        started_at=now - timedelta(minutes=10 + i), last_alive_at=now - timedelta(minutes=9 + i),
                        ended_at=now - timedelta(minutes=9 + i), state="closed", disposition="answered",
                        talk_seconds=42.0) for i in range(2)]
    async with svc.sessions() as session, session.begin():
        session.add_all(calls)
    _, second_key = await web.api_client(org, ["calls.read"])
    actor = Actor(user_id=tenant.owner.user.id, org_id=org.id, role="owner")
    created = await svc.webhooks.create_endpoint(org.id, url=f"http://127.0.0.1:9/victim-hook-{tag}", events=["*"],
                                                 actor=actor, description=f"victim hook {tag}")
    await svc.webhooks.publish(org.id, "user.created", {"user_id": user.user.id, "email": user.user.email})
    async with svc.sessions() as session:
        key_ids = list((await session.execute(select(ApiKey.id).where(ApiKey.org_id == org.id))).scalars())
        key_prefixes = list((await session.execute(select(ApiKey.prefix).where(ApiKey.org_id == org.id))).scalars())
        delivery_id = (await session.execute(select(WebhookDelivery.id).where(WebhookDelivery.org_id == org.id))
                       ).scalar_one()
        trunk_id = (await session.execute(select(Trunk.id).where(Trunk.name == "walker-trunk"))).scalar_one()
    entries = await svc.ledger.entries(org.id)
    message = await voicemail_service(svc).deposit(org.id, user.user.id, f"+1212666{tag_digits(tag)}",
                                                   f"Victim caller {tag}", b"\x10\x00" * 12_000)
    assert message is not None
    recordings = recording_service(svc)
    await recordings.set_policy(org.id, "org", Mode.ON_DEMAND)
    upload = await recordings.begin(org.id, CONTENT_TYPE)
    writer = OggOpusWriter(upload.feed)
    writer.write(b"\x10\x00" * 16_000)
    writer.close()
    recording = await recordings.finish(upload, org_id=org.id, call_record_id=calls[0].id, caller_user_id=None,
                                        callee_user_id=user.user.id, trigger=Trigger.DTMF, started_at=now,
                                        duration_s=1.0, paused_s=0.0, content_type=CONTENT_TYPE)
    assert recording is not None
    request = DataRequest(org_id=org.id, user_id=tenant.owner.user.id, subject_email=tenant.owner.email, kind="export",
                          law="gdpr",
                          source="portal", received_at=now, due_at=now + timedelta(days=30),
                          identity_verified="portal login + MFA")
    hold = LegalHold(org_id=org.id, user_id=user.user.id, reason=f"case {tag}")
    incident = Incident(title=f"victim incident {tag}", severity="high", personal_data=True, cpni=False,
                        detected_at=now, org_ids=[org.id])
    async with svc.sessions() as session, session.begin():
        session.add_all([request, hold, incident])
    victim = Victim(tenant, {
        "org_id": org.id, "user_id": user.user.id, "key_id": key_ids[0], "e164": VICTIM_NUMBER,
        "call_id": calls[0].id, "endpoint_id": created.endpoint.id, "delivery_id": delivery_id, "trunk_id": trunk_id,
        "voicemail_id": message.id, "recording_id": recording.id, "request_id": request.id, "hold_id": hold.id,
        "incident_id": incident.id, "notice": "authority", "item": "contain",
    }, keys=[tenant.api_key, second_key])
    victim.secrets |= {
        org.id, org.name, tenant.owner.user.id, tenant.owner.email, tenant.owner.password, tenant.owner.sip_username,
        user.user.id, user.user.email, user.sip_username, user.sip_password or "", VICTIM_NUMBER,
        *(c.id for c in calls), *(c.sip_call_id for c in calls), *(c.caller_number or "" for c in calls),
        *key_ids, *key_prefixes, tenant.api_key, second_key, created.endpoint.id, created.endpoint.url,
        created.secret, f"victim hook {tag}", delivery_id, *(e.id for e in entries),
        message.id, message.caller_number, f"Victim caller {tag}", recording.id,
    }
    await mailbox_service(svc).set_greeting_pcm(org.id, user.user.id, b"\x10\x00" * 8000)
    await hold_music_service(svc).upload(org.id, pcm_to_wav(b"\x10\x00" * 8000))
    victim.secrets.discard("")
    if tenant.owner.sip_password:
        victim.secrets.add(tenant.owner.sip_password)
    return victim


def tag_digits(tag: str) -> str:
    return str(int(tag, 16) % 10_000).zfill(4)


async def _snapshot(web, victim: Victim) -> dict[str, Any]:
    """What the victim would notice had changed."""
    svc = web.services
    org = await svc.accounts.org_by_id(victim.ids["org_id"])
    assert org is not None
    users = await svc.accounts.users(org.name)
    numbers = await svc.numbers.numbers(org.id)
    balance = await svc.ledger.balance(org.id)
    async with svc.sessions() as session:
        calls = (await session.execute(select(func.count()).select_from(CallRecord)
                                       .where(CallRecord.org_id == org.id))).scalar_one()
        voicemails = sorted((v.id, v.folder) for v in (await session.execute(
            select(Voicemail).where(Voicemail.org_id == org.id))).scalars())
        recordings = sorted((r.id, r.size) for r in (await session.execute(
            select(Recording).where(Recording.org_id == org.id))).scalars())
        endpoint = await session.get(WebhookEndpoint, victim.ids["endpoint_id"])
        credentials = sorted((c.username, c.ha1_sha256) for c in (await session.execute(
            select(SipCredential).where(SipCredential.org_id == org.id))).scalars())
        keys = sorted((k.id, k.revoked_at is None, tuple(k.scopes)) for k in (await session.execute(
            select(ApiKey).where(ApiKey.org_id == org.id))).scalars())
    return {
        "org": (org.name, org.low_balance_minor),
        "users": sorted((u.id, u.email, u.extension, u.role, u.ring_timeout, u.disabled_at is None) for u, _ in users),
        "numbers": sorted((n.e164, n.extension) for n in numbers),
        "balance": (balance.available_minor, balance.currency),
        "calls": calls,
        "voicemails": voicemails,
        "recordings": recordings,
        "recording_policies": await recording_service(svc).policies(org.id),
        "endpoint": None if endpoint is None else (endpoint.url, tuple(endpoint.events), endpoint.secret,
                                                   endpoint.enabled, endpoint.description),
        "credentials": credentials,
        "keys": keys,
        "keys_resolve": [await svc.api_keys.resolve(key) is not None for key in victim.keys],
    }


# -- the requests ---------------------------------------------------------------------------------


def kind(path: str) -> str:
    if path.startswith(f"{API}/orgs/{{org_id}}"):
        return "org"
    if path.startswith(f"{API}/operator/"):
        return "operator"
    if path == f"{API}/me" or path.startswith((f"{API}/me/", f"{API}/webphone/")):
        return "me"  # the caller's own (the web phone mints SIP secrets and takes reports for the caller only)
    raise AssertionError(f"{path}: the walk does not know what this path should answer to another org; "
                         "teach kind() (or add the operation to SKIPPED with the reason)")


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        return _resolve(spec, spec["components"]["schemas"][ref.rsplit("/", 1)[1]])
    return schema


HINTS: dict[str, Any] = {
    "email": "walker@example.com", "extension": "7788", "e164": "+14155550171", "url": "http://127.0.0.1:9/walker",
    "name": "walker", "reason": "walker", "deck": "walker", "host": "192.0.2.20", "scopes": ["calls.read"],
    "csv": "number,country,type,monthly_price,setup_price,trunk\n", "number": "+14155550171",
    "description": "walker",
}


def example(spec: dict[str, Any], schema: dict[str, Any], name: str = "") -> Any:
    """A plausible value for ``schema``: required properties only, hints by field name."""
    schema = _resolve(spec, schema)
    if name in HINTS:
        return HINTS[name]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if _resolve(spec, s).get("type") != "null"]
            return example(spec, options[0], name) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    kind_ = schema.get("type")
    if kind_ == "object" or "properties" in schema:
        return {prop: example(spec, sub, prop) for prop, sub in (schema.get("properties") or {}).items()
                if prop in set(schema.get("required") or ())}
    if kind_ == "array":
        count = schema.get("minItems", 0)
        return [example(spec, schema.get("items") or {}, name) for _ in range(count)]
    if kind_ == "integer":
        if "exclusiveMinimum" in schema:
            return int(schema["exclusiveMinimum"]) + 1
        return int(schema.get("minimum", 1))
    if kind_ == "number":
        return float(schema.get("minimum", 1))
    if kind_ == "boolean":
        return False
    return "walker"


def request_parts(spec: dict[str, Any], path: str, op: dict[str, Any], values: dict[str, str]
                  ) -> tuple[str, dict[str, Any], Any]:  # fmt: skip
    """The URL (path params from ``values``), required query params and a minimal valid body."""
    url = path
    for name in re.findall(r"{([^}]+)}", path):
        url = url.replace("{" + name + "}", quote(values[name], safe=""))
    query = {p["name"]: example(spec, p.get("schema") or {}, p["name"]) for p in op.get("parameters", [])
             if p.get("in") == "query" and p.get("required")}
    body = None
    content = (op.get("requestBody") or {}).get("content") or {}
    if "application/json" in content:
        body = example(spec, content["application/json"].get("schema") or {})
    return url, query, body


async def call(client: httpx.AsyncClient, method: str, url: str, query: dict[str, Any], body: Any) -> httpx.Response:
    if body is None:
        return await client.request(method, url, params=query)
    return await client.request(method, url, params=query, json=body)


def leaked(response: httpx.Response, sent: str, victim: Victim) -> list[str]:
    """Victim strings in the response that the request did not carry itself (an echo is no leak)."""
    text = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return sorted(s for s in victim.secrets if s in text and s not in sent)


@dataclass
class Walk:
    failures: list[str] = field(default_factory=list)
    calls: int = 0
    operations: int = 0

    def expect(self, label: str, response: httpx.Response, statuses: set[int], error_id: str | None = None) -> None:
        self.calls += 1
        ok = response.status_code in statuses
        if ok and error_id is not None:
            ok = response.json().get("error_id") == error_id
        if not ok:
            self.failures.append(f"{label}: {response.status_code} {response.text[:300]} "
                                 f"(expected {sorted(statuses)}{' ' + error_id if error_id else ''})")


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in spec["paths"].items() for method, op in item.items()
            if method in METHODS]


# -- the walk -------------------------------------------------------------------------------------


async def walk_api(web, victim: Victim, intruder) -> Walk:
    """Every operation of the OpenAPI document as the intruder (a, c) and as nobody (b)."""
    anonymous = web.client()
    spec = (await anonymous.get(f"{API}/openapi.json")).json()
    walk = Walk()
    ops = operations(spec)
    unknown = sorted({name for _, path, _ in ops for name in re.findall(r"{([^}]+)}", path)}
                     - set(PATH_VALUES) - {"org_id"})
    assert not unknown, f"path parameters the walk has no victim value for: {unknown} (add them to PATH_VALUES)"
    for method, path, op in ops:
        if (method, path) in SKIPPED:
            continue
        walk.operations += 1
        what = kind(path)
        names = re.findall(r"{([^}]+)}", path)
        victim_values = {"org_id": victim.ids["org_id"], **{n: victim.ids[PATH_VALUES[n][0]] for n in names
                                                            if n != "org_id"}}
        label = f"{method.upper()} {path}"
        url, query, body = request_parts(spec, path, op, victim_values)
        sent = unquote(url) + json.dumps(query) + json.dumps(body)

        # (a) the intruder, logged in (a fresh session each time: no operation can end the next one's)
        # and with its API key, on the victim's ids.
        session_client = await web.logged_in(intruder.owner)
        for how, client in (("session", session_client), ("api key", intruder.api)):
            response = await call(client, method, url, query, body)
            if what == "org":
                walk.expect(f"{label} as intruder ({how})", response, {404}, "organization_not_found")
            elif what == "operator" or (path.startswith(PERSON_ONLY) and how == "api key"):
                walk.expect(f"{label} as intruder ({how})", response, {403}, "permission_denied")
            elif method == "get" and path in PERSON_ONLY:
                walk.expect(f"{label} as intruder ({how})", response, {200})
            elif method == "get" and len(names) > 0:  # one of the caller's own things, by the victim's id
                walk.expect(f"{label} as intruder ({how})", response, {403, 404})
            elif method == "get":
                walk.expect(f"{label} as intruder ({how})", response, {200})
                if response.status_code == 200 and intruder.org.id not in response.text:
                    walk.failures.append(f"{label} as intruder ({how}): not the caller's own data")
            else:
                walk.expect(f"{label} as intruder ({how})", response, set(range(200, 500)) - {401})
            if bad := leaked(response, sent, victim):
                walk.failures.append(f"{label} as intruder ({how}) leaks {bad}: {response.text[:300]}")

        # (b) nobody.
        response = await call(anonymous, method, url, query, body)
        walk.expect(f"{label} without credentials", response, {401}, "login_required")
        if bad := leaked(response, sent, victim):
            walk.failures.append(f"{label} without credentials leaks {bad}")

        # (c) the intruder's own org, the victim's resource ids.
        resources = [n for n in names if n != "org_id" and PATH_VALUES[n][1]]
        if what == "org" and resources:
            own_url, own_query, own_body = request_parts(spec, path, op, {**victim_values,
                                                                          "org_id": intruder.org.id})
            own_sent = unquote(own_url) + json.dumps(own_query) + json.dumps(own_body)
            for how, client in (("session", await web.logged_in(intruder.owner)), ("api key", intruder.api)):
                response = await call(client, method, own_url, own_query, own_body)
                walk.expect(f"{label} in the intruder's org with the victim's {', '.join(resources)} ({how})",
                            response, {404})
                if response.status_code == 404 and response.json().get("error_id") == "organization_not_found":
                    walk.failures.append(f"{label} ({how}): the intruder's own org was not found")
                if bad := leaked(response, own_sent, victim):
                    walk.failures.append(f"{label} in the intruder's org ({how}) leaks {bad}")
    assert walk.operations + len(SKIPPED) == len(ops)
    return walk


async def test_another_org_reaches_nothing_of_the_victim_on_any_route(web):
    victim = await _seed_victim(web)
    intruder = await web.tenant(f"Intruder {secrets.token_hex(3)}")
    before = await _snapshot(web, victim)
    walk = await walk_api(web, victim, intruder)
    assert walk.operations >= 40  # the whole API, not a stub
    assert not walk.failures, f"{len(walk.failures)} of {walk.calls} answers wrong:\n" + "\n".join(walk.failures)
    assert await _snapshot(web, victim) == before


async def test_a_staff_member_reads_a_customer_org_and_it_is_audited(web):
    victim = await _seed_victim(web)
    operator = await web.org(f"Operator {secrets.token_hex(3)}", kind=OrgKind.OPERATOR)
    staff = await web.member(operator, "support")
    client = await web.logged_in(staff)
    response = await client.get(f"{API}/orgs/{victim.ids['org_id']}/users",
                                headers={"X-Access-Reason": "ticket 4711"})
    assert response.status_code == 200, response.text
    assert victim.ids["user_id"] in response.text  # support sees the customer's users...
    async with web.services.sessions() as session:
        events = list((await session.execute(select(AuditEvent).where(
            AuditEvent.org_id == victim.ids["org_id"], AuditEvent.action == "staff.access"))).scalars())
    # ...and the customer's audit trail says who looked, from which org, why and at what.
    assert len(events) == 1
    event = events[0]
    assert (event.actor_user_id, event.actor_org_id, event.actor_role, event.reason) == (
        staff.user.id, operator.id, "support", "ticket 4711")
    assert event.details is not None and event.details["path"] == f"{API}/orgs/{victim.ids['org_id']}/users"
    # Support reads but does not write: for users.write the customer's org is as hidden as to anyone.
    refused = await client.patch(f"{API}/orgs/{victim.ids['org_id']}/users/{victim.ids['user_id']}",
                                 json={"name": "changed by support"})
    assert refused.status_code == 404 and refused.json()["error_id"] == "organization_not_found"
