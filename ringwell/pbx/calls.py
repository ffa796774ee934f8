"""The calls driver: runs ``Call`` state machines against the SIP endpoint, media relay and CDRs.

The endpoint hands it authenticated INVITEs, in-dialog requests, CANCELs and responses; it
resolves the dial plan (``Directory``), allocates media, and executes each call's actions:
client transactions through the endpoint, timers on the event loop, a call record opened when
the call starts and closed when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ringwell.features.accounts.repository import CredentialRecord
from ringwell.features.accounts.repository import Reachable as Callee
from ringwell.features.cdr.service import CallAnswered, CallBilling, CallClosed, CallOpened
from ringwell.features.outbound.service import Authorized, CallCharge, OutboundService, Refusal
from ringwell.features.recordings.service import CallParties
from ringwell.features.trunks.service import TrunkRoute
from ringwell.media.errors import PortExhausted
from ringwell.media.relay import MediaRelay, MediaSession
from ringwell.pbx.browser_legs import BrowserLegs, LegFactory
from ringwell.pbx.call import (
    Action,
    Answered,
    Call,
    CallConfig,
    ClearTimer,
    DialogCreated,
    DigestLogin,
    Ended,
    Held,
    Instant,
    Party,
    Respond,
    SendRequest,
    SetTimer,
    Target,
    Transmit,
)
from ringwell.pbx.on_hold import HoldMusic
from ringwell.pbx.recording import CallRecordings
from ringwell.pbx.registrar import Registrar
from ringwell.pbx.voicemail_box import BoxMode, Mailbox, VoicemailBoxes
from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import Request, Response
from ringwell.sip.uas import make_response
from ringwell.sip.uri import SipUri, TelUri
from ringwell.storage.base import new_id
from ringwell.transport.source import Source

__all__ = ["CachedDirectory", "CallManager", "CallRecorder", "Callee", "Directory", "Inbound", "InboundRoute",
           "SipSender", "charge_description"]

log = logging.getLogger(__name__)
MAX_DIALLED = 64
_NUMBER_RE = re.compile(r"\+?[0-9*#]{1,32}")
OUTBOUND_RING_TIMEOUT = 120.0  # the phone network has its own no-answer timers; this bounds ours
CREDIT_MARGIN = 10.0  # seconds before a slice ends that the next one is reserved
SETTLE_RETRIES = (0.5, 2.0, 5.0, 0.0)  # pauses after each failed attempt to charge a finished call


Directory = Callable[[str, str], Awaitable[Callee | None]]  # (org_id, dialled) -> the user it reaches


def charge_description(destination: str | None) -> str:
    """The ledger line of a call charge: ``"call"``, with the rate's destination name when it has one
    (``"call: United Kingdom mobile"``).

    Never the number dialled (issue 8): the ledger is kept for the accounting period, years longer
    than the call record that holds the number; the line's ``reference`` (the call id) links the
    two while both exist. A destination name with digits in it (an operator may have written a
    prefix or a number there) is left out for the same reason.
    """
    name = " ".join((destination or "").split())
    if not name or any(ch.isdigit() for ch in name):
        return "call"
    return f"call: {name}"[:255]


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


class InboundRoute(Protocol):
    """Where a rented number leads (``ringwell.features.numbers``)."""

    @property
    def org_id(self) -> str: ...

    @property
    def extension(self) -> str | None: ...


Inbound = Callable[[str], Awaitable[InboundRoute | None]]  # E.164 -> the route of a rented number


@dataclass(slots=True)
class _Outbound:
    """What the driver keeps of a call through a trunk: its credit and its timers."""

    charge: CallCharge | None
    costs: dict[str, Any]  # trunk id -> that trunk's buy quote (or None)
    direction: str
    deadline: asyncio.TimerHandle | None = None
    extender: asyncio.TimerHandle | None = None
    trunk_id: str | None = None  # inbound: the trunk it came from


class CallRecorder(Protocol):
    """Where the calls driver reports leg-neutral call events: the CDR writer
    (``features.cdr.service.CdrWriter``), or something forwarding to it. Never blocks, never raises."""

    def opened(self, event: CallOpened) -> None: ...

    def answered(self, event: CallAnswered) -> None: ...

    def closed(self, event: CallClosed) -> None: ...


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


def _requested_cli(request: Request) -> str | None:
    """The caller ID a phone asks for: P-Preferred-Identity, else its From user if it is a number."""
    preferred = request.headers.get("p-preferred-identity")
    if preferred:
        asserted = preferred.partition("sip:")[2].partition("@")[0] or preferred.partition("tel:")[2].partition(">")[0]
        if _NUMBER_RE.fullmatch(asserted):
            return asserted
    try:
        uri = request.from_.uri
    except RemoteProtocolError:
        return None
    user = _user_of(uri)
    return user if user and _NUMBER_RE.fullmatch(user) and len(user) >= 7 else None


def _caller_number(request: Request) -> str:
    """The calling number a carrier presents (From user), kept short and printable."""
    try:
        uri = request.from_.uri
    except RemoteProtocolError:
        return "anonymous"
    user = _user_of(uri)
    if not user:
        return "anonymous"
    cleaned = "".join(ch for ch in user if ch.isprintable() and ch not in '"\\<>')[:32]
    if cleaned.isdigit() and len(cleaned) >= 10:
        cleaned = "+" + cleaned
    return cleaned or "anonymous"


def _to_user(request: Request) -> str | None:
    try:
        uri = request.to.uri
    except RemoteProtocolError:
        return None
    user = _user_of(uri)
    return user if user and len(user) <= MAX_DIALLED else None


def _e164_from_trunk(dialled: str, trunk: TrunkRoute) -> str | None:
    """The E.164 number a carrier called: its tech prefix stripped, '+' restored."""
    digits = dialled
    if trunk.tech_prefix and digits.startswith(trunk.tech_prefix):
        digits = digits[len(trunk.tech_prefix):]
    digits = digits.strip()
    if digits.startswith("+"):
        body = digits[1:]
    elif digits.startswith("00"):
        body = digits[2:]
    else:
        body = digits
    if not body.isdigit() or not 6 <= len(body) <= 15:
        return None
    if trunk.number_format == "national" and not digits.startswith(("+", "00")):
        return None  # a national number needs the trunk's country: not known yet
    return "+" + body


def _user_of(uri: object) -> str | None:
    """The user part of a SIP URI, or a tel: URI's number."""
    if isinstance(uri, SipUri):
        return uri.user_unescaped or None
    if isinstance(uri, TelUri):
        return uri.number or None
    return None


