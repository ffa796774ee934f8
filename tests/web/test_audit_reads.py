"""Reads of other people's calls and voicemail are audited — one event per request naming the
records — while a person reading their own leaves no trace; staff reads carry their reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ringwell.features.accounts.models import OrgKind
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.reads import others
from ringwell.features.cdr import repository as repo
from ringwell.features.voicemail.routes import voicemail_service
from ringwell.storage.base import new_id
from tests.web.test_api_recordings import stored
from tests.web.test_api_voicemail import tone

T0 = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)


def call(org_id, at, caller_user=None, callee_user=None):
    return {
        "id": new_id(), "org_id": org_id, "sip_call_id": f"{new_id()}@10.0.0.5", "direction": "internal",
        "caller_user_id": caller_user, "caller_extension": "101", "caller_number": None,
        "callee_user_id": callee_user, "callee_extension": "102", "callee_number": "102",
        "started_at": at, "answered_at": at + timedelta(seconds=2), "ended_at": at + timedelta(seconds=64),
        "last_alive_at": at + timedelta(seconds=64), "ring_seconds": 2.0, "talk_seconds": 62.0, "state": "closed",
        "disposition": "answered", "hangup_by": "callee", "sip_status": 200, "codec": "opus",
        "billable_seconds": None, "charge_minor": None, "currency": None, "media": None,
    }


async def events(web, org_id, action):
    async with web.services.sessions() as session:
        return list((await session.execute(select(AuditEvent).where(
            AuditEvent.org_id == org_id, AuditEvent.action == action).order_by(AuditEvent.seq))).scalars())


def test_only_records_that_are_not_the_viewers_own_count():
    records = [("c1", ("alice", "bob")), ("c2", ("bob", None)), ("c3", (None, "alice"))]
    assert others("alice", records, staff=False) == ["c2"]
    assert others("alice", records, staff=True) == ["c1", "c2", "c3"]
    assert others(None, records, staff=False) == ["c1", "c2", "c3"]  # an API key is nobody's own


async def test_an_owner_reading_colleagues_calls_is_audited_a_member_reading_their_own_is_not(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    bob = await web.member(acme.org, "member")
    theirs = [call(acme.org.id, T0, alice.user.id, bob.user.id), call(acme.org.id, T0 - timedelta(minutes=1),
                                                                       bob.user.id)]
    own = call(acme.org.id, T0 - timedelta(minutes=2), acme.owner.user.id, alice.user.id)
    async with web.services.sessions() as session, session.begin():
        await repo.insert_calls(session, [*theirs, own])
    url = f"/api/v1/orgs/{acme.org.id}/calls"

    assert (await (await web.logged_in(alice)).get(url)).status_code == 200
    assert (await (await web.logged_in(alice)).get(f"{url}/{theirs[0]['id']}")).status_code == 200
    assert await events(web, acme.org.id, "calls.read") == []  # her own calls

    assert (await acme.client.get(url)).status_code == 200
    (listed,) = await events(web, acme.org.id, "calls.read")
    assert listed.actor_user_id == acme.owner.user.id
    assert listed.details == {"ids": [theirs[0]["id"], theirs[1]["id"]], "count": 2}  # not the owner's own call
    assert (await acme.client.get(f"{url}/{own['id']}")).status_code == 200
    assert len(await events(web, acme.org.id, "calls.read")) == 1
    assert (await acme.client.get(f"{url}/{theirs[1]['id']}")).status_code == 200
    one = (await events(web, acme.org.id, "calls.read"))[-1]
    assert one.target_id == theirs[1]["id"] and one.details["count"] == 1

    # The portal's call history page and the dashboard's recent calls are the same read.
    assert (await acme.client.get("/calls")).status_code == 200
    assert (await acme.client.get("/")).status_code == 200
    assert len(await events(web, acme.org.id, "calls.read")) == 4

    # Staff read with a reason; it is on their events.
    operator = await web.org("Operator", kind=OrgKind.OPERATOR)
    support = await web.logged_in(await web.member(operator, "support"))
    response = await support.get(url, headers={"X-Access-Reason": "ticket 4711"})
    assert response.status_code == 200
    staff_read = (await events(web, acme.org.id, "calls.read"))[-1]
    assert staff_read.actor_role == "support" and staff_read.reason == "ticket 4711"
    assert staff_read.details["count"] == 3  # staff own none of them


async def test_reading_someone_elses_voicemail_is_audited(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    message = await voicemail_service(web.services).deposit(acme.org.id, alice.user.id, "+14155550101", "Caller",
                                                             tone(1.0))
    assert message is not None
    url = f"/api/v1/orgs/{acme.org.id}/voicemails"
    alice_client = await web.logged_in(alice)
    assert (await alice_client.get(url)).status_code == 200
    assert (await alice_client.get(f"{url}/{message.id}")).status_code == 200
    assert await events(web, acme.org.id, "voicemail.read") == []

    assert (await acme.client.get(url)).status_code == 200
    assert (await acme.client.get(f"{url}/{message.id}")).status_code == 200
    assert (await acme.client.get("/voicemail")).status_code == 200
    reads = await events(web, acme.org.id, "voicemail.read")
    assert len(reads) == 3 and all(e.details == {"ids": [message.id], "count": 1} for e in reads)
    assert all(e.actor_user_id == acme.owner.user.id for e in reads)


async def test_listing_recordings_of_calls_one_was_not_on_is_audited(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    bob = await web.member(acme.org, "member")
    row = await stored(web, acme.org.id, alice, bob)
    url = f"/api/v1/orgs/{acme.org.id}/recordings"
    assert [r["id"] for r in (await (await web.logged_in(alice)).get(url)).json()["items"]] == [row.id]
    assert await events(web, acme.org.id, "recordings.read") == []  # she was on the call
    assert [r["id"] for r in (await acme.api.get(url)).json()["items"]] == [row.id]
    (read,) = await events(web, acme.org.id, "recordings.read")
    assert read.api_key_id is not None and read.details == {"ids": [row.id], "count": 1}
