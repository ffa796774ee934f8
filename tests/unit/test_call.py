"""The B2BUA core (``ringwell.pbx.call``) on a fake clock: forking, answer, CANCEL, BYE, re-INVITE
and UPDATE relay, 2xx retransmission, session timers (RFC 4028) and topology hiding.

The call is fed parsed SIP text as a phone would send it; assertions look at what would go on
the wire (requests, responses, their headers and SDP) and at the call record. The media seam
is a small recorder: it is Ringwell's own interface, not a peer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ringwell.pbx.call import (
    Action,
    Answered,
    Call,
    CallConfig,
    CallRecordDraft,
    ClearTimer,
    DialogCreated,
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
from ringwell.sip.dialog import ViaSpec, new_branch
from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import Request, Response, parse_message
from ringwell.sip.sdp import NoCommonCodec, SessionDescription, audio_codecs, direction, parse_sdp
from ringwell.transport.source import Source

RINGWELL = "203.0.113.5"
CALLER_IP = "192.0.2.10"
CALLER_CALL_ID = "a84b4c76e66710@pc33.atlanta.example"
CALLER_TAG = "1928301774"
CALLER_BRANCH = "z9hG4bK776asdhds"
CALLER_CONTACT_URI = f"sip:2001@{CALLER_IP}:5062;ob"
CALLEE_IP = "198.51.100.20"  # where the callee's phone wants its RTP
PORTS = {"a": 30000, "b": 30002}  # the fake relay's ports: "a" faces the caller, "b" the callee
T1, T2 = 0.5, 4.0
INVITE_TXN = "txn:invite"
COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'


def crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


OFFER = crlf(f"""
v=0
o=alice 2890844526 2890844526 IN IP4 {CALLER_IP}
s=Talk
c=IN IP4 {CALLER_IP}
t=0 0
m=audio 40000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtcp:40001 IN IP4 {CALLER_IP}
a=sendrecv
""")

OPUS_ONLY = crlf(f"""
v=0
o=alice 2890844526 2890844526 IN IP4 {CALLER_IP}
s=Talk
c=IN IP4 {CALLER_IP}
t=0 0
m=audio 40000 RTP/AVP 96
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
""")

ANSWER = crlf(f"""
v=0
o=bob 7 7 IN IP4 {CALLEE_IP}
s=-
c=IN IP4 {CALLEE_IP}
t=0 0
m=audio 50000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=sendrecv
""")


def hold_offer(version: int = 2890844527) -> bytes:
    return OFFER.replace(b"2890844526 IN", f"{version} IN".encode()).replace(b"a=sendrecv", b"a=sendonly")


HOLD_ANSWER = ANSWER.replace(b"o=bob 7 7", b"o=bob 7 8").replace(b"a=sendrecv", b"a=recvonly")

ALLOW_WITH_UPDATE = "INVITE, ACK, CANCEL, BYE, UPDATE, OPTIONS, INFO"
ALLOW_WITHOUT_UPDATE = "INVITE, ACK, CANCEL, BYE, OPTIONS"


def caller_invite(*, body: bytes | None = OFFER, allow: str = ALLOW_WITH_UPDATE, extra: str = "") -> Request:
    """An INVITE as a softphone sends it (linphone-like), with an SDP offer."""
    content = b"" if body is None else body
    content_type = "Content-Type: application/sdp\r\n" if body is not None else ""
    head = (
        f"INVITE sip:2002@{RINGWELL} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {CALLER_IP}:5062;branch={CALLER_BRANCH};rport\r\n"
        "Max-Forwards: 70\r\n"
        f'From: "Alice" <sip:2001@{RINGWELL}>;tag={CALLER_TAG}\r\n'
        f"To: <sip:2002@{RINGWELL}>\r\n"
        f"Call-ID: {CALLER_CALL_ID}\r\n"
        "CSeq: 101 INVITE\r\n"
        f"Contact: <{CALLER_CONTACT_URI}>;+sip.instance=\"<urn:uuid:0b6b1e1a>\"\r\n"
        f"Allow: {allow}\r\n"
        "Supported: timer, replaces, outbound\r\n"
        "User-Agent: Linphone-Desktop/5.2.0\r\n"
        f"{extra}{content_type}"
        f"Content-Length: {len(content)}\r\n\r\n"
    )
    message = parse_message(head.encode() + content)
    assert isinstance(message, Request)
    return message


def via_for(flow: Source) -> ViaSpec:
    return ViaSpec(flow.transport, RINGWELL, 5060)


def contact_for(flow: Source) -> str:
    return f"<sip:{RINGWELL}:5060;transport={flow.transport}>"


def callee_contact(port: int) -> str:
    return f"sip:2002@127.0.0.1:{port};transport=udp"


def reply_to(request: Request, status: int, reason: str = "", *, tag: str | None = None, contact: str | None = None,
             sdp: bytes = b"", headers: str = "") -> Response:
    """The response a peer sends to ``request`` (Via, From, To, Call-ID and CSeq copied)."""
    vias = "".join(f"Via: {v}\r\n" for v in request.headers.get_all("via"))
    to = request.headers.get("to") or ""
    if request.to.tag is None and tag is not None:
        to += f";tag={tag}"
    text = (
        f"SIP/2.0 {status} {reason or 'Whatever'}\r\n{vias}"
        f"From: {request.headers.get('from')}\r\nTo: {to}\r\n"
        f"Call-ID: {request.call_id}\r\nCSeq: {request.cseq}\r\n"
        + (f"Contact: <{contact}>\r\n" if contact else "")
        + headers
        + ("Content-Type: application/sdp\r\n" if sdp else "")
        + f"Content-Length: {len(sdp)}\r\n\r\n"
    )
    message = parse_message(text.encode() + sdp)
    assert isinstance(message, Response)
    return message


@dataclass
class FakeMedia:
    """Records what the call tells its media session."""

    remotes: list[tuple[str, str, int, int, str | None]] = field(default_factory=list)
    armed: int = 0
    disarmed: int = 0

    def local_port(self, side: str) -> int:
        return PORTS[side]

    def set_remote(self, side: str, host: str, port: int, rtcp_port: int, signalling_host: str | None) -> None:
        self.remotes.append((side, host, port, rtcp_port, signalling_host))

    def arm(self) -> None:
        self.armed += 1

    def disarm(self) -> None:
        self.disarmed += 1


class Harness:
    """One call, its timers on a hand-advanced clock, and everything it did."""

    def __init__(self, *, targets: int = 2, invite: Request | None = None, session_expires: int = 1800,
                 min_se: int = 90, ring_timeout: float = 30.0, caller_transport: str = "udp",
                 fallback: Target | None = None) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 5_000.0
        self.start_mono = self.mono
        self.media = FakeMedia()
        self.config = CallConfig(host=RINGWELL, via_for=via_for, contact_for=contact_for,
                                 session_expires=session_expires, min_se=min_se)
        self.ports = [5080 + 2 * i for i in range(targets)]
        self.targets = [Target(callee_contact(p), Source("udp", "127.0.0.1", p)) for p in self.ports]
        self.caller_flow = Source(caller_transport, CALLER_IP, 5062)
        self.invite = invite or caller_invite()
        self.timers: dict[str, float] = {}
        self.history: list[tuple[float, Action]] = []
        self.forks: dict[str, Request] = {}
        self.callee_tags: dict[str, str] = {}
        self.caller_cseq = 101
        self.callee_cseq: dict[str, int] = {}
        self.call = Call(
            call_id="call-1", invite=self.invite, txn=INVITE_TXN, source=self.caller_flow,
            caller=Party("u-alice", "2001", "2001", "Alice"), callee=Party("u-bob", "2002", "2002"),
            targets=self.targets, media=self.media, config=self.config, ring_timeout=ring_timeout,
            now=self.now(), fallback=fallback,
        )

    # -- the clock -------------------------------------------------------------------------
    def now(self) -> Instant:
        return Instant(self.wall, self.mono)

    @property
    def elapsed(self) -> float:
        return round(self.mono - self.start_mono, 6)

    def advance(self, seconds: float) -> list[Action]:
        """Move both clocks forward, firing due timers in order; returns what they did."""
        until = self.mono + seconds
        out: list[Action] = []
        while True:
            due = [(at, name) for name, at in self.timers.items() if at <= until + 1e-9]
            if not due:
                break
            at, name = min(due)
            self._move_to(at)
            del self.timers[name]
            out += self.feed(self.call.timer_fired(name, self.now()))
        self._move_to(until)
        return out

    def _move_to(self, mono: float) -> None:
        self.wall += mono - self.mono
        self.mono = mono

    # -- feeding the call ------------------------------------------------------------------
    def feed(self, actions: list[Action]) -> list[Action]:
        for action in actions:
            self.history.append((self.elapsed, action))
            if isinstance(action, SetTimer):
                self.timers[action.name] = self.mono + action.delay
            elif isinstance(action, ClearTimer):
                self.timers.pop(action.name, None)
            elif (isinstance(action, SendRequest) and action.request.method == "INVITE"
                  and action.leg not in self.forks):
                self.forks[action.leg] = action.request
        return actions

    def start(self) -> list[Action]:
        return self.feed(self.call.start(self.now()))

    def fork_replies(self, leg: str, status: int, reason: str = "", *, sdp: bytes = b"", headers: str = "") -> list[
            Action]:
        invite = self.forks[leg]
        tag = self.callee_tags.setdefault(leg, f"callee-{leg}")
        port = self.ports[int(leg[1:])]
        contact = callee_contact(port) if 101 <= status < 300 else None
        response = reply_to(invite, status, reason, tag=tag, contact=contact, sdp=sdp, headers=headers)
        return self.feed(self.call.response(leg, invite, response, self.now()))

    def answer(self, leg: str = "b0", *, headers: str = "", ack: bool = True) -> list[Action]:
        """Ring every fork, let ``leg`` answer and (by default) the caller ACK."""
        for fork in list(self.forks):
            self.fork_replies(fork, 180, "Ringing")
        actions = self.fork_replies(leg, 200, "OK", sdp=ANSWER, headers=headers)
        if ack:
            self.caller_ack()
        return actions

    def replies_to_leg(self, leg: str, request: Request, status: int, *, sdp: bytes = b"", headers: str = "") -> list[
            Action]:
        response = reply_to(request, status, "Reply", contact=None if status >= 300 else "sip:x@127.0.0.1",
                            sdp=sdp, headers=headers)
        return self.feed(self.call.response(leg, request, response, self.now()))

    @property
    def our_tag_a(self) -> str:
        """The To tag Ringwell gave the caller (from the responses it sent)."""
        tags = {r.response.to.tag for _, r in self.history if isinstance(r, Respond) and r.txn == INVITE_TXN}
        assert len(tags) == 1, tags
        tag = tags.pop()
        assert tag is not None
        return tag

    def caller_request(self, method: str, *, cseq: int | None = None, body: bytes = b"", extra: str = "",
                       branch: str | None = None) -> Request:
        """An in-dialog request from the caller, to the Contact Ringwell gave it."""
        if cseq is None:
            self.caller_cseq += 1
            cseq = self.caller_cseq
        text = (
            f"{method} sip:{RINGWELL}:5060;transport=udp SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {CALLER_IP}:5062;branch={branch or new_branch()};rport\r\n"
            "Max-Forwards: 70\r\n"
            f'From: "Alice" <sip:2001@{RINGWELL}>;tag={CALLER_TAG}\r\n'
            f"To: <sip:2002@{RINGWELL}>;tag={self.our_tag_a}\r\n"
            f"Call-ID: {CALLER_CALL_ID}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <{CALLER_CONTACT_URI}>\r\n"
            f"{extra}"
            + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body)}\r\n\r\n"
        )
        message = parse_message(text.encode() + body)
        assert isinstance(message, Request)
        return message

    def caller_ack(self, cseq: int = 101) -> list[Action]:
        return self.from_caller(self.caller_request("ACK", cseq=cseq), None)

    def from_caller(self, request: Request, txn: object) -> list[Action]:
        return self.feed(self.call.in_dialog("a", request, txn, self.now()))

    def callee_request(self, leg: str, method: str, *, cseq: int | None = None, body: bytes = b"",
                       extra: str = "") -> Request:
        """An in-dialog request from the callee's phone on ``leg``."""
        invite = self.forks[leg]
        if cseq is None:
            cseq = self.callee_cseq.get(leg, 20) + 1
        self.callee_cseq[leg] = cseq
        port = self.ports[int(leg[1:])]
        text = (
            f"{method} sip:{RINGWELL}:5060;transport=udp SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={new_branch()};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {invite.headers.get('to')};tag={self.callee_tags[leg]}\r\n"
            f"To: {invite.headers.get('from')}\r\n"
            f"Call-ID: {invite.call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <{callee_contact(port)}>\r\n"
            f"{extra}"
            + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body)}\r\n\r\n"
        )
        message = parse_message(text.encode() + body)
        assert isinstance(message, Request)
        return message

    def from_callee(self, leg: str, request: Request, txn: object) -> list[Action]:
        return self.feed(self.call.in_dialog(leg, request, txn, self.now()))

    def ended(self) -> list[CallRecordDraft]:
        return [a.record for _, a in self.history if isinstance(a, Ended)]


