"""Outgoing email (verification links, password resets, change notices, webhook alerts).

``mailer_from(settings)`` picks the transport: SMTP when ``smtp_host`` is set, otherwise an
outbox directory of ``.eml`` files under the data directory (a fresh install sends nothing
anywhere; the log says where the message went).

SMTP goes through the standard library's ``smtplib`` on a worker thread (it blocks), with TLS
(implicit, or STARTTLS) whose certificate is always verified — against the system's CAs, or
``smtp_ca_file`` for a private relay — and a timeout on every step. A failure is raised as
:class:`MailError`; callers decide whether the request that wanted the mail fails with it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol

from ringwell.errors import RingwellError
from ringwell.settings import Settings

__all__ = ["Attachment", "MailError", "Mailer", "OutboxMailer", "SmtpMailer", "compose", "mailer_from"]

log = logging.getLogger(__name__)


class MailError(RingwellError):
    """A message could not be handed to the mail server (connection, TLS, login or refusal)."""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str  # e.g. "audio/wav"
    data: bytes = field(repr=False)


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str, attachments: Sequence[Attachment] = ()) -> None:
        """Deliver one plain-text message to ``to`` (raises :class:`MailError` when it cannot)."""
        ...


def compose(sender: str, to: str, subject: str, body: str, attachments: Sequence[Attachment] = ()) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="ringwell")
    message.set_content(body)
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype or "octet-stream",
                               filename=attachment.filename)
    return message


class OutboxMailer:
    """Writes each message to ``directory`` as an .eml file (mode 0600)."""

    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    async def send(self, to: str, subject: str, body: str, attachments: Sequence[Attachment] = ()) -> None:
        message = compose(self.sender, to, subject, body, attachments)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.eml"
        path = self.directory / name

        def write() -> None:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.touch(mode=0o600)
            path.write_bytes(bytes(message))

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise MailError(f"cannot write to the outbox {self.directory}: {exc}") from exc
        log.info("email %r written to %s (no smtp_host configured)", subject, path)


class SmtpMailer:
    """Hands each message to an SMTP server: ``security`` is ``starttls``, ``tls`` (implicit) or ``none``."""

    def __init__(self, host: str, port: int, sender: str, *, security: str = "starttls", username: str = "",
                 password: str = "", ca_file: str = "", timeout: float = 30.0) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"unknown SMTP security {security!r}")
        self.host = host
        self.port = port
        self.sender = sender
        self.security = security
        self.timeout = timeout
        self._username = username
        self._password = password
        self._ca_file = ca_file

    def _tls(self) -> ssl.SSLContext:
        # Hostname and chain checked (create_default_context); a private relay's CA via ca_file.
        context = ssl.create_default_context(cafile=self._ca_file or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _deliver(self, message: EmailMessage) -> None:
        client: smtplib.SMTP
        if self.security == "tls":
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.security == "starttls":
                client.starttls(context=self._tls())  # refuses (SMTPNotSupportedError) if not offered
            if self._username:
                client.login(self._username, self._password)
            client.send_message(message)

    async def send(self, to: str, subject: str, body: str, attachments: Sequence[Attachment] = ()) -> None:
        message = compose(self.sender, to, subject, body, attachments)
        try:
            await asyncio.to_thread(self._deliver, message)
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError and timeouts are OSErrors
            log.warning("email %r to the SMTP server %s:%d failed: %s", subject, self.host, self.port, exc)
            raise MailError(f"the mail server {self.host}:{self.port} did not take the message: {exc}") from exc
        log.info("email %r handed to %s:%d", subject, self.host, self.port)


def mailer_from(settings: Settings) -> Mailer:
    """SMTP when ``smtp_host`` is set, else the outbox directory."""
    if settings.smtp_host:
        return SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_from,
                          security=settings.smtp_security, username=settings.smtp_username,
                          password=settings.smtp_password, ca_file=settings.smtp_ca_file,
                          timeout=settings.smtp_timeout)
    return OutboxMailer(settings.data_dir / "outbox", settings.mail_from)
