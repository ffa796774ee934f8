"""The voicemail API: a member lists and plays their own mailbox only, owners reach every mailbox
(and playing someone else's message is audited), the download is the WAV that was left, delete
removes it for good, another organization's message is simply not found."""

from __future__ import annotations

import io
import math
import struct
import wave

from sqlalchemy import select

from ringwell.features.audit.models import AuditEvent
from ringwell.features.voicemail.mailbox_routes import mailbox_service
from ringwell.features.voicemail.routes import voicemail_service


def tone(seconds: float, hz: float = 440.0, rate: int = 8000) -> bytes:
    return b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * hz * n / rate)))
                    for n in range(int(seconds * rate)))


async def deposit(web, member, caller: str, seconds: float = 1.5, hz: float = 440.0):
    service = voicemail_service(web.services)
    message = await service.deposit(member.org.id, member.user.id, caller, f"Caller {caller}", tone(seconds, hz))
    assert message is not None
    return message


async def played_events(web, org_id):
    async with web.services.sessions() as session:
        return list((await session.execute(select(AuditEvent).where(
            AuditEvent.org_id == org_id, AuditEvent.action == "voicemail.played"))).scalars())


async def test_a_member_sees_only_their_own_mailbox_the_owner_sees_all(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    bob = await web.member(acme.org, "member")
    for_alice = await deposit(web, alice, "+14155550101")
    for_bob = await deposit(web, bob, "+14155550102")
    url = f"/api/v1/orgs/{acme.org.id}/voicemails"
    alice_client = await web.logged_in(alice)

    response = await alice_client.get(url)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["id"] for i in items] == [for_alice.id]
    assert items[0] | {"received_at": None, "retention_until": None} == {
        "id": for_alice.id, "user_id": alice.user.id, "caller_number": "+14155550101",
        "caller_name": "Caller +14155550101", "call_id": None, "received_at": None, "duration_s": 1.5,
        "folder": "new", "read_at": None, "transcript_status": "pending", "retention_until": None}
    # Asking for Bob's mailbox does not widen a member's view.
    assert [i["id"] for i in (await alice_client.get(url, params={"user_id": bob.user.id})).json()["items"]] == [
        for_alice.id]
    for path in (f"{url}/{for_bob.id}", f"{url}/{for_bob.id}/audio"):
        response = await alice_client.get(path)
        assert response.status_code == 404 and response.json()["error_id"] == "voicemail_not_found"
    assert (await alice_client.delete(f"{url}/{for_bob.id}")).status_code == 404

    every = (await acme.client.get(url)).json()["items"]
    assert {i["id"] for i in every} == {for_alice.id, for_bob.id}
    only_bob = (await acme.api.get(url, params={"user_id": bob.user.id})).json()["items"]
    assert [i["id"] for i in only_bob] == [for_bob.id]


async def test_download_gives_the_wav_and_another_users_play_is_audited(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    message = await deposit(web, alice, "+14155550101", seconds=2.0, hz=660.0)
    alice_client = await web.logged_in(alice)
    url = f"/api/v1/orgs/{acme.org.id}/voicemails/{message.id}/audio"

    response = await alice_client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.readframes(wav.getnframes()) == tone(2.0, 660.0)
    assert await played_events(web, acme.org.id) == []  # the mailbox's owner listening is nobody's business

    response = await acme.client.get(url)  # the org's owner plays Alice's message
    assert response.status_code == 200 and response.content.startswith(b"RIFF")
    events = await played_events(web, acme.org.id)
    assert len(events) == 1
    assert (events[0].actor_user_id, events[0].target_id) == (acme.owner.user.id, message.id)
    assert events[0].details == {"mailbox_user_id": alice.user.id}


async def test_mark_read_and_the_transcript_when_done(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    message = await deposit(web, alice, "+14155550101")
    client = await web.logged_in(alice)
    url = f"/api/v1/orgs/{acme.org.id}/voicemails/{message.id}"
    assert (await client.get(url)).json()["transcript"] is None
    await voicemail_service(web.services).set_transcript(acme.org.id, message.id, "Please call me back.")
    body = (await client.get(url)).json()
    assert (body["transcript_status"], body["transcript"]) == ("done", "Please call me back.")

    response = await client.post(f"{url}/read")
    assert response.status_code == 200, response.text
    assert response.json()["folder"] == "saved" and response.json()["read_at"] is not None
    listed = await client.get(f"/api/v1/orgs/{acme.org.id}/voicemails", params={"folder": "new"})
    assert listed.json()["items"] == []


async def test_delete_then_404_and_the_file_is_gone(web):
    acme = await web.tenant("Acme")
    other = await web.tenant("Other")
    message = await deposit(web, acme.owner, "+14155550101")
    url = f"/api/v1/orgs/{acme.org.id}/voicemails/{message.id}"
    blobs = voicemail_service(web.services).blobs
    path = blobs.path(acme.org.id, message.audio_blob_id)
    assert path.exists()

    # Another org: its own org id with this message's id finds nothing, this org's path is hidden.
    for client in (other.client, other.api):
        response = await client.get(f"/api/v1/orgs/{other.org.id}/voicemails/{message.id}")
        assert response.status_code == 404 and response.json()["error_id"] == "voicemail_not_found"
        response = await client.delete(url)
        assert response.status_code == 404 and response.json()["error_id"] == "organization_not_found"
    assert path.exists()

    response = await acme.client.delete(url)
    assert response.status_code == 204, response.text
    assert not path.exists()
    for method, target in (("GET", url), ("GET", f"{url}/audio"), ("POST", f"{url}/read"), ("DELETE", url)):
        response = await acme.client.request(method, target)
        assert response.status_code == 404 and response.json()["error_id"] == "voicemail_not_found", method


async def test_the_voicemail_email_choices_are_set_through_the_api(web):
    acme = await web.tenant("Acme Mail")
    base = f"/api/v1/orgs/{acme.org.id}"
    org = await acme.api.get(base)
    assert org.json()["voicemail_attach_audio"] is False  # the recording stays here unless the org says so
    changed = await acme.api.patch(base, json={"voicemail_attach_audio": True})
    assert changed.status_code == 200 and changed.json()["voicemail_attach_audio"] is True
    user = f"{base}/users/{acme.owner.user.id}"
    assert (await acme.api.get(user)).json()["voicemail_email"] is True
    off = await acme.api.patch(user, json={"voicemail_email": False})
    assert off.status_code == 200 and off.json()["voicemail_email"] is False
    refused = await acme.api.patch(user, json={"voicemail_email": "no"})
    assert refused.status_code == 422  # strict: not a boolean


async def test_deleting_a_user_deletes_their_messages_and_greeting_files_too(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    message = await deposit(web, alice, "+14155550101")
    service = voicemail_service(web.services)
    await service.set_transcript(acme.org.id, message.id, "call me back")
    await mailbox_service(web.services).set_greeting_pcm(acme.org.id, alice.user.id, tone(1.0))
    files = [p for p in (web.services.settings.data_dir / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 3  # the message, its transcript, the greeting
    response = await acme.client.delete(f"/api/v1/orgs/{acme.org.id}/users/{alice.user.id}")
    assert response.status_code == 204
    assert [p for p in (web.services.settings.data_dir / "blobs").rglob("*") if p.is_file()] == []