# -- reading actions ------------------------------------------------------------------------
def requests(actions: list[Action], method: str | None = None, leg: str | None = None) -> list[SendRequest]:
    return [a for a in actions if isinstance(a, SendRequest) and (method is None or a.request.method == method)
            and (leg is None or a.leg == leg)]


def only_request(actions: list[Action], method: str, leg: str) -> Request:
    found = requests(actions, method, leg)
    assert len(found) == 1, actions
    return found[0].request


def replies(actions: list[Action], txn: object = INVITE_TXN) -> list[Response]:
    return [a.response for a in actions if isinstance(a, Respond) and a.txn == txn]


def only_reply(actions: list[Action], txn: object = INVITE_TXN) -> Response:
    found = replies(actions, txn)
    assert len(found) == 1, actions
    return found[0]


def transmitted(actions: list[Action]) -> list[Transmit]:
    return [a for a in actions if isinstance(a, Transmit)]


def ended(actions: list[Action]) -> CallRecordDraft:
    found = [a.record for a in actions if isinstance(a, Ended)]
    assert len(found) == 1, actions
    return found[0]


def timers_set(actions: list[Action]) -> dict[str, float]:
    return {a.name: a.delay for a in actions if isinstance(a, SetTimer)}


def sdp_of(message: Request | Response) -> SessionDescription:
    assert message.headers.get("content-type") == "application/sdp"
    return parse_sdp(message.body)