def dialled_of(request: Request) -> str | None:
    user = _user_of(request.uri)
    return user if user and len(user) <= MAX_DIALLED else None


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
        cdr: CallRecorder,
        config: CallConfig,
        node: str | None = None,
        outbound: OutboundService | None = None,
        inbound: Inbound | None = None,
        counters: Any = None,
        webrtc: LegFactory | None = None,
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
        self._settling: set[asyncio.Task[Any]] = set()
        self.stats = {"started": 0, "ended": 0, "rejected": 0}
        self.outbound = outbound
        self.inbound = inbound
        self.counters = counters  # ringwell.features.fraud.counters.CallCounters
        self._network: dict[str, _Outbound] = {}  # calls to or from the phone network
        self._own: dict[tuple[str, str], Callable[[Request, object], None]] = {}  # dialogs Ringwell placed
        if outbound is not None:
            outbound.channels = self.channels
        # Legs whose far end is a browser (ringwell.pbx.browser_legs); None: no WebRTC at all.
        self.browsers = BrowserLegs(self, webrtc) if webrtc is not None else None
        # Voicemail boxes answering what nobody else does (ringwell.pbx.voicemail_box); set by the
        # composition root, None: unanswered calls just fail.
        self.voicemail: VoicemailBoxes | None = None
        # Live call recording (ringwell.pbx.recording); set by the composition root, None: never.
        self.recordings: CallRecordings | None = None
        # Music on hold (ringwell.pbx.on_hold); set by the composition root, None: the phones' own.
        self.hold_music: HoldMusic | None = None
        self._codecs: dict[str, str | None] = {}  # the answered calls' codecs
        self._parties: dict[str, CallParties] = {}  # who is on each call, for the recording policy

    # -- from the endpoint -----------------------------------------------------------------
    def invite(self, request: Request, txn: object, source: Source, caller: CredentialRecord) -> None:
        """An authenticated INVITE that starts a new call."""
        self._spawn(self._start(request, txn, source, caller), request, txn, f"a call from {caller.username}")

    def _reject(self, request: Request, txn: object, status: int, reason: str) -> None:
        self.stats["rejected"] += 1
        self.sip.respond(txn, make_response(request, status, reason))

    def _opened(self, call_id: str, request: Request, caller: CredentialRecord, dialled: str, now: Instant,
                direction: str = "internal") -> None:
        self.cdr.opened(CallOpened(
            id=call_id, org_id=caller.org_id, sip_call_id=request.call_id[:255], direction=direction,
            caller_user_id=caller.user_id, caller_extension=caller.extension, caller_number=caller.extension,
            callee_number=dialled, started_at=_utc(now.wall), node=self.node,
        ))

    def _closed_early(self, call_id: str, now: Instant, status: int, reason: str, disposition: str = "failed",
                      callee: Callee | None = None, hangup_by: str = "system",
                      billing: CallBilling | None = None, direction: str = "internal") -> None:
        self.cdr.closed(CallClosed(
            id=call_id, callee_user_id=callee.user_id if callee else None,
            callee_extension=callee.extension if callee else None, answered_at=None, ended_at=_utc(now.wall),
            ring_seconds=0.0, talk_seconds=0.0, disposition=disposition, hangup_by=hangup_by, sip_status=status,
            sip_reason=reason[:255], codec=None, media=None, billing=billing, direction=direction,
        ))
        if self.browsers is not None:
            self.browsers.drop(call_id)

    def _spawn(self, start: Coroutine[Any, Any, None], request: Request, txn: object, what: str) -> None:
        """Start a call in a task; a bug answers 500 and is logged, never silently lost."""

        async def safely() -> None:
            try:
                await start
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not start %s", what)
                self._reject(request, txn, 500, "Server Internal Error")

        task = asyncio.create_task(safely())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, request: Request, txn: object, source: Source, caller: CredentialRecord) -> None:
        call_id = new_id()
        try:
            await self._start_call(request, txn, source, caller, call_id)
        finally:
            if self.browsers is not None and call_id not in self.calls:
                self.browsers.drop(call_id)  # the call never started: its browser leg goes too

    async def _start_call(self, request: Request, txn: object, source: Source, caller: CredentialRecord,
                          call_id: str) -> None:
        now = _now()
        dialled = dialled_of(request)
        if dialled is None:
            self._reject(request, txn, 404, "Not Found")
            return
        self._opened(call_id, request, caller, dialled, now)
        if self.browsers is not None:
            refused = await self.browsers.accept_call(call_id, request, source.transport)
            if refused is not None:
                self._reject(request, txn, refused.status_hint, str(refused)[:120])
                self._closed_early(call_id, _now(), refused.status_hint, str(refused))
                return
        if dialled == "*97" and self.voicemail is not None:
            # The caller's own mailbox (ringwell.pbx.voicemail_menu): no device rings, the box answers.
            try:
                session = self.relay.create(call_id)
            except PortExhausted:
                self._reject(request, txn, 503, "No Free Media Ports")
                self._closed_early(call_id, _now(), 503, "No free media ports")
                return
            box = self.voicemail.target(Mailbox(caller.org_id, caller.user_id, caller.extension,
                                                mode=BoxMode.ACCESS))
            self._launch(request, txn, source, Party(caller.user_id, caller.extension, caller.extension,
                                                     _display(request)),
                         Party(caller.user_id, caller.extension, dialled), lambda: [], call_id, session, _now(),
                         60.0, fallback=box)
            return
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
        if callee is None and self.outbound is not None and _NUMBER_RE.fullmatch(dialled):
            await self._start_outbound(request, txn, source, caller, dialled, call_id)
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
        self._begin(request, txn, source, caller, callee, dialled, call_id, session, now)

    def _begin(self, request: Request, txn: object, source: Source, caller: CredentialRecord, callee: Callee,
               dialled: str, call_id: str, session: MediaSession, now: Instant) -> None:
        party = Party(caller.user_id, caller.extension, caller.extension, _display(request))
        self._begin_to(request, txn, source, party, callee, dialled, call_id, session, now, caller.org_id)

    def _begin_to(self, request: Request, txn: object, source: Source, caller: Party, callee: Callee, dialled: str,
                  call_id: str, session: MediaSession, now: Instant, org_id: str) -> None:
        """Ring every registered device of a user; their mailbox answers what they do not (when it
        is on). Do-not-disturb rings no device: the mailbox answers at once, or, without one, the
        call is refused 486 Busy Here."""

        def targets() -> list[Target]:
            if callee.dnd:
                return []  # the call falls back to the mailbox straight away
            return [
                Target(binding.contact, binding.source, binding.user_agent)
                for credential_id in callee.credential_ids
                for binding in self.registrar.lookup(credential_id, now.wall)
            ]

        fallback = (self.voicemail.target(Mailbox(org_id, callee.user_id, callee.extension))
                    if self.voicemail is not None and callee.voicemail else None)
        if callee.dnd and fallback is None:
            record = self._network.get(call_id)
            session.close()
            self._reject(request, txn, 486, "Busy Here")
            self._abandon_network(call_id)
            self._closed_early(call_id, now, 486, "Do not disturb", "busy", callee, "callee",
                               billing=CallBilling(trunk_id=record.trunk_id)
                               if record is not None and record.trunk_id else None,
                               direction=record.direction if record is not None else "internal")
            return
        self._launch(request, txn, source, caller, Party(callee.user_id, callee.extension, dialled), targets,
                     call_id, session, now, float(callee.ring_timeout), callee_record=callee, fallback=fallback,
                     org_id=org_id, number=dialled if call_id in self._network else None)

    # -- calls to and from the phone network ------------------------------------------------
    async def _start_outbound(self, request: Request, txn: object, source: Source, caller: CredentialRecord,
                              dialled: str, call_id: str) -> None:
        """A call to a number outside the org: authorize (caps, rate, credit), then the trunks in turn."""
        assert self.outbound is not None
        now = _now()
        verdict = await self.outbound.authorize_call(
            org_id=caller.org_id, user_id=caller.user_id, dialled=dialled, requested_cli=_requested_cli(request),
            key=call_id, now=_utc(now.wall), mono=now.mono,
        )
        now = _now()
        if isinstance(verdict, Refusal):
            self._reject(request, txn, verdict.status, verdict.reason)
            self._closed_early(call_id, now, verdict.status, verdict.text, verdict.disposition,
                               direction="outbound")
            return
        try:
            self._place_outbound(request, txn, source, caller, dialled, call_id, verdict, now)
        except Exception:
            # Whatever broke, nothing of the authorization may stay behind: the counted call, the
            # reservation (settled uncharged), the ports, the open record.
            log.exception("outbound call %s could not start", call_id)
            media = self._media.pop(call_id, None)
            if media is not None:
                media.session.close()
            if call_id not in self.calls:
                if call_id in self._network:
                    self._abandon_network(call_id)
                else:
                    self._end_unplaced(verdict.charge)
                if self.sip.pending(txn):
                    self._reject(request, txn, 500, "Server Internal Error")
                self._closed_early(call_id, _now(), 500, "Call could not start", direction="outbound")

    def _end_unplaced(self, charge: CallCharge) -> None:
        """An authorized call that never got as far as the calls map: uncount it, free its credit."""
        if self.counters is not None:
            self.counters.ended(charge.key)
        self._settle_later(charge, 0.0, None, "call not placed")

    def _place_outbound(self, request: Request, txn: object, source: Source, caller: CredentialRecord,
                        dialled: str, call_id: str, verdict: Authorized, now: Instant) -> None:
        charge = verdict.charge
        if not self.sip.pending(txn):  # CANCELled while authorizing
            self._end_unplaced(charge)
            self._closed_early(call_id, now, 487, "Caller cancelled", "cancelled", hangup_by="caller",
                               direction="outbound")
            return
        try:
            session = self.relay.create(call_id)
        except PortExhausted:
            self._end_unplaced(charge)
            self._reject(request, txn, 503, "No Free Media Ports")
            self._closed_early(call_id, now, 503, "No free media ports", direction="outbound")
            return
        self._media[call_id] = _Media(session)  # released by the caller of this method if anything fails
        targets = [
            Target(f"sip:{choice.dial}@{choice.trunk.uri_host()}", choice.trunk.flow, choice.trunk.name,
                   trunk_id=choice.trunk.id,
                   auth=DigestLogin(choice.trunk.username, choice.trunk.password)
                   if choice.trunk.username and choice.trunk.password else None,
                   from_user=choice.trunk.caller_id(verdict.caller_id) or "anonymous", to_user=choice.dial)
            for choice in verdict.trunks
        ]
        callee = Party(None, None, verdict.e164)
        party = Party(caller.user_id, caller.extension, verdict.caller_id or caller.extension, _display(request))
        self._network[call_id] = _Outbound(charge, {c.trunk.id: c.cost for c in verdict.trunks}, "outbound")
        if verdict.emergency:
            log.warning("emergency call %s from %s (org %s) to %s", call_id, caller.username, caller.org_id,
                        dialled)
        self._media.pop(call_id, None)  # _launch owns the session from here (and cleans up after itself)
        self._launch(request, txn, source, party, callee, lambda: targets, call_id, session, now,
                     OUTBOUND_RING_TIMEOUT, sequential=True, emergency=verdict.emergency, org_id=caller.org_id,
                     number=verdict.caller_id)

    def from_trunk(self, request: Request, txn: object, source: Source, trunk: TrunkRoute) -> None:
        """An INVITE from a carrier trunk (recognised by its source): ring whoever the number is routed to."""
        self._spawn(self._from_trunk(request, txn, source, trunk), request, txn, f"a call from trunk {trunk.name}")

    async def _from_trunk(self, request: Request, txn: object, source: Source, trunk: TrunkRoute) -> None:
        dialled = dialled_of(request)
        if dialled is None or dialled == trunk.username:
            # A carrier calling a registration sends the INVITE to our Contact: the number is in To.
            dialled = _to_user(request)
        number = _e164_from_trunk(dialled, trunk) if dialled else None
        route = await self.inbound(number) if number is not None and self.inbound is not None else None
        if route is None or route.extension is None:
            # Not ours (or not routed): nothing is recorded for any organization.
            self._reject(request, txn, 404, "Not Found")
            return
        now = _now()
        call_id = new_id()
        caller_number = _caller_number(request)
        self.cdr.opened(CallOpened(
            id=call_id, org_id=route.org_id, sip_call_id=request.call_id[:255], direction="inbound",
            caller_user_id=None, caller_extension=None, caller_number=caller_number, callee_number=number or "",
            started_at=_utc(now.wall), node=self.node,
        ))
        record = _Outbound(None, {}, "inbound", trunk_id=trunk.id)
        billing = CallBilling(trunk_id=trunk.id)
        callee = await self.directory(route.org_id, route.extension)
        now = _now()
        if not self.sip.pending(txn):
            self._closed_early(call_id, now, 487, "Caller cancelled", "cancelled", callee, "caller",
                               billing=billing, direction="inbound")
            return
        if callee is None:
            self._reject(request, txn, 404, "Not Found")
            self._closed_early(call_id, now, 404, "Routed extension does not exist", billing=billing,
                               direction="inbound")
            return
        try:
            session = self.relay.create(call_id)
        except PortExhausted:
            self._reject(request, txn, 503, "No Free Media Ports")
            self._closed_early(call_id, now, 503, "No free media ports", callee=callee, billing=billing,
                               direction="inbound")
            return
        self._network[call_id] = record
        self._begin_to(request, txn, source, Party(None, None, caller_number, _display(request)), callee, number or "",
                       call_id, session, now, route.org_id)

    def _launch(self, request: Request, txn: object, source: Source, caller: Party, callee: Party,
                targets: Callable[[], list[Target]], call_id: str, session: MediaSession, now: Instant,
                ring_timeout: float,
                *, sequential: bool = False, emergency: bool = False, callee_record: Callee | None = None,
                fallback: Target | None = None, org_id: str | None = None, number: str | None = None) -> None:
        """Build the call and start it; nothing stays behind (ports, maps, record) if that fails."""
        media = _Media(session)
        try:
            call = Call(
                call_id=call_id, invite=request, txn=txn, source=source, caller=caller, callee=callee,
                targets=targets(), media=media, config=self.config, ring_timeout=ring_timeout, now=now,
                sequential=sequential, emergency=emergency, fallback=fallback,
            )
        except RemoteProtocolError as exc:
            session.close()
            self._reject(request, txn, exc.status_hint, str(exc))
            self._abandon_network(call_id)
            self._closed_early(call_id, now, exc.status_hint, str(exc), callee=callee_record,
                               direction=self._direction(call_id))
            return
        except Exception:
            log.exception("call %s could not start", call_id)
            session.close()
            self._reject(request, txn, 500, "Server Internal Error")
            self._abandon_network(call_id)
            self._closed_early(call_id, _now(), 500, "Call could not start", callee=callee_record,
                               direction=self._direction(call_id))
            return
        self.calls[call_id] = call
        self._media[call_id] = media
        if org_id is not None:
            self._parties[call_id] = CallParties(org_id, self._direction(call_id), caller.user_id, callee.user_id,
                                                 number)
        self._by_invite[txn] = call
        self.stats["started"] += 1
        self.execute(call, call.start(now))

    def _direction(self, call_id: str) -> str:
        record = self._network.get(call_id)
        return record.direction if record is not None else "internal"

    def _abandon_network(self, call_id: str) -> None:
        record = self._network.pop(call_id, None)
        if record is None:
            return
        if self.counters is not None:
            self.counters.ended(call_id)
        if record.charge is not None and self.outbound is not None:
            self._settle_later(record.charge, 0.0, None, "call could not start")

    def _settle_later(self, charge: CallCharge, talk: float, cost: Any, description: str,
                      then: Callable[[tuple[int, int, int | None]], None] | None = None) -> None:
        assert self.outbound is not None
        outbound = self.outbound

        async def settle() -> None:
            result: tuple[int, int, int | None] = (0, 0, None)
            for attempt, pause in enumerate(SETTLE_RETRIES):
                try:
                    result = await outbound.settle(charge, talk, cost, description)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    if attempt == len(SETTLE_RETRIES) - 1:
                        log.exception("could not settle the charge of call %s; its reservation stays until restart "
                                      "and the call is recorded uncharged", charge.key)
                    else:
                        log.warning("settling call %s failed; retrying in %.1f s", charge.key, pause, exc_info=True)
                        await asyncio.sleep(pause)
            if then is not None:
                then(result)

        task = asyncio.create_task(settle())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    def channels(self) -> dict[str, int]:
        """Calls ringing or up per trunk now (for trunks' channel limits)."""
        busy: dict[str, int] = {}
        for call_id, record in self._network.items():
            call = self.calls.get(call_id)
            trunk = call.trunk_id if call is not None and record.direction == "outbound" else record.trunk_id
            if trunk is not None:
                busy[trunk] = busy.get(trunk, 0) + 1
        return busy

    # -- credit while an outbound call is up -----------------------------------------------
    def _arm_credit(self, call: Call) -> None:
        record = self._network.get(call.id)
        if record is None or record.charge is None or record.charge.unlimited or call.answered is None:
            return
        loop = asyncio.get_running_loop()
        for handle in (record.deadline, record.extender):
            if handle is not None:
                handle.cancel()
        left = call.answered.mono + record.charge.granted - time.monotonic()
        record.deadline = loop.call_later(max(0.0, left), self._credit_out, call)
        margin = min(CREDIT_MARGIN, record.charge.granted / 4)
        record.extender = loop.call_later(max(0.0, left - margin), self._extend_credit, call)

    def _extend_credit(self, call: Call) -> None:
        record = self._network.get(call.id)
        if record is None or record.charge is None or call.over or self.outbound is None:
            return
        outbound, charge = self.outbound, record.charge

        async def extend() -> None:
            try:
                granted = await outbound.extend(charge)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("call %s: reserving more credit failed", call.id)
                granted = False
            if granted and not call.over:
                self._arm_credit(call)

        task = asyncio.create_task(extend())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _credit_out(self, call: Call) -> None:
        record = self._network.get(call.id)
        if record is not None:
            record.deadline = None
        log.info("call %s: credit exhausted, hanging up", call.id)
        self.execute(call, call.credit_exhausted(_now()))

    def claim(self, key: tuple[str, str], handler: Callable[[Request, object], None]) -> None:
        """Deliver the in-dialog requests of a dialog Ringwell itself placed (``pbx.originate``)."""
        self._own[key] = handler

    def release(self, key: tuple[str, str]) -> None:
        self._own.pop(key, None)

    def in_dialog(self, request: Request, txn: object) -> bool:
        """An in-dialog request; False when no dialog matches (the endpoint answers 481)."""
        tag = request.to.tag
        if tag is None:
            return False
        own = self._own.get((request.call_id, tag))
        if own is not None:
            own(request, txn)
            return True
        found = self._dialogs.get((request.call_id, tag))
        if found is None:
            return False
        call, leg_id = found
        if self.browsers is not None:
            self.browsers.in_dialog(request)
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
            if self.voicemail is not None and self.voicemail.intercept(call, action):
                return
            if self.browsers is not None and self.browsers.intercept(call, action):
                return
            self.send(call, action)
        elif isinstance(action, Respond):
            if self.voicemail is not None and self.voicemail.swallow(action):
                return
            if self.browsers is not None:
                self.browsers.respond(call, action)
            self.sip.respond(action.txn, action.response)
        elif isinstance(action, Transmit):
            if self.voicemail is not None and self.voicemail.skip(action):
                return
            if self.browsers is not None and self.browsers.skip(action):
                return
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
            if call.id in self._network:
                self._arm_credit(call)
            self._codecs[call.id] = action.codec
            parties = self._parties.get(call.id)
            media = self._media.get(call.id)
            if (self.recordings is not None and parties is not None and media is not None
                    and call.winner is not call.fallback_leg):
                self.recordings.answered(call.id, media.session, action.codec, parties)
        elif isinstance(action, Held):
            parties = self._parties.get(call.id)
            media = self._media.get(call.id)
            if self.hold_music is not None and parties is not None and media is not None:
                self.hold_music.changed(call.id, parties.org_id, media.session, self._codecs.get(call.id),
                                        action.side, action.on)
        elif isinstance(action, Ended):
            self._ended(call, action)

    def send(self, call: Call, action: SendRequest) -> None:
        """Send a leg's request; its responses (or failure) are fed back to the call."""
        leg_id, request = action.leg, action.request
        browsers = self.browsers

        def responded(response: Response) -> None:
            if browsers is not None and browsers.responded(call, leg_id, request, response):
                return
            self._safely(call, lambda: call.response(leg_id, request, response, _now()))

        self.sip.send_request(request, action.flow, responded,
                              lambda: self._safely(call, lambda: call.request_failed(leg_id, request, _now())))

    def feed(self, call: Call, step: Callable[[], list[Action]]) -> None:
        """Run one step of a call and execute its actions (for helpers such as ``BrowserLegs``)."""
        self._safely(call, step)

    @staticmethod
    def now() -> Instant:
        return _now()

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
        self._parties.pop(call.id, None)
        self._codecs.pop(call.id, None)
        if self.hold_music is not None:
            self.hold_music.ended(call.id)
        if self.recordings is not None:
            self.recordings.ended(call.id)  # before the session closes: what is buffered is written
        media = self._media.pop(call.id, None)
        summary = media.session.summary() if media is not None else None
        if media is not None:
            media.session.close()
        if self.browsers is not None:
            self.browsers.summarize(call, summary)
            self.browsers.drop(call.id)
        closed = CallClosed(
            id=call.id, callee_user_id=draft.callee_user_id, callee_extension=draft.callee_extension,
            answered_at=_utc(draft.answered_at) if draft.answered_at is not None else None,
            ended_at=_utc(draft.ended_at), ring_seconds=draft.ring_seconds, talk_seconds=draft.talk_seconds,
            disposition=draft.disposition, hangup_by=draft.hangup_by, sip_status=draft.sip_status,
            sip_reason=(draft.sip_reason or "")[:255] or None, codec=draft.codec, media=summary,
        )
        record = self._network.pop(call.id, None)
        if record is None:
            self.cdr.closed(closed)
        else:
            self._close_network(call, record, closed, draft.trunk_id)
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

    def _close_network(self, call: Call, record: _Outbound, closed: CallClosed, trunk_id: str | None) -> None:
        for handle in (record.deadline, record.extender):
            if handle is not None:
                handle.cancel()
        if self.counters is not None and record.direction == "outbound":
            self.counters.ended(call.id)
        charge = record.charge
        if record.direction == "inbound" or charge is None or self.outbound is None:
            billing = CallBilling(trunk_id=record.trunk_id or trunk_id)
            self.cdr.closed(dataclasses.replace(closed, billing=billing, direction=record.direction))
            return
        cost = record.costs.get(trunk_id) if trunk_id is not None else None
        rate = charge.rate

        def write(result: tuple[int, int, int | None]) -> None:
            billable, amount, carrier = result
            billing = CallBilling(
                trunk_id=trunk_id, rate_deck=charge.deck, rate_prefix=rate.prefix if rate else None,
                price_micros=rate.price_micros if rate else None, billable_seconds=billable, charge_minor=amount,
                cost_minor=carrier, currency=charge.currency,
            )
            self.cdr.closed(dataclasses.replace(closed, billing=billing, direction="outbound"))

        talk = closed.talk_seconds if closed.answered_at is not None else 0.0
        self._settle_later(charge, talk, cost, charge_description(rate.description if rate else None), write)

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
        if self.browsers is not None:
            await self.browsers.stop()
        if self.voicemail is not None:
            await self.voicemail.stop()
        if self.recordings is not None:
            await self.recordings.stop()
        if self.hold_music is not None:
            await self.hold_music.stop()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._timer_names.clear()
        if self._settling:  # charges of the calls just hung up are written before the ledger closes
            await asyncio.gather(*self._settling, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.sleep(0.05)  # let the last BYEs leave the sockets
