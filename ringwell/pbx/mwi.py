"""Message-waiting indication: RFC 3842 ``message-summary`` over RFC 6665 SUBSCRIBE/NOTIFY.

A phone that wants its lamp SUBSCRIBEs (authenticated with digest like an INVITE) to
``Event: message-summary`` for its own mailbox: the Request-URI user is its extension or SIP
username (anything else: 403). It gets 200 OK, then at once a NOTIFY with the current
``message-summary`` body and ``Subscription-State: active;expires=N``; then a NOTIFY whenever
the counts change; an in-dialog SUBSCRIBE refreshes (``Expires: 0`` ends it with a final
``terminated`` NOTIFY); when a subscription runs out it gets ``terminated;reason=timeout``.
A NOTIFY answered 481 (or 408, or never answered) removes the subscription (RFC 6665 §4.2.2).

Phones that never subscribe but expect the lamp anyway (many desk phones) get an unsolicited
NOTIFY outside any dialog at each registered binding whenever what it was last told changes.

The voicemail feature drives all of it with one call: ``MwiManager.notify_mailbox(user_id)``.
The counts come through the ``MailboxCounts`` seam. The body, the expiry decision and the
subscription table are pure (time is an argument); ``MwiManager`` is the small I/O shell.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ringwell.features.accounts.repository import CredentialRecord
from ringwell.pbx.registrar import Binding
from ringwell.sip.dialog import Dialog, ViaSpec, new_branch, new_call_id
from ringwell.sip.message import Headers, Request, Response
from ringwell.sip.uas import make_response, new_tag
from ringwell.sip.uri import SipUri
from ringwell.transport.source import Source

__all__ = [
    "CONTENT_TYPE",
    "EVENT",
    "ExpiresPolicy",
    "MailboxCounts",
    "MessageSummary",
    "MwiManager",
    "Refusal",
    "Subscription",
    "Subscriptions",
    "UserCredentials",
    "event_package",
    "granted_expires",
    "no_messages",
]

log = logging.getLogger(__name__)

EVENT = "message-summary"
CONTENT_TYPE = "application/simple-message-summary"
MAX_SUBSCRIPTIONS_PER_CREDENTIAL = 10

#: user id → (new, old) voice messages. The voicemail feature provides it.
MailboxCounts = Callable[[str], Awaitable[tuple[int, int]]]
#: user id → the SIP credentials of that user (devices and web phones), for the unsolicited NOTIFYs.
UserCredentials = Callable[[str], Awaitable[list[CredentialRecord]]]


async def no_messages(user_id: str) -> tuple[int, int]:
    """The counts until voicemail exists: nobody has messages."""
    return (0, 0)


# -- the body (RFC 3842 §5.2) -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MessageSummary:
    """A ``message-summary`` body for voice messages."""

    new: int
    old: int
    urgent_new: int = 0
    urgent_old: int = 0
    account: str = ""  # Message-Account: the mailbox URI

    @property
    def waiting(self) -> bool:
        return self.new > 0

    def serialize(self) -> bytes:
        lines = [f"Messages-Waiting: {'yes' if self.waiting else 'no'}"]
        if self.account:
            lines.append(f"Message-Account: {self.account}")
        lines.append(f"Voice-Message: {self.new}/{self.old} ({self.urgent_new}/{self.urgent_old})")
        return ("\r\n".join(lines) + "\r\n").encode()

    @classmethod
    def parse(cls, body: bytes) -> MessageSummary:
        """The voice-message part of a ``message-summary`` body (RFC 3842 §5.2 grammar).

        Raises ``ValueError`` naming what is wrong.
        """
        waiting: bool | None = None
        account = ""
        counts = (0, 0, 0, 0)
        for raw in body.decode("utf-8").splitlines():
            line = raw.strip()
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"not a header line: {line!r}")
            name, value = name.strip().lower(), value.strip()
            if name == "messages-waiting":
                if value.lower() not in ("yes", "no"):
                    raise ValueError(f"Messages-Waiting must be yes or no, not {value!r}")
                waiting = value.lower() == "yes"
            elif name == "message-account":
                account = value
            elif name == "voice-message":
                counts = _parse_counts(value)
        if waiting is None:
            raise ValueError("no Messages-Waiting line")
        summary = cls(*counts, account=account)
        if summary.waiting != waiting and counts[0] > 0:
            raise ValueError("Messages-Waiting: no with new messages")
        return summary


def _parse_counts(value: str) -> tuple[int, int, int, int]:
    main, _, urgent = value.partition("(")
    new, slash, old = main.strip().partition("/")
    if not slash:
        raise ValueError(f"Voice-Message needs new/old: {value!r}")
    urgent_new, urgent_old = "0", "0"
    if urgent:
        inner = urgent.rstrip().removesuffix(")")
        urgent_new, slash, urgent_old = inner.partition("/")
        if not slash:
            raise ValueError(f"urgent counts need new/old: {value!r}")
    try:
        numbers = tuple(int(n.strip()) for n in (new, old, urgent_new, urgent_old))
    except ValueError:
        raise ValueError(f"Voice-Message counts must be numbers: {value!r}") from None
    if any(n < 0 for n in numbers):
        raise ValueError(f"Voice-Message counts cannot be negative: {value!r}")
    return numbers[0], numbers[1], numbers[2], numbers[3]


# -- what a SUBSCRIBE asks for ------------------------------------------------------------
class Refusal(Exception):
    """A SUBSCRIBE refused: the status, reason and headers to answer with."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers


@dataclass(frozen=True, slots=True)
class ExpiresPolicy:
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600  # RFC 3842 §6 suggests an hour


def event_package(request: Request) -> tuple[str, str | None]:
    """The Event package (lower case) and its ``id`` parameter; ("", None) when absent."""
    value = request.headers.get("event") or ""
    package, *params = (part.strip() for part in value.split(";"))
    event_id = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "id":
            event_id = val.strip()
    return package.lower(), event_id


def screen_subscribe(request: Request) -> Refusal | None:
    """What can be refused before authentication: another Event package (489, RFC 6665
    §4.2.1.1 with ``Allow-Events``), or an Accept without our body type (406)."""
    package, _ = event_package(request)
    if package != EVENT:
        return Refusal(489, "Bad Event", (("Allow-Events", EVENT),))
    accept = [a.split(";")[0].strip().lower() for a in request.headers.values("accept")]
    if accept and not any(a in (CONTENT_TYPE, "application/*", "*/*") for a in accept):
        return Refusal(406, "Not Acceptable", (("Accept", CONTENT_TYPE),))
    return None


def granted_expires(request: Request, policy: ExpiresPolicy) -> int:
    """The subscription duration to grant (RFC 6665 §4.2.1.1): 0 ends it; below the minimum
    is 423 with ``Min-Expires``; above the maximum is cut down."""
    raw = request.headers.get("expires")
    if raw is None:
        return policy.default_expires
    raw = raw.strip()
    if not raw.isdigit():
        raise Refusal(400, "Malformed Expires")
    asked = int(raw)
    if 0 < asked < policy.min_expires:
        raise Refusal(423, "Interval Too Brief", (("Min-Expires", str(policy.min_expires)),))
    return min(asked, policy.max_expires)


def mailbox_of(request: Request, record: CredentialRecord) -> None:
    """A user subscribes to their own mailbox only: the Request-URI user must be their extension
    or SIP username (403 otherwise)."""
    uri = request.uri
    user = uri.user_unescaped if isinstance(uri, SipUri) else None
    if user is None or user not in (record.extension, record.username):
        raise Refusal(403, "Not your mailbox")


# -- subscriptions ------------------------------------------------------------------------
@dataclass(slots=True)
class Subscription:
    dialog: Dialog
    user_id: str
    credential_id: str
    account: str  # Message-Account
    flow: Source
    event_id: str | None
    expires_at: float
    last: MessageSummary | None = None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return self.dialog.key

    def state(self, now: float) -> str:
        """``Subscription-State`` while active (the time left, RFC 6665 §4.1.3)."""
        return f"active;expires={max(0, round(self.expires_at - now))}"

    def event(self) -> str:
        return EVENT if self.event_id is None else f"{EVENT};id={self.event_id}"