def audio_port(sdp: SessionDescription) -> int:
    return next(m.port for m in sdp.media if m.media == "audio")


def assert_anchored(sdp: SessionDescription, side: str) -> None:
    """The SDP points at Ringwell's relay on ``side`` and at nobody else."""
    assert sdp.connection == RINGWELL or all(m.connection == RINGWELL for m in sdp.media)
    assert sdp.origin.address == RINGWELL
    assert audio_port(sdp) == PORTS[side]
    assert sdp.media[0].attributes("rtcp") == []


# -- start --------------------------------------------------------------------------------
def test_start_forks_one_invite_per_target_with_its_own_identity():
    h = Harness(targets=2)
    actions = h.start()

    invites = requests(actions, "INVITE")
    assert [i.leg for i in invites] == ["b0", "b1"]
    assert [i.flow for i in invites] == [t.flow for t in h.targets]
    call_ids = {i.request.call_id for i in invites}
    from_tags = {i.request.from_.tag for i in invites}
    assert len(call_ids) == 2 and CALLER_CALL_ID not in call_ids
    assert len(from_tags) == 2 and CALLER_TAG not in from_tags
    for sent, target in zip(invites, h.targets, strict=True):
        invite = sent.request
        assert invite.uri_text == target.contact
        assert invite.to.tag is None
        assert (invite.top_via.host, invite.top_via.port) == (RINGWELL, 5060)
        assert invite.top_via.branch is not None and invite.top_via.branch.startswith("z9hG4bK")
        assert len(invite.vias) == 1
        assert invite.headers.get("contact") == contact_for(target.flow)
        assert invite.headers.get("session-expires") == "1800"
        assert "timer" in invite.headers.values("supported")
        assert "UPDATE" in invite.headers.values("allow")
        assert '"Alice"' in (invite.headers.get("from") or "")
        offer = sdp_of(invite)
        assert_anchored(offer, "b")
        assert [c.name for c in audio_codecs(offer)] == ["PCMU", "PCMA", "telephone-event"]
    assert SetTimer("ring", 30.0) in actions
    [created] = [a for a in actions if isinstance(a, DialogCreated)]
    assert created.leg == "a" and created.key[0] == CALLER_CALL_ID
    assert replies(actions) == []  # the 100 Trying is the transaction layer's; nothing else yet
    # Ringwell will relay the caller's RTP: side "a" learnt the caller's address from the offer.
    assert h.media.remotes == [("a", CALLER_IP, 40000, 40001, CALLER_IP)]


def test_outbound_invite_hides_the_caller_topology():
    h = Harness(targets=1)
    wire = h.start()
    data = only_request(wire, "INVITE", "b0").encode()
    for secret in (CALLER_IP, CALLER_CALL_ID, CALLER_TAG, CALLER_BRANCH, "Linphone", "2890844526", "urn:uuid"):
        assert secret.encode() not in data, secret
    assert b"m=audio 30002 " in data


def test_no_registered_device_answers_480():
    h = Harness(targets=0)
    actions = h.start()
    assert requests(actions) == []
    reply = only_reply(actions)
    assert (reply.status, reply.reason) == (480, "Temporarily Unavailable")
    record = ended(actions)
    assert (record.disposition, record.hangup_by, record.sip_status) == ("failed", "system", 480)
    assert record.answered_at is None


def test_invite_without_sdp_is_refused_488():
    with pytest.raises(RemoteProtocolError) as info:
        Harness(invite=caller_invite(body=None))
    assert info.value.status_hint == 488


def test_opus_only_offer_is_refused_488_no_common_codec():
    with pytest.raises(NoCommonCodec) as info:
        Harness(invite=caller_invite(body=OPUS_ONLY))
    assert info.value.status_hint == 488


# -- provisional responses --------------------------------------------------------------------
def test_180_is_relayed_to_the_caller_once():
    h = Harness(targets=2)
    h.start()
    first = h.fork_replies("b0", 180, "Ringing")
    again = h.fork_replies("b1", 180, "Ringing") + h.fork_replies("b0", 180, "Ringing")

    ringing = only_reply(first)
    assert (ringing.status, ringing.reason) == (180, "Ringing")
    # The To tag is the one the caller's in-dialog requests will be matched by.
    [created] = [a for _, a in h.history if isinstance(a, DialogCreated) and a.leg == "a"]
    assert created.key == (CALLER_CALL_ID, ringing.to.tag)
    assert ringing.headers.get("contact") == contact_for(h.caller_flow)
    assert ringing.call_id == CALLER_CALL_ID
    assert ringing.top_via.branch == CALLER_BRANCH
    assert b"callee-b0" not in ringing.encode() and b"127.0.0.1" not in ringing.encode()
    assert replies(again) == []


def test_183_with_sdp_is_relayed_with_sdp_anchored_on_the_caller_side():
    h = Harness(targets=1)
    h.start()
    actions = h.fork_replies("b0", 183, "Session Progress", sdp=ANSWER)

    progress = only_reply(actions)
    assert progress.status == 183
    early = sdp_of(progress)
    assert_anchored(early, "a")
    assert [c.name for c in audio_codecs(early)] == ["PCMA", "telephone-event"]
    assert CALLEE_IP.encode() not in progress.encode()
    assert ("b", CALLEE_IP, 50000, 50001, "127.0.0.1") in h.media.remotes


