"""A real SMTP server on loopback (aiosmtpd) that keeps every message it is handed, for tests.

```python
with SmtpSink() as smtp:                      # plain SMTP on 127.0.0.1:<free port>
    settings = {**smtp.settings()}            # smtp_host/smtp_port/smtp_security for the web fixture
    ...
    mail = await smtp.wait_for(to="a@example.com", timeout=10)   # bounded; TimeoutError after
    link = mail.link("https://ringwell.test/verify-email")
```

``SmtpSink(tls="starttls")`` offers STARTTLS (required before MAIL) and ``tls="tls"`` speaks
TLS from the first byte, both with a self-signed certificate for 127.0.0.1 whose file is
``smtp.ca_file`` (the client's ``smtp_ca_file``). ``auth=("user", "password")`` requires a
login (over TLS only). The server runs on its own thread (aiosmtpd's ``Controller``), so it
serves async and sync tests alike; :meth:`SmtpSink.wait_for` and :meth:`SmtpSink.wait_for_sync`
take messages off the queue in arrival order.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ringwell.transport.certs import ensure_self_signed
from tests.peers.ports import LOOPBACK, free_port

__all__ = ["ReceivedMail", "SmtpSink"]

_URL = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the server received it (envelope and parsed message)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def to(self) -> str:
        return str(self.message["To"] or "")

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        return str(part.get_content()) if part is not None else ""

    @property
    def links(self) -> list[str]:
        return _URL.findall(self.body)

    def link(self, prefix: str) -> str:
        """The first URL in the body starting with ``prefix`` (AssertionError when there is none)."""
        for url in self.links:
            if url.startswith(prefix):
                return url
        raise AssertionError(f"no link starting with {prefix!r} in {self.subject!r}: {self.links}")


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.original_content or envelope.content)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self._sink._received(ReceivedMail(str(envelope.mail_from), tuple(str(r) for r in envelope.rcpt_tos),
                                          message, raw))
        return "250 OK"


class SmtpSink:
    """An SMTP server on ``127.0.0.1:<port>`` keeping what it receives (see the module docstring)."""

    def __init__(self, *, tls: str | None = None, auth: tuple[str, str] | None = None,
                 cert_dir: Path | None = None) -> None:
        if tls not in (None, "starttls", "tls"):
            raise ValueError(f"tls must be None, 'starttls' or 'tls', not {tls!r}")
        self.host = LOOPBACK
        self.port = 0
        self.tls = tls
        self.auth = auth
        self.ca_file: str = ""
        self.logins: list[str] = []  # user names that logged in
        self._cert_dir = cert_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._all: list[ReceivedMail] = []
        self._queue: list[ReceivedMail] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> SmtpSink:
        kwargs: dict[str, Any] = {}
        if self.tls is not None:
            directory = self._cert_dir
            if directory is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="rw-smtp-")
                directory = Path(self._tmp.name)
            cert, key = ensure_self_signed(directory, [LOOPBACK])
            self.ca_file = str(cert)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            if self.tls == "starttls":
                kwargs.update(tls_context=context, require_starttls=True)
            else:
                kwargs.update(ssl_context=context)
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=True)
        self.port = free_port()
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, ready_timeout=10.0,
                                      **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def settings(self, *, sender: str = "Ringwell <ringwell@ringwell.test>") -> dict[str, object]:
        """Ringwell settings that send mail here (for a ``web_settings`` fixture)."""
        values: dict[str, object] = {
            "smtp_host": self.host, "smtp_port": self.port, "smtp_security": self.tls or "none",
            "smtp_timeout": 10.0, "mail_from": sender,
        }
        if self.ca_file:
            values["smtp_ca_file"] = self.ca_file
        if self.auth is not None:
            values["smtp_username"], values["smtp_password"] = self.auth
        return values

    # -- what arrived ------------------------------------------------------------------------------
    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert self.auth is not None
        if isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == self.auth:
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def _received(self, mail: ReceivedMail) -> None:
        with self._cond:
            self._all.append(mail)
            self._queue.append(mail)
            self._cond.notify_all()

    @property
    def messages(self) -> list[ReceivedMail]:
        """Everything received so far, in order (including messages already taken by ``wait_for``)."""
        with self._cond:
            return list(self._all)

    def pending(self, to: str | None = None) -> list[ReceivedMail]:
        """Messages not yet taken (to ``to`` when given)."""
        with self._cond:
            return [m for m in self._queue if _matches(m, to, None)]

    def _take(self, to: str | None, subject: str | None) -> ReceivedMail | None:
        for index, mail in enumerate(self._queue):
            if _matches(mail, to, subject):
                return self._queue.pop(index)
        return None

    def wait_for_sync(self, to: str | None = None, *, subject: str | None = None,
                      timeout: float = 10.0) -> ReceivedMail:
        """Take the oldest message to ``to`` (whose subject contains ``subject``), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                mail = self._take(to, subject)
                if mail is not None:
                    return mail
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no email to {to or 'anyone'} (subject ~ {subject!r}) within {timeout}s; "
                                       f"received: {[(m.rcpt_tos, m.subject) for m in self._all]}")
                self._cond.wait(left)

    async def wait_for(self, to: str | None = None, *, subject: str | None = None,
                       timeout: float = 10.0) -> ReceivedMail:
        """As :meth:`wait_for_sync`, without blocking the event loop (polls every 20 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                mail = self._take(to, subject)
            if mail is not None:
                return mail
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no email to {to or 'anyone'} (subject ~ {subject!r}) within {timeout}s; "
                                   f"received: {[(m.rcpt_tos, m.subject) for m in self.messages]}")
            await asyncio.sleep(0.02)

    async def assert_none(self, to: str | None = None, *, within: float = 0.3) -> None:
        """Wait ``within`` seconds and fail if anything (to ``to``) arrived that was not taken."""
        await asyncio.sleep(within)
        stray = self.pending(to)
        assert not stray, f"unexpected email: {[(m.rcpt_tos, m.subject) for m in stray]}"


def _matches(mail: ReceivedMail, to: str | None, subject: str | None) -> bool:
    if to is not None and to.lower() not in (r.lower() for r in mail.rcpt_tos):
        return False
    return subject is None or subject.lower() in mail.subject.lower()