class Subscriptions:
    """The live subscriptions by dialog and by user (pure: time is an argument)."""

    def __init__(self, per_credential: int = MAX_SUBSCRIPTIONS_PER_CREDENTIAL) -> None:
        self._by_key: dict[tuple[str, str], Subscription] = {}
        self._by_user: dict[str, set[tuple[str, str]]] = {}
        self._per_credential = per_credential

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: tuple[str, str]) -> Subscription | None:
        return self._by_key.get(key)

    def add(self, sub: Subscription) -> Subscription | None:
        """Add ``sub``; returns the oldest subscription of its credential dropped to stay within
        the limit (its dialog should be told ``terminated``), if any."""
        same = [s for s in self.of_user(sub.user_id) if s.credential_id == sub.credential_id]
        dropped = None
        if len(same) >= self._per_credential:
            dropped = min(same, key=lambda s: s.expires_at)
            self.remove(dropped.key)
        self._by_key[sub.key] = sub
        self._by_user.setdefault(sub.user_id, set()).add(sub.key)
        return dropped

    def remove(self, key: tuple[str, str]) -> Subscription | None:
        sub = self._by_key.pop(key, None)
        if sub is not None:
            keys = self._by_user.get(sub.user_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_user[sub.user_id]
        return sub

    def of_user(self, user_id: str) -> list[Subscription]:
        return [self._by_key[k] for k in self._by_user.get(user_id, ())]

    def expired(self, now: float) -> list[Subscription]:
        """Remove and return the subscriptions whose time is up."""
        gone = [s for s in self._by_key.values() if s.expires_at <= now]
        for sub in gone:
            self.remove(sub.key)
        return gone

    def all(self) -> list[Subscription]:
        return list(self._by_key.values())


def covers(sub: Subscription, binding: Binding) -> bool:
    """Whether a binding's device is the one holding ``sub`` (same flow or same contact)."""
    return sub.credential_id == binding.credential_id and (
        sub.flow == binding.source or sub.dialog.remote_target == binding.contact)


# -- the I/O shell ------------------------------------------------------------------------
class Sip(Protocol):
    def send_request(self, request: Request, flow: Source, on_response: Callable[[Response], None],
                     on_failure: Callable[[], None]) -> None: ...

    def respond(self, txn: object, response: Response) -> None: ...


class Bindings(Protocol):
    def lookup(self, credential_id: str, now: float) -> list[Binding]: ...


class MwiManager:
    """Answers SUBSCRIBEs for ``message-summary`` and sends the NOTIFYs."""

    def __init__(self, *, sip: Sip, registrar: Bindings, via_for: Callable[[Source], ViaSpec],
                 contact_for: Callable[[Source], str], credentials_of: UserCredentials,
                 counts: MailboxCounts = no_messages, policy: ExpiresPolicy | None = None) -> None:
        self.sip = sip
        self.registrar = registrar
        self.via_for = via_for
        self.contact_for = contact_for
        self.credentials_of = credentials_of
        self.counts = counts
        self.policy = policy or ExpiresPolicy()
        self.subscriptions = Subscriptions()
        # What each binding without a subscription was last told: (credential id, binding key).
        self._told: dict[tuple[str, str], MessageSummary] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sub in self.subscriptions.all():
            if sub.timer is not None:
                sub.timer.cancel()

    # -- SUBSCRIBE -------------------------------------------------------------------------
    def subscribe(self, request: Request, txn: object, source: Source, record: CredentialRecord) -> None:
        """An authenticated SUBSCRIBE (new, refresh or removal), answered here."""
        now = time.time()
        try:
            refusal = screen_subscribe(request)
            if refusal is not None:
                raise refusal
            expires = granted_expires(request, self.policy)
            if request.to.tag is None:
                mailbox_of(request, record)
                sub = self._new(request, txn, source, record, expires, now)
            else:
                sub = self._refresh(request, txn, source, record, expires, now)
        except Refusal as refusal:
            self.sip.respond(txn, make_response(request, refusal.status, refusal.reason, refusal.headers))
            return
        self._spawn(self._first_notify(sub, terminated=expires == 0))

    def _new(self, request: Request, txn: object, source: Source, record: CredentialRecord, expires: int,
             now: float) -> Subscription:
        tag = new_tag()
        dialog = Dialog.uas(request, tag)
        _, event_id = event_package(request)
        sub = Subscription(dialog, record.user_id, record.credential_id, f"sip:{record.extension}@{record.realm}",
                           source, event_id, now + expires)
        self.sip.respond(txn, make_response(request, 200, "OK", (
            ("Expires", str(expires)), ("Contact", self.contact_for(source))), to_tag=tag))
        if expires > 0:
            dropped = self.subscriptions.add(sub)
            if dropped is not None:
                self._end(dropped, "terminated;reason=rejected")  # not "deactivated": that asks for a new one
            self._arm(sub, expires)
        return sub

    def _refresh(self, request: Request, txn: object, source: Source, record: CredentialRecord, expires: int,
                 now: float) -> Subscription:
        sub = self.subscriptions.get((request.call_id, request.to.tag or ""))
        if sub is None:
            raise Refusal(481, "Subscription Does Not Exist")
        if sub.credential_id != record.credential_id:
            raise Refusal(403, "Not your subscription")
        if not sub.dialog.accept_remote_seq(request):
            raise Refusal(500, "CSeq out of order")
        sub.dialog.refresh_target(request)
        sub.flow = source  # a phone on TCP/TLS may have reconnected
        self.sip.respond(txn, make_response(request, 200, "OK", (
            ("Expires", str(expires)), ("Contact", self.contact_for(sub.flow)))))
        if expires == 0:
            self._forget(sub)
        else:
            sub.expires_at = now + expires
            self._arm(sub, expires)
        return sub

    def _arm(self, sub: Subscription, expires: int) -> None:
        if sub.timer is not None:
            sub.timer.cancel()
        sub.timer = asyncio.get_running_loop().call_later(expires, self._expire, sub.key)

    def _expire(self, key: tuple[str, str]) -> None:
        sub = self.subscriptions.get(key)
        if sub is None:
            return
        left = sub.expires_at - time.time()
        if left > 0.001:  # the loop's clock ran ahead of the wall clock: wait for the rest
            sub.timer = asyncio.get_running_loop().call_later(left, self._expire, key)
            return
        self._end(sub, "terminated;reason=timeout")

    def _forget(self, sub: Subscription) -> None:
        if self.subscriptions.get(sub.key) is sub:
            self.subscriptions.remove(sub.key)
        if sub.timer is not None:
            sub.timer.cancel()
            sub.timer = None

    def _end(self, sub: Subscription, state: str) -> None:
        """Remove ``sub`` and tell its subscriber (the last known state as body)."""
        self._forget(sub)
        summary = sub.last or MessageSummary(0, 0, account=sub.account)
        self._notify(sub, summary, state)

    async def _first_notify(self, sub: Subscription, *, terminated: bool) -> None:
        new, old = await self.counts(sub.user_id)
        summary = MessageSummary(new, old, account=sub.account)
        state = "terminated;reason=timeout" if terminated else sub.state(time.time())
        self._notify(sub, summary, state)

    # -- NOTIFY ----------------------------------------------------------------------------
    async def notify_mailbox(self, user_id: str) -> None:
        """The counts of ``user_id``'s mailbox may have changed: tell their subscriptions, and the
        devices that registered without subscribing, what changed for them."""
        new, old = await self.counts(user_id)
        now = time.time()
        subs = self.subscriptions.of_user(user_id)
        for sub in subs:
            summary = MessageSummary(new, old, account=sub.account)
            if summary != sub.last:
                self._notify(sub, summary, sub.state(now))
        for record in await self.credentials_of(user_id):
            account = f"sip:{record.extension}@{record.realm}"
            summary = MessageSummary(new, old, account=account)
            bindings = self.registrar.lookup(record.credential_id, now)
            live = {(record.credential_id, b.key) for b in bindings}
            for told in [k for k in self._told if k[0] == record.credential_id and k not in live]:
                del self._told[told]
            for binding in bindings:
                told_key = (record.credential_id, binding.key)
                if any(covers(sub, binding) for sub in subs) or self._told.get(told_key) == summary:
                    continue
                self._told[told_key] = summary
                self._unsolicited(binding, record, summary)

    def _notify(self, sub: Subscription, summary: MessageSummary, state: str) -> None:
        sub.last = summary
        request = sub.dialog.request(
            "NOTIFY", self.via_for(sub.flow), contact=self.contact_for(sub.flow),
            extra=(("Event", sub.event()), ("Subscription-State", state)),
            body=summary.serialize(), content_type=CONTENT_TYPE)

        def answered(response: Response) -> None:
            if response.status in (481, 408):  # RFC 6665 §4.2.2: the subscriber has gone
                log.info("MWI subscription %s removed: NOTIFY answered %d", sub.key[0], response.status)
                self._forget(sub)

        def failed() -> None:
            log.info("MWI subscription %s removed: NOTIFY not answered", sub.key[0])
            self._forget(sub)

        self.sip.send_request(request, sub.flow, answered, failed)

    def _unsolicited(self, binding: Binding, record: CredentialRecord, summary: MessageSummary) -> None:
        """An out-of-dialog NOTIFY to a registered device (what phones without SUBSCRIBE expect)."""
        flow = binding.source
        aor = f"<sip:{record.username}@{record.realm}>"
        headers = Headers()
        headers.add("Via", self.via_for(flow).header(new_branch()))
        headers.add("Max-Forwards", "70")
        headers.add("From", f"{aor};tag={new_tag()}")
        headers.add("To", aor)
        headers.add("Call-ID", new_call_id())
        headers.add("CSeq", "1 NOTIFY")
        headers.add("Contact", self.contact_for(flow))
        headers.add("Event", EVENT)
        headers.add("Subscription-State", "active")
        headers.add("Content-Type", CONTENT_TYPE)
        request = Request("NOTIFY", binding.contact, headers, summary.serialize())
        told_key = (record.credential_id, binding.key)

        def failed() -> None:
            self._told.pop(told_key, None)  # try again next time

        def answered(response: Response) -> None:
            if response.status >= 300:
                failed()

        self.sip.send_request(request, flow, answered, failed)

    def _spawn(self, job: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await job
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("MWI notification failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