# -- answer ---------------------------------------------------------------------------------
def test_first_200_wins_and_the_other_forks_are_cancelled():
    h = Harness(targets=3)
    h.start()
    h.fork_replies("b0", 180, "Ringing")
    h.fork_replies("b1", 180, "Ringing")  # b2 has sent nothing yet
    actions = h.fork_replies("b0", 200, "OK", sdp=ANSWER)

    # The winner gets its ACK (no transaction: §13.2.2.4), same CSeq, new branch, to its Contact.
    [ack_sent] = transmitted(actions)
    ack = ack_sent.message
    assert isinstance(ack, Request)
    assert ack_sent.flow == h.targets[0].flow
    assert (ack.method, ack.cseq.number) == ("ACK", 1)
    assert ack.uri_text == callee_contact(5080)
    assert ack.call_id == h.forks["b0"].call_id and ack.to.tag == "callee-b0"
    assert ack.top_via.branch != h.forks["b0"].top_via.branch

    # The ringing loser is cancelled (same branch as its INVITE), the silent one not yet.
    cancel = only_request(actions, "CANCEL", "b1")
    assert cancel.headers.get("reason") == COMPLETED_ELSEWHERE
    assert cancel.top_via.branch == h.forks["b1"].top_via.branch
    assert (cancel.cseq.number, cancel.cseq.method) == (1, "CANCEL")
    assert requests(actions, leg="b2") == []

    # The caller gets a 200 with Ringwell's SDP and Contact; nothing of the callee leaks.
    ok = only_reply(actions)
    assert ok.status == 200
    assert ok.headers.get("contact") == contact_for(h.caller_flow)
    answer = sdp_of(ok)
    assert_anchored(answer, "a")
    assert [c.name for c in audio_codecs(answer)] == ["PCMA", "telephone-event"]
    data = ok.encode()
    for secret in (CALLEE_IP, "callee-b0", h.forks["b0"].call_id, "127.0.0.1", "2002@127.0.0.1"):
        assert secret.encode() not in data, secret

    assert Answered(h.wall, "PCMA") in actions
    assert ClearTimer("ring") in actions
    assert h.media.armed == 1
    assert ("b", CALLEE_IP, 50000, 50001, "127.0.0.1") in h.media.remotes
    assert any(isinstance(a, DialogCreated) and a.leg == "b0" for a in actions)

    # b2 rings late: now (and only now) it gets its CANCEL, once.
    late = h.fork_replies("b2", 180, "Ringing")
    assert only_request(late, "CANCEL", "b2").headers.get("reason") == COMPLETED_ELSEWHERE
    assert replies(late) == []
    assert h.fork_replies("b2", 180, "Ringing") == []

    # b1 answered before its CANCEL arrived: ACK it, then BYE it.
    raced = h.fork_replies("b1", 200, "OK", sdp=ANSWER)
    [ack_b1] = transmitted(raced)
    assert ack_b1.flow == h.targets[1].flow and ack_b1.message.cseq.method == "ACK"
    bye = only_request(raced, "BYE", "b1")
    assert bye.call_id == h.forks["b1"].call_id and bye.to.tag == "callee-b1"
    assert replies(raced) == [] and not any(isinstance(a, Answered) for a in raced)
    assert h.ended() == []


def test_silent_fork_answering_after_the_winner_is_acked_and_hung_up():
    # b1 never sent a provisional, so it never got a CANCEL; its 200 is ACKed and BYEd.
    h = Harness(targets=2)
    h.start()
    h.fork_replies("b0", 200, "OK", sdp=ANSWER)
    raced = h.fork_replies("b1", 200, "OK", sdp=ANSWER)
    assert [t.message.cseq.method for t in transmitted(raced)] == ["ACK"]
    assert requests(raced, "BYE", "b1")
    assert requests(raced, "CANCEL") == []


# -- 2xx retransmission (§13.3.1.4) --------------------------------------------------------------
def test_200_is_retransmitted_over_udp_doubling_to_t2_until_the_ack():
    h = Harness(targets=1)
    h.start()
    ok = only_reply(h.answer(ack=False))
    out = h.advance(8.0)
    resent = transmitted(out)
    assert [t.message for t in resent] == [ok] * len(resent)
    assert all(t.flow == h.caller_flow for t in resent)
    times = [when for when, a in h.history if isinstance(a, Transmit) and a.message is ok]
    assert times == [0.5, 1.5, 3.5, 7.5]

    assert ClearTimer("2xx:a") in h.caller_ack()
    h.advance(60.0)
    assert [when for when, a in h.history if isinstance(a, Transmit) and a.message is ok] == [0.5, 1.5, 3.5, 7.5]
    assert h.ended() == []


def test_no_ack_within_64_t1_hangs_up_both_legs():
    h = Harness(targets=1)
    h.start()
    ok = only_reply(h.answer(ack=False))
    out = h.advance(64 * T1 + 10)
    times = [when for when, a in h.history if isinstance(a, Transmit) and a.message is ok]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    bye = only_request(out, "BYE", "b0")
    assert "cause=408" in (bye.headers.get("reason") or "")
    # RFC 3261 §13.3.1.4: the caller, whose ACK never came, gets a BYE too (its phone may show a call)
    to_caller = only_request(out, "BYE", "a")
    assert "No ACK received" in (to_caller.headers.get("reason") or "")
    record = ended(out)
    assert (record.hangup_by, record.sip_status) == ("system", 408)
    # The session ends when 64*T1 has passed, not at the next retransmission after it.
    [(when, _)] = [(w, a) for w, a in h.history if isinstance(a, Ended)]
    assert when == 64 * T1


def test_200_over_tcp_is_not_retransmitted_but_still_needs_its_ack():
    h = Harness(targets=1, caller_transport="tcp")
    h.start()
    h.answer(ack=False)
    out = h.advance(64 * T1)
    assert transmitted(out) == []
    assert ended(out).sip_status == 408


# -- failures -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("statuses", "expected", "disposition"),
    [
        ((486, 486), (486, "Busy Here"), "busy"),
        ((480, 408), (480, "Temporarily Unavailable"), "failed"),
        ((603, 486), (603, "Decline"), "busy"),
    ],
)
def test_all_forks_fail_the_caller_gets_the_best_status(statuses, expected, disposition):
    h = Harness(targets=2)
    h.start()
    first = h.fork_replies("b0", statuses[0])
    assert replies(first) == [] and h.ended() == []  # b1 may still answer
    last = h.fork_replies("b1", statuses[1])
    reply = only_reply(last)
    assert (reply.status, reply.reason) == expected
    record = ended(last)
    assert (record.disposition, record.hangup_by, record.sip_status) == (disposition, "callee", expected[0])
    assert transmitted(first + last) == [] and requests(first + last) == []  # non-2xx ACKs are hop-by-hop


