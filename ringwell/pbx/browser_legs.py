"""Browser legs of calls: where the call driver hands SDP to and from a ``WebRtcLeg``.

The call core (``ringwell.pbx.call``) stays a plain-RTP B2BUA. This module sits in its driver
(``CallManager``) and rewrites the SDP of the messages of legs whose far end is a browser — a
SIP-over-WebSocket flow with a DTLS-SRTP description — so the core only ever sees plain offers
and answers (``ringwell.webrtc.leg`` explains the media). A browser leg is known by its own
SIP Call-ID (each leg of a call has its own: topology hiding).

- The browser calls: its INVITE's offer becomes the leg's plain offer before the call is built;
  the call's 183/200 answer for it becomes the WebRTC answer.
- The browser is called: the INVITE to it waits for aiortc's offer (ICE gathered, no trickle);
  its 183/200 answer becomes the plain answer the call expects.
- Hold and resume from the browser (a re-INVITE or UPDATE with SDP) reach the call as plain
  re-offers, and the call's answer returns to the browser as its own earlier description with the
  new direction. A re-offer from the call *towards* a browser (the other party holds, a session
  refresh with SDP) is answered here, without bothering the browser: its media keeps flowing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ringwell.pbx.call import Call, Respond, SendRequest, Transmit
from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import Request, Response
from ringwell.sip.sdp import SessionDescription, parse_sdp
from ringwell.sip.uas import make_response
from ringwell.webrtc.leg import WebRtcLeg
from ringwell.webrtc.sdp import is_webrtc

if TYPE_CHECKING:
    from ringwell.pbx.calls import CallManager

__all__ = ["WEBSOCKET", "BrowserLegs", "LegFactory"]

log = logging.getLogger(__name__)

WEBSOCKET = frozenset({"ws", "wss"})
LegFactory = Callable[[str, Callable[[], None]], WebRtcLeg]  # (label, on_failed) -> a new leg
RECENT_LEGS = 600.0  # how long a finished leg's call is remembered, for the browser's quality report


def _sdp(message: Request | Response) -> SessionDescription | None:
    content_type = (message.headers.get("content-type") or "").split(";")[0].strip().lower()
    if not message.body or content_type != "application/sdp":
        return None
    try:
        return parse_sdp(message.body)
    except RemoteProtocolError:
        return None


class BrowserLegs:
    """The WebRTC legs of the calls of one ``CallManager``."""

    def __init__(self, manager: CallManager, factory: LegFactory) -> None:
        self._manager = manager
        self._factory = factory
        self._legs: dict[str, WebRtcLeg] = {}  # by the leg's SIP Call-ID
        self._of_call: dict[str, list[str]] = {}  # call id -> its legs' SIP Call-IDs
        self._acks: set[tuple[str, int]] = set()  # ACKs of re-INVITEs answered here, not to be sent
        self._recent: dict[str, tuple[str, str, float]] = {}  # SIP Call-ID -> (call id, side, when)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def active(self) -> int:
        return len(self._legs)

    def _new(self, call_id: str, sip_call_id: str) -> WebRtcLeg:
        leg = self._factory(f"{call_id}/{sip_call_id[:12]}", lambda: self._failed(call_id))
        self._legs[sip_call_id] = leg
        self._of_call.setdefault(call_id, []).append(sip_call_id)
        return leg

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _failed(self, call_id: str) -> None:
        call = self._manager.calls.get(call_id)
        if call is not None and not call.over:
            log.warning("call %s: the browser's ICE/DTLS connection failed", call_id)
            self._manager.execute(call, call.media_timeout(0.0, self._manager.now()))

    # -- the browser calls ----------------------------------------------------------------------
    async def accept_call(self, call_id: str, request: Request, source_transport: str) -> RemoteProtocolError | None:
        """Give a browser's INVITE a plain offer; the error to answer with if that cannot be done."""
        if source_transport not in WEBSOCKET:
            return None
        offer = _sdp(request)
        if offer is None or not is_webrtc(offer):
            return None
        leg = self._new(call_id, request.call_id)
        try:
            plain = await leg.accept_offer(offer)
        except RemoteProtocolError as exc:
            return exc
        except Exception as exc:  # aiortc refusing the description: a bad offer, not our bug
            log.warning("call %s: cannot accept the browser's offer: %s", call_id, exc)
            return RemoteProtocolError(f"Unusable WebRTC offer: {exc}"[:120], 488)
        request.body = plain.encode()
        return None

    # -- what the call sends ----------------------------------------------------------------------
    def intercept(self, call: Call, action: SendRequest) -> bool:
        """True when this module takes care of ``action`` (the driver must not send it now)."""
        request = action.request
        if request.method not in ("INVITE", "UPDATE"):
            return False
        leg = self._legs.get(request.call_id)
        if leg is None:
            if request.method != "INVITE" or request.to.tag is not None or action.flow.transport not in WEBSOCKET:
                return False
            offer = _sdp(request)
            if offer is None:
                return False
            self._spawn(self._offer_to_browser(call, action, self._new(call.id, request.call_id), offer))
            return True
        offer = _sdp(request)
        if offer is None:
            return False  # an UPDATE refreshing the session: the browser answers it itself
        self._answer_here(call, action, leg, offer)
        return True

    async def _offer_to_browser(self, call: Call, action: SendRequest, leg: WebRtcLeg,
                                offer: SessionDescription) -> None:
        manager = self._manager
        try:
            body = await leg.offer(offer)
        except Exception as exc:
            log.warning("call %s: no WebRTC offer for %s: %s", call.id, action.flow, exc)
            if not call.over:
                manager.feed(call, lambda: call.request_failed(action.leg, action.request, manager.now()))
            return
        if call.over:
            return
        fork = call.forks.get(action.leg)
        if fork is not None and (fork.cancelled or fork.ended):
            # Another device answered (or the caller gave up) while the offer was gathered: the
            # browser is never rung; the fork ends as if its INVITE had timed out.
            manager.feed(call, lambda: call.request_failed(action.leg, action.request, manager.now()))
            return
        action.request.body = body
        manager.send(call, action)

    def _answer_here(self, call: Call, action: SendRequest, leg: WebRtcLeg, offer: SessionDescription) -> None:
        request = action.request
        answer = leg.answer_locally(offer)
        # The browser's own Contact (the request's target), or the dialog's target would become us.
        response = make_response(request, 200, "OK", [("Contact", f"<{request.uri}>"),
                                                      ("Content-Type", "application/sdp")])
        response.body = answer.encode()
        if request.method == "INVITE":
            self._acks.add((request.call_id, request.cseq.number))
        manager = self._manager
        asyncio.get_running_loop().call_soon(
            manager.feed, call, lambda: call.response(action.leg, request, response, manager.now()))

    def responded(self, call: Call, leg_id: str, request: Request, response: Response) -> bool:
        """A response to a request the call sent: True when it is handled here (asynchronously)."""
        leg = self._legs.get(request.call_id)
        if leg is None or request.method != "INVITE" or request.to.tag is not None or not 100 < response.status < 300:
            return False
        answer = _sdp(response)
        if answer is None or not is_webrtc(answer):
            return False
        self._spawn(self._browser_answered(call, leg_id, request, response, leg, answer))
        return True

    async def _browser_answered(self, call: Call, leg_id: str, request: Request, response: Response, leg: WebRtcLeg,
                                answer: SessionDescription) -> None:
        manager = self._manager
        try:
            response.body = (await leg.accept_answer(answer)).encode()
        except Exception as exc:
            log.warning("call %s: cannot use the browser's answer: %s", call.id, exc)
            response.body = b""  # the call hangs this leg up: no usable answer (488)
        manager.feed(call, lambda: call.response(leg_id, request, response, manager.now()))

    def respond(self, call: Call, action: Respond) -> None:
        """The call answers a browser: its plain SDP becomes the WebRTC one (in place, so that the
        call's 2xx retransmissions carry it too)."""
        response = action.response
        leg = self._legs.get(response.call_id)
        if leg is None:
            return
        plain = _sdp(response)
        if plain is None or is_webrtc(plain):
            return
        try:
            response.body = leg.answer(plain) if action.txn is call.txn else leg.reanswer(plain)
        except Exception:
            log.exception("call %s: cannot answer the browser", call.id)

    def skip(self, action: Transmit) -> bool:
        """The ACK of a re-INVITE that was answered here on the browser's behalf."""
        message = action.message
        return (isinstance(message, Request) and message.method == "ACK"
                and (message.call_id, message.cseq.number) in self._acks)

    # -- what the browser sends inside a call ---------------------------------------------------
    def in_dialog(self, request: Request) -> None:
        """A browser's re-offer (hold, resume) becomes a plain re-offer for the call."""
        leg = self._legs.get(request.call_id)
        if leg is None or request.method not in ("INVITE", "UPDATE"):
            return
        offer = _sdp(request)
        if offer is not None and is_webrtc(offer):
            request.body = leg.reoffer(offer).encode()

    # -- the end --------------------------------------------------------------------------------
    def summarize(self, call: Call, summary: dict[str, Any] | None) -> None:
        """Add each browser leg's WebRTC figures to the side it stood on, and remember the leg."""
        now = time.monotonic()
        for sip_call_id in self._of_call.get(call.id, ()):
            leg = self._legs.get(sip_call_id)
            if leg is None:
                continue
            side = "a" if sip_call_id == call.inbound.invite.call_id else "b"
            if side == "b" and (call.winner is None or call.winner.invite.call_id != sip_call_id):
                continue  # a browser that rang but did not answer
            self._recent[sip_call_id] = (call.id, side, now)
            if summary is not None and isinstance(summary.get(side), dict):
                summary[side]["webrtc"] = leg.summary()
        for key, (_, _, when) in list(self._recent.items()):
            if now - when > RECENT_LEGS:
                del self._recent[key]

    def call_of(self, sip_call_id: str) -> tuple[str, str] | None:
        """(call record id, side) of a browser leg that ended recently."""
        found = self._recent.get(sip_call_id)
        return None if found is None else (found[0], found[1])

    def drop(self, call_id: str) -> None:
        """Close the call's browser legs (in the background)."""
        for sip_call_id in self._of_call.pop(call_id, []):
            leg = self._legs.pop(sip_call_id, None)
            if leg is not None:
                self._spawn(leg.close())
        if len(self._acks) > 10_000:
            self._acks.clear()

    async def stop(self) -> None:
        for call_id in list(self._of_call):
            self.drop(call_id)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
