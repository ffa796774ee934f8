"""The mailbox API (SQLite and PostgreSQL): a user sets their own PIN (never returned), an owner or
admin anyone's in the org, a member nobody else's; greetings upload as WAV or MP3, come back as
8 kHz WAV, and go back to the default; what is not audio is refused with a clear 422."""

from __future__ import annotations

import io
import math
import struct
import wave

from sqlalchemy import select

from ringwell.features.audit.models import AuditEvent
from ringwell.features.voicemail.mailbox_routes import hold_music_service, mailbox_service
from ringwell.features.voicemail.routes import voicemail_service


def wav(seconds: float, rate: int = 16000, hz: float = 440.0) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * hz * n / rate)))
                               for n in range(int(seconds * rate))))
    return out.getvalue()


def base(member) -> str:
    return f"/api/v1/orgs/{member.org.id}/users/{member.user.id}/voicemail"


async def test_a_member_sets_their_own_pin_but_not_another_members(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    bob = await web.member(acme.org, "member")
    alice_client = await web.logged_in(alice)

    response = await alice_client.put(f"{base(alice)}/pin", json={"pin": "285046"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"user_id": alice.user.id, "pin_set": True, "failed_pin_attempts": 0, "locked": False,
                    "locked_until": None, "custom_greeting": False}
    assert "285046" not in response.text

    for method, path, kwargs in (("PUT", "pin", {"json": {"pin": "285046"}}), ("GET", "mailbox", {}),
                                 ("PUT", "greeting", {"content": wav(1.0),
                                                      "headers": {"content-type": "audio/wav"}}),
                                 ("DELETE", "greeting", {})):
        response = await alice_client.request(method, f"{base(bob)}/{path}", **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error_id"] == "user_not_found"
    assert not (await mailbox_service(web.services).state(acme.org.id, bob.user.id)).pin_set

    # the owner (session) and an API key reach every mailbox of the org; another org's owner none
    assert (await acme.client.put(f"{base(bob)}/pin", json={"pin": "740361"})).status_code == 200
    assert (await acme.api.get(f"{base(bob)}/mailbox")).json()["pin_set"] is True
    other = await web.tenant("Other")
    assert (await other.client.put(f"{base(bob)}/pin", json={"pin": "111222"})).status_code == 404
    async with web.services.sessions() as session:
        events = (await session.execute(select(AuditEvent).where(
            AuditEvent.action == "voicemail.pin_set"))).scalars().all()
    assert {e.target_id for e in events} == {alice.user.id, bob.user.id}
    assert all("285046" not in str(e.details) and "740361" not in str(e.details) for e in events)


async def test_weak_pins_are_refused_and_a_new_pin_unlocks(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    client = await web.logged_in(alice)
    for pin in ("1234", "0000", "12", "12345678901", "12ab", "987654"):
        response = await client.put(f"{base(alice)}/pin", json={"pin": pin})
        assert response.status_code == 422, pin
        assert response.json()["error_id"] in ("invalid_pin", "validation_error"), response.text
    service = mailbox_service(web.services)
    await service.set_pin(acme.org.id, alice.user.id, "285046")
    for wrong in ("1111", "2222", "3333"):
        await service.check_pin(acme.org.id, alice.user.id, wrong)
    state = (await client.get(f"{base(alice)}/mailbox")).json()
    assert state["locked"] is True and state["failed_pin_attempts"] == 3 and state["locked_until"]
    response = await client.put(f"{base(alice)}/pin", json={"pin": "740361"})
    assert response.json()["locked"] is False and response.json()["failed_pin_attempts"] == 0


async def test_a_greeting_uploads_plays_back_as_8khz_wav_and_is_deleted(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    client = await web.logged_in(alice)
    assert (await client.get(f"{base(alice)}/greeting")).status_code == 404

    response = await client.put(f"{base(alice)}/greeting", content=wav(2.0),
                                headers={"content-type": "audio/wav"})
    assert response.status_code == 200, response.text
    assert response.json()["custom_greeting"] is True
    response = await client.get(f"{base(alice)}/greeting")
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert abs(w.getnframes() / 8000 - 2.0) < 0.05

    response = await client.put(f"{base(alice)}/greeting", content=b"%PDF-1.4 " + b"x" * 4000,
                                headers={"content-type": "audio/wav"})
    assert response.status_code == 422 and response.json()["error_id"] == "invalid_greeting"
    assert "WAV or MP3" in response.json()["message"]
    response = await client.put(f"{base(alice)}/greeting", content=wav(1.0), headers={"content-type": "text/plain"})
    assert response.status_code == 415
    response = await client.put(f"{base(alice)}/greeting", content=b"\0" * (10 * 1024 * 1024 + 1),
                                headers={"content-type": "audio/mpeg"})
    assert response.status_code == 413

    assert (await client.delete(f"{base(alice)}/greeting")).status_code == 204
    assert (await client.get(f"{base(alice)}/greeting")).status_code == 404
    assert (await client.get(f"{base(alice)}/mailbox")).json()["custom_greeting"] is False


async def test_hold_music_is_one_per_org_converted_and_only_owners_and_admins_change_it(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    url = f"/api/v1/orgs/{acme.org.id}/hold-music"
    assert (await acme.api.get(url)).status_code == 404
    member = await web.logged_in(alice)
    refused = await member.put(url, content=wav(1.0), headers={"content-type": "audio/wav"})
    assert refused.status_code == 403

    first = await acme.client.put(url, content=wav(3.0, rate=44100), headers={"content-type": "audio/wav"})
    assert first.status_code == 200 and first.json() == {"seconds": 3.0}, first.text
    second = await acme.api.put(url, content=wav(2.0, hz=660.0), headers={"content-type": "audio/wav"})
    assert second.json() == {"seconds": 2.0}
    response = await member.get(url)  # everyone in the org may listen
    assert response.status_code == 200
    with wave.open(io.BytesIO(response.content)) as w:
        assert w.getframerate() == 8000 and w.getnframes() == 16000
    music = hold_music_service(web.services)
    assert len(await music.hold_music(acme.org.id) or b"") == 32000
    assert len(await voicemail_service(web.services).blobs.list(acme.org.id, "hold_music")) == 1  # the old one went
    other = await web.tenant("Other")
    assert await music.hold_music(other.org.id) is None
    assert (await other.client.get(url)).status_code == 404  # another org's is not reachable

    bad = await acme.api.put(url, content=b"not audio" * 100, headers={"content-type": "audio/mpeg"})
    assert bad.status_code == 422 and bad.json()["error_id"] == "invalid_hold_music"
    assert (await acme.api.delete(url)).status_code == 204
    assert await music.hold_music(acme.org.id) is None
    assert (await acme.api.delete(url)).status_code == 404