def test_ring_timeout_cancels_and_answers_480_with_ring_time_from_the_monotonic_clock():
    h = Harness(targets=2, ring_timeout=30.0)
    h.start()
    h.fork_replies("b0", 180, "Ringing")
    started_wall = h.wall
    h.wall -= 7200.0  # the wall clock is stepped back two hours while it rings
    out = h.advance(30.0)

    cancel = only_request(out, "CANCEL", "b0")
    assert cancel.headers.get("reason") == 'SIP;cause=480;text="No answer"'
    assert requests(out, leg="b1") == []
    reply = only_reply(out)
    assert (reply.status, reply.reason) == (480, "No Answer")
    record = ended(out)
    assert (record.disposition, record.hangup_by, record.sip_status) == ("no-answer", "system", 480)
    assert record.ring_seconds == 30.0 and record.talk_seconds == 0.0
    assert record.ended_at == started_wall - 7200.0 + 30.0
    assert record.answered_at is None

    late = h.fork_replies("b1", 180, "Ringing")
    assert only_request(late, "CANCEL", "b1").headers.get("reason") == 'SIP;cause=480;text="No answer"'


# -- CANCEL from the caller --------------------------------------------------------------------
def test_caller_cancel_before_answer():
    h = Harness(targets=2)
    h.start()
    h.fork_replies("b0", 180, "Ringing")
    h.advance(4.0)
    out = h.feed(h.call.cancel(None, h.now()))

    assert only_request(out, "CANCEL", "b0").headers.get("reason") == 'SIP;cause=487;text="Request Terminated"'
    assert requests(out, leg="b1") == []
    assert only_reply(out).status == 487
    record = ended(out)
    assert (record.disposition, record.hangup_by, record.sip_status) == ("cancelled", "caller", 487)
    assert record.ring_seconds == 4.0
    assert "ring" not in h.timers
    assert requests(h.fork_replies("b1", 183, "Session Progress", sdp=ANSWER), "CANCEL", "b1")
    assert h.ended() == [record]


def test_caller_cancel_reason_is_relayed_to_the_forks():
    h = Harness(targets=1)
    h.start()
    h.fork_replies("b0", 180, "Ringing")
    out = h.feed(h.call.cancel('Q.850;cause=16;text="Normal call clearing"', h.now()))
    assert only_request(out, "CANCEL", "b0").headers.get("reason") == 'Q.850;cause=16;text="Normal call clearing"'


def test_caller_cancel_after_answer_does_nothing():
    h = Harness(targets=1)
    h.start()
    h.answer()
    assert h.call.cancel(None, h.now()) == []


def test_caller_bye_on_the_early_dialog_cancels_the_forks_and_ends_the_invite():
    # §15: the caller MAY send BYE on an early dialog; §15.1.2: the pending INVITE gets a 487.
    h = Harness(targets=2)
    h.start()
    h.fork_replies("b0", 180, "Ringing")
    out = h.from_caller(h.caller_request("BYE"), "txn:bye")
    assert only_reply(out, "txn:bye").status == 200
    assert only_reply(out).status == 487
    assert requests(out, "CANCEL", "b0")
    record = ended(out)
    assert (record.hangup_by, record.answered_at) == ("caller", None)
    assert requests(h.fork_replies("b1", 180, "Ringing"), "CANCEL", "b1")


# -- BYE ------------------------------------------------------------------------------------
def test_bye_from_the_caller_hangs_up_the_callee_once():
    h = Harness(targets=1)
    h.start()
    h.advance(3.0)
    h.answer()
    answered_wall = h.wall
    h.advance(60.0)
    bye = h.caller_request("BYE", extra='Reason: Q.850;cause=16;text="Normal call clearing"\r\n')
    out = h.from_caller(bye, "txn:bye")

    assert only_reply(out, "txn:bye").status == 200
    relayed = only_request(out, "BYE", "b0")
    assert relayed.uri_text == callee_contact(5080)
    assert relayed.call_id == h.forks["b0"].call_id
    assert relayed.to.tag == "callee-b0" and relayed.from_.tag == h.forks["b0"].from_.tag
    assert relayed.cseq.number == 2
    assert relayed.headers.get("reason") == 'Q.850;cause=16;text="Normal call clearing"'
    assert CALLER_IP.encode() not in relayed.encode()
    record = ended(out)
    assert (record.disposition, record.hangup_by, record.sip_status) == ("answered", "caller", 200)
    assert (record.ring_seconds, record.talk_seconds) == (3.0, 60.0)
    assert record.answered_at == answered_wall and record.codec == "PCMA"

    # The same BYE again (its transaction gone): answered again, nothing else happens.
    again = h.from_caller(bye, "txn:bye-again")
    assert only_reply(again, "txn:bye-again").status == 200
    assert requests(again) == []
    assert len(h.ended()) == 1


def test_bye_from_the_callee_hangs_up_the_caller():
    h = Harness(targets=2)
    h.start()
    h.answer("b1")
    h.advance(12.5)
    out = h.from_callee("b1", h.callee_request("b1", "BYE"), "txn:bye")

    assert only_reply(out, "txn:bye").status == 200
    bye = only_request(out, "BYE", "a")
    assert requests(out, leg="b0") == []
    assert bye.uri_text == CALLER_CONTACT_URI
    assert bye.call_id == CALLER_CALL_ID
    assert bye.to.tag == CALLER_TAG and bye.from_.tag == h.our_tag_a
    assert (bye.top_via.host, bye.cseq.number) == (RINGWELL, 1)
    assert bye.headers.get("reason") is None
    [sent] = requests(out, "BYE", "a")
    assert sent.flow == h.caller_flow
    record = ended(out)
    assert (record.hangup_by, record.talk_seconds) == ("callee", 12.5)

    # The caller's BYE crossed ours: answered, no second end.
    crossed = h.from_caller(h.caller_request("BYE"), "txn:crossed")
    assert only_reply(crossed, "txn:crossed").status == 200
    assert requests(crossed) == [] and len(h.ended()) == 1


