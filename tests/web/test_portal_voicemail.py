"""The portal's voicemail page: a member sees and plays only their own mailbox, the player gets the
exact WAV that was left, "Mark as read" and "Delete" work (and need the form's CSRF token), owners
see every mailbox with a user filter, another organization's message is not found."""

from __future__ import annotations

import io
import wave

from ringwell.features.voicemail.routes import voicemail_service
from tests.web.test_api_voicemail import deposit, played_events, tone
from tests.web.test_portal_pages import as_browser, audit_actions, text, token_of


async def test_a_member_sees_only_their_own_messages_with_player_and_actions(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    bob = await web.member(acme.org, "member")
    older = await deposit(web, alice, "+14155550101")
    newer = await deposit(web, alice, "+14155550103")
    for_bob = await deposit(web, bob, "+14155550102")
    await voicemail_service(web.services).set_transcript(acme.org.id, older.id, "Please call me back at 5 5 5.")
    client = await web.logged_in(alice)

    page = await client.get("/voicemail")
    assert page.status_code == 200, page.text[:500]
    body = text(page)
    assert "Your voicemail" in body and '<a href="/voicemail" aria-current="page">' in page.text
    assert "Caller +14155550101" in body and "Caller +14155550103" in body
    assert "Caller +14155550102" not in body and for_bob.id not in page.text
    assert body.index("Caller +14155550103") < body.index("Caller +14155550101")  # newest first
    assert "Please call me back at 5 5 5." in body and "transcribing…" in body
    assert f'<audio controls preload="none" src="/voicemail/{newer.id}/audio">' in page.text
    assert f'href="/voicemail/{older.id}/audio?download=1"' in page.text
    assert f'action="/voicemail/{older.id}/read"' in page.text and f'action="/voicemail/{older.id}/delete"' in page.text
    assert "0:02" in body and "new" in body
    assert 'id="user"' not in page.text  # no mailbox filter for a member
    assert "<script>" not in page.text and "style=" not in page.text
    # Asking for Bob's mailbox does not widen a member's view; his message's audio is not found.
    assert "Caller +14155550102" not in text(await client.get("/voicemail", params={"user": bob.user.id}))
    assert (await client.get(f"/voicemail/{for_bob.id}/audio")).status_code == 404


async def test_the_owner_sees_every_mailbox_with_a_filter_and_the_nav_entry(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    for_alice = await deposit(web, alice, "+14155550101")
    for_owner = await deposit(web, acme.owner, "+14155550102")

    page = await acme.client.get("/voicemail")
    assert page.status_code == 200
    assert 'href="/voicemail"' in page.text and ">Voicemail</a>" in page.text
    assert for_alice.id in page.text and for_owner.id in page.text
    assert f'<option value="{alice.user.id}"' in page.text
    only_alice = await acme.client.get("/voicemail", params={"user": alice.user.id})
    assert for_alice.id in only_alice.text and for_owner.id not in only_alice.text
    # The nav shows Voicemail on other pages too, to members as well.
    member = await web.logged_in(alice)
    assert 'href="/voicemail"' in (await member.get("/calls")).text


async def test_empty_state(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    page = await (await web.logged_in(alice)).get("/voicemail")
    assert page.status_code == 200 and "No voicemail" in text(page)


async def test_the_player_gets_the_exact_wav_and_another_users_play_is_audited(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    message = await deposit(web, alice, "+14155550101", seconds=2.0, hz=660.0)
    client = await web.logged_in(alice)

    played = await client.get(f"/voicemail/{message.id}/audio")
    assert played.status_code == 200, played.text[:500]
    assert played.headers["content-type"] == "audio/wav"
    assert played.headers["content-disposition"].startswith("inline")
    with wave.open(io.BytesIO(played.content)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.readframes(wav.getnframes()) == tone(2.0, 660.0)
    downloaded = await client.get(f"/voicemail/{message.id}/audio", params={"download": "1"})
    assert downloaded.content == played.content
    assert downloaded.headers["content-disposition"] == f'attachment; filename="voicemail-{message.id}.wav"'
    assert await played_events(web, acme.org.id) == []  # the mailbox's owner listening is nobody's business

    by_owner = await acme.client.get(f"/voicemail/{message.id}/audio")
    assert by_owner.status_code == 200 and by_owner.content == played.content
    events = await played_events(web, acme.org.id)
    assert [(e.actor_user_id, e.target_id, e.details) for e in events] == [
        (acme.owner.user.id, message.id, {"mailbox_user_id": alice.user.id})]


async def test_mark_read_moves_it_to_saved_and_delete_removes_it(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    message = await deposit(web, alice, "+14155550101")
    service = voicemail_service(web.services)
    client = as_browser(await web.logged_in(alice))
    token = token_of((await client.get("/voicemail")).text)

    marked = await client.post(f"/voicemail/{message.id}/read", data={"csrf_token": token})
    assert marked.status_code == 303 and marked.headers["location"] == "/voicemail?done=read"
    assert (await service.get(acme.org.id, message.id)).folder == "saved"
    page = text(await client.get(marked.headers["location"]))
    assert "Message marked as read." in page and "saved" in page and "Mark as read" not in page

    deleted = await client.post(f"/voicemail/{message.id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    page = text(await client.get(deleted.headers["location"]))
    assert "Message deleted." in page and "No voicemail" in page
    assert "voicemail.delete" in await audit_actions(web, acme.org.id)
    assert (await client.get(f"/voicemail/{message.id}/audio")).status_code == 404
    assert (await client.post(f"/voicemail/{message.id}/delete", data={"csrf_token": token})).status_code == 404


async def test_the_forms_need_the_csrf_token(web):
    acme = await web.tenant("Acme")
    alice = await web.member(acme.org, "member")
    message = await deposit(web, alice, "+14155550101")
    client = as_browser(await web.logged_in(alice))
    for path in (f"/voicemail/{message.id}/read", f"/voicemail/{message.id}/delete"):
        for data in ({}, {"csrf_token": "not-the-token"}):
            response = await client.post(path, data=data)
            assert response.status_code == 403 and "form has expired" in text(response)
    row = await voicemail_service(web.services).get(acme.org.id, message.id)
    assert row.folder == "new"


async def test_another_orgs_message_is_not_found(web):
    acme = await web.tenant("Acme")
    other = await web.tenant("Other")
    message = await deposit(web, acme.owner, "+14155550101")
    client = as_browser(other.client)
    token = token_of((await client.get("/users/new")).text)
    assert (await client.get(f"/voicemail/{message.id}/audio")).status_code == 404
    for path in (f"/voicemail/{message.id}/read", f"/voicemail/{message.id}/delete"):
        assert (await client.post(path, data={"csrf_token": token})).status_code == 404
    assert message.id not in (await client.get("/voicemail")).text
    assert (await voicemail_service(web.services).get(acme.org.id, message.id)).folder == "new"
