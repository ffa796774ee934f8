"""Voicemail to email: the mailbox owner learns of a new message, with its transcript.

Sent once the transcript is ready (or has failed), to the user's address, unless the user turned
it off (``users.voicemail_email``). The audio goes along as a WAV attachment only when the
organization allows it (``organizations.voicemail_attach_audio``, off by default): the transcript
tells the gist, the recording is the caller's personal data and stays on this server otherwise.
A mail server that refuses is logged; the message stays in the mailbox either way.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.errors import RingwellError
from ringwell.features.accounts.models import Organization, User
from ringwell.features.voicemail.models import TranscriptStatus
from ringwell.features.voicemail.service import VoicemailService
from ringwell.mail import Attachment, Mailer

__all__ = ["VoicemailMailer"]

log = logging.getLogger(__name__)


class VoicemailMailer:
    def __init__(self, sessions: async_sessionmaker[Any], service: VoicemailService, mailer: Mailer,
                 portal_url: str) -> None:
        self._sessions = sessions
        self._service = service
        self._mailer = mailer
        self._portal_url = portal_url
        self.sent = 0

    async def message_ready(self, org_id: str, voicemail_id: str) -> bool:
        """Email the mailbox owner about one message; False when nothing was sent."""
        row = await self._service.get(org_id, voicemail_id)
        async with self._sessions() as session:
            user = await session.get(User, row.user_id)
            org = await session.get(Organization, org_id)
        if user is None or org is None or not user.voicemail_email or not user.email:
            return False
        caller = f"{row.caller_name} <{row.caller_number}>" if row.caller_name else row.caller_number
        if row.transcript_status == TranscriptStatus.DONE.value:
            text = await self._service.transcript(org_id, voicemail_id)
            transcript = text.strip() or "(nothing could be made out)"
        else:
            transcript = "(no transcript: it could not be made)"
        attachments: list[Attachment] = []
        if org.voicemail_attach_audio:
            audio = await self._service.audio(org_id, voicemail_id)
            attachments.append(Attachment(f"voicemail-{row.received_at:%Y%m%d-%H%M%S}.wav", "audio/wav", audio))
        body = (
            f"You have a new voicemail at extension {user.extension}.\n\n"
            f"From:     {caller}\n"
            f"Received: {row.received_at:%Y-%m-%d %H:%M:%S} UTC\n"
            f"Length:   {row.duration_s:.0f} s\n\n"
            f"Transcript:\n{transcript}\n\n"
            + ("The recording is attached.\n" if attachments else
               f"Listen to it in the portal: {self._portal_url}/\n")
        )
        try:
            await self._mailer.send(user.email, f"Voicemail from {caller} ({row.duration_s:.0f} s)", body,
                                    attachments)
        except RingwellError as exc:
            log.warning("voicemail %s: the email to its owner failed: %s", voicemail_id, exc)
            return False
        self.sent += 1
        return True
