"""Deleting a user through the API erases the person (one way to delete someone): their
voicemail and its file go, their data key is destroyed, and the audit event names no email."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ringwell.blobs import KeyDestroyed
from ringwell.blobs.models import OrgDataKey
from ringwell.features.accounts.models import User
from ringwell.features.audit.models import AuditEvent
from ringwell.features.voicemail.models import Voicemail

API = "/api/v1"


async def test_deleting_a_user_through_the_api_erases_them(web):
    a = await web.tenant("Alpha")
    created = await a.client.post(f"{API}/orgs/{a.org.id}/users",
                                  json={"email": "gone.person@example.com", "extension": "301", "name": "Gone Person"})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    server = web.server
    message = await server.voicemail.deposit(a.org.id, user_id, "+13125550111", "Caller", bytes(32000))
    assert message is not None
    kept_by_owner = await server.voicemail.deposit(a.org.id, a.owner.user.id, "301", "Gone Person", bytes(32000))
    assert kept_by_owner is not None

    deleted = await a.client.delete(f"{API}/orgs/{a.org.id}/users/{user_id}")
    assert deleted.status_code == 204
    async with web.services.sessions() as session:
        assert (await session.execute(select(User).where(User.id == user_id))).first() is None
        assert (await session.execute(select(Voicemail).where(Voicemail.user_id == user_id))).first() is None
        keys = (await session.execute(select(OrgDataKey).where(OrgDataKey.user_id == user_id))).scalars().all()
        [event] = (await session.execute(select(AuditEvent).where(AuditEvent.action == "users.delete",
                                                                  AuditEvent.target_id == user_id))).scalars().all()
    assert keys and all(k.wrapped_key is None for k in keys)
    shown = json.dumps(event.details)
    assert "gone.person@example.com" not in shown and "Gone Person" not in shown
    assert event.details["files_deleted"] == 1 and event.details["deleted"]["voicemails"] == 1
    assert not server.blobs.path(a.org.id, message.audio_blob_id).exists()
    with pytest.raises(KeyDestroyed):  # nothing of theirs is readable, even by id
        await server.blobs.keys.key(a.org.id, keys[0].id)
    # The owner's message from them stays playable, without their name.
    assert len(await server.voicemail.audio(a.org.id, kept_by_owner.id)) > 32000
    assert (await server.voicemail.get(a.org.id, kept_by_owner.id)).caller_name is None
