"""Voicemail boxes as in-process call legs: what answers when nobody else does.

A call whose devices refuse, do not answer or are not registered is forked once more to its
callee's voicemail (``Call``'s fallback target). That target's flow is ``local``: the driver
(``CallManager``) hands the leg's requests to ``VoicemailBoxes`` instead of a socket, and this
module answers them as a SIP user agent would — 200 OK with an SDP of a ``MediaEndpoint`` (Ringwell
as an RTP party on the relay's host), 200 to BYE, CANCEL, INFO and re-offers — so the call's
media still goes through the relay (quality, timeouts, recording) like any other leg.

Once answered, the box plays the greeting, a beep, and records until the caller is silent,
presses ``#``, reaches the length limit or hangs up; what it recorded goes to ``deposit`` (the
voicemail slice: under one second is discarded there). A box that finishes first hangs up with
a BYE of its own into the call.

A box in ``ACCESS`` mode is the owner calling in (``*97``, launched by ``CallManager`` as a call
whose only target is the box): instead of the greeting it runs the mailbox menu
(:mod:`ringwell.pbx.voicemail_menu`: PIN, messages, greeting). A deposit box plays the user's
custom greeting when there is one (``Mailbox.greeting_pcm``, else looked up through
``mailboxes``), the spoken text greeting otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ringwell.features.audit.service import Actor
from ringwell.media.apps import MediaEndpoint, StopReason
from ringwell.media.ports import PortPool
from ringwell.media.prompts import PromptCache
from ringwell.pbx.call import LOCAL_TRANSPORT, Call, Respond, SendRequest, Target, Transmit
from ringwell.pbx.voicemail_menu import MailboxMenu
from ringwell.sip.dialog import new_branch
from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import Request, Response, parse_message
from ringwell.sip.sdp import Origin, audio_target, first_codec, parse_sdp, telephone_event
from ringwell.sip.uas import make_response, new_tag
from ringwell.sip.uri import SipUri
from ringwell.transport.source import Source
from ringwell.webrtc.sdp import G711, direction_of, mirrored, plain_description

if TYPE_CHECKING:
    from ringwell.features.voicemail.mailbox import MailboxService
    from ringwell.pbx.calls import CallManager

__all__ = ["LOCAL", "BoxMode", "Deposit", "LocalTxn", "Mailbox", "VoicemailBoxes"]

log = logging.getLogger(__name__)

LOCAL = LOCAL_TRANSPORT  # the transport of a box's flow: in-process, no socket
INITIAL_SILENCE = 10.0  # seconds a caller may stay silent after the beep before the box gives up
GOODBYE = "Thank you. Your message has been recorded. Goodbye."
REFER_TIMEOUT = 8.0  # seconds for the phone to accept (202) or refuse a call back's REFER
_REFER_PROGRESS = re.compile(rb"^SIP/2\.0 (18[0-9]|2[0-9][0-9])\b")  # sipfrag of a NOTIFY: ringing or answered
CALL_BACK_LINGER = 4.0  # seconds the box waits for the phone to end the *97 call after a call back


class BoxMode(enum.Enum):
    DEPOSIT = "deposit"  # a caller leaves a message
    ACCESS = "access"  # the owner listens (``*97``): the mailbox menu


@dataclass(frozen=True, slots=True)
class Mailbox:
    """Whose box a call reaches, and what it says."""

    org_id: str
    user_id: str
    extension: str
    greeting: str | None = None  # None: "the person at extension … is not available"
    mode: BoxMode = BoxMode.DEPOSIT
    greeting_pcm: bytes | None = field(default=None, repr=False)  # a custom greeting, 16-bit 8 kHz mono


@dataclass(frozen=True, slots=True)
class Message:
    """What a caller left: 16-bit 8 kHz mono PCM and who called."""

    mailbox: Mailbox
    caller_number: str
    caller_name: str | None
    pcm: bytes
    call_id: str


Deposit = Callable[[Message], Awaitable[None]]


class LocalTxn:
    """The server transaction of a request a box sent into the call: its answer goes to
    ``on_response`` (a REFER's 202 or refusal), or nowhere (a BYE's 200)."""

    def __init__(self, on_response: Callable[[Response], None] | None = None) -> None:
        self.on_response = on_response


@dataclass
class _Box:
    call: Call
    leg_id: str
    invite: Request
    mailbox: Mailbox
    endpoint: MediaEndpoint
    answer: bytes
    tag: str = field(default_factory=new_tag)
    task: asyncio.Task[None] | None = None
    hung_up: bool = False
    cseq: int = 0  # of the requests the box sends into the call
    referred: bool = False  # a call back was handed to the phone (REFER accepted)


class VoicemailBoxes:
    """The voicemail legs of one ``CallManager`` (see the module docstring)."""

    def __init__(self, manager: CallManager, *, ports: PortPool, local_host: str, prompts: PromptCache,
                 deposit: Deposit, max_seconds: float = 120.0, silence_seconds: float = 5.0) -> None:
        self._manager = manager
        self._ports = ports
        self._local_host = local_host
        self._prompts = prompts
        self._deposit = deposit
        self.max_seconds = max_seconds
        self.silence_seconds = silence_seconds
        self._mailboxes: dict[str, Mailbox] = {}  # by the target's contact
        self._boxes: dict[str, _Box] = {}  # by the leg's SIP Call-ID
        self._origin = Origin("ringwell", str(secrets.randbelow(2**62)), 1, local_host)
        self.deposited = 0
        # PINs, messages and custom greetings (the server sets it); None: default greetings, no menu.
        self.mailboxes: MailboxService | None = None

    def target(self, mailbox: Mailbox) -> Target:
        contact = f"sip:vm-{mailbox.extension}-{secrets.token_hex(4)}@voicemail.invalid"
        self._mailboxes[contact] = mailbox
        if len(self._mailboxes) > 10_000:  # targets of calls that never fell back
            for key in list(self._mailboxes)[:5_000]:
                del self._mailboxes[key]
        # The flow's host is where the box's media is: the relay trusts RTP from the signalling host.
        return Target(contact, Source(LOCAL, self._local_host, 0), "voicemail")

    @property
    def active(self) -> int:
        return len(self._boxes)

    # -- what the call sends to a box -------------------------------------------------------
    def intercept(self, call: Call, action: SendRequest) -> bool:
        if action.flow.transport != LOCAL:
            return False
        request = action.request
        box = self._boxes.get(request.call_id)
        if request.method == "INVITE" and request.to.tag is None:
            self._answer(call, action)
        elif box is None:
            self._reply(call, action, 481)
        elif request.method == "BYE":
            box.hung_up = True
            box.endpoint.close()  # the recording ends with HANGUP and is deposited
            self._reply(call, action, 200)
        elif request.method in ("INVITE", "UPDATE") and request.body:
            self._reply(call, action, 200, body=self._reanswer(box, request))
        elif request.method == "NOTIFY" and box.referred and _REFER_PROGRESS.match(request.body):
            # The phone's call back rings or was answered (RFC 3515 §2.4.5): this call is done.
            self._reply(call, action, 200)
            asyncio.get_running_loop().call_soon(self._hang_up, box)
        else:  # CANCEL of an answered INVITE, INFO, UPDATE without an offer
            self._reply(call, action, 200)
        return True

    def skip(self, action: Transmit) -> bool:
        """ACKs and retransmissions towards a box go nowhere."""
        return action.flow.transport == LOCAL

    def swallow(self, action: Respond) -> bool:
        """The call's answer to a request a box sent (its BYE, a REFER)."""
        txn = action.txn
        if not isinstance(txn, LocalTxn):
            return False
        if txn.on_response is not None:
            txn.on_response(action.response)
        return True

    def _reply(self, call: Call, action: SendRequest, status: int, *, body: bytes = b"",
               tag: str | None = None) -> None:
        request = action.request
        extra = [("Contact", f"<{request.uri}>")]
        if body:
            extra.append(("Content-Type", "application/sdp"))
        response = make_response(request, status, None, extra, to_tag=tag)
        response.body = body
        manager = self._manager
        asyncio.get_running_loop().call_soon(
            manager.feed, call, lambda: call.response(action.leg, request, response, manager.now()))

    def _answer(self, call: Call, action: SendRequest) -> None:
        request = action.request
        mailbox = self._mailboxes.pop(request.uri_text, None)
        try:
            offer = parse_sdp(request.body)
            codec = next((c for c in [first_codec(offer)] if c is not None and c.name.upper() in G711), None)
            target = audio_target(offer)
            if mailbox is None or codec is None or target is None:
                raise RemoteProtocolError("no mailbox, or no G.711 in the offer", 488)
            event = telephone_event(offer)
            endpoint = MediaEndpoint(self._ports, self._local_host, codec=codec.name, payload_type=codec.pt,
                                     event_payload_type=event.pt if event is not None else 101,
                                     label=f"voicemail {call.id}")
        except Exception as exc:
            log.warning("call %s: voicemail cannot answer: %s", call.id, exc)
            self._reply(call, action, 488 if isinstance(exc, RemoteProtocolError) else 503)
            return
        host = self._local_host if target[0] in ("0.0.0.0", "::") else target[0]  # noqa: S104
        endpoint.set_remote(host, target[1], signalling_host=self._local_host)
        self._origin = self._origin.bumped()
        answer = plain_description(origin=self._origin, address=self._local_host, port=endpoint.local_port,
                                   codecs=[codec.name.upper()], event_pt=event.pt if event is not None else None,
                                   stream_direction=mirrored(direction_of(offer))).encode()
        box = _Box(call, action.leg, request, mailbox, endpoint, answer)
        self._boxes[request.call_id] = box
        self._reply(call, action, 200, body=answer, tag=box.tag)
        box.task = asyncio.ensure_future(self._run(box))

    def _reanswer(self, box: _Box, request: Request) -> bytes:
        try:
            offer = parse_sdp(request.body)
        except RemoteProtocolError:
            return box.answer
        target = audio_target(offer)
        if target is not None and target[1]:
            box.endpoint.set_remote(target[0], target[1], signalling_host=self._local_host)
        return box.answer

    # -- the box's own script -----------------------------------------------------------------
    async def _run(self, box: _Box) -> None:
        endpoint = box.endpoint
        mailbox = box.mailbox
        try:
            if mailbox.mode is BoxMode.ACCESS:
                await self._menu(box)
                return
            greeting = mailbox.greeting_pcm or await self._custom_greeting(mailbox)
            if greeting is None:
                text = mailbox.greeting or (f"The person at extension {' '.join(mailbox.extension)} is not available. "
                                            "Please leave a message after the tone.")
                greeting = (await self._prompts.render(text)).pcm
            if await endpoint.play(greeting, stop_digits="#") is StopReason.HANGUP:
                return
            if await endpoint.beep() is StopReason.HANGUP:
                return
            recording = await endpoint.record(self.max_seconds, self.silence_seconds, stop_digits="#",
                                              initial_silence_seconds=max(INITIAL_SILENCE, self.silence_seconds))
            log.info("call %s: voicemail for %s recorded %.1f s (%s)", box.call.id, mailbox.extension,
                     recording.seconds, recording.reason.value)
            caller = box.call.caller
            await self._deposit(Message(mailbox, caller.number or caller.extension or "anonymous", caller.display,
                                        recording.pcm, box.call.id))
            self.deposited += 1
            if recording.reason is not StopReason.HANGUP and not box.hung_up:
                goodbye = await self._prompts.render(GOODBYE)
                await endpoint.play(goodbye.pcm)
                self._hang_up(box)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: voicemail failed", box.call.id)
            self._hang_up(box)
        finally:
            endpoint.close()
            self._boxes.pop(box.invite.call_id, None)

    async def _custom_greeting(self, mailbox: Mailbox) -> bytes | None:
        if self.mailboxes is None:
            return None
        try:
            return await self.mailboxes.greeting(mailbox.org_id, mailbox.user_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # a greeting that cannot be read must not lose the caller's message
            log.exception("voicemail greeting of user %s unreadable: the default one plays", mailbox.user_id)
            return None

    async def _menu(self, box: _Box) -> None:
        """The owner in their mailbox (``*97``); the box hangs up when the menu is done."""
        mailbox = box.mailbox
        if self.mailboxes is None:
            log.warning("call %s: mailbox access without a mailbox service", box.call.id)
        else:
            actor = Actor(user_id=mailbox.user_id, org_id=mailbox.org_id, ip=box.call.inbound.flow.host,
                          user_agent="phone *97")
            await MailboxMenu(box.endpoint, self._prompts, self.mailboxes, org_id=mailbox.org_id,
                              user_id=mailbox.user_id, actor=actor,
                              call_back=lambda number: self._call_back(box, number)).run()
        self._hang_up(box)

    def _hang_up(self, box: _Box) -> None:
        """A BYE from the box into the call, as the callee's phone would send it."""
        if box.hung_up or box.call.over:
            return
        box.hung_up = True
        self._send(box, "BYE")

    def _send(self, box: _Box, method: str, headers: str = "",
              on_response: Callable[[Response], None] | None = None) -> None:
        """An in-dialog request from the box into the call (as the callee's phone would send it)."""
        invite = box.invite
        box.cseq += 1
        text = (
            f"{method} {self._manager.config.contact_for(Source(LOCAL, self._local_host, 0)).strip('<>')} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP voicemail.invalid;branch={new_branch()}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {invite.headers.get('to')};tag={box.tag}\r\n"
            f"To: {invite.headers.get('from')}\r\n"
            f"Call-ID: {invite.call_id}\r\n"
            f"CSeq: {box.cseq} {method}\r\n{headers}Content-Length: 0\r\n\r\n"
        )
        request = parse_message(text.encode())
        assert isinstance(request, Request)
        manager = self._manager
        manager.feed(box.call, lambda: box.call.in_dialog(box.leg_id, request, LocalTxn(on_response), manager.now()))

    async def _call_back(self, box: _Box, number: str) -> bool:
        """Ask the owner's phone to call ``number`` (REFER, RFC 3515); True once it accepted (2xx).

        The Refer-To is the number at the address the phone reached Ringwell on (the ``*97``
        INVITE's Request-URI), so the phone sends the new call where it sends every call. Then
        wait a little for the phone to end this call (it usually does once the new one rings).
        """
        uri = box.call.inbound.invite.uri
        if not isinstance(uri, SipUri):
            return False
        target = f"{uri.scheme}:{number}@{uri.hostport}"
        if uri.param("transport"):
            target += f";transport={uri.param('transport')}"
        answered: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def responded(response: Response) -> None:
            if not answered.done():
                answered.set_result(response.status)

        self._send(box, "REFER", f"Refer-To: <{target}>\r\nReferred-By: <sip:voicemail@{uri.hostport}>\r\n",
                   responded)
        try:
            status = await asyncio.wait_for(answered, REFER_TIMEOUT)
        except TimeoutError:
            status = 408
        log.info("call %s: call back %s: the phone answered the REFER %d", box.call.id, number, status)
        if not 200 <= status < 300:
            return False
        box.referred = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(box.endpoint.wait_closed(), CALL_BACK_LINGER)
        return True

    async def stop(self) -> None:
        tasks = [box.task for box in self._boxes.values() if box.task is not None]
        for box in list(self._boxes.values()):
            box.endpoint.close()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def summary(self, sip_call_id: str) -> dict[str, Any] | None:
        box = self._boxes.get(sip_call_id)
        if box is None:
            return None
        return {"packets_sent": box.endpoint.packets_sent, "packets_received": box.endpoint.packets_received}
