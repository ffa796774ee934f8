"""The calls driver: runs ``Call`` state machines against the SIP endpoint, media relay and CDRs.

The endpoint hands it authenticated INVITEs, in-dialog requests, CANCELs and responses; it
resolves the dial plan (``Directory``), allocates media, and executes each call's actions:
client transactions through the endpoint, timers on the event loop, a call record opened when
the call starts and closed when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from ringwell.features.accounts.repository import CredentialRecord
from ringwell.features.accounts.repository import Reachable as Callee
from ringwell.features.cdr.service import CallAnswered, CallClosed, CallOpened, CdrWriter
from ringwell.media.errors import PortExhausted
from ringwell.media.relay import MediaRelay, MediaSession
from ringwell.pbx.call import (
    Action,
    Answered,
    Call,
    CallConfig,
    ClearTimer,
    DialogCreated,
    Ended,
    Instant,
    Party,
    Respond,
    SendRequest,
    SetTimer,
    Target,
    Transmit,
)
from ringwell.pbx.registrar import Registrar
from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import Request, Response
from ringwell.sip.uas import make_response
from ringwell.sip.uri import SipUri, TelUri
from ringwell.storage.base import new_id
from ringwell.transport.source import Source

__all__ = ["CachedDirectory", "CallManager", "Callee", "Directory", "SipSender"]

log = logging.getLogger(__name__)
MAX_DIALLED = 64


Directory = Callable[[str, str], Awaitable[Callee | None]]  # (org_id, dialled) -> the user it reaches


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A background look-up nobody awaited still has its failure logged."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("dial plan look-up failed: %s", exc)


class CachedDirectory:
    """The dial plan's look-ups, cached briefly; one look-up per key at a time.

    A burst of calls to one user costs one query: callers arriving while it runs wait for
    the same answer, and an expired answer is served while it is refreshed in the background.
    """

    def __init__(self, lookup: Directory, ttl: float = 5.0, max_entries: int = 50_000) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[tuple[str, str], tuple[float, Callee | None]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[Callee | None]] = {}

    async def __call__(self, org_id: str, dialled: str) -> Callee | None:
        key = (org_id, dialled)
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(key))
            task.add_done_callback(_retrieve)
            self._inflight[key] = task
        if entry is not None and entry[1] is not None and entry[0] + self._ttl > now:
            return entry[1]  # stale but recent: answer now, the refresh runs on
        return await asyncio.shield(task)

    async def _load(self, key: tuple[str, str]) -> Callee | None:
        try:
            found = await self._lookup(*key)
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self._ttl, found)
            return found
        finally:
            self._inflight.pop(key, None)


class SipSender(Protocol):
    """What the calls driver needs from the SIP endpoint."""

    def send_request(self, request: Request, flow: Source, on_response: Callable[[Response], None],
                     on_failure: Callable[[], None]) -> None: ...

    def respond(self, txn: object, response: Response) -> None: ...

    def transmit(self, flow: Source, data: bytes) -> None: ...

    def pending(self, txn: object) -> bool:
        """True while the server transaction ``txn`` has not sent a final response."""
        ...


class _Media:
    """Adapts a relay session to the call's ``MediaSeam``."""

    __slots__ = ("session",)

    def __init__(self, session: MediaSession) -> None:
        self.session = session

    def local_port(self, side: str) -> int:
        return (self.session.a if side == "a" else self.session.b).local_port

    def set_remote(self, side: str, host: str, port: int, rtcp_port: int, signalling_host: str | None) -> None:
        target = self.session.a if side == "a" else self.session.b
        try:
            target.set_remote(host, port, rtcp_port, signalling_host=signalling_host)
        except ValueError as exc:  # a host name or another address family in c=: no media to there
            log.warning("media %s/%s: cannot send to %s:%d: %s", self.session.label, side, host, port, exc)

    def arm(self) -> None:
        self.session.arm()

    def disarm(self) -> None:
        self.session.disarm()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _now() -> Instant:
    return Instant(time.time(), time.monotonic())


def dialled_of(request: Request) -> str | None:
    uri = request.uri
    if isinstance(uri, SipUri):
        user = uri.user_unescaped
    elif isinstance(uri, TelUri):
        user = uri.number
    else:
        return None
    if not user or len(user) > MAX_DIALLED:
        return None
    return user


def _display(request: Request) -> str | None:
    try:
        display = request.from_.display
    except RemoteProtocolError:
        return None
    if not display:
        return None
    cleaned = "".join(ch for ch in display.strip('"') if ch.isprintable() and ch not in '"\\')
    return cleaned[:64] or None


