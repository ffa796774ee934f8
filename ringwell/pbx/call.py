"""The B2BUA core: one call = an inbound leg and one outbound leg per ringing device.

Theory of operation (sans-IO, like the transactions): the driver feeds a ``Call`` with what
happened — a response to a request a leg sent, an in-dialog request, a CANCEL, a timer — each
with an ``Instant`` (wall clock for records, monotonic clock for durations). The call answers
with actions: ``SendRequest`` (through a new client transaction), ``Respond`` (through a
server transaction), ``Transmit`` (no transaction: ACK for a 2xx, 2xx retransmissions),
``SetTimer``/``ClearTimer``, ``DialogCreated``, ``Answered`` and finally ``Ended`` with the
call's record.

Legs never talk to each other. What happens on a leg is first handled for that leg alone
(its transaction answers, its dialog, the ACK of its 2xx, its CSeq and session timer) and then
reported as a leg-neutral call event — ``Progress``, ``Connected``, ``Refused``,
``CallerCancelled``, ``HungUp``, ``OfferReceived``, ``OfferAnswered``, ``InfoReceived`` — to
``Call._on()``, which decides and commands the other legs (relay a 180, pick the winner and
cancel the rest, hang up, re-anchor and pass on an offer). Every message a leg sends is built
from that leg's own dialog, so no Via, Contact, Call-ID or tag of one leg leaks into the other
(topology hiding). Media goes through the ``MediaSeam``: side "a" faces the caller, side "b"
the callee.

RFCs: 3261 (§13 INVITE, §9 CANCEL, §13.3.1.4 2xx retransmission, §15 BYE), 3326 (Reason),
3311 (UPDATE), 3264 (offer/answer through ``ringwell.sip.sdp``), 4028 (session timers).
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ringwell.sip.dialog import Dialog, ViaSpec, new_branch, new_call_id
from ringwell.sip.digest import answer_challenge, with_credentials
from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import Headers, Request, Response
from ringwell.sip.sdp import (
    NoCommonCodec,
    Origin,
    SessionDescription,
    anchor,
    audio_target,
    direction,
    first_codec,
    parse_sdp,
    restrict_codecs,
)
from ringwell.sip.transaction import TimerValues, make_cancel
from ringwell.sip.uas import make_response, new_tag
from ringwell.transport.source import Source

__all__ = [
    "Action",
    "Answered",
    "Call",
    "CallConfig",
    "CallEvent",
    "CallRecordDraft",
    "CallerCancelled",
    "ClearTimer",
    "Connected",
    "DialogCreated",
    "DigestLogin",
    "Ended",
    "Held",
    "HungUp",
    "InfoReceived",
    "Instant",
    "MediaSeam",
    "OfferAnswered",
    "OfferReceived",
    "Party",
    "Progress",
    "Refused",
    "Respond",
    "SendRequest",
    "SetTimer",
    "Target",
    "Transmit",
]

CODECS = frozenset({"PCMU", "PCMA", "telephone-event"})
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
LOCAL_TRANSPORT = "local"  # the flow of a leg Ringwell answers itself, in-process (a voicemail box)
# What a relayed REFER/NOTIFY keeps of the request (RFC 3515 §2.1, RFC 6665 §8.2.3, RFC 3892).
_RELAYED_HEADERS = ("Refer-To", "Referred-By", "Event", "Subscription-State")
DEFAULT_TIMERS = TimerValues()
COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'


# -- inputs and outputs -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Instant:
    wall: float  # seconds since the epoch, UTC
    mono: float  # a monotonic clock, for durations


@dataclass(frozen=True, slots=True)
class SendRequest:
    leg: str
    request: Request
    flow: Source


@dataclass(frozen=True, slots=True)
class Respond:
    txn: object  # the driver's handle on a server transaction
    response: Response


@dataclass(frozen=True, slots=True)
class Transmit:
    flow: Source
    message: Request | Response


@dataclass(frozen=True, slots=True)
class SetTimer:
    name: str
    delay: float


@dataclass(frozen=True, slots=True)
class ClearTimer:
    name: str


@dataclass(frozen=True, slots=True)
class DialogCreated:
    key: tuple[str, str]
    leg: str


@dataclass(frozen=True, slots=True)
class CallRecordDraft:
    """What the call knows when it ends; the driver turns it into a call record."""

    answered_at: float | None
    ended_at: float
    ring_seconds: float
    talk_seconds: float
    disposition: str
    hangup_by: str
    sip_status: int | None
    sip_reason: str | None
    codec: str | None
    callee_user_id: str | None
    callee_extension: str | None
    trunk_id: str | None = None  # the carrier trunk that answered (or was tried last)
    attempts: tuple[str, ...] = ()  # outbound through trunks: what each trunk tried answered


@dataclass(frozen=True, slots=True)
class Ended:
    record: CallRecordDraft


@dataclass(frozen=True, slots=True)
class Held:
    """A relayed offer put one party on hold (``on``) or took the call off hold: ``side`` is the
    media side (``a`` the caller, ``b`` the callee) of the party that waits (for music on hold)."""

    side: str
    on: bool


@dataclass(frozen=True, slots=True)
class Answered:
    """The call was answered (recorded at once, so a crash still leaves the answer time)."""

    wall: float
    codec: str | None


Action = SendRequest | Respond | Transmit | SetTimer | ClearTimer | DialogCreated | Ended | Answered | Held


class MediaSeam(Protocol):
    """The call's view of its media session (``ringwell.media.relay.MediaSession``)."""

    def local_port(self, side: str) -> int: ...

    def set_remote(self, side: str, host: str, port: int, rtcp_port: int, signalling_host: str | None) -> None: ...

    def arm(self) -> None: ...

    def disarm(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Party:
    user_id: str | None
    extension: str | None
    number: str | None
    display: str | None = None


@dataclass(frozen=True, slots=True)
class DigestLogin:
    """Credentials to answer a carrier's 401/407 (RFC 3261 §22.2)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a leg goes: a registered device of the callee, or a carrier trunk.

    ``contact`` is the Request-URI. A trunk target also names the users for From and To (the
    caller ID and the dialled number in the trunk's format) and may carry a login.
    """

    contact: str
    flow: Source
    label: str = ""
    trunk_id: str | None = None
    auth: DigestLogin | None = None
    from_user: str | None = None
    to_user: str | None = None


@dataclass(frozen=True, slots=True)
class CallConfig:
    host: str  # the address Ringwell gives in Contact and SDP
    via_for: Callable[[Source], ViaSpec]
    contact_for: Callable[[Source], str]
    session_expires: int = 1800
    min_se: int = 90
    timers: TimerValues = DEFAULT_TIMERS
    trunk_timeout: float = 5.0  # a trunk that does not answer at all (not even 100) within this: next trunk


class LegState(enum.Enum):
    CALLING = "calling"  # INVITE sent, nothing back yet
    EARLY = "early"  # a provisional response (or, inbound, we sent one)
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(slots=True)
class _Pending:
    """An offer or request relayed from one leg to the other, waiting for the far answer."""

    from_leg: str
    txn: object
    method: str
    request: Request
    offer: SessionDescription | None = None  # applied to the media only once the far leg accepts it
    cancelled: bool = False  # the near side CANCELled its request (already answered 487)


@dataclass(slots=True)
class Leg:
    id: str
    inbound: bool
    flow: Source
    invite: Request
    origin: Origin
    state: LegState = LegState.CALLING
    dialog: Dialog | None = None
    ack: Request | None = None  # outbound: the ACK for the 2xx, resent on 2xx retransmissions
    last_2xx: Response | None = None  # inbound: our 2xx, retransmitted until the ACK
    retx_interval: float = 0.0
    retx_elapsed: float = 0.0
    last_sdp: SessionDescription | None = None  # what we last offered/answered on this leg
    remote_sdp: SessionDescription | None = None
    provisional: bool = False
    cancel_reason: str | None = None  # outbound: CANCEL once a provisional arrives
    cancelled: bool = False
    final_status: int | None = None
    final_reason: str = ""
    outgoing: _Pending | None = None  # a re-INVITE/UPDATE we sent on this leg
    session_expires: int = 0
    we_refresh: bool = True
    allows_update: bool = False
    target: Target | None = None
    byes_sent: int = 0
    authenticated: bool = False  # outbound: the INVITE was resent with credentials once

    @property
    def ended(self) -> bool:
        return self.state is LegState.TERMINATED


# -- call events: what one leg reports, in terms every other leg understands -----------------
@dataclass(frozen=True, slots=True)
class Progress:
    """A ringing device sent a provisional response (180, or 183 with early media)."""

    leg: Leg
    response: Response


@dataclass(frozen=True, slots=True)
class Connected:
    """A device answered: its dialog exists and its 2xx is ACKed."""

    leg: Leg
    response: Response


@dataclass(frozen=True, slots=True)
class Refused:
    """A device gave a final non-2xx answer (or could not be reached)."""

    leg: Leg


@dataclass(frozen=True, slots=True)
class CallerCancelled:
    reason: str | None


@dataclass(frozen=True, slots=True)
class HungUp:
    """A leg sent BYE (answered 200 by that leg)."""

    leg: Leg
    reason: str | None


@dataclass(frozen=True, slots=True)
class OfferReceived:
    """A re-INVITE or UPDATE with a new SDP offer arrived on a leg."""

    leg: Leg
    request: Request
    txn: object
    sdp: SessionDescription


@dataclass(frozen=True, slots=True)
class OfferAnswered:
    """The far leg gave its final answer to a request relayed to it for ``pending.from_leg``."""

    leg: Leg
    pending: _Pending
    response: Response


@dataclass(frozen=True, slots=True)
class InfoReceived:
    leg: Leg
    request: Request
    txn: object


CallEvent = Progress | Connected | Refused | CallerCancelled | HungUp | OfferReceived | OfferAnswered | InfoReceived


def _sdp_of(message: Request | Response) -> SessionDescription | None:
    if not message.body:
        return None
    content_type = (message.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        return None
    return parse_sdp(message.body)


def _session_expires(message: Request | Response) -> tuple[int, str | None] | None:
    value = message.headers.get("session-expires")
    if not value:
        return None
    number, _, params = value.partition(";")
    try:
        seconds = int(number.strip())
    except ValueError:
        return None
    refresher = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "refresher":
            refresher = val.strip().lower()
    return seconds, refresher


def _fails_over(status: int) -> bool:
    """A trunk's answer after which the next trunk is tried (issue 4: 5xx, 408, timeouts, and a
    carrier that refused our credentials)."""
    return status in (401, 407, 408) or 500 <= status < 600


def _allows(message: Request | Response, method: str) -> bool:
    return any(m.strip().upper() == method for m in message.headers.values("allow"))


def _supports(message: Request | Response, option: str) -> bool:
    return any(o.strip().lower() == option for o in message.headers.values("supported"))


class Call:
    """A call from an authenticated user to the devices of another."""

    def __init__(
        self,
        *,
        call_id: str,
        invite: Request,
        txn: object,
        source: Source,
        caller: Party,
        callee: Party,
        targets: list[Target],
        media: MediaSeam,
        config: CallConfig,
        ring_timeout: float,
        now: Instant,
        sequential: bool = False,
        emergency: bool = False,
        fallback: Target | None = None,
    ) -> None:
        self.id = call_id
        self.config = config
        self.media = media
        self.caller = caller
        self.callee = callee
        self.ring_timeout = ring_timeout
        self.started = now
        self.answered: Instant | None = None
        self.ended: Instant | None = None
        self.txn = txn  # the inbound INVITE's server transaction
        self.offer = restrict_codecs(self._parse_offer(invite), CODECS)
        self.inbound = Leg("a", True, source, invite, self._origin())
        self.inbound.dialog = Dialog.uas(invite, new_tag())
        self.forks: dict[str, Leg] = {}
        self._targets = targets
        self.winner: Leg | None = None
        self.hangup_by = ""
        self.status: int | None = None
        self.reason: str | None = None
        self.disposition = ""
        self.codec: str | None = None
        self._pending: dict[str, _Pending] = {}  # by the branch of the relayed request
        self._relayed_180 = False
        # Trunks are tried one after the other (failover); devices of a user ring together.
        self._sequential = sequential
        self.emergency = emergency  # an emergency call tries every trunk unless someone declined
        self._next_target = 0
        self.attempts: list[str] = []
        # Where a call nobody answers goes (the callee's voicemail): rung once, after the devices
        # refused, did not answer in time, or when none is registered.
        self._fallback = fallback
        self.fallback_leg: Leg | None = None

    @staticmethod
    def _parse_offer(invite: Request) -> SessionDescription:
        sdp = _sdp_of(invite)
        if sdp is None:
            raise RemoteProtocolError("An INVITE without an SDP offer is not supported", 488)
        return sdp

    def _origin(self) -> Origin:
        return Origin("ringwell", str(secrets.randbelow(2**62)), 1, self.config.host)

    # -- helpers ---------------------------------------------------------------------------
    def _anchored(self, leg: Leg, sdp: SessionDescription, *, bump: bool = True) -> bytes:
        side = "a" if leg.inbound else "b"
        if bump and leg.last_sdp is not None:
            leg.origin = leg.origin.bumped()
        out = anchor(sdp, address=self.config.host, rtp_port=self.media.local_port(side), origin=leg.origin)
        leg.last_sdp = out
        return out.encode()

    def _learn(self, leg: Leg, sdp: SessionDescription | None, signalling: Source) -> None:
        if sdp is None:
            return
        leg.remote_sdp = sdp
        target = audio_target(sdp)
        if target is not None:
            host, port, rtcp = target
            self.media.set_remote("a" if leg.inbound else "b", host, port, rtcp, signalling.host)

    def _respond(self, leg: Leg, request: Request, status: int, reason: str | None = None, *,
                 headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> Response:
        extra = list(headers or [])
        dialog = leg.dialog
        tag = dialog.local_tag if dialog is not None and leg.inbound else None
        if (status >= 180 and request.method == "INVITE") or (status < 300 and request.method == "UPDATE"):
            extra.append(("Contact", self.config.contact_for(leg.flow)))
        response = make_response(request, status, reason, extra, to_tag=tag)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        return response

    def _inbound_reply(self, status: int, reason: str | None = None, *, headers: list[tuple[str, str]] | None = None,
                       body: bytes = b"") -> list[Action]:
        response = self._respond(self.inbound, self.inbound.invite, status, reason, headers=headers, body=body)
        return [Respond(self.txn, response)]

    def _send_in_dialog(self, leg: Leg, method: str, *, extra: list[tuple[str, str]] | None = None,
                        body: bytes = b"", content_type: str = "application/sdp") -> Request:
        assert leg.dialog is not None
        contact = self.config.contact_for(leg.flow) if method in ("INVITE", "UPDATE") else None
        return leg.dialog.request(method, self.config.via_for(leg.flow), contact=contact, extra=extra or (),
                                  body=body, content_type=content_type)

    def _session_headers(self, leg: Leg, *, request: bool) -> list[tuple[str, str]]:
        """Session-Expires for a message Ringwell sends on ``leg`` (RFC 4028 §7, §9).

        ``refresher`` names a role in *this* transaction: in a request Ringwell is its UAC, in a
        response its UAS, whichever leg it is on.
        """
        if not leg.session_expires:
            return []
        us, them = ("uac", "uas") if request else ("uas", "uac")
        refresher = us if leg.we_refresh else them
        headers = [("Session-Expires", f"{leg.session_expires};refresher={refresher}")]
        if not request and leg.inbound and _supports(leg.invite, "timer"):
            headers.append(("Require", "timer"))
        return headers

    def _arm_session_timer(self, leg: Leg) -> list[Action]:
        se = leg.session_expires
        if not se:
            return []
        delay = se / 2 if leg.we_refresh else se - min(32, se / 3)
        return [SetTimer(f"se:{leg.id}", delay)]

    def legs(self) -> list[Leg]:
        return [self.inbound, *self.forks.values()]

    def leg(self, leg_id: str) -> Leg | None:
        return self.inbound if leg_id == "a" else self.forks.get(leg_id)

    @property
    def over(self) -> bool:
        return self.ended is not None

    # -- the call: reacts to one leg's event by commanding the others -----------------------
    def _on(self, event: CallEvent, now: Instant) -> list[Action]:
        if isinstance(event, Progress):
            return self._relay_provisional(event.leg, event.response)
        if isinstance(event, Connected):
            return self._on_connected(event.leg, event.response, now)
        if isinstance(event, Refused):
            return self._on_refused(now)
        if isinstance(event, CallerCancelled):
            return self._on_cancelled(event.reason, now)
        if isinstance(event, HungUp):
            return self._on_hung_up(event.leg, event.reason, now)
        if isinstance(event, OfferReceived):
            return self._relay_offer(event.leg, event.request, event.txn, event.sdp)
        if isinstance(event, OfferAnswered):
            return self._relay_final(event.leg, event.pending, event.response)
        return self._relay_request(event.leg, event.request, event.txn)

    # -- start -----------------------------------------------------------------------------
    def start(self, now: Instant) -> list[Action]:
        actions: list[Action] = [DialogCreated(self.inbound.dialog.key, "a")] if self.inbound.dialog else []
        self._learn(self.inbound, self.offer, self.inbound.flow)
        inbound = self.inbound
        requested = _session_expires(inbound.invite)
        se = self.config.session_expires
        if requested is not None:
            if requested[0] < self.config.min_se:
                actions += self._inbound_reply(422, "Session Interval Too Small",
                                               headers=[("Min-SE", str(self.config.min_se))])
                return actions + self._end(now, "failed", "system", 422, "Session Interval Too Small")
            se = min(se, requested[0])
        inbound.session_expires = se
        inbound.we_refresh = requested is None or requested[1] != "uac" or not _supports(inbound.invite, "timer")
        if not self._targets:
            if self._fallback is not None:
                return actions + self._fall_back()
            actions += self._inbound_reply(480, "Temporarily Unavailable")
            return actions + self._end(now, "failed", "system", 480, "Not registered")
        if self._sequential:
            actions += self._fork_next()
        else:
            for index, target in enumerate(self._targets):
                actions += self._fork(f"b{index}", target)
        actions.append(SetTimer("ring", self.ring_timeout))
        return actions

    def _fall_back(self) -> list[Action]:
        """Ring the fallback target (once); the ring timer guards it like any fork."""
        fallback, self._fallback = self._fallback, None
        assert fallback is not None
        actions = self._fork("vm", fallback)
        self.fallback_leg = self.forks["vm"]
        return [*actions, SetTimer("ring", self.ring_timeout)]

    def _fork_next(self) -> list[Action]:
        index = self._next_target
        self._next_target += 1
        return self._fork(f"b{index}", self._targets[index])

    def _fork(self, leg_id: str, target: Target) -> list[Action]:
        config = self.config
        via = config.via_for(target.flow)
        caller = self.caller
        display = f'"{caller.display}" ' if caller.display else ""
        user = target.from_user or caller.extension or caller.number or "anonymous"
        headers = Headers()
        headers.add("Via", via.header(new_branch()))
        headers.add("Max-Forwards", "70")
        host = f"[{config.host}]" if ":" in config.host else config.host  # an IPv6 reference (RFC 3261 §25)
        headers.add("From", f"{display}<sip:{user}@{host}>;tag={new_tag()}")
        if target.to_user is not None:
            to_host = target.contact.partition("@")[2].split(";")[0] or host
            headers.add("To", f"<sip:{target.to_user}@{to_host}>")
        else:
            headers.add("To", f"<sip:{self.callee.extension or self.callee.number}@{host}>")
        headers.add("Call-ID", new_call_id())
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", config.contact_for(target.flow))
        headers.add("Allow", ALLOW)
        headers.add("Supported", "timer")
        headers.add("Session-Expires", str(config.session_expires))
        headers.add("Min-SE", str(config.min_se))
        headers.add("Content-Type", "application/sdp")
        leg = Leg(leg_id, False, target.flow, Request("INVITE", target.contact, headers), self._origin(),
                  target=target)
        leg.invite.body = self._anchored(leg, self.offer)
        self.forks[leg_id] = leg
        return [SendRequest(leg_id, leg.invite, target.flow), *self._arm_trunk_timer(leg)]

    def _arm_trunk_timer(self, leg: Leg) -> list[Action]:
        if leg.target is None or leg.target.trunk_id is None:
            return []
        return [SetTimer(f"try:{leg.id}", self.config.trunk_timeout)]

    def _trunk_silent(self, leg: Leg, now: Instant) -> list[Action]:
        """A trunk sent nothing we could read (no answer, or only garbage): give up on it now
        rather than after Timer B (32 s); a provisional arriving later still gets our CANCEL."""
        if leg.ended or leg.provisional or self.winner is not None:
            return []
        leg.cancelled = True
        leg.cancel_reason = 'SIP;cause=408;text="No response from trunk"'
        leg.state = LegState.TERMINATED
        leg.final_status = 408
        leg.final_reason = "No response from trunk"
        return self._on(Refused(leg), now)

    # -- responses to requests a leg sent --------------------------------------------------
    def response(self, leg_id: str, request: Request, response: Response, now: Instant) -> list[Action]:
        leg = self.leg(leg_id)
        if leg is None:
            return []
        method = request.method
        if method == "INVITE" and request is leg.invite:
            return self._invite_response(leg, response, now)
        pending = self._pending.pop(request.top_via.branch or "", None)
        if method == "INVITE":
            return self._reinvite_response(leg, request, response, pending, now)
        if pending is not None and response.status >= 200:
            leg.outgoing = None
            return self._on(OfferAnswered(leg, pending, response), now)
        if pending is not None:
            self._pending[request.top_via.branch or ""] = pending
            return []
        if method == "UPDATE" and response.status >= 200:
            leg.outgoing = None
            return self._refresh_done(leg, response, now)
        return []

    def request_failed(self, leg_id: str, request: Request, now: Instant) -> list[Action]:
        """A client transaction timed out (Timer B/F) or its transport failed."""
        leg = self.leg(leg_id)
        if leg is None:
            return []
        timeout = make_response(request, 408, "Request Timeout")
        return self.response(leg_id, request, timeout, now)

    def _invite_response(self, leg: Leg, response: Response, now: Instant) -> list[Action]:
        status = response.status
        if leg.ended and not (200 <= status < 300 and leg.ack is not None):
            if 200 <= status < 300:  # a 2xx after we gave up on this fork: ACK it, then BYE
                return self._ack_and_bye(leg, response)
            if status < 200 and leg.cancel_reason is not None and not leg.provisional:
                leg.provisional = True  # a trunk we gave up on woke up: CANCEL it (once)
                return self._send_cancel(leg)
            return []
        if 200 <= status < 300 and leg.ack is not None and leg.dialog is not None \
                and response.to.tag == leg.dialog.remote_tag:
            return [Transmit(leg.flow, leg.ack)]  # our ACK was lost: the 200 is resent, ACK it again
        actions: list[Action] = []
        if leg.target is not None and leg.target.trunk_id is not None:
            actions.append(ClearTimer(f"try:{leg.id}"))
        if status < 200:
            first = not leg.provisional
            leg.provisional = True
            if leg.state is LegState.CALLING:
                leg.state = LegState.EARLY
            if leg.cancel_reason is not None and first:
                actions += self._send_cancel(leg)
                return actions
            if self.winner is None and not self.over:
                actions += self._on(Progress(leg, response), now)
            return actions
        if 200 <= status < 300:
            # this leg's own part: its dialog, and the ACK for its 2xx
            dialog = Dialog.uac(leg.invite, response)
            leg.dialog = dialog
            leg.ack = dialog.ack(leg.invite.cseq.number, self.config.via_for(leg.flow))
            leg.allows_update = _allows(response, "UPDATE")
            return [*actions, Transmit(leg.flow, leg.ack), *self._on(Connected(leg, response), now)]
        if status in (401, 407) and self._can_authenticate(leg):
            return actions + self._authenticate(leg, response, now)
        leg.state = LegState.TERMINATED
        leg.final_status = status
        leg.final_reason = response.reason
        return actions + self._on(Refused(leg), now)

    def _can_authenticate(self, leg: Leg) -> bool:
        target = leg.target
        return target is not None and target.auth is not None and not leg.authenticated and not leg.cancelled

    def _authenticate(self, leg: Leg, response: Response, now: Instant) -> list[Action]:
        """Resend the INVITE with credentials answering the carrier's challenge (§22.2).

        Same Call-ID, From tag and To; a new branch and the next CSeq. The old client
        transaction has ACKed the 401/407 itself (§17.1.1.3).
        """
        target = leg.target
        assert target is not None and target.auth is not None
        leg.authenticated = True
        answer = answer_challenge(response, "INVITE", leg.invite.uri_text, target.auth.username, target.auth.password)
        if answer is None:
            leg.state = LegState.TERMINATED
            leg.final_status = response.status
            leg.final_reason = "No usable digest challenge"
            return self._on(Refused(leg), now)
        invite = with_credentials(leg.invite, self.config.via_for(leg.flow).header(new_branch()), answer[:2])
        leg.invite = invite
        leg.provisional = False
        leg.state = LegState.CALLING
        return [SendRequest(leg.id, invite, leg.flow), *self._arm_trunk_timer(leg)]

    def _relay_provisional(self, leg: Leg, response: Response) -> list[Action]:
        status = response.status
        try:
            sdp = _sdp_of(response)
        except RemoteProtocolError:
            sdp = None
        if sdp is not None and status == 183 and first_codec(sdp) is not None:
            self._learn(leg, sdp, leg.flow)
            body = self._anchored(self.inbound, sdp)
            self.inbound.state = LegState.EARLY
            return self._inbound_reply(183, "Session Progress", body=body)
        if status == 180 and not self._relayed_180:
            self._relayed_180 = True
            self.inbound.state = LegState.EARLY
            return self._inbound_reply(180, "Ringing")
        return []

    def _ack_and_bye(self, leg: Leg, response: Response) -> list[Action]:
        dialog = Dialog.uac(leg.invite, response)
        via = self.config.via_for(leg.flow)
        ack = dialog.ack(leg.invite.cseq.number, via)
        leg.dialog, leg.ack = dialog, ack  # a resent 200 is only ACKed again, not hung up twice
        bye = dialog.request("BYE", via, extra=[("Reason", COMPLETED_ELSEWHERE)])
        return [Transmit(leg.flow, ack), SendRequest(leg.id, bye, leg.flow)]

    def _on_connected(self, leg: Leg, response: Response, now: Instant) -> list[Action]:
        """First answer wins; a device answering after that is hung up."""
        dialog = leg.dialog
        assert dialog is not None
        if self.winner is not None or self.over:
            leg.state = LegState.TERMINATED
            bye = dialog.request("BYE", self.config.via_for(leg.flow), extra=[("Reason", COMPLETED_ELSEWHERE)])
            return [SendRequest(leg.id, bye, leg.flow)]
        try:
            answer = _sdp_of(response)
        except RemoteProtocolError:
            answer = None
        leg.state = LegState.CONFIRMED
        actions: list[Action] = [DialogCreated(dialog.key, leg.id), ClearTimer("ring")]
        if answer is None or first_codec(answer) is None:
            # No usable answer: hang this leg up and fail the call (the caller gets 488).
            bye = dialog.request("BYE", self.config.via_for(leg.flow),
                                 extra=[("Reason", 'SIP;cause=488;text="No usable SDP answer"')])
            leg.state = LegState.TERMINATED
            actions.append(SendRequest(leg.id, bye, leg.flow))
            actions += self._cancel_forks(None, 'SIP;cause=488;text="Not Acceptable Here"')
            actions += self._inbound_reply(488, "Not Acceptable Here")
            return actions + self._end(now, "failed", "callee", 488, "No usable SDP answer")
        self.winner = leg
        self.answered = now
        self._learn(leg, answer, leg.flow)
        codec = first_codec(answer)
        self.codec = codec.name if codec else None
        expires = _session_expires(response)
        if expires is not None:
            leg.session_expires = expires[0]
            leg.we_refresh = expires[1] != "uas"
        else:
            leg.session_expires = self.config.session_expires
            leg.we_refresh = True
        actions += self._cancel_forks(leg, COMPLETED_ELSEWHERE)
        inbound = self.inbound
        body = self._anchored(inbound, answer)
        headers = [("Allow", ALLOW), ("Supported", "timer"), *self._session_headers(inbound, request=False)]
        reply = self._respond(inbound, inbound.invite, 200, "OK", headers=headers, body=body)
        inbound.state = LegState.CONFIRMED
        inbound.last_2xx = reply
        inbound.retx_interval = self.config.timers.t1
        inbound.retx_elapsed = 0.0
        inbound.allows_update = _allows(inbound.invite, "UPDATE")
        self.media.arm()
        actions += [Respond(self.txn, reply), Answered(now.wall, self.codec)]
        if inbound.flow.transport == "udp":
            actions.append(SetTimer("2xx:a", inbound.retx_interval))
        else:
            actions.append(SetTimer("2xx:a", 64 * self.config.timers.t1))
            inbound.retx_elapsed = -1.0  # reliable: only the give-up timer
        actions += self._arm_session_timer(inbound)
        actions += self._arm_session_timer(leg)
        return actions

    def _cancel_forks(self, winner: Leg | None, reason: str) -> list[Action]:
        actions: list[Action] = []
        for fork in self.forks.values():
            if fork is winner or fork.ended or fork.cancelled:
                continue
            fork.cancelled = True
            fork.cancel_reason = reason
            if fork.provisional:
                actions += self._send_cancel(fork)
        return actions

    def _send_cancel(self, leg: Leg) -> list[Action]:
        extra = (("Reason", leg.cancel_reason),) if leg.cancel_reason else ()
        return [SendRequest(leg.id, make_cancel(leg.invite, extra), leg.flow)]

    def _on_refused(self, now: Instant) -> list[Action]:
        """When every device has refused, the caller gets the most telling answer."""
        if self.winner is not None or self.over or not all(f.ended for f in self.forks.values()):
            return []
        if self._sequential:
            return self._trunk_refused(now)
        if self._fallback is not None:
            return [ClearTimer("ring"), *self._fall_back()]
        statuses = [f.final_status or 500 for f in self.forks.values()]
        six = [s for s in statuses if s >= 600]
        if six:
            status = six[0]
        elif 486 in statuses:
            status = 486
        elif all(s == 488 for s in statuses):
            status = 488
        else:
            status = 480
        reason = {486: "Busy Here", 488: "Not Acceptable Here", 480: "Temporarily Unavailable",
                  600: "Busy Everywhere", 603: "Decline"}.get(status, "Call Failed")
        disposition = "busy" if status in (486, 600, 603) else "failed"
        actions = [ClearTimer("ring"), *self._inbound_reply(status, reason)]
        return actions + self._end(now, disposition, "callee", status, reason)

    def _trunk_refused(self, now: Instant) -> list[Action]:
        """A trunk refused: try the next one on 5xx, 408 or a timeout — never after a callee's
        486, 600 or 603 (someone who declined is not dialled again), nor after another 4xx (the
        number itself is wrong)."""
        last = list(self.forks.values())[-1]
        status = last.final_status or 500
        label = last.target.label if last.target is not None else last.id
        self.attempts.append(f"{label}: {status} {last.final_reason}".strip())
        fails_over = _fails_over(status) or (self.emergency and status not in (486, 600, 603))
        if fails_over and self._next_target < len(self._targets):
            return self._fork_next()
        if _fails_over(status):
            status, reason = 503, "Service Unavailable"
            text = "No trunk could take the call"
        else:
            reason = last.final_reason or "Call Failed"
            text = reason
        disposition = "busy" if status in (486, 600) else "failed"
        if status in (403, 603, 607):
            disposition = "failed"
        actions = [ClearTimer("ring"), *self._inbound_reply(status, reason)]
        return actions + self._end(now, disposition, "callee", status, f"{text} ({'; '.join(self.attempts)})")

    def credit_exhausted(self, now: Instant) -> list[Action]:
        """The caller's credit ran out: hang up both sides with a Reason, or refuse if still ringing."""
        if self.over:
            return []
        text = "Credit exhausted"
        if self.winner is None:
            actions = self._cancel_forks(None, f'SIP;cause=402;text="{text}"')
            actions += self._inbound_reply(402, "Payment Required")
            return actions + self._end(now, "failed", "system", 402, text)
        return self._system_hangup(now, 402, text, None)

    # -- the caller gives up, or nobody answers --------------------------------------------
    def cancel(self, reason: str | None, now: Instant) -> list[Action]:
        """The caller sent CANCEL (already answered 200 by the driver)."""
        return self._on(CallerCancelled(reason), now)

    def _on_cancelled(self, reason: str | None, now: Instant) -> list[Action]:
        if self.winner is not None or self.over:
            return []
        actions: list[Action] = [ClearTimer("ring")]
        actions += self._cancel_forks(None, reason or 'SIP;cause=487;text="Request Terminated"')
        actions += self._inbound_reply(487, "Request Terminated")
        return actions + self._end(now, "cancelled", "caller", 487, "Caller cancelled")

    def cancel_request(self, txn: object) -> bool:
        """The peer CANCELled a re-INVITE it sent (the driver answered it 487); True if it was ours."""
        for pending in self._pending.values():
            if pending.txn == txn:
                pending.cancelled = True
                return True
        return False

    def _ring_timeout(self, now: Instant) -> list[Action]:
        if self.winner is not None or self.over:
            return []
        actions = self._cancel_forks(None, 'SIP;cause=480;text="No answer"')
        if self._fallback is not None:
            return actions + self._fall_back()
        actions += self._inbound_reply(480, "No Answer")
        return actions + self._end(now, "no-answer", "system", 480, "No answer")

    # -- in-dialog requests ----------------------------------------------------------------
    def in_dialog(self, leg_id: str, request: Request, txn: object, now: Instant) -> list[Action]:
        leg = self.leg(leg_id)
        method = request.method
        if leg is None or leg.dialog is None:
            return [Respond(txn, make_response(request, 481))] if method != "ACK" else []
        if method == "ACK":
            return self._ack_received(leg, request)
        if not leg.dialog.accept_remote_seq(request):
            return [Respond(txn, make_response(request, 500, "CSeq Out Of Order"))]
        if method == "BYE":
            return self._bye_received(leg, request, txn, now)
        if leg.ended or self.over:
            return [Respond(txn, make_response(request, 481))]
        if method in ("INVITE", "UPDATE"):
            return self._offer_received(leg, request, txn, now)
        if method == "INFO":
            return self._on(InfoReceived(leg, request, txn), now)
        if method in ("REFER", "NOTIFY") and self._transfer_relayed(leg, method):
            return self._relay_request(leg, request, txn)
        return [Respond(txn, self._respond(leg, request, 405, "Method Not Allowed", headers=[("Allow", ALLOW)]))]

    def _transfer_relayed(self, leg: Leg, method: str) -> bool:
        """A REFER only from Ringwell's own answering leg (the mailbox's "call back": the caller's
        phone is asked to place that call itself, RFC 3515), and the phone's NOTIFYs about it back.
        A REFER from any other party is refused: a far end must never make a phone dial."""
        if method == "REFER":
            return leg.flow.transport == LOCAL_TRANSPORT and not leg.inbound
        winner = self.winner
        return leg.inbound and winner is not None and winner.flow.transport == LOCAL_TRANSPORT

    def _ack_received(self, leg: Leg, request: Request) -> list[Action]:
        if leg.last_2xx is not None and request.cseq.number == leg.last_2xx.cseq.number:
            leg.last_2xx = None
            try:
                sdp = _sdp_of(request)
            except RemoteProtocolError:
                sdp = None
            self._learn(leg, sdp, leg.flow)
            return [ClearTimer(f"2xx:{leg.id}")]
        return []

    def _bye_received(self, leg: Leg, request: Request, txn: object, now: Instant) -> list[Action]:
        actions: list[Action] = [Respond(txn, self._respond(leg, request, 200, "OK"))]
        if leg.ended or self.over:
            return actions
        leg.state = LegState.TERMINATED
        return actions + self._on(HungUp(leg, request.headers.get("reason")), now)

    def _on_hung_up(self, leg: Leg, reason: str | None, now: Instant) -> list[Action]:
        actions: list[Action] = []
        if leg.inbound and self.winner is None:
            # §15: the caller may BYE the early dialog; like a CANCEL, the forks are cancelled and
            # the pending INVITE gets its 487 (§15.1.2).
            return actions + self._on_cancelled(reason, now)
        who = "caller" if leg.inbound else "callee"
        actions += self._hang_up_others(leg, reason)
        return actions + self._end(now, "answered", who, 200, reason if reason else "Normal clearing")

    def _hang_up_others(self, origin: Leg | None, reason: str | None) -> list[Action]:
        actions: list[Action] = []
        extra = [("Reason", reason)] if reason else []
        for leg in self.legs():
            if leg is origin or leg.ended:
                continue
            if leg.state is LegState.CONFIRMED and leg.dialog is not None:
                actions.append(SendRequest(leg.id, self._send_in_dialog(leg, "BYE", extra=extra), leg.flow))
            leg.state = LegState.TERMINATED
        return actions

    def _offer_received(self, leg: Leg, request: Request, txn: object, now: Instant) -> list[Action]:
        """A re-INVITE or UPDATE: a session refresh, or a new offer (hold, resume, codec change)."""
        method = request.method
        if leg.dialog is not None:
            leg.dialog.refresh_target(request)
        expires = _session_expires(request)
        if expires is not None and leg.session_expires:
            leg.session_expires = max(self.config.min_se, expires[0])
        try:
            sdp = _sdp_of(request)
        except RemoteProtocolError as exc:
            return [Respond(txn, self._respond(leg, request, 400, str(exc)))]
        if sdp is None:
            # A session refresh without an offer: answered here; an INVITE gets our current SDP.
            body = self._anchored(leg, leg.last_sdp, bump=False) if method == "INVITE" and leg.last_sdp else b""
            return self._answer_locally(leg, request, txn, body)
        return self._on(OfferReceived(leg, request, txn, sdp), now)

    def _relay_offer(self, leg: Leg, request: Request, txn: object, sdp: SessionDescription) -> list[Action]:
        """Pass a new offer on to the other leg, re-anchored; one offer exchange at a time (491)."""
        method = request.method
        other = self.winner if leg.inbound else self.inbound
        if other is None or other.state is not LegState.CONFIRMED or other.dialog is None:
            return [Respond(txn, self._respond(leg, request, 491, "Request Pending"))]
        if other.outgoing is not None or leg.outgoing is not None:
            return [Respond(txn, self._respond(leg, request, 491, "Request Pending"))]
        try:
            offer = restrict_codecs(sdp, CODECS)
        except NoCommonCodec:
            return [Respond(txn, self._respond(leg, request, 488, "Not Acceptable Here"))]
        body = self._anchored(other, offer)
        relayed = self._send_in_dialog(other, method, body=body, extra=self._session_headers(other, request=True))
        pending = _Pending(leg.id, txn, method, request, sdp)
        other.outgoing = pending
        self._pending[relayed.top_via.branch or ""] = pending
        return [SendRequest(other.id, relayed, other.flow), *self._arm_session_timer(leg)]

    def _answer_locally(self, leg: Leg, request: Request, txn: object, body: bytes) -> list[Action]:
        headers = [("Allow", ALLOW), ("Supported", "timer"), *self._session_headers(leg, request=False)]
        reply = self._respond(leg, request, 200, "OK", headers=headers, body=body)
        actions: list[Action] = [Respond(txn, reply), *self._arm_session_timer(leg)]
        if request.method == "INVITE":
            actions += self._start_2xx(leg, reply)
        return actions

    def _start_2xx(self, leg: Leg, reply: Response) -> list[Action]:
        leg.last_2xx = reply
        leg.retx_elapsed = 0.0
        leg.retx_interval = self.config.timers.t1
        if leg.flow.transport == "udp":
            return [SetTimer(f"2xx:{leg.id}", leg.retx_interval)]
        leg.retx_elapsed = -1.0
        return [SetTimer(f"2xx:{leg.id}", 64 * self.config.timers.t1)]

    def _reinvite_response(self, leg: Leg, request: Request, response: Response, pending: _Pending | None,
                           now: Instant) -> list[Action]:
        status = response.status
        if status < 200:
            if pending is not None:
                self._pending[request.top_via.branch or ""] = pending
            return []
        actions: list[Action] = []
        if 200 <= status < 300 and leg.dialog is not None:
            leg.dialog.refresh_target(response)
            actions.append(Transmit(leg.flow, leg.dialog.ack(request.cseq.number, self.config.via_for(leg.flow))))
        leg.outgoing = None
        if pending is None:
            return actions + self._refresh_done(leg, response, now)
        return actions + self._on(OfferAnswered(leg, pending, response), now)

    def _relay_final(self, leg: Leg, pending: _Pending, response: Response) -> list[Action]:
        """The far leg answered a relayed re-INVITE/UPDATE/INFO: answer the near leg the same way."""
        leg.outgoing = None
        origin = self.leg(pending.from_leg)
        if origin is None or pending.cancelled:
            return []
        status = response.status
        body = b""
        actions: list[Action] = []
        if pending.method in ("INVITE", "UPDATE") and 200 <= status < 300:
            try:
                answer = _sdp_of(response)
            except RemoteProtocolError:
                answer = None
            self._learn(origin, pending.offer, origin.flow)  # RFC 3261 §14.1: only now is the new session in force
            if pending.offer is not None:
                # On hold nobody need send RTP: the media timeout only watches a two-way call.
                offered = direction(pending.offer)
                if offered == "sendrecv":
                    self.media.arm()
                else:
                    self.media.disarm()
                # The offerer put the other party on hold (sendonly/inactive), or took it off.
                actions.append(Held("b" if origin.inbound else "a", offered in ("sendonly", "inactive")))
            if answer is not None and first_codec(answer) is not None:
                self._learn(leg, answer, leg.flow)
                body = self._anchored(origin, answer)
                codec = first_codec(answer)
                if codec is not None:
                    self.codec = codec.name
            actions += self._arm_session_timer(leg)
        refresh = pending.method in ("INVITE", "UPDATE") and status < 300
        headers: list[tuple[str, str]] = []
        if refresh:
            headers = [("Allow", ALLOW), ("Supported", "timer"), *self._session_headers(origin, request=False)]
        reply = self._respond(origin, pending.request, status, response.reason, headers=headers, body=body)
        if pending.method == "INFO" and status < 300:
            reply.body = response.body
            content_type = response.headers.get("content-type")
            if content_type and response.body:
                reply.headers.add("Content-Type", content_type)
        actions.append(Respond(pending.txn, reply))
        if pending.method == "INVITE" and 200 <= status < 300:
            actions += self._start_2xx(origin, reply)
        return actions

    def _relay_request(self, leg: Leg, request: Request, txn: object) -> list[Action]:
        other = self.winner if leg.inbound else self.inbound
        if other is None or other.dialog is None or other.ended:
            return [Respond(txn, make_response(request, 481))]
        content_type = request.headers.get("content-type") or "application/octet-stream"
        extra = [(name, value) for name in _RELAYED_HEADERS if (value := request.headers.get(name)) is not None]
        relayed = self._send_in_dialog(other, request.method, body=request.body, content_type=content_type,
                                       extra=extra)
        self._pending[relayed.top_via.branch or ""] = _Pending(leg.id, txn, request.method, request)
        return [SendRequest(other.id, relayed, other.flow)]

    # -- session timers (RFC 4028) and 2xx retransmission ----------------------------------
    def _refresh_done(self, leg: Leg, response: Response, now: Instant) -> list[Action]:
        status = response.status
        if 200 <= status < 300:
            return self._arm_session_timer(leg)
        if status == 491:
            return [SetTimer(f"se:{leg.id}", 2.0)]
        if status in (408, 481):
            return self._system_hangup(now, status, "Session refresh failed", leg)
        return self._arm_session_timer(leg)  # the peer refused the refresh but is alive

    def _refresh(self, leg: Leg, now: Instant) -> list[Action]:
        if leg.ended or leg.dialog is None or leg.state is not LegState.CONFIRMED:
            return []
        if not leg.we_refresh:
            return self._system_hangup(now, 408, "Session expired (no refresh)", leg)
        if leg.outgoing is not None:
            return [SetTimer(f"se:{leg.id}", 2.0)]
        extra = self._session_headers(leg, request=True)
        if leg.allows_update:
            refresh = self._send_in_dialog(leg, "UPDATE", extra=extra)
        else:
            body = self._anchored(leg, leg.last_sdp, bump=False) if leg.last_sdp else b""
            refresh = self._send_in_dialog(leg, "INVITE", extra=extra, body=body)
        # Our refresh is an offer exchange in flight too: a relayed offer meanwhile gets 491 (RFC 3311 §5.2).
        leg.outgoing = _Pending(leg.id, None, refresh.method, refresh)
        return [SendRequest(leg.id, refresh, leg.flow)]

    def _retransmit_2xx(self, leg: Leg, now: Instant) -> list[Action]:
        reply = leg.last_2xx
        if reply is None:
            return []
        give_up = 64 * self.config.timers.t1
        if leg.retx_elapsed >= 0:
            leg.retx_elapsed += leg.retx_interval  # the time since the first 2xx
        if leg.retx_elapsed < 0 or leg.retx_elapsed >= give_up:
            leg.last_2xx = None  # §13.3.1.4: no ACK in 64*T1: the session is over, BYE on both legs
            return self._system_hangup(now, 408, "No ACK received", None)
        # Doubling up to T2, but the last wait stops at 64*T1, not at the next retransmission after it.
        leg.retx_interval = min(2 * leg.retx_interval, self.config.timers.t2, give_up - leg.retx_elapsed)
        return [Transmit(leg.flow, reply), SetTimer(f"2xx:{leg.id}", leg.retx_interval)]

    def timer_fired(self, name: str, now: Instant) -> list[Action]:
        if self.over:
            return []
        kind, _, leg_id = name.partition(":")
        if kind == "ring":
            return self._ring_timeout(now)
        leg = self.leg(leg_id)
        if leg is None:
            return []
        if kind == "2xx":
            return self._retransmit_2xx(leg, now)
        if kind == "se":
            return self._refresh(leg, now)
        if kind == "try":
            return self._trunk_silent(leg, now)
        return []

    def media_timeout(self, seconds: float, now: Instant) -> list[Action]:
        if self.over or self.winner is None:
            return []
        return self._system_hangup(now, 408, f"Media timeout (no RTP for {seconds:g} s)", None)

    def _system_hangup(self, now: Instant, status: int, text: str, failed: Leg | None) -> list[Action]:
        reason = f'SIP;cause={status};text="{text}"'
        if failed is not None:
            failed.state = LegState.TERMINATED
        actions = self._hang_up_others(failed, reason)
        return actions + self._end(now, "answered", "system", status, text)

    def shutdown(self, now: Instant) -> list[Action]:
        """The server is stopping: hang up cleanly, or refuse the call if not answered yet."""
        if self.over:
            return []
        if self.winner is None:
            actions = self._cancel_forks(None, 'SIP;cause=503;text="Server shutting down"')
            actions += self._inbound_reply(503, "Service Unavailable")
            return actions + self._end(now, "failed", "system", 503, "Server shutting down")
        return self._system_hangup(now, 503, "Server shutting down", None)

    # -- the end ---------------------------------------------------------------------------
    def _end(self, now: Instant, disposition: str, who: str, status: int | None, reason: str | None) -> list[Action]:
        if self.over:
            return []
        self.ended = now
        if self.answered is None and disposition == "answered":
            disposition = "failed"
        elif disposition == "answered" and self.winner is not None and self.winner is self.fallback_leg:
            disposition = "voicemail"
        self.disposition = disposition
        self.hangup_by = who
        self.status = status
        self.reason = reason
        answered = self.answered
        ring_end = answered.mono if answered else now.mono
        draft = CallRecordDraft(
            answered_at=answered.wall if answered else None,
            ended_at=now.wall,
            ring_seconds=round(max(0.0, ring_end - self.started.mono), 3),
            talk_seconds=round(max(0.0, now.mono - answered.mono), 3) if answered else 0.0,
            disposition=disposition,
            hangup_by=who,
            sip_status=status,
            sip_reason=reason,
            codec=self.codec,
            callee_user_id=self.callee.user_id,
            callee_extension=self.callee.extension,
            trunk_id=self.trunk_id,
            attempts=tuple(self.attempts),
        )
        return [ClearTimer("ring"), Ended(draft)]

    @property
    def trunk_id(self) -> str | None:
        """The trunk of the answering leg, else of the last leg tried."""
        leg = self.winner or (list(self.forks.values())[-1] if self.forks else None)
        return leg.target.trunk_id if leg is not None and leg.target is not None else None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "legs": {leg.id: {"state": leg.state.value, "final": leg.final_status} for leg in self.legs()},
            "answered": self.answered is not None,
        }

