"""The recordings API: owners set who is recorded (members may not); a member lists and plays the
recordings of their own calls only, anyone else's play is audited; delete removes the file and the
recording is then not found; a call that is not in progress cannot be controlled."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from ringwell.features.audit.models import AuditEvent
from ringwell.features.recordings.models import Trigger
from ringwell.features.recordings.routes import recording_service
from ringwell.media.oggopus import CONTENT_TYPE, OggOpusWriter
from tests.integration.test_recordings import stereo
from tests.web.test_portal_pages import add_call


async def stored(web, org_id: str, caller, callee, seconds: float = 1.5, call_id: str = "c" * 36):
    service = recording_service(web.services)
    upload = await service.begin(org_id, CONTENT_TYPE)
    writer = OggOpusWriter(upload.feed)
    writer.write(stereo(seconds))
    writer.close()
    row = await service.finish(upload, org_id=org_id, call_record_id=call_id, caller_user_id=caller.user.id,
                               callee_user_id=callee.user.id, trigger=Trigger.API, started_at=datetime.now(UTC),
                               duration_s=seconds, paused_s=0.0, content_type=CONTENT_TYPE)
    assert row is not None
    return row


async def events(web, org_id: str, action: str):
    async with web.services.sessions() as session:
        return list((await session.execute(select(AuditEvent).where(
            AuditEvent.org_id == org_id, AuditEvent.action == action))).scalars())


async def test_owners_set_who_is_recorded_and_members_may_not(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    url = f"/api/v1/orgs/{acme.org.id}/recording-policy"
    assert (await acme.client.get(url)).json() == {"organization": "off", "users": {}, "numbers": {}}
    response = await acme.client.put(url, json={"mode": "on_demand"})
    assert response.status_code == 200, response.text
    response = await acme.client.put(f"/api/v1/orgs/{acme.org.id}/users/{alice.user.id}/recording-policy",
                                     json={"mode": "always"})
    assert response.json() == {"organization": "on_demand", "users": {alice.user.id: "always"}, "numbers": {}}
    for bad in ({"mode": "sometimes"}, {"mode": "always", "extra": 1}, {}):
        assert (await acme.client.put(url, json=bad)).status_code == 422
    response = await acme.client.put(f"/api/v1/orgs/{acme.org.id}/numbers/+14155550100/recording-policy",
                                     json={"mode": "always"})
    assert response.status_code == 404 and response.json()["error_id"] == "number_not_found"
    response = await acme.client.put(f"/api/v1/orgs/{acme.org.id}/users/{alice.user.id}/recording-policy",
                                     json={"mode": None})
    assert response.json()["users"] == {}
    assert [e.details["mode"] for e in await events(web, acme.org.id, "recording.policy")] == [
        "on_demand", "always", None]
    member = await web.logged_in(alice)
    assert (await member.get(url)).status_code == 403
    assert (await member.put(url, json={"mode": "off"})).status_code == 403
    other = await web.tenant("Other")
    assert (await other.client.get(url)).status_code == 404


async def test_members_reach_the_recordings_of_their_calls_and_other_plays_are_audited(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    bob = await web.member(acme.org, "member")
    carol = await web.member(acme.org, "member")
    row = await stored(web, acme.org.id, alice, bob)
    url = f"/api/v1/orgs/{acme.org.id}/recordings"
    as_bob = await web.logged_in(bob)
    as_carol = await web.logged_in(carol)

    listed = (await as_bob.get(url, params={"call_id": "c" * 36})).json()["items"]
    assert [i["id"] for i in listed] == [row.id] and listed[0]["channels"] == 2 and listed[0]["trigger"] == "api"
    assert (await as_carol.get(url)).json()["items"] == []
    for path in (f"{url}/{row.id}", f"{url}/{row.id}/audio"):
        response = await as_carol.get(path)
        assert response.status_code == 404 and response.json()["error_id"] == "recording_not_found"

    response = await as_bob.get(f"{url}/{row.id}/audio")  # a party of the call: not audited
    assert response.status_code == 200 and response.headers["content-type"] == "audio/ogg"
    assert response.content.startswith(b"OggS") and b"OpusHead" in response.content[:200]
    assert await events(web, acme.org.id, "recording.played") == []
    assert (await acme.client.get(f"{url}/{row.id}/audio")).status_code == 200  # the owner: audited
    played = await events(web, acme.org.id, "recording.played")
    assert [(e.actor_user_id, e.target_id) for e in played] == [(acme.owner.user.id, row.id)]

    assert (await as_bob.delete(f"{url}/{row.id}")).status_code == 403  # members do not delete
    path = recording_service(web.services).blobs.path(acme.org.id, row.blob_id)
    assert path.is_file()
    assert (await acme.client.delete(f"{url}/{row.id}")).status_code == 204
    assert not path.exists()
    assert (await acme.client.get(f"{url}/{row.id}")).status_code == 404
    assert (await acme.client.get(f"{url}/{row.id}/audio")).status_code == 404
    assert [e.target_id for e in await events(web, acme.org.id, "recording.delete")] == [row.id]


async def test_a_call_that_is_not_in_progress_cannot_be_controlled(web):
    acme = await web.tenant("Acme")
    url = f"/api/v1/orgs/{acme.org.id}/calls/{'d' * 36}/recording"
    response = await acme.client.post(url, json={"action": "start"})
    assert response.status_code == 404 and response.json()["error_id"] == "call_not_live"
    assert (await acme.client.post(url, json={"action": "rewind"})).status_code == 422


async def test_the_call_history_page_plays_a_recorded_call_for_its_parties(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    bob = await web.member(acme.org, "member")
    carol = await web.member(acme.org, "member")
    call_id = await add_call(web, acme.org.id, caller_user=alice.user.id, callee_user=bob.user.id)
    row = await stored(web, acme.org.id, alice, bob, call_id=call_id)
    player = f"/calls/recordings/{row.id}/audio"

    page = (await (await web.logged_in(alice)).get("/calls")).text
    assert "● rec" in page and player in page
    audio = await (await web.logged_in(alice)).get(player)
    assert audio.status_code == 200 and audio.content.startswith(b"OggS")
    assert await events(web, acme.org.id, "recording.played") == []

    detail = (await (await web.logged_in(bob)).get(f"/api/v1/orgs/{acme.org.id}/calls/{call_id}")).json()
    assert detail["recordings"] == [row.id]  # the call record lists its recordings

    as_carol = await web.logged_in(carol)  # not on the call: neither the call nor its recording
    assert player not in (await as_carol.get("/calls")).text
    assert (await as_carol.get(player)).status_code == 404
    owner_page = (await acme.client.get("/calls")).text
    assert player in owner_page
    assert (await acme.client.get(player)).status_code == 200
    assert len(await events(web, acme.org.id, "recording.played")) == 1


async def test_an_owner_sets_how_long_the_org_keeps_recordings_and_voicemail(web):
    acme = await web.tenant("Acme")
    url = f"/api/v1/orgs/{acme.org.id}"
    before = (await acme.client.get(url)).json()
    assert before["recording_retention_days"] is None and before["voicemail_retention_days"] is None
    response = await acme.client.patch(url, json={"recording_retention_days": 30, "voicemail_retention_days": 14})
    assert response.status_code == 200, response.text
    assert (response.json()["recording_retention_days"], response.json()["voicemail_retention_days"]) == (30, 14)
    for bad in (0, 3651, "30", True):
        assert (await acme.client.patch(url, json={"recording_retention_days": bad})).status_code == 422
    response = await acme.client.patch(url, json={"voicemail_retention_days": None})  # back to the server's
    assert response.json()["voicemail_retention_days"] is None and response.json()["recording_retention_days"] == 30
    member = await web.logged_in(await web.member(acme.org, "member"))
    assert (await member.patch(url, json={"recording_retention_days": 3650})).status_code == 403
