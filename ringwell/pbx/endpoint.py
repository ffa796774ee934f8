"""The SIP endpoint: drives transports, transactions and timers, and dispatches requests.

It is the I/O shell around the sans-IO core (STYLE.md §2): transports hand it bytes and a
source; it parses, matches or creates the server transaction (RFC 3261 §17.2.3), checks the
request (§8.2), authenticates REGISTER with digest (§22), lets the registrar decide, and
executes the transaction's actions — sending bytes and arming asyncio timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ringwell.features.accounts.repository import CredentialRecord
from ringwell.pbx.mwi import screen_subscribe
from ringwell.pbx.registrar import Registrar
from ringwell.pbx.security import AuthGuard
from ringwell.sip.digest import Credentials, NonceManager, Verdict, challenge, parse_credentials, verify
from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import MalformedRequest, Request, Response, parse_contacts, parse_message
from ringwell.sip.transaction import (
    Action,
    CancelTimer,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Send,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    StartTimer,
    State,
    Terminated,
    Timeout,
    Timer,
    TimerValues,
    server_key,
)
from ringwell.sip.uas import Rejection, check_request, make_response, reply_to_malformed
from ringwell.sip.uri import SipUri
from ringwell.transport.intake import FairIntake
from ringwell.transport.source import Source

__all__ = ["CredentialCache", "EndpointStats", "SipEndpoint", "screen_request"]

log = logging.getLogger(__name__)

ALLOWED = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "UPDATE", "INFO", "SUBSCRIBE",
                     "NOTIFY"})  # NOTIFY: in a call only, a phone reporting on a REFER of Ringwell's own
SUPPORTED: frozenset[str] = frozenset({"path", "timer"})
IN_DIALOG = frozenset({"INVITE", "UPDATE", "BYE", "INFO"})
ACCEPTED_TYPES = frozenset({"application/sdp", "multipart/mixed", "multipart/alternative",
                            "message/sipfrag"})  # a REFER's progress, in the NOTIFYs of a call back
MAX_PENDING_LOOKUPS = 256
_WHOLE = frozenset({"udp", "ws", "wss"})  # transports whose every read is one whole message
MAX_USERNAME = 64  # the longest SIP username the database holds
INVITE_TIMER_C = 660.0  # > the longest ring timeout (600 s) a user can have

Reply = Callable[[bytes], None]
ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction
ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction
Authenticated = Callable[[Request, tuple[str, ...], "_Entry", CredentialRecord], None]


class CallHandler(Protocol):
    """What the endpoint hands calls to (``ringwell.pbx.calls.CallManager``)."""

    def invite(self, request: Request, txn: object, source: Source, caller: CredentialRecord) -> None: ...

    def in_dialog(self, request: Request, txn: object) -> bool: ...

    def cancel(self, invite_txn: object, request: Request) -> bool: ...

    def from_trunk(self, request: Request, txn: object, source: Source, trunk: Any) -> None: ...


class SubscriptionHandler(Protocol):
    """What the endpoint hands authenticated SUBSCRIBEs to (``ringwell.pbx.mwi.MwiManager``)."""

    def subscribe(self, request: Request, txn: object, source: Source, record: CredentialRecord) -> None: ...


def screen_request(request: Request) -> Rejection | None:
    """Every check made before a request is acted on (pure; RFC 3261 §8.2 and §10.3).

    A broken REGISTER is refused before any challenge: the To must be a SIP AOR and the
    Contact values must parse.
    """
    try:
        rejection = check_request(request, allowed=ALLOWED, supported=SUPPORTED, accepted_types=ACCEPTED_TYPES)
    except ValueError as exc:  # a list header that cannot be split (an unterminated quote)
        return Rejection(400, f"Malformed header: {exc}")
    if rejection is None and request.method in ("INVITE", "UPDATE"):
        try:  # what the B2BUA reads from an INVITE must split cleanly
            for name in ("record-route", "supported", "allow", "session-expires"):
                request.headers.values(name)
        except ValueError as exc:
            return Rejection(400, f"Malformed header: {exc}")
    if rejection is not None or request.method != "REGISTER":
        return rejection
    if not isinstance(request.to.uri, SipUri):
        return Rejection(400, "To must be a SIP or SIPS URI")
    try:
        parse_contacts(request.headers.get_all("contact"))
        request.headers.values("path")
    except RemoteProtocolError as exc:
        return Rejection(400, str(exc))
    except ValueError as exc:
        return Rejection(400, f"Malformed Path: {exc}")
    return None


class _Missing:
    pass


MISSING = _Missing()


class CredentialCache:
    """HA1 records by SIP username, cached (a miss is cached briefly too).

    An expired positive entry is still served while one background look-up refreshes it
    (stale-while-revalidate, one look-up per username at a time): when the entries of a
    thousand busy phones expire together, calls keep flowing instead of queueing a thousand
    database look-ups. A password change reaches the cache within ``ttl`` plus one look-up.
    """

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[CredentialRecord | None]],
        ttl: float = 30.0,
        negative_ttl: float = 5.0,
        max_entries: int = 100_000,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, CredentialRecord | None]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    def get(self, username: str, now: float) -> CredentialRecord | _Missing | None:
        entry = self._entries.get(username)
        if entry is None:
            return MISSING
        expires, record = entry
        if expires >= now:
            return record
        if record is None or expires + self._ttl < now:
            return MISSING  # a miss, or too old to serve: look it up now
        if username not in self._refreshing:
            task = asyncio.get_running_loop().create_task(self._refresh(username, now))
            self._refreshing[username] = task
        return record

    async def _refresh(self, username: str, now: float) -> None:
        try:
            await self.fetch(username, now)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("refreshing the credentials of %s failed", username[:64])
        finally:
            self._refreshing.pop(username, None)

    async def fetch(self, username: str, now: float) -> CredentialRecord | None:
        record = await self._fetch(username)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[username] = (now + (self._ttl if record else self._negative_ttl), record)
        return record

    def forget(self, username: str) -> None:
        self._entries.pop(username, None)

    async def stop(self) -> None:
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(slots=True)
class _Entry:
    txn: ServerTransaction
    reply: Reply
    source: Source
    timers: dict[Timer, asyncio.TimerHandle] = field(default_factory=dict)


@dataclass(slots=True)
class _ClientEntry:
    txn: ClientTransaction
    send: Reply
    on_response: Callable[[Response], None]
    on_failure: Callable[[], None]
    timers: dict[Timer, asyncio.TimerHandle] = field(default_factory=dict)


@dataclass(slots=True)
class EndpointStats:
    received: int = 0
    malformed: int = 0
    responses_dropped: int = 0
    registers_ok: int = 0
    auth_failures: int = 0


class _Throttle:
    """At most ``rate`` log lines a second for one noisy kind of event."""

    def __init__(self, rate: int = 10) -> None:
        self.rate = rate
        self._second = 0
        self._count = 0

    def allow(self) -> bool:
        second = int(time.monotonic())
        if second != self._second:
            self._second, self._count = second, 0
        self._count += 1
        return self._count <= self.rate


class SipEndpoint:
    def __init__(
        self,
        *,
        realm: str,
        registrar: Registrar,
        credentials: CredentialCache,
        guard: AuthGuard,
        nonces: NonceManager,
        max_message_size: int = 65535,
        intake_per_source: int = 1000,
        timers: TimerValues | None = None,
        algorithms: tuple[str, ...] = ("MD5", "SHA-256"),
    ) -> None:
        self.realm = realm
        self.algorithms = algorithms
        self.registrar = registrar
        self.credentials = credentials
        self.guard = guard
        self.nonces = nonces
        self.max_message_size = max_message_size
        self.timers = timers or TimerValues()
        self._invite_timers = dataclasses.replace(self.timers, timer_c=INVITE_TIMER_C)
        self.intake: FairIntake[tuple[bytes, Source, Reply]] = FairIntake(intake_per_source)
        self.stats = EndpointStats()
        self._txns: dict[tuple[str, ...], _Entry] = {}
        self._client: dict[tuple[str, str], _ClientEntry] = {}
        self.calls: CallHandler | None = None
        self.subscriptions: SubscriptionHandler | None = None
        self.sender: Callable[[Source], Reply | None] = lambda source: None
        # The carrier trunk a request comes from, by its source (no digest challenge for those).
        self.trunk_of: Callable[[Source], Any] = lambda source: None
        self._pending_lookups = 0
        self._worker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._throttle = _Throttle()
        self._dummy_ha1 = hashlib.sha256(secrets.token_bytes(16)).hexdigest()

    # -- intake ----------------------------------------------------------------------------
    def datagram(self, data: bytes, source: Source, reply: Reply) -> None:
        """A UDP datagram: keep-alives are ignored, the rest queued fairly per source."""
        if len(data) <= 4 and not data.strip(b"\r\n\x00 "):
            return
        self.intake.put(source.host, (data, source, reply))

    def stream_message(self, data: bytes, source: Source, reply: Reply) -> None:
        self.handle(data, source, reply)

    def stream_error(self, exc: RemoteProtocolError, reply: Reply) -> None:
        self.stats.malformed += 1
        if self._throttle.allow():
            log.warning("closing stream after framing error: %s", exc)

    async def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain(), name="sip-intake")

    async def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.credentials.stop()
        for entry in self._txns.values():
            for handle in entry.timers.values():
                handle.cancel()
        self._txns.clear()
        for client in self._client.values():
            for handle in client.timers.values():
                handle.cancel()
        self._client.clear()

    async def _drain(self) -> None:
        intake = self.intake
        while True:
            await intake.wait()
            for _ in range(32):  # small batches: reading the sockets stays ahead of processing
                item = intake.get_nowait()
                if item is None:
                    break
                data, source, reply = item
                try:
                    self.handle(data, source, reply)
                except Exception:
                    log.exception("unexpected error handling a message from %s", source)
            await asyncio.sleep(0)

    # -- messages --------------------------------------------------------------------------
    def handle(self, data: bytes, source: Source, reply: Reply) -> None:
        self.stats.received += 1
        try:
            # A WebSocket message is one whole SIP message, like a datagram (RFC 7118 §5).
            message = parse_message(data, max_size=self.max_message_size, datagram=source.transport in _WHOLE)
        except MalformedRequest as exc:
            self.stats.malformed += 1
            if self._throttle.allow():
                log.info("malformed request from %s:%d: %s", source.host, source.port, exc)
            answer = reply_to_malformed(exc.method, exc.headers, exc.status_hint, str(exc))
            if answer is not None:
                reply(answer)
            return
        except RemoteProtocolError as exc:
            self.stats.malformed += 1
            if self._throttle.allow():
                log.warning("dropped malformed message from %s:%d: %s", source.host, source.port, exc)
            return
        if isinstance(message, Response):
            self._response(message)
            return
        self._request(message, source, reply)

    def _response(self, message: Response) -> None:
        """A response: to the client transaction that sent the request (§17.1.3), else dropped."""
        key = (message.top_via.branch or "", message.cseq.method)
        client = self._client.get(key) if message.vias else None
        if client is not None:
            self._execute_client(key, client, client.txn.receive(message, time.time()))
            return
        self.stats.responses_dropped += 1
        if self._throttle.allow():
            log.info("dropped response %d (%s): no matching transaction", message.status, message.call_id)

    def _request(self, request: Request, source: Source, reply: Reply) -> None:
        request.stamp_received(source.host, source.port)
        now = time.time()
        key = server_key(request)
        entry = self._txns.get(key)
        if entry is not None:
            self._execute(key, entry, entry.txn.receive_request(request, now))
            return
        method = request.method
        if method == "ACK":
            # An ACK for a 2xx (a new transaction of its own, §17.1.1.3) goes to its dialog.
            if self.calls is not None and request.to.tag is not None:
                try:
                    self.calls.in_dialog(request, None)
                except Exception:
                    log.exception("error handling an ACK from %s", source)
            return
        reliable = source.transport != "udp"
        txn: ServerTransaction
        if method == "INVITE":
            txn = ServerInviteTransaction(request, reliable, self.timers)
        else:
            txn = ServerNonInviteTransaction(request, reliable, self.timers)
        entry = _Entry(txn, reply, source)
        self._txns[key] = entry
        try:
            if method == "INVITE":
                self._respond(key, entry, make_response(request, 100))
            self._dispatch(request, key, entry)
        except Exception:
            self._internal_error(request, key, entry)

    def _internal_error(self, request: Request, key: tuple[str, ...], entry: _Entry) -> None:
        """A bug must not leak the transaction or leave the client waiting: answer 500."""
        if self._throttle.allow():
            log.exception("error handling %s from %s", request.method, entry.source)
        try:
            self._respond(key, entry, make_response(request, 500, "Server Internal Error"))
        finally:
            if entry.txn.state not in (State.COMPLETED, State.ACCEPTED, State.CONFIRMED):
                self._execute(key, entry, [Terminated()])

    def _dispatch(self, request: Request, key: tuple[str, ...], entry: _Entry) -> None:
        rejection = screen_request(request)
        if rejection is not None:
            self._respond(key, entry, make_response(request, rejection.status, rejection.reason, rejection.headers))
            return
        method = request.method
        if method == "REGISTER":
            self._register(request, key, entry)
        elif method == "OPTIONS":
            self._respond(key, entry, make_response(request, 200, "OK", (
                ("Allow", ", ".join(sorted(ALLOWED))),
                ("Accept", "application/sdp"),
                ("Supported", ", ".join(sorted(SUPPORTED))),
            )))
        elif method == "CANCEL":
            self._cancel(request, key, entry)
        elif method == "SUBSCRIBE":
            self._subscribe(request, key, entry)
        elif request.to.tag is not None:  # in-dialog: INVITE, UPDATE, BYE, INFO
            if self.calls is None or not self.calls.in_dialog(request, key):
                self._respond(key, entry, make_response(request, 481))
        elif method == "INVITE" and self.calls is not None:
            trunk = self.trunk_of(entry.source)
            if trunk is not None:
                self.calls.from_trunk(request, key, entry.source, trunk)
            else:
                self._authenticate(request, key, entry, self._start_call)
        elif method == "INVITE":
            self._respond(key, entry, make_response(request, 480, "Calls are not enabled on this server"))
        else:  # BYE, UPDATE or INFO outside any dialog
            self._respond(key, entry, make_response(request, 481))

    def _subscribe(self, request: Request, key: tuple[str, ...], entry: _Entry) -> None:
        """SUBSCRIBE (new or in-dialog refresh): the Event package is checked before the digest
        challenge (RFC 6665 §4.2.1.1: 489), then the subscriber is authenticated like a caller."""
        if self.subscriptions is None:
            self._respond(key, entry, make_response(request, 489, "Bad Event"))
            return
        refusal = screen_subscribe(request)
        if refusal is not None:
            self._respond(key, entry, make_response(request, refusal.status, refusal.reason, refusal.headers))
            return
        self._authenticate(request, key, entry, self._do_subscribe)

    def _do_subscribe(self, request: Request, key: tuple[str, ...], entry: _Entry, record: CredentialRecord) -> None:
        assert self.subscriptions is not None
        self.subscriptions.subscribe(request, key, entry.source, record)

    def _start_call(self, request: Request, key: tuple[str, ...], entry: _Entry, caller: CredentialRecord) -> None:
        assert self.calls is not None
        if not self.pending(key):
            return  # CANCELled (and answered 487) while the credentials were looked up
        self.calls.invite(request, key, entry.source, caller)

    def _cancel(self, request: Request, key: tuple[str, ...], entry: _Entry) -> None:
        invite_key = (*key[:-1], "INVITE")
        target = self._txns.get(invite_key)
        if target is None or not isinstance(target.txn, ServerInviteTransaction):
            self._respond(key, entry, make_response(request, 481))
            return
        self._respond(key, entry, make_response(request, 200))
        if self.calls is not None and self.calls.cancel(invite_key, request):
            return  # the call answers the INVITE with 487 and cancels its own outbound legs
        self._respond(invite_key, target, make_response(target.txn.request, 487))

    def _respond(self, key: tuple[str, ...], entry: _Entry, response: Response) -> None:
        self._execute(key, entry, entry.txn.respond(response, time.time()))

    def _execute(self, key: tuple[str, ...], entry: _Entry, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                entry.reply(action.message.encode())
            elif isinstance(action, StartTimer):
                old = entry.timers.pop(action.timer, None)
                if old is not None:
                    old.cancel()
                loop = asyncio.get_running_loop()
                entry.timers[action.timer] = loop.call_later(action.delay, self._fire, key, action.timer)
            elif isinstance(action, CancelTimer):
                handle = entry.timers.pop(action.timer, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(action, Timeout):
                log.info("transaction %s timed out (timer %s)", key[0], action.timer.value)
            elif isinstance(action, Terminated):
                for handle in entry.timers.values():
                    handle.cancel()
                entry.timers.clear()
                if self._txns.get(key) is entry:
                    del self._txns[key]

    def _fire(self, key: tuple[str, ...], timer: Timer) -> None:
        entry = self._txns.get(key)
        if entry is None:
            return
        entry.timers.pop(timer, None)
        self._execute(key, entry, entry.txn.timer_fired(timer, time.time()))

    @property
    def transactions(self) -> int:
        return len(self._txns)

    # -- client transactions (requests the B2BUA sends) -----------------------------------
    def send_request(self, request: Request, flow: Source, on_response: Callable[[Response], None],
                     on_failure: Callable[[], None]) -> None:
        """Send ``request`` to ``flow`` through a new client transaction (§17.1)."""
        send = self.sender(flow)
        if send is None:
            asyncio.get_running_loop().call_soon(on_failure)
            return
        reliable = flow.transport != "udp"
        txn: ClientTransaction
        if request.method == "INVITE":
            # Timer C (§16.6) bounds an INVITE that got a 1xx and then nothing (a phone that
            # vanished, even after our CANCEL): longer than the longest ring timeout.
            txn = ClientInviteTransaction(request, reliable, self._invite_timers, use_timer_c=True)
        else:
            txn = ClientNonInviteTransaction(request, reliable, self.timers)
        key = (request.top_via.branch or "", request.method)
        client = _ClientEntry(txn, send, on_response, on_failure)
        self._client[key] = client
        self._execute_client(key, client, txn.start(time.time()))

    def respond(self, txn: object, response: Response) -> None:
        """Answer through the server transaction whose key is ``txn``."""
        if not isinstance(txn, tuple):
            return
        entry = self._txns.get(txn)
        if entry is not None:
            self._respond(txn, entry, response)

    def pending(self, txn: object) -> bool:
        entry = self._txns.get(txn) if isinstance(txn, tuple) else None
        return entry is not None and entry.txn.state in (State.TRYING, State.PROCEEDING)

    def transmit(self, flow: Source, data: bytes) -> None:
        send = self.sender(flow)
        if send is not None:
            send(data)

    def _execute_client(self, key: tuple[str, str], client: _ClientEntry, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                client.send(action.message.encode())
            elif isinstance(action, Deliver):
                client.on_response(action.message)
            elif isinstance(action, StartTimer):
                old = client.timers.pop(action.timer, None)
                if old is not None:
                    old.cancel()
                loop = asyncio.get_running_loop()
                client.timers[action.timer] = loop.call_later(action.delay, self._fire_client, key, action.timer)
            elif isinstance(action, CancelTimer):
                handle = client.timers.pop(action.timer, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(action, Timeout):
                client.on_failure()
                if action.timer is Timer.C:  # the transaction itself would wait for a 487 forever
                    self._execute_client(key, client, [Terminated()])
            elif isinstance(action, Terminated):
                for handle in client.timers.values():
                    handle.cancel()
                client.timers.clear()
                if self._client.get(key) is client:
                    del self._client[key]

    def _fire_client(self, key: tuple[str, str], timer: Timer) -> None:
        client = self._client.get(key)
        if client is None:
            return
        client.timers.pop(timer, None)
        self._execute_client(key, client, client.txn.timer_fired(timer, time.time()))

    # -- digest authentication (REGISTER: 401, INVITE: 407) --------------------------------
    def _challenge(self, key: tuple[str, ...], entry: _Entry, request: Request, *, stale: bool = False) -> None:
        nonce = self.nonces.issue(time.time())
        values = challenge(self.realm, nonce, stale=stale, algorithms=self.algorithms)
        if request.method == "REGISTER":
            status, reason, header = 401, "Unauthorized", "WWW-Authenticate"
        else:
            status, reason, header = 407, "Proxy Authentication Required", "Proxy-Authenticate"
        headers = [(header, value) for value in values]
        self._respond(key, entry, make_response(request, status, reason, headers))

    def _register(self, request: Request, key: tuple[str, ...], entry: _Entry) -> None:
        self._authenticate(request, key, entry, self._do_register)

    def _authenticate(self, request: Request, key: tuple[str, ...], entry: _Entry, then: Authenticated) -> None:
        header = "authorization" if request.method == "REGISTER" else "proxy-authorization"
        creds: Credentials | None = None
        try:
            for value in request.headers.get_all(header):
                parsed = parse_credentials(value)
                if parsed is not None and (creds is None or parsed.realm == self.realm):
                    creds = parsed
        except ValueError as exc:
            self._respond(key, entry, make_response(request, 400, f"Malformed {header.title()}: {exc}"))
            return
        if creds is None:
            self._challenge(key, entry, request)
            return
        source = entry.source
        now = time.time()
        if self.guard.blocked(source.host, creds.username, now):
            self._respond(key, entry, make_response(request, 403, "Forbidden"))
            return
        if len(creds.username) > MAX_USERNAME:
            # Never stored, so never a real user: answered like any unknown user, not cached.
            self._authenticated(request, key, entry, creds, None, then)
            return
        record = self.credentials.get(creds.username, now)
        if not isinstance(record, _Missing):
            self._authenticated(request, key, entry, creds, record, then)
            return
        if self._pending_lookups >= MAX_PENDING_LOOKUPS:
            self._respond(key, entry, make_response(request, 503, "Service Unavailable", (("Retry-After", "5"),)))
            return
        self._pending_lookups += 1
        task = asyncio.create_task(self._lookup_then(request, key, entry, creds, then))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _lookup_then(
        self, request: Request, key: tuple[str, ...], entry: _Entry, creds: Credentials, then: Authenticated
    ) -> None:
        try:
            record = await self.credentials.fetch(creds.username, time.time())
            self._authenticated(request, key, entry, creds, record, then)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._internal_error(request, key, entry)
        finally:
            self._pending_lookups -= 1

    def _authenticated(
        self, request: Request, key: tuple[str, ...], entry: _Entry, creds: Credentials,
        record: CredentialRecord | None, then: Authenticated,
    ) -> None:
        now = time.time()
        if record is not None and record.expired(now):
            # A web phone's credential past its lifetime (checked at use: the cache may hold it)
            # is answered like an unknown user.
            record = None
        if record is None:
            ha1 = self._dummy_ha1  # same work and same answer as a wrong password
        elif creds.algorithm.startswith("SHA-256"):
            ha1 = record.ha1_sha256
        else:
            ha1 = record.ha1_md5
        verdict = verify(creds, ha1, request.method, self.realm, self.nonces, now, self.algorithms)
        source = entry.source
        if verdict is Verdict.UNKNOWN_NONCE:
            # Not one of our nonces (forged, or from before a secret change): no password was
            # checked, so nothing is counted against the source or the user.
            self._challenge(key, entry, request)
            return
        if record is None or verdict is Verdict.FAIL:
            self.stats.auth_failures += 1
            self.guard.failure(source.host, source.port, source.transport, creds.username, request.method, now)
            self._challenge(key, entry, request)
            return
        if verdict is Verdict.STALE:
            self._challenge(key, entry, request, stale=True)
            return
        self.guard.success(source.host, creds.username)
        then(request, key, entry, record)

    def _do_register(self, request: Request, key: tuple[str, ...], entry: _Entry, record: CredentialRecord) -> None:
        outcome = self.registrar.register(request, record, entry.source, time.time())
        if outcome.status == 200:
            self.stats.registers_ok += 1
        self._respond(key, entry, make_response(request, outcome.status, outcome.reason, outcome.headers))