# -- re-INVITE and UPDATE --------------------------------------------------------------------
def test_hold_reinvite_from_the_caller_is_relayed_and_answered():
    h = Harness(targets=1)
    h.start()
    first_offer = sdp_of(h.forks["b0"])
    ok = only_reply(h.answer())
    first_answer = sdp_of(ok)

    reinvite = h.caller_request("INVITE", body=hold_offer())
    out = h.from_caller(reinvite, "txn:reinvite")
    relayed = only_request(out, "INVITE", "b0")
    assert replies(out, "txn:reinvite") == []
    assert relayed.call_id == h.forks["b0"].call_id and relayed.to.tag == "callee-b0"
    assert relayed.cseq.number == 2
    assert relayed.uri_text == callee_contact(5080)
    assert relayed.headers.get("contact") == contact_for(h.targets[0].flow)
    offer = sdp_of(relayed)
    assert_anchored(offer, "b")
    assert direction(offer) == "sendonly"
    assert offer.origin.session_id == first_offer.origin.session_id
    assert offer.origin.version == first_offer.origin.version + 1
    assert CALLER_IP.encode() not in relayed.encode()

    answered = h.replies_to_leg("b0", relayed, 200, sdp=HOLD_ANSWER)
    [ack] = transmitted(answered)
    assert isinstance(ack.message, Request)
    assert (ack.message.method, ack.message.cseq.number) == ("ACK", 2)
    assert ack.flow == h.targets[0].flow
    reply = only_reply(answered, "txn:reinvite")
    assert reply.status == 200
    assert reply.headers.get("contact") == contact_for(h.caller_flow)
    answer = sdp_of(reply)
    assert_anchored(answer, "a")
    assert direction(answer) == "recvonly"
    assert answer.origin.session_id == first_answer.origin.session_id
    assert answer.origin.version == first_answer.origin.version + 1
    assert CALLEE_IP.encode() not in reply.encode()
    assert Held("b", True) in answered  # the callee waits: music on hold goes to side b
    assert ClearTimer("2xx:a") in h.caller_ack(reinvite.cseq.number)


def test_reinvite_while_another_is_pending_gets_491():
    h = Harness(targets=1)
    h.start()
    h.answer()
    h.from_caller(h.caller_request("INVITE", body=hold_offer()), "txn:one")
    second = h.from_caller(h.caller_request("INVITE", body=hold_offer(2890844528)), "txn:two")
    assert only_reply(second, "txn:two").status == 491
    assert requests(second) == []
    glare = h.from_callee("b0", h.callee_request("b0", "INVITE", body=HOLD_ANSWER), "txn:glare")
    assert only_reply(glare, "txn:glare").status == 491
    assert requests(glare) == []


def test_callee_refusing_the_reinvite_is_relayed_to_the_caller():
    h = Harness(targets=1)
    h.start()
    h.answer()
    media_before = list(h.media.remotes)
    relayed = only_request(h.from_caller(h.caller_request("INVITE", body=hold_offer()), "txn:re"), "INVITE", "b0")
    assert h.media.remotes == media_before, "an offer is not in force before the far side accepts it"
    out = h.replies_to_leg("b0", relayed, 488)
    reply = only_reply(out, "txn:re")
    assert reply.status == 488 and reply.body == b""
    assert h.media.remotes == media_before, "a refused offer leaves the media where it was (RFC 3261 §14.1)"
    assert transmitted(out) == []
    assert h.ended() == []
    # The exchange is over: a new offer may go through.
    retry = h.from_caller(h.caller_request("INVITE", body=hold_offer(2890844528)), "txn:retry")
    assert requests(retry, "INVITE", "b0")


def test_update_with_sdp_is_relayed_the_same_way():
    h = Harness(targets=1)
    h.start()
    h.answer()
    out = h.from_caller(h.caller_request("UPDATE", body=hold_offer()), "txn:update")
    relayed = only_request(out, "UPDATE", "b0")
    offer = sdp_of(relayed)
    assert_anchored(offer, "b")
    assert direction(offer) == "sendonly"

    answered = h.replies_to_leg("b0", relayed, 200, sdp=HOLD_ANSWER)
    assert transmitted(answered) == []  # no ACK for UPDATE
    reply = only_reply(answered, "txn:update")
    assert reply.status == 200
    assert reply.headers.get("contact") == contact_for(h.caller_flow)
    answer = sdp_of(reply)
    assert_anchored(answer, "a")
    assert direction(answer) == "recvonly"


def test_reinvite_from_the_callee_is_relayed_to_the_caller():
    h = Harness(targets=1)
    h.start()
    h.answer()
    out = h.from_callee("b0", h.callee_request("b0", "INVITE", body=HOLD_ANSWER), "txn:callee-re")
    relayed = only_request(out, "INVITE", "a")
    assert relayed.uri_text == CALLER_CONTACT_URI and relayed.call_id == CALLER_CALL_ID
    offer = sdp_of(relayed)
    assert_anchored(offer, "a")
    assert direction(offer) == "recvonly"
    assert CALLEE_IP.encode() not in relayed.encode()


def test_reinvite_without_sdp_is_answered_locally_with_the_current_sdp():
    h = Harness(targets=1)
    h.start()
    current = sdp_of(only_reply(h.answer()))
    out = h.from_caller(h.caller_request("INVITE"), "txn:refresh")
    assert requests(out) == []
    reply = only_reply(out, "txn:refresh")
    assert reply.status == 200
    offer = sdp_of(reply)
    assert offer.origin == current.origin
    assert_anchored(offer, "a")


def test_in_dialog_request_with_an_old_cseq_is_refused_500():
    h = Harness(targets=1)
    h.start()
    h.answer()
    out = h.from_caller(h.caller_request("INVITE", cseq=50, body=hold_offer()), "txn:old")
    reply = only_reply(out, "txn:old")
    assert reply.status == 500
    assert requests(out) == [] and h.ended() == []


def test_request_for_an_unknown_leg_is_481():
    h = Harness(targets=1)
    h.start()
    h.answer()
    out = h.feed(h.call.in_dialog("b7", h.caller_request("BYE"), "txn:lost", h.now()))
    assert only_reply(out, "txn:lost").status == 481
    assert h.ended() == []


# -- session timers (RFC 4028) ----------------------------------------------------------------
def test_ringwell_refreshes_the_caller_with_update_when_allowed():
    h = Harness(targets=1, session_expires=90)
    h.start()
    actions = h.answer()
    ok = only_reply(actions)
    assert ok.headers.get("session-expires") == "90;refresher=uas"
    assert ok.headers.get("require") == "timer"
    assert timers_set(actions)["se:a"] == 45.0

    out = h.advance(45.0)
    refresh = only_request(out, "UPDATE", "a")
    assert refresh.uri_text == CALLER_CONTACT_URI and refresh.call_id == CALLER_CALL_ID
    # Ringwell refreshes, and in its own UPDATE it is the UAC (RFC 4028 §7.4)
    assert refresh.headers.get("session-expires") == "90;refresher=uac"
    assert refresh.body == b""
    done = h.replies_to_leg("a", refresh, 200, headers="Session-Expires: 90;refresher=uas\r\n")
    assert timers_set(done) == {"se:a": 45.0}
    assert h.ended() == []


