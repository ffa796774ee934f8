"""The registrar (RFC 3261 §10.3) and the location service behind it.

Bindings live in memory (every look-up and refresh is a dict operation) and are written to the
database behind the request: changes are collected per binding and flushed in one transaction
every ``flush_interval`` seconds, and on shutdown. At start-up the unexpired bindings are
loaded back, so registrations survive a restart (see docs/decisions/0002-registrar-write-behind.md).
``register()`` is pure: the caller supplies the authenticated credential, the source and the
wall-clock time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.features.accounts.repository import CredentialRecord
from ringwell.features.registrations import repository as repo
from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import Request, parse_contacts
from ringwell.sip.uri import NameAddr, SipUri
from ringwell.transport.source import Source

__all__ = ["CONNECTION_BOUND", "Binding", "Outcome", "Registrar", "RegistrarLimits", "Source"]

log = logging.getLogger(__name__)

# Transports whose bindings are reachable only over the connection that registered them: when it
# closes they are gone (RFC 7118 §5: the WebSocket client's Contact host is a made-up .invalid).
CONNECTION_BOUND = frozenset({"ws", "wss"})


@dataclass(slots=True)
class Binding:
    credential_id: str
    org_id: str
    username: str
    key: str
    contact: str  # the contact URI as registered
    expires_at: float  # wall clock, seconds since the epoch (UTC)
    q: int  # thousandths
    call_id: str
    cseq: int
    user_agent: str
    source: Source
    path: str = ""

    def remaining(self, now: float) -> int:
        return max(0, round(self.expires_at - now))

    def contact_header(self, now: float) -> str:
        q = "" if self.q == 1000 else f";q={self.q / 1000:g}"
        return f"<{self.contact}>;expires={self.remaining(now)}{q}"


@dataclass(frozen=True, slots=True)
class RegistrarLimits:
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600
    max_bindings: int = 10


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def _binding_key(contact: NameAddr) -> str:
    """Bindings are keyed by the RFC 5626 instance id when given, else by the contact URI."""
    instance = contact.param("+sip.instance")
    if instance:
        reg_id = contact.param("reg-id") or ""
        return "instance:" + instance.strip('"<>') + ":" + reg_id
    uri = contact.uri
    if isinstance(uri, SipUri):
        user = uri.user_unescaped or ""
        return f"{uri.scheme}:{user}@{uri.host}:{uri.port or ''};transport={uri.transport}"
    return str(uri)


def _q_value(contact: NameAddr) -> int:
    q = contact.param("q")
    return 1000 if not q else round(float(q) * 1000)


class Registrar:
    """Location service plus the REGISTER logic."""

    def __init__(self, limits: RegistrarLimits) -> None:
        self.limits = limits
        self._bindings: dict[str, dict[str, Binding]] = {}
        self._heap: list[tuple[float, str, str]] = []
        self.dirty: dict[tuple[str, str], Binding | None] = {}
        # (credential id, key) of the bindings of each connection-bound flow, for drop_flow()
        self._flows: dict[Source, set[tuple[str, str]]] = {}

    # -- location service ------------------------------------------------------------------
    def lookup(self, credential_id: str, now: float) -> list[Binding]:
        """Current bindings of a credential, best q first."""
        found = [b for b in self._bindings.get(credential_id, {}).values() if b.expires_at > now]
        found.sort(key=lambda b: (-b.q, -b.expires_at))
        return found

    def all(self, now: float) -> list[Binding]:
        return [b for table in self._bindings.values() for b in table.values() if b.expires_at > now]

    def load(self, bindings: Iterable[Binding]) -> None:
        for binding in bindings:
            self._put(binding)

    def _put(self, binding: Binding) -> None:
        table = self._bindings.setdefault(binding.credential_id, {})
        old = table.get(binding.key)
        if old is not None:
            self._unindex(old)
        table[binding.key] = binding
        if binding.source.transport in CONNECTION_BOUND:
            self._flows.setdefault(binding.source, set()).add((binding.credential_id, binding.key))
        heapq.heappush(self._heap, (binding.expires_at, binding.credential_id, binding.key))
        self.dirty[(binding.credential_id, binding.key)] = binding

    def _unindex(self, binding: Binding) -> None:
        keys = self._flows.get(binding.source)
        if keys is not None:
            keys.discard((binding.credential_id, binding.key))
            if not keys:
                del self._flows[binding.source]

    def _drop(self, credential_id: str, key: str) -> None:
        table = self._bindings.get(credential_id)
        if table is None:
            return
        binding = table.pop(key, None)
        if binding is not None:
            self._unindex(binding)
            self.dirty[(credential_id, key)] = None
            if not table:
                del self._bindings[credential_id]

    def forget(self, credential_id: str) -> int:
        """Drop every binding of a credential that was deleted or got a new password: its devices
        must register again (with the new password). Unsaved changes of it become deletions, so
        the store never writes a binding for a credential that is gone. Returns how many."""
        table = self._bindings.pop(credential_id, {})
        for key, binding in table.items():
            self._unindex(binding)
            self.dirty[(credential_id, key)] = None
        for pending in [k for k in self.dirty if k[0] == credential_id]:
            self.dirty[pending] = None
        return len(table)

    def drop_flow(self, source: Source) -> list[Binding]:
        """A connection-bound flow (WebSocket) closed: its bindings are unreachable now (RFC 7118
        §5), so they are removed at once rather than left to expire. Returns them."""
        dropped: list[Binding] = []
        for credential_id, key in list(self._flows.get(source, ())):
            binding = self._bindings.get(credential_id, {}).get(key)
            if binding is not None and binding.source == source:
                self._drop(credential_id, key)
                dropped.append(binding)
        self._flows.pop(source, None)
        return dropped

    def sweep(self, now: float) -> list[Binding]:
        """Remove expired bindings; returns them."""
        removed: list[Binding] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            expires_at, credential_id, key = heapq.heappop(heap)
            binding = self._bindings.get(credential_id, {}).get(key)
            if binding is not None and binding.expires_at <= now and binding.expires_at == expires_at:
                self._drop(credential_id, key)
                removed.append(binding)
        return removed

    # -- REGISTER (RFC 3261 §10.3) ---------------------------------------------------------
    def register(self, request: Request, cred: CredentialRecord, source: Source, now: float) -> Outcome:
        to_uri = request.to.uri
        if not isinstance(to_uri, SipUri) or to_uri.user_unescaped != cred.username:
            return Outcome(403, "To does not match the authenticated user")
        try:
            contacts = parse_contacts(request.headers.get_all("contact"))
        except RemoteProtocolError as exc:
            return Outcome(400, str(exc))
        header_expires = request.headers.get("expires")
        call_id = request.call_id
        cseq = request.cseq.number
        current = self._bindings.get(cred.credential_id, {})

        if contacts is None:  # Contact: *
            if header_expires is None or int(header_expires) != 0:
                return Outcome(400, "Contact * requires Expires: 0")
            for binding in current.values():
                if binding.call_id == call_id and cseq <= binding.cseq:
                    return Outcome(400, "CSeq out of order")
            for key in list(current):
                self._drop(cred.credential_id, key)
            return self._ok(cred, now)

        changes: list[tuple[str, NameAddr, int]] = []
        for contact in contacts:
            if not isinstance(contact.uri, SipUri):
                return Outcome(400, "Contact must be a SIP or SIPS URI")
            raw = contact.param("expires")
            if raw is None:
                raw = header_expires
            expires = self.limits.default_expires if raw is None else int(raw)
            if 0 < expires < self.limits.min_expires:
                return Outcome(423, "Interval Too Brief", (("Min-Expires", str(self.limits.min_expires)),))
            expires = min(expires, self.limits.max_expires)
            if expires > 0 and cred.expires_at is not None:
                # A short-lived (web phone) credential: its bindings end with it (never below 1 s,
                # which would read as a removal).
                expires = max(1, min(expires, int(cred.expires_at - now)))
            key = _binding_key(contact)
            existing = current.get(key)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                return Outcome(400, "CSeq out of order")
            changes.append((key, contact, expires))

        user_agent = (request.headers.get("user-agent") or "")[:255]
        path = ", ".join(request.headers.values("path"))
        for key, contact, expires in changes:
            if expires == 0:
                self._drop(cred.credential_id, key)
                continue
            self._put(
                Binding(
                    cred.credential_id, cred.org_id, cred.username, key, str(contact.uri), now + expires,
                    _q_value(contact), call_id, cseq, user_agent, source, path,
                )
            )
        self._enforce_limit(cred.credential_id, now)
        return self._ok(cred, now)

    def _enforce_limit(self, credential_id: str, now: float) -> None:
        table = self._bindings.get(credential_id, {})
        excess = len(table) - self.limits.max_bindings
        if excess > 0:
            # The devices that registered least recently make room (they are the likeliest stale).
            for binding in sorted(table.values(), key=lambda b: b.expires_at)[:excess]:
                log.info("dropping binding %s of %s: device limit", binding.contact, binding.username)
                self._drop(credential_id, binding.key)

    def _ok(self, cred: CredentialRecord, now: float) -> Outcome:
        headers = [("Contact", b.contact_header(now)) for b in self.lookup(cred.credential_id, now)]
        headers.append(("Date", datetime.fromtimestamp(now, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")))
        return Outcome(200, "OK", tuple(headers))


def _row(binding: Binding) -> dict[str, Any]:
    return dict(
        org_id=binding.org_id,
        credential_id=binding.credential_id,
        binding_key=binding.key,
        contact=binding.contact,
        expires_at=datetime.fromtimestamp(binding.expires_at, UTC),
        q=binding.q,
        call_id=binding.call_id,
        cseq=binding.cseq,
        user_agent=binding.user_agent,
        transport=binding.source.transport,
        source_host=binding.source.host,
        source_port=binding.source.port,
        path=binding.path,
        updated_at=datetime.now(UTC),
    )  # fmt: skip


class BindingStore:
    """Writes the registrar's changes to the database behind the requests."""

    def __init__(self, registrar: Registrar, sessions: async_sessionmaker[Any], flush_interval: float = 0.2) -> None:
        self._registrar = registrar
        self._sessions = sessions
        self._interval = flush_interval
        self._task: asyncio.Task[None] | None = None

    async def load(self, now: float) -> int:
        """Load the unexpired bindings; those of WebSocket flows are deleted instead (their
        connections did not survive the restart)."""
        async with self._sessions() as session:
            rows = await repo.active_bindings(session, datetime.fromtimestamp(now, UTC))
        kept = [(row, username) for row, username in rows if row.transport not in CONNECTION_BOUND]
        self._registrar.load(
            Binding(
                row.credential_id, row.org_id, username, row.binding_key, row.contact, row.expires_at.timestamp(),
                row.q, row.call_id, row.cseq, row.user_agent, Source(row.transport, row.source_host, row.source_port),
                row.path,
            )
            for row, username in kept
        )
        self._registrar.dirty = {(row.credential_id, row.binding_key): None
                                 for row, _ in rows if row.transport in CONNECTION_BOUND}
        return len(kept)

    async def flush(self) -> int:
        dirty = self._registrar.dirty
        if not dirty:
            return 0
        self._registrar.dirty = {}
        removed = [key for key, binding in dirty.items() if binding is None]
        saved = [_row(binding) for binding in dirty.values() if binding is not None]
        try:
            async with self._sessions() as session, session.begin():
                await repo.delete_bindings(session, removed)
                await repo.save_bindings(session, saved)
        except Exception:
            # Keep the changes for the next attempt (newer changes win).
            for key, binding in dirty.items():
                self._registrar.dirty.setdefault(key, binding)
            raise
        return len(dirty)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="binding-store")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self._registrar.sweep(datetime.now(UTC).timestamp())
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not write registrations to the database; will retry")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
