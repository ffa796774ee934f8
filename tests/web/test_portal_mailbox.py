"""The Voicemail page's mailbox panel: a user sets their *97 PIN (never shown back), sees the lock
and lifts it with a new PIN, uploads a greeting and hears it in the player, goes back to the
default; the forms need the page's CSRF token."""

from __future__ import annotations

import io
import wave

from ringwell.features.voicemail.mailbox_routes import mailbox_service
from tests.web.test_api_mailbox import wav
from tests.web.test_portal_pages import as_browser, audit_actions, text, token_of


async def test_a_user_sets_a_pin_unlocks_and_manages_the_greeting_from_the_voicemail_page(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    client = as_browser(await web.logged_in(alice))
    service = mailbox_service(web.services)

    page = await client.get("/voicemail")
    assert page.status_code == 200, page.text[:500]
    assert "Your mailbox" in text(page) and "no PIN yet" in text(page)
    token = token_of(page.text)
    # no CSRF token: refused, nothing set
    refused = await client.post("/voicemail/mailbox/pin", data={"pin": "285046"})
    assert refused.status_code == 403 and not (await service.state(acme.org.id, alice.user.id)).pin_set
    weak = await client.post("/voicemail/mailbox/pin", data={"pin": "1234", "csrf_token": token})
    assert weak.status_code == 303 and "1234" not in weak.headers["location"]
    assert "too easy to guess" in text(await client.get(weak.headers["location"]))
    done = await client.post("/voicemail/mailbox/pin", data={"pin": "285046", "csrf_token": token})
    assert done.status_code == 303 and "285046" not in done.headers["location"]
    page = await client.get(done.headers["location"])
    assert "Your voicemail PIN is set" in text(page) and "PIN set" in text(page) and "285046" not in page.text

    for wrong in ("1111", "2222", "3333"):
        await service.check_pin(acme.org.id, alice.user.id, wrong)
    assert "locked after wrong PINs" in text(await client.get("/voicemail"))
    await client.post("/voicemail/mailbox/pin", data={"pin": "740361", "csrf_token": token})
    assert "locked after wrong PINs" not in text(await client.get("/voicemail"))

    uploaded = await client.post("/voicemail/mailbox/greeting", data={"csrf_token": token},
                                 files={"greeting": ("hello.wav", wav(1.5, rate=22050), "audio/wav")})
    assert uploaded.status_code == 303
    page = await client.get(uploaded.headers["location"])
    assert "Your greeting is saved" in text(page) and 'src="/voicemail/mailbox/greeting"' in page.text
    played = await client.get("/voicemail/mailbox/greeting")
    with wave.open(io.BytesIO(played.content)) as w:
        assert w.getframerate() == 8000 and abs(w.getnframes() / 8000 - 1.5) < 0.05
    bad = await client.post("/voicemail/mailbox/greeting", data={"csrf_token": token},
                            files={"greeting": ("notes.wav", b"just some text, not audio" * 40, "audio/wav")})
    assert "WAV or MP3" in text(await client.get(bad.headers["location"]))
    gone = await client.post("/voicemail/mailbox/greeting/delete", data={"csrf_token": token})
    page = await client.get(gone.headers["location"])
    assert "default greeting again" in text(page) and 'src="/voicemail/mailbox/greeting"' not in page.text
    assert (await client.get("/voicemail/mailbox/greeting")).status_code == 404
    actions = await audit_actions(web, acme.org.id)
    assert actions.count("voicemail.pin_set") == 2 and "voicemail.greeting_set" in actions
    assert "voicemail.greeting_deleted" in actions
