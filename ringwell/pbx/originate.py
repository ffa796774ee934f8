"""Calls Ringwell places itself: a caller-ID verification call that collects DTMF digits.

To let a user send a number as caller ID that is not rented here, Ringwell calls that number
through the trunks (the same order as an outbound call: cheapest, then priority; failover on
5xx/408/silence) and listens for the 6-digit code the user was shown, typed on the phone's
keypad as RFC 4733 telephone-events. The call ends when enough digits arrived, on a timeout,
or when the far end hangs up. It is one UAC dialog: INVITE (answering a carrier's 401/407
once), ACK, BYE (RFC 3261 §13, §15, §22.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ringwell.media.dtmf import DtmfCollector, parse_telephone_event
from ringwell.media.ports import PortPool
from ringwell.media.rtp import is_rtcp, parse_rtp
from ringwell.sip.dialog import Dialog, ViaSpec, new_branch, new_call_id
from ringwell.sip.digest import answer_challenge, with_credentials
from ringwell.sip.message import Headers, Request, Response
from ringwell.sip.transaction import make_cancel
from ringwell.sip.uas import make_response, new_tag
from ringwell.transport.source import Source

__all__ = ["DigitCall", "DigitCallResult", "TrunkLeg", "trunk_leg"]

log = logging.getLogger(__name__)
EVENT_PT = 101


class Sip(Protocol):
    def send_request(self, request: Request, flow: Source, on_response: Callable[[Response], None],
                     on_failure: Callable[[], None]) -> None: ...

    def respond(self, txn: object, response: Response) -> None: ...

    def transmit(self, flow: Source, data: bytes) -> None: ...


class Dialogs(Protocol):
    """Where in-dialog requests for our own dialogs are delivered (the calls driver)."""

    def claim(self, key: tuple[str, str], handler: Callable[[Request, object], None]) -> None: ...

    def release(self, key: tuple[str, str]) -> None: ...


@dataclass(frozen=True, slots=True)
class TrunkLeg:
    """Where to place the call: a trunk's flow and the Request-URI and From user it wants."""

    name: str
    flow: Source
    request_uri: str
    to_user: str
    from_user: str
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class DigitCallResult:
    answered: bool
    digits: str
    status: int | None  # the final status of the last attempt
    reason: str
    trunk: str | None


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self, on_digit: Callable[[str], None]) -> None:
        self.collector = DtmfCollector()
        self.on_digit = on_digit
        self.payload_type = EVENT_PT

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_rtcp(data):
            return
        try:
            header = parse_rtp(data)
            if header.payload_type != self.payload_type:
                return
            event = parse_telephone_event(data[header.payload_offset:])
        except ValueError:
            return
        for digit in self.collector.feed(header.timestamp, event):
            self.on_digit(digit)


