"""The mailbox switch and do-not-disturb through the API and the portal (a user sets their own; an
owner anyone's; both audited), and searching transcripts with ``?q=`` and the portal's search box
(a member finds only their own messages)."""

from __future__ import annotations

from sqlalchemy import select

from ringwell.features.accounts.models import User
from ringwell.features.audit.models import AuditEvent
from ringwell.features.voicemail.routes import voicemail_service
from tests.web.test_api_voicemail import deposit
from tests.web.test_portal_pages import as_browser, text, token_of


async def _flags(web, user_id: str) -> tuple[bool, bool]:
    async with web.services.sessions() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user.voicemail_enabled, user.dnd


async def _changes(web, org_id: str, user_id: str) -> list[dict]:
    async with web.services.sessions() as session:
        events = (await session.execute(select(AuditEvent).where(
            AuditEvent.org_id == org_id, AuditEvent.action == "users.update", AuditEvent.target_id == user_id)
            .order_by(AuditEvent.at))).scalars().all()
    return [e.details["changes"] for e in events if e.details]


async def test_a_user_switches_their_own_mailbox_and_dnd_through_the_api(web):
    acme = await web.tenant("Acme Flags")
    alice = await web.member(acme.org, "member")
    bob = await web.member(acme.org, "member")
    client = await web.logged_in(alice)
    own = f"/api/v1/orgs/{acme.org.id}/users/{alice.user.id}"

    got = (await acme.api.get(own)).json()
    assert (got["voicemail_enabled"], got["dnd"]) == (True, False)  # the defaults
    changed = await client.patch(own, json={"dnd": True, "voicemail_enabled": False})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["voicemail_enabled"], changed.json()["dnd"]) == (False, True)
    assert await _flags(web, alice.user.id) == (False, True)
    assert await _changes(web, acme.org.id, alice.user.id) == [
        {"voicemail_enabled": [True, False], "dnd": [False, True]}]
    # Only those two on themselves: not their name or ring timeout, not another user's flags.
    for body in ({"name": "Alice"}, {"dnd": False, "ring_timeout": 5}):
        refused = await client.patch(own, json=body)
        assert refused.status_code == 403 and refused.json()["error_id"] == "permission_denied", body
    refused = await client.patch(f"/api/v1/orgs/{acme.org.id}/users/{bob.user.id}", json={"dnd": True})
    assert refused.status_code == 403
    assert await _flags(web, bob.user.id) == (True, False)
    # An owner sets them for anyone; strict booleans.
    back = await acme.client.patch(own, json={"dnd": False, "voicemail_enabled": True})
    assert back.status_code == 200 and (back.json()["voicemail_enabled"], back.json()["dnd"]) == (True, False)
    assert (await acme.client.patch(own, json={"dnd": "yes"})).status_code == 422


async def test_the_profile_page_has_the_calls_toggles(web):
    acme = await web.tenant("Acme Toggles")
    alice = await web.member(acme.org, "member")
    client = as_browser(await web.logged_in(alice))
    page = await client.get("/settings")
    assert page.status_code == 200
    assert 'name="voicemail_enabled" checked' in page.text and 'name="dnd" data-testid' in page.text
    # A browser sends checked boxes only: dnd on, mailbox off.
    saved = await client.post("/settings/calls", data={"csrf_token": token_of(page.text), "dnd": "on"})
    assert saved.status_code == 303 and saved.headers["location"] == "/settings?done=calls"
    assert await _flags(web, alice.user.id) == (False, True)
    page = await client.get("/settings?done=calls")
    assert "Your call settings were saved." in text(page)
    assert 'name="voicemail_enabled" data-testid' in page.text and 'name="dnd" checked' in page.text
    assert await _changes(web, acme.org.id, alice.user.id) == [
        {"voicemail_enabled": [True, False], "dnd": [False, True]}]
    # Without the form's CSRF token nothing changes.
    forged = await client.post("/settings/calls", data={"voicemail_enabled": "on"})
    assert forged.status_code == 403
    assert await _flags(web, alice.user.id) == (False, True)


async def test_searching_transcripts_through_the_api_and_the_portal(web):
    acme = await web.tenant("Acme Search")
    other = await web.tenant("Other Search")
    alice = await web.member(acme.org, "member")
    service = voicemail_service(web.services)
    robert = await deposit(web, alice, "+13127048261")
    plumber = await deposit(web, acme.owner, "+15550142000")
    elsewhere = await deposit(web, other.owner, "+13127040000")
    await service.set_transcript(acme.org.id, robert.id, "Robert from Northwind, call 312 704 8261.")
    await service.set_transcript(acme.org.id, plumber.id, "The plumber from Northwind: five five five, 0142.")
    await service.set_transcript(other.org.id, elsewhere.id, "Robert from Northwind, call 312 704 8261.")
    url = f"/api/v1/orgs/{acme.org.id}/voicemails"

    async def ids(client, q: str) -> list[str]:
        response = await client.get(url, params={"q": q})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert set(await ids(acme.client, "northwind")) == {robert.id, plumber.id}
    assert await ids(acme.client, "Northwind 312-704") == [robert.id]
    assert await ids(acme.client, "555 0142") == [plumber.id]
    assert await ids(acme.client, "robert plumber") == []
    member = await web.logged_in(alice)
    assert await ids(member, "northwind") == [robert.id]  # a member: their own mailbox only
    assert await ids(member, "555") == []
    other_list = await other.client.get(f"/api/v1/orgs/{other.org.id}/voicemails", params={"q": "northwind"})
    assert [i["id"] for i in other_list.json()["items"]] == [elsewhere.id]  # each org finds only its own
    refused = await acme.client.get(url, params={"q": "?!"})
    assert refused.status_code == 422 and refused.json()["error_id"] == "invalid_voicemail"

    page = await member.get("/voicemail", params={"q": "312 704"})
    assert page.status_code == 200
    assert 'data-testid="voicemail-q"' in page.text and 'value="312 704"' in page.text
    assert robert.id in page.text and plumber.id not in page.text
    none = await acme.client.get("/voicemail", params={"q": "elephant"})
    assert "No message says “elephant”" in text(none) and robert.id not in none.text
    everything = await acme.client.get("/voicemail", params={"q": "northwind"})
    assert robert.id in everything.text and plumber.id in everything.text