class CallManager:
    def __init__(
        self,
        *,
        sip: SipSender,
        registrar: Registrar,
        directory: Directory,
        relay: MediaRelay,
        cdr: CdrWriter,
        config: CallConfig,
        node: str | None = None,
    ) -> None:
        self.sip = sip
        self.registrar = registrar
        self.directory = directory
        self.relay = relay
        self.cdr = cdr
        self.config = config
        self.node = node
        self.calls: dict[str, Call] = {}
        self._media: dict[str, _Media] = {}
        self._by_invite: dict[object, Call] = {}
        self._dialogs: dict[tuple[str, str], tuple[Call, str]] = {}
        self._keys: dict[str, list[tuple[str, str]]] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._timer_names: dict[str, set[str]] = {}  # per call, so ending a call does not scan every timer
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats = {"started": 0, "ended": 0, "rejected": 0}

    # -- from the endpoint -----------------------------------------------------------------
    def invite(self, request: Request, txn: object, source: Source, caller: CredentialRecord) -> None:
        """An authenticated INVITE that starts a new call."""
        task = asyncio.create_task(self._start_safely(request, txn, source, caller))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reject(self, request: Request, txn: object, status: int, reason: str) -> None:
        self.stats["rejected"] += 1
        self.sip.respond(txn, make_response(request, status, reason))

    def _opened(self, call_id: str, request: Request, caller: CredentialRecord, dialled: str, now: Instant) -> None:
        self.cdr.opened(CallOpened(
            id=call_id, org_id=caller.org_id, sip_call_id=request.call_id[:255], direction="internal",
            caller_user_id=caller.user_id, caller_extension=caller.extension, caller_number=caller.extension,
            callee_number=dialled, started_at=_utc(now.wall), node=self.node,
        ))

    def _closed_early(self, call_id: str, now: Instant, status: int, reason: str, disposition: str = "failed",
                      callee: Callee | None = None, hangup_by: str = "system") -> None:
        self.cdr.closed(CallClosed(
            id=call_id, callee_user_id=callee.user_id if callee else None,
            callee_extension=callee.extension if callee else None, answered_at=None, ended_at=_utc(now.wall),
            ring_seconds=0.0, talk_seconds=0.0, disposition=disposition, hangup_by=hangup_by, sip_status=status,
            sip_reason=reason, codec=None, media=None,
        ))

    async def _start_safely(self, request: Request, txn: object, source: Source, caller: CredentialRecord) -> None:
        try:
            await self._start(request, txn, source, caller)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not start a call from %s", caller.username)
            self._reject(request, txn, 500, "Server Internal Error")

    async def _start(self, request: Request, txn: object, source: Source, caller: CredentialRecord) -> None:
        now = _now()
        call_id = new_id()
        dialled = dialled_of(request)
        if dialled is None:
            self._reject(request, txn, 404, "Not Found")
            return
        self._opened(call_id, request, caller, dialled, now)
        try:
            callee = await self.directory(caller.org_id, dialled)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dial plan look-up failed for a call from %s", caller.username)
            self._reject(request, txn, 500, "Server Internal Error")
            self._closed_early(call_id, _now(), 500, "Dial plan look-up failed")
            return
        now = _now()
        if not self.sip.pending(txn):  # the caller CANCELled during the look-up (answered 487)
            self._closed_early(call_id, now, 487, "Caller cancelled", "cancelled", callee, "caller")
            return
        if callee is None:
            self._reject(request, txn, 404, "Not Found")
            self._closed_early(call_id, now, 404, "No such extension")
            return
        try:
            session = self.relay.create(call_id)
        except PortExhausted:
            log.warning("no free RTP ports: call %s refused", call_id)
            self._reject(request, txn, 503, "No Free Media Ports")
            self._closed_early(call_id, now, 503, "No free media ports", callee=callee)
            return
        try:
            self._begin(request, txn, source, caller, callee, dialled, call_id, session, now)
        except Exception:
            # Nothing of a call that could not start may stay behind: ports, maps, an open record.
            log.exception("call %s could not start", call_id)
            session.close()
            self.calls.pop(call_id, None)
            self._media.pop(call_id, None)
            self._by_invite.pop(txn, None)
            self._reject(request, txn, 500, "Server Internal Error")
            self._closed_early(call_id, _now(), 500, "Call could not start", callee=callee)

    def _begin(self, request: Request, txn: object, source: Source, caller: CredentialRecord, callee: Callee,
               dialled: str, call_id: str, session: MediaSession, now: Instant) -> None:
        media = _Media(session)
        targets = [
            Target(binding.contact, binding.source, binding.user_agent)
            for credential_id in callee.credential_ids
            for binding in self.registrar.lookup(credential_id, now.wall)
        ]
        try:
            call = Call(
                call_id=call_id, invite=request, txn=txn, source=source,
                caller=Party(caller.user_id, caller.extension, caller.extension, _display(request)),
                callee=Party(callee.user_id, callee.extension, dialled),
                targets=targets, media=media, config=self.config, ring_timeout=callee.ring_timeout, now=now,
            )
        except RemoteProtocolError as exc:
            session.close()
            self._reject(request, txn, exc.status_hint, str(exc))
            self._closed_early(call_id, now, exc.status_hint, str(exc), callee=callee)
            return
        self.calls[call_id] = call
        self._media[call_id] = media
        self._by_invite[txn] = call
        self.stats["started"] += 1
        self.execute(call, call.start(now))

    def in_dialog(self, request: Request, txn: object) -> bool:
        """An in-dialog request; False when no dialog matches (the endpoint answers 481)."""
        tag = request.to.tag
        if tag is None:
            return False
        found = self._dialogs.get((request.call_id, tag))
        if found is None:
            return False
        call, leg_id = found
        self.execute(call, call.in_dialog(leg_id, request, txn, _now()))
        return True

    def cancel(self, invite_txn: object, request: Request) -> bool:
        call = self._by_invite.get(invite_txn)
        if call is None:
            found = self._dialogs.get((request.call_id, request.to.tag or ""))
            if found is not None:
                found[0].cancel_request(invite_txn)  # a re-INVITE: the endpoint answers it 487
            return False
        self.execute(call, call.cancel(request.headers.get("reason"), _now()))
        return True

    def media_timeout(self, session: MediaSession) -> None:
        call = self.calls.get(session.label)
        if call is not None:
            self.execute(call, call.media_timeout(self.relay.timeout, _now()))

    # -- executing a call's actions --------------------------------------------------------
    def execute(self, call: Call, actions: list[Action]) -> None:
        for action in actions:
            try:
                self._do(call, action)
            except Exception:
                log.exception("call %s: failed to execute %s", call.id, type(action).__name__)

    def _do(self, call: Call, action: Action) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("call %s: %s", call.id, action)
        if isinstance(action, SendRequest):
            leg_id, request = action.leg, action.request
            self.sip.send_request(
                request, action.flow,
                lambda response: self._safely(call, lambda: call.response(leg_id, request, response, _now())),
                lambda: self._safely(call, lambda: call.request_failed(leg_id, request, _now())),
            )
        elif isinstance(action, Respond):
            self.sip.respond(action.txn, action.response)
        elif isinstance(action, Transmit):
            self.sip.transmit(action.flow, action.message.encode())
        elif isinstance(action, SetTimer):
            if call.over:
                return  # a late response to a call already ended must not leave a timer behind
            key = (call.id, action.name)
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(action.delay, self._fire, call, action.name)
            self._timer_names.setdefault(call.id, set()).add(action.name)
        elif isinstance(action, ClearTimer):
            handle = self._timers.pop((call.id, action.name), None)
            if handle is not None:
                handle.cancel()
        elif isinstance(action, DialogCreated):
            if call.over:
                return
            self._dialogs[action.key] = (call, action.leg)
            self._keys.setdefault(call.id, []).append(action.key)
        elif isinstance(action, Answered):
            self.cdr.answered(CallAnswered(call.id, _utc(action.wall), call.callee.user_id, call.callee.extension,
                                           action.codec))
        elif isinstance(action, Ended):
            self._ended(call, action)

    def _safely(self, call: Call, step: Callable[[], list[Action]]) -> None:
        """Feed the call; a bug in one call is logged and must not break the transaction layer."""
        try:
            actions = step()
        except Exception:
            log.exception("call %s: error handling a response", call.id)
            return
        self.execute(call, actions)

    def _fire(self, call: Call, name: str) -> None:
        self._timers.pop((call.id, name), None)
        self.execute(call, call.timer_fired(name, _now()))

    def _ended(self, call: Call, ended: Ended) -> None:
        draft = ended.record
        media = self._media.pop(call.id, None)
        summary = media.session.summary() if media is not None else None
        if media is not None:
            media.session.close()
        self.cdr.closed(CallClosed(
            id=call.id, callee_user_id=draft.callee_user_id, callee_extension=draft.callee_extension,
            answered_at=_utc(draft.answered_at) if draft.answered_at is not None else None,
            ended_at=_utc(draft.ended_at), ring_seconds=draft.ring_seconds, talk_seconds=draft.talk_seconds,
            disposition=draft.disposition, hangup_by=draft.hangup_by, sip_status=draft.sip_status,
            sip_reason=(draft.sip_reason or "")[:255] or None, codec=draft.codec, media=summary,
        ))
        self.calls.pop(call.id, None)
        self._by_invite.pop(call.txn, None)
        self.stats["ended"] += 1
        # Dialogs stay known a little longer, so a retransmitted BYE or late ACK still matches.
        loop = asyncio.get_running_loop()
        loop.call_later(32.0, self._forget, call.id)
        for name in self._timer_names.pop(call.id, ()):
            handle = self._timers.pop((call.id, name), None)
            if handle is not None:
                handle.cancel()

    def _forget(self, call_id: str) -> None:
        for key in self._keys.pop(call_id, []):
            self._dialogs.pop(key, None)

    @property
    def active(self) -> int:
        return len(self.calls)

    async def stop(self) -> None:
        """Hang up every call (BYE or 503), so each gets a closed record; idempotent."""
        now = _now()
        for call in list(self.calls.values()):
            self.execute(call, call.shutdown(now))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._timer_names.clear()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0.05)  # let the last BYEs leave the sockets