def test_ringwell_refreshes_with_reinvite_and_the_same_sdp_without_update():
    h = Harness(targets=1, session_expires=90, invite=caller_invite(allow=ALLOW_WITHOUT_UPDATE))
    h.start()
    current = sdp_of(only_reply(h.answer()))
    out = h.advance(45.0)
    assert requests(out, "UPDATE", "a") == []
    refresh = only_request(out, "INVITE", "a")
    assert sdp_of(refresh) == current  # an unchanged description: same o= version
    done = h.replies_to_leg("a", refresh, 200, sdp=OFFER)
    [ack] = transmitted(done)
    assert ack.message.cseq.number == refresh.cseq.number and ack.flow == h.caller_flow
    assert timers_set(done) == {"se:a": 45.0}


@pytest.mark.parametrize("status", [408, 481])
def test_failed_refresh_hangs_up_the_call(status):
    h = Harness(targets=1, session_expires=90)
    h.start()
    h.answer()
    refresh = only_request(h.advance(45.0), "UPDATE", "a")
    out = h.replies_to_leg("a", refresh, status)
    bye = only_request(out, "BYE", "b0")
    assert f"cause={status}" in (bye.headers.get("reason") or "")
    assert requests(out, "BYE", "a") == []
    record = ended(out)
    assert (record.hangup_by, record.sip_status) == ("system", status)


def test_refresh_that_times_out_hangs_up_the_call():
    h = Harness(targets=1, session_expires=90)
    h.start()
    h.answer()
    refresh = only_request(h.advance(45.0), "UPDATE", "a")
    out = h.feed(h.call.request_failed("a", refresh, h.now()))
    assert requests(out, "BYE", "b0")
    record = ended(out)
    assert (record.hangup_by, record.sip_status) == ("system", 408)


def test_call_ends_when_the_refreshing_peer_stays_silent():
    h = Harness(targets=1, session_expires=90)
    h.start()
    actions = h.answer(headers="Session-Expires: 90;refresher=uas\r\nSupported: timer\r\n")
    assert timers_set(actions)["se:b0"] == 90 - 30  # SE - min(32, SE/3)

    # A refresh from the callee (UPDATE without SDP) pushes the deadline back.
    h.advance(50.0)
    refreshed = h.from_callee("b0", h.callee_request("b0", "UPDATE", extra="Session-Expires: 90\r\n"), "txn:upd")
    reply = only_reply(refreshed, "txn:upd")
    # the callee, the UAC of its UPDATE, stays the refresher (RFC 4028 §9: the UAS echoes it)
    assert reply.status == 200 and reply.headers.get("session-expires") == "90;refresher=uac"
    assert requests(refreshed) == []
    assert h.ended() == []
    h.advance(59.0)
    assert h.ended() == []

    out = h.advance(1.0)
    bye = only_request(out, "BYE", "a")
    assert "cause=408" in (bye.headers.get("reason") or "")
    assert requests(out, "BYE", "b0") == []
    record = ended(out)
    assert (record.hangup_by, record.sip_status) == ("system", 408)
    assert record.talk_seconds == 110.0


def test_session_expires_below_min_se_is_refused_422():
    h = Harness(targets=1, invite=caller_invite(extra="Session-Expires: 60\r\n"))
    actions = h.start()
    reply = only_reply(actions)
    assert reply.status == 422
    assert reply.headers.get("min-se") == "90"
    assert requests(actions) == []
    assert ended(actions).sip_status == 422


def test_caller_chosen_refresher_is_respected():
    invite = caller_invite(extra="Session-Expires: 600;refresher=uac\r\n")
    h = Harness(targets=1, session_expires=1800, invite=invite)
    h.start()
    actions = h.answer()
    assert only_reply(actions).headers.get("session-expires") == "600;refresher=uac"
    assert timers_set(actions)["se:a"] == 600 - 32


# -- media timeout ----------------------------------------------------------------------------
def test_media_timeout_hangs_up_both_legs():
    h = Harness(targets=1)
    h.start()
    h.answer()
    out = h.feed(h.call.media_timeout(30.0, h.now()))
    for leg in ("a", "b0"):
        assert "Media timeout" in (only_request(out, "BYE", leg).headers.get("reason") or "")
    record = ended(out)
    assert record.hangup_by == "system" and "Media timeout" in (record.sip_reason or "")


def test_media_timeout_before_answer_does_nothing():
    h = Harness(targets=1)
    h.start()
    h.fork_replies("b0", 180, "Ringing")
    assert h.call.media_timeout(30.0, h.now()) == []


def test_hold_stops_the_media_timeout_and_resume_restarts_it():
    h = Harness(targets=1)
    h.start()
    h.answer()
    assert (h.media.armed, h.media.disarmed) == (1, 0)
    hold = only_request(h.from_caller(h.caller_request("INVITE", body=hold_offer()), "txn:hold"), "INVITE", "b0")
    h.replies_to_leg("b0", hold, 200, sdp=HOLD_ANSWER)
    assert h.media.disarmed == 1, "a held call may be silent for longer than the media timeout"
    resume = only_request(h.from_caller(h.caller_request("INVITE", body=OFFER), "txn:resume"), "INVITE", "b0")
    h.replies_to_leg("b0", resume, 200, sdp=HOLD_ANSWER)
    assert h.media.armed == 2


def test_a_resent_200_from_the_answering_callee_is_acked_again_not_hung_up():
    h = Harness(targets=2)
    h.start()
    fork = h.forks["b0"]
    first = h.fork_replies("b0", 200, sdp=ANSWER)
    [ack] = [t for t in transmitted(first) if isinstance(t.message, Request)]
    again = h.fork_replies("b0", 200, sdp=ANSWER)  # our ACK was lost: the callee resends its 200
    assert [t.message for t in transmitted(again)] == [ack.message]
    assert requests(again, "BYE") == [] and h.ended() == []
    assert fork.call_id == ack.message.call_id


def test_refresher_names_the_role_in_each_transaction():
    """RFC 4028: refresher=uac/uas names a role in *this* transaction, whichever leg it is on."""
    h = Harness(targets=1, session_expires=90, invite=caller_invite(extra="Supported: timer\r\n"
                                                                     "Session-Expires: 90;refresher=uac\r\n"))
    h.start()
    ok = only_reply(h.answer())
    assert ok.headers.get("session-expires") == "90;refresher=uac"  # the caller refreshes, as it asked
    # the callee puts the call on hold: the re-INVITE Ringwell sends to the caller still names the caller
    out = h.from_callee("b0", h.callee_request("b0", "INVITE", body=HOLD_ANSWER), "txn:hold")
    relayed = only_request(out, "INVITE", "a")
    assert relayed.headers.get("session-expires") == "90;refresher=uas"