class DigitCall:
    """One call to a number that waits for ``want`` digits (at most ``timeout`` seconds answered)."""

    def __init__(self, *, sip: Sip, dialogs: Dialogs, ports: PortPool, bind: str, host: str,
                 via_for: Callable[[Source], ViaSpec], contact_for: Callable[[Source], str], want: int = 6,
                 timeout: float = 60.0, ring_timeout: float = 60.0, trunk_timeout: float = 5.0) -> None:
        self.sip = sip
        self.dialogs = dialogs
        self.ports = ports
        self.bind = bind  # where the RTP socket listens (the media relay's address)
        self.host = host  # what the SDP gives (the advertised address)
        self.via_for = via_for
        self.contact_for = contact_for
        self.want = want
        self.timeout = timeout
        self.ring_timeout = ring_timeout
        self.trunk_timeout = trunk_timeout

    async def run(self, legs: list[TrunkLeg]) -> DigitCallResult:
        rtp_sock, rtcp_sock = self.ports.allocate(self.bind)
        port = rtp_sock.getsockname()[1]
        digits: list[str] = []
        got_all = asyncio.Event()

        def on_digit(digit: str) -> None:
            if len(digits) < self.want:
                digits.append(digit)
            if len(digits) >= self.want:
                got_all.set()

        transport: asyncio.BaseTransport | None = None
        try:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(lambda: _Rtp(on_digit), sock=rtp_sock)
            last = DigitCallResult(False, "", None, "No trunk", None)
            for leg in legs:
                outcome = await self._attempt(leg, port, got_all)
                if outcome is None:
                    continue  # failover
                status, reason, dialog = outcome
                if dialog is None:
                    return DigitCallResult(False, "", status, reason, leg.name)
                return await self._talk(leg, dialog, got_all, digits)
            return last
        finally:
            if transport is not None:
                transport.close()
            else:
                rtp_sock.close()
            with contextlib.suppress(OSError):
                rtcp_sock.close()
            self.ports.release(port)

    def _sdp(self, port: int) -> bytes:
        family = "IP6" if ":" in self.host else "IP4"
        session = secrets.randbelow(2**31)
        lines = [
            "v=0", f"o=ringwell {session} 1 IN {family} {self.host}", "s=Caller ID verification",
            f"c=IN {family} {self.host}", "t=0 0", f"m=audio {port} RTP/AVP 0 {EVENT_PT}", "a=rtpmap:0 PCMU/8000",
            f"a=rtpmap:{EVENT_PT} telephone-event/8000", f"a=fmtp:{EVENT_PT} 0-15", "a=recvonly",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()

    async def _attempt(self, leg: TrunkLeg, port: int,
                       got_all: asyncio.Event) -> tuple[int, str, Dialog | None] | None:
        """INVITE through one trunk: (status, reason, dialog if answered), or None to fail over."""
        loop = asyncio.get_running_loop()
        via = self.via_for(leg.flow)
        host = f"[{self.host}]" if ":" in self.host else self.host
        headers = Headers()
        headers.add("Via", via.header(new_branch()))
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<sip:{leg.from_user}@{host}>;tag={new_tag()}")
        headers.add("To", f"<sip:{leg.to_user}@{leg.request_uri.partition('@')[2]}>")
        headers.add("Call-ID", new_call_id())
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", self.contact_for(leg.flow))
        headers.add("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")
        headers.add("Content-Type", "application/sdp")
        invite = Request("INVITE", leg.request_uri, headers, self._sdp(port))
        authenticated = False
        while True:
            responses: asyncio.Queue[Response | None] = asyncio.Queue()
            self.sip.send_request(invite, leg.flow, responses.put_nowait, _put_none(responses))
            deadline = loop.time() + self.ring_timeout
            first = True
            while True:
                wait = self.trunk_timeout if first else max(0.1, deadline - loop.time())
                try:
                    response = await asyncio.wait_for(responses.get(), wait)
                except TimeoutError:
                    if first:
                        log.info("verification call: trunk %s sent nothing in %.0f s", leg.name, wait)
                        return None
                    # It rang long enough: stop the ringing (§9.1; the 487 ends the transaction).
                    self.sip.send_request(make_cancel(invite), leg.flow, _ignore, _nothing)
                    return 408, "No answer", None
                first = False
                if response is None:
                    return None  # Timer B / transport failure: next trunk
                if response.status < 200:
                    continue
                break
            status = response.status
            if 200 <= status < 300:
                dialog = Dialog.uac(invite, response)
                self.sip.transmit(leg.flow, dialog.ack(invite.cseq.number, via).encode())
                return status, response.reason, dialog
            if status in (401, 407) and leg.username and leg.password and not authenticated:
                answer = answer_challenge(response, "INVITE", invite.uri_text, leg.username, leg.password)
                if answer is not None:
                    authenticated = True
                    invite = with_credentials(invite, via.header(new_branch()), answer[:2])
                    continue
            if status in (401, 407, 408) or 500 <= status < 600:
                return None
            return status, response.reason, None

    async def _talk(self, leg: TrunkLeg, dialog: Dialog, got_all: asyncio.Event,
                    digits: list[str]) -> DigitCallResult:
        hung_up = asyncio.Event()

        def in_dialog(request: Request, txn: object) -> None:
            if request.method == "ACK":
                return
            self.sip.respond(txn, make_response(request, 200, "OK"))
            if request.method == "BYE":
                hung_up.set()

        self.dialogs.claim(dialog.key, in_dialog)
        try:
            done = {asyncio.ensure_future(got_all.wait()), asyncio.ensure_future(hung_up.wait())}
            _, pending = await asyncio.wait(done, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if not hung_up.is_set():
                bye = dialog.request("BYE", self.via_for(leg.flow))
                finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

                def settle(_: object = None) -> None:
                    if not finished.done():
                        finished.set_result(None)

                self.sip.send_request(bye, leg.flow, lambda r: settle() if r.status >= 200 else None, settle)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished, 5.0)
        finally:
            self.dialogs.release(dialog.key)
        return DigitCallResult(True, "".join(digits), 200, "OK", leg.name)


def trunk_leg(name: str, host: str, port: int, dial: str, from_user: str, username: str | None,
              password: str | None) -> TrunkLeg:
    uri_host = f"[{host}]" if ":" in host else host
    return TrunkLeg(name, Source("udp", host, port), f"sip:{dial}@{uri_host}:{port}", dial, from_user, username,
                    password)


def _put_none(queue: asyncio.Queue[Response | None]) -> Callable[[], None]:
    """A transaction failure (Timer B, transport) reported as ``None`` on ``queue``."""
    return lambda: queue.put_nowait(None)


def _ignore(_response: Response) -> None:
    """The answer to our CANCEL needs no action."""


def _nothing() -> None:
    """Nor does its failure: the INVITE transaction ends on its own (Timer B)."""