def test_an_offer_during_our_own_refresh_gets_491_and_goes_through_after():
    h = Harness(targets=1, session_expires=90)
    h.start()
    h.answer()
    out = h.advance(45.0)
    refresh, callee_refresh = only_request(out, "UPDATE", "a"), only_request(out, "INVITE", "b0")
    during = h.from_callee("b0", h.callee_request("b0", "INVITE", body=HOLD_ANSWER), "txn:during")
    assert only_reply(during, "txn:during").status == 491
    h.replies_to_leg("a", refresh, 200)
    h.replies_to_leg("b0", callee_refresh, 200, sdp=HOLD_ANSWER)
    after = h.from_callee("b0", h.callee_request("b0", "INVITE", body=HOLD_ANSWER), "txn:after")
    assert requests(after, "INVITE", "a")


def test_a_finished_call_leaves_no_garbage_cycles():
    """Calls are freed by reference counting alone (the server freezes older objects for the
    cyclic collector every second, so a cycle in a call would be a leak)."""
    import gc

    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            h = Harness(targets=2)
            h.start()
            h.answer()
            h.from_caller(h.caller_request("BYE"), "txn:bye")
            assert h.ended()
        del h
        assert gc.collect() == 0
    finally:
        gc.enable()


# -- voicemail: the fallback target ----------------------------------------------------------
VOICEMAIL = Target("sip:vm-u-bob@127.0.0.1:5999", Source("udp", "127.0.0.1", 5999), "voicemail")


def _voicemail_answers(h: Harness) -> list[Action]:
    invite = h.forks["vm"]
    assert invite.uri_text == VOICEMAIL.contact
    return h.feed(h.call.response("vm", invite, reply_to(invite, 200, "OK", tag="vm", contact=VOICEMAIL.contact,
                                                         sdp=ANSWER), h.now()))


def _caller_got(actions: list[Action], status: int) -> bool:
    return any(isinstance(a, Respond) and a.txn == INVITE_TXN and a.response.status == status for a in actions)


def test_nobody_answers_so_the_call_goes_to_voicemail() -> None:
    h = Harness(fallback=VOICEMAIL, ring_timeout=20.0)
    h.start()
    for fork in ("b0", "b1"):
        h.fork_replies(fork, 180, "Ringing")
    actions = h.advance(20.0)
    assert "vm" in h.forks  # rung after the devices
    assert sum(isinstance(a, SendRequest) and a.request.method == "CANCEL" for a in actions) == 2
    assert not _caller_got(actions, 480)
    assert _caller_got(_voicemail_answers(h), 200)
    h.caller_ack()
    record = ended(h.from_caller(h.caller_request("BYE"), "bye-txn"))
    assert record.disposition == "voicemail" and record.hangup_by == "caller"


def test_busy_devices_send_the_caller_to_voicemail() -> None:
    h = Harness(fallback=VOICEMAIL)
    h.start()
    h.fork_replies("b0", 486, "Busy Here")
    assert "vm" not in h.forks  # the other device may still answer
    actions = h.fork_replies("b1", 486, "Busy Here")
    assert "vm" in h.forks and not _caller_got(actions, 486)


def test_no_registered_device_goes_straight_to_voicemail() -> None:
    h = Harness(targets=0, fallback=VOICEMAIL)
    actions = h.start()
    assert "vm" in h.forks and not _caller_got(actions, 480)


def test_a_failing_voicemail_leaves_the_caller_the_usual_answer() -> None:
    h = Harness(targets=0, fallback=VOICEMAIL)
    h.start()
    invite = h.forks["vm"]
    actions = h.feed(h.call.response("vm", invite, reply_to(invite, 500, "Oops", tag="vm"), h.now()))
    assert _caller_got(actions, 480)
    assert ended(actions).disposition == "failed"


# -- call back from the mailbox: REFER from Ringwell's own leg only -----------------------------
BOX = Target("sip:vm-u-bob@voicemail.invalid", Source("local", "127.0.0.1", 0), "voicemail")


def _from_box(h: Harness, method: str, extra: str, cseq: int) -> Request:
    invite = h.forks["vm"]
    message = parse_message((
        f"{method} sip:{RINGWELL}:5060;transport=udp SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP voicemail.invalid;branch={new_branch()}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {invite.headers.get('to')};tag=vm\r\n"
        f"To: {invite.headers.get('from')}\r\n"
        f"Call-ID: {invite.call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n{extra}Content-Length: 0\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def test_a_refer_from_the_mailbox_reaches_the_caller_and_the_phones_notify_comes_back() -> None:
    h = Harness(targets=0, fallback=BOX)
    h.start()
    invite = h.forks["vm"]
    h.feed(h.call.response("vm", invite, reply_to(invite, 200, "OK", tag="vm", contact=BOX.contact, sdp=ANSWER),
                           h.now()))
    h.caller_ack()
    refer = _from_box(h, "REFER", "Refer-To: <sip:102@127.0.0.1:5060>\r\nReferred-By: <sip:voicemail@x>\r\n", 1)
    out = h.from_callee("vm", refer, "txn:refer")
    sent = only_request(out, "REFER", "a")
    assert sent.call_id == CALLER_CALL_ID and sent.to.tag == CALLER_TAG
    assert sent.headers.get("refer-to") == "<sip:102@127.0.0.1:5060>"
    back = h.feed(h.call.response("a", sent, reply_to(sent, 202, "Accepted"), h.now()))
    assert only_reply(back, "txn:refer").status == 202
    notify = h.caller_request("NOTIFY", extra="Event: refer\r\nSubscription-State: active;expires=60\r\n")
    relayed = only_request(h.from_caller(notify, "txn:notify"), "NOTIFY", "vm")
    assert relayed.headers.get("event") == "refer" and relayed.headers.get("subscription-state").startswith("active")


def test_a_refer_from_a_phone_is_refused_so_no_far_end_can_make_a_phone_dial() -> None:
    h = Harness(targets=1)
    h.start()
    h.answer("b0")
    refer = h.callee_request("b0", "REFER", extra="Refer-To: <sip:+19005550100@127.0.0.1>\r\n")
    out = h.from_callee("b0", refer, "txn:refer")
    assert only_reply(out, "txn:refer").status == 405 and requests(out) == []
    out = h.from_caller(h.caller_request("NOTIFY", extra="Event: refer\r\n"), "txn:notify")
    assert only_reply(out, "txn:notify").status == 405 and requests(out) == []
