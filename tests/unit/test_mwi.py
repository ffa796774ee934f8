"""Message-waiting indication (RFC 3842 over RFC 6665) without the network: the body, the
SUBSCRIBE decisions, the subscription table on a fake clock, and the manager's answers and
NOTIFYs through a recording SIP seam."""

from __future__ import annotations

import asyncio

import pytest

from ringwell.features.accounts.repository import CredentialRecord
from ringwell.pbx.mwi import (
    ExpiresPolicy,
    MessageSummary,
    MwiManager,
    Refusal,
    Subscription,
    Subscriptions,
    granted_expires,
    mailbox_of,
    screen_subscribe,
)
from ringwell.pbx.registrar import Binding
from ringwell.sip.dialog import Dialog, ViaSpec
from ringwell.sip.message import Request, Response, parse_message
from ringwell.transport.source import Source
from tests.factories import response_to

ALICE = CredentialRecord("cred-1", "org-1", "user-1", "alice", "ringwell", "x", "y", "101")
SRC = Source("udp", "127.0.0.1", 5070)


def subscribe(ruri_user: str = "alice", *, event: str = "message-summary", expires: int | None = 600,
              to_tag: str | None = None, cseq: int = 1, call_id: str = "sub-1", extra: str = "") -> Request:
    to = "<sip:alice@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"SUBSCRIBE sip:{ruri_user}@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKsub" + str(cseq) + ";rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=phone1\r\n"
        f"To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\n"
        "Contact: <sip:alice@127.0.0.1:5070>\r\n"
        + (f"Event: {event}\r\n" if event else "")
        + (f"Expires: {expires}\r\n" if expires is not None else "")
        + extra + "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(head.encode())
    assert isinstance(message, Request)
    return message


# -- the body ----------------------------------------------------------------------------
def test_body_is_the_rfc_3842_format():
    body = MessageSummary(2, 8, 0, 2, account="sip:101@ringwell").serialize()
    assert body == b"Messages-Waiting: yes\r\nMessage-Account: sip:101@ringwell\r\nVoice-Message: 2/8 (0/2)\r\n"
    assert MessageSummary(0, 3, account="sip:101@ringwell").serialize().startswith(b"Messages-Waiting: no\r\n")


def test_body_round_trips_and_parses_the_rfc_example():
    summary = MessageSummary(1, 0, account="sip:101@ringwell")
    assert MessageSummary.parse(summary.serialize()) == summary
    rfc = (b"Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.com\r\n"
           b"Voice-Message: 4/8 (1/2)\r\nFax-Message: 1/0\r\n")
    assert MessageSummary.parse(rfc) == MessageSummary(4, 8, 1, 2, "sip:alice@vmail.example.com")
    assert MessageSummary.parse(b"Messages-Waiting: no\r\n") == MessageSummary(0, 0)


@pytest.mark.parametrize(("body", "message"), [
    (b"Voice-Message: 1/0\r\n", "no Messages-Waiting line"),
    (b"Messages-Waiting: maybe\r\n", "Messages-Waiting must be yes or no, not 'maybe'"),
    (b"Messages-Waiting: yes\r\nVoice-Message: 1\r\n", "Voice-Message needs new/old: '1'"),
    (b"Messages-Waiting: yes\r\nVoice-Message: a/b\r\n", "Voice-Message counts must be numbers: 'a/b'"),
    (b"Messages-Waiting: no\r\nVoice-Message: 2/0\r\n", "Messages-Waiting: no with new messages"),
    (b"Messages-Waiting yes\r\n", "not a header line: 'Messages-Waiting yes'"),
])
def test_body_errors_name_the_problem(body, message):
    with pytest.raises(ValueError) as info:
        MessageSummary.parse(body)
    assert str(info.value) == message


# -- SUBSCRIBE decisions -----------------------------------------------------------------
def test_other_event_packages_are_489_with_allow_events():
    refusal = screen_subscribe(subscribe(event="presence"))
    assert refusal is not None and refusal.status == 489
    assert ("Allow-Events", "message-summary") in refusal.headers
    assert screen_subscribe(subscribe(event="")).status == 489  # type: ignore[union-attr]
    assert screen_subscribe(subscribe(event="Message-Summary;id=7")) is None


def test_accept_without_the_summary_type_is_406():
    refusal = screen_subscribe(subscribe(extra="Accept: application/pidf+xml\r\n"))
    assert refusal is not None and refusal.status == 406
    assert screen_subscribe(subscribe(extra="Accept: application/simple-message-summary\r\n")) is None


def test_expires_default_min_max_and_removal():
    policy = ExpiresPolicy(min_expires=60, max_expires=3600, default_expires=1800)
    assert granted_expires(subscribe(expires=None), policy) == 1800
    assert granted_expires(subscribe(expires=99999), policy) == 3600
    assert granted_expires(subscribe(expires=0), policy) == 0
    with pytest.raises(Refusal) as info:
        granted_expires(subscribe(expires=10), policy)
    assert info.value.status == 423 and ("Min-Expires", "60") in info.value.headers


def test_only_ones_own_mailbox():
    mailbox_of(subscribe("alice"), ALICE)
    mailbox_of(subscribe("101"), ALICE)
    with pytest.raises(Refusal) as info:
        mailbox_of(subscribe("102"), ALICE)
    assert info.value.status == 403


# -- the table on a fake clock -----------------------------------------------------------
def sub(call_id: str, expires_at: float, cred: str = "cred-1", user: str = "user-1") -> Subscription:
    dialog = Dialog.uas(subscribe(call_id=call_id), "tag-" + call_id)
    return Subscription(dialog, user, cred, "sip:101@ringwell", SRC, None, expires_at)


def test_subscriptions_expire_on_the_clock():
    table = Subscriptions()
    a, b = sub("a", 1060.0), sub("b", 1600.0)
    table.add(a)
    table.add(b)
    assert a.state(1000.0) == "active;expires=60"
    assert table.expired(1059.0) == []
    assert table.expired(1060.0) == [a]
    assert table.of_user("user-1") == [b] and table.get(a.key) is None
    assert table.expired(2000.0) == [b] and len(table) == 0 and table.of_user("user-1") == []


def test_a_credential_has_a_bounded_number_of_subscriptions():
    table = Subscriptions(per_credential=2)
    first, second, third = sub("1", 1100.0), sub("2", 1200.0), sub("3", 1300.0)
    assert table.add(first) is None and table.add(second) is None
    assert table.add(third) is first
    assert {s.key for s in table.of_user("user-1")} == {second.key, third.key}


# -- the manager through a recording SIP seam --------------------------------------------
class RecordingSip:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.requests: list[tuple[Request, Source, object, object]] = []

    def respond(self, txn: object, response: Response) -> None:
        self.responses.append(response)

    def send_request(self, request, flow, on_response, on_failure) -> None:
        self.requests.append((request, flow, on_response, on_failure))


class Registrations:
    def __init__(self) -> None:
        self.bindings: list[Binding] = []

    def lookup(self, credential_id: str, now: float) -> list[Binding]:
        return [b for b in self.bindings if b.credential_id == credential_id]


def manager(counts: dict[str, tuple[int, int]], **policy: int) -> tuple[MwiManager, RecordingSip, Registrations]:
    sip, registrations = RecordingSip(), Registrations()

    async def mailbox(user_id: str) -> tuple[int, int]:
        return counts.get(user_id, (0, 0))

    async def credentials(user_id: str) -> list[CredentialRecord]:
        return [ALICE] if user_id == "user-1" else []

    mwi = MwiManager(sip=sip, registrar=registrations, via_for=lambda f: ViaSpec(f.transport, "127.0.0.1", 5060),
                     contact_for=lambda f: "<sip:127.0.0.1:5060>", credentials_of=credentials, counts=mailbox,
                     policy=ExpiresPolicy(**policy) if policy else None)
    return mwi, sip, registrations


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_subscribe_answers_200_then_notifies_each_change_and_481_ends_it():
    counts = {"user-1": (0, 0)}
    mwi, sip, _ = manager(counts)
    mwi.subscribe(subscribe(), "txn", SRC, ALICE)
    await settle()
    (ok,) = sip.responses
    assert ok.status == 200 and ok.headers.get("expires") == "600" and ok.to.tag
    (notify, flow, _, _), = sip.requests
    assert notify.method == "NOTIFY" and flow == SRC and notify.uri_text == "sip:alice@127.0.0.1:5070"
    assert notify.headers.get("event") == "message-summary"
    assert notify.headers.get("subscription-state") == "active;expires=600"
    assert notify.headers.get("content-type") == "application/simple-message-summary"
    assert notify.to.tag == "phone1" and notify.from_.tag == ok.to.tag
    assert MessageSummary.parse(notify.body) == MessageSummary(0, 0, account="sip:101@ringwell")

    counts["user-1"] = (1, 0)
    await mwi.notify_mailbox("user-1")
    changed = sip.requests[-1][0]
    assert changed.body.startswith(b"Messages-Waiting: yes") and b"Voice-Message: 1/0 (0/0)" in changed.body
    assert changed.cseq.number == notify.cseq.number + 1
    await mwi.notify_mailbox("user-1")  # nothing changed: nothing sent
    assert len(sip.requests) == 2

    sip.requests[-1][2](response_to(changed, 481, "Call/Transaction Does Not Exist"))
    assert len(mwi.subscriptions) == 0
    await mwi.stop()


async def test_refresh_unsubscribe_and_other_users_dialog():
    mwi, sip, _ = manager({})
    mwi.subscribe(subscribe(), "t1", SRC, ALICE)
    await settle()
    tag = sip.responses[0].to.tag
    mwi.subscribe(subscribe(to_tag=tag, cseq=2, expires=1200), "t2", SRC, ALICE)
    await settle()
    assert sip.responses[-1].status == 200 and sip.responses[-1].headers.get("expires") == "1200"
    assert sip.requests[-1][0].headers.get("subscription-state") == "active;expires=1200"
    bob = CredentialRecord("cred-2", "org-1", "user-2", "bob", "ringwell", "x", "y", "102")
    mwi.subscribe(subscribe(to_tag=tag, cseq=3), "t3", SRC, bob)
    assert sip.responses[-1].status == 403
    mwi.subscribe(subscribe(to_tag="unknown", cseq=3), "t4", SRC, ALICE)
    assert sip.responses[-1].status == 481
    mwi.subscribe(subscribe(to_tag=tag, cseq=4, expires=0), "t5", SRC, ALICE)
    await settle()
    assert sip.responses[-1].status == 200 and len(mwi.subscriptions) == 0
    assert sip.requests[-1][0].headers.get("subscription-state") == "terminated;reason=timeout"
    await mwi.stop()


async def test_a_subscription_runs_out_with_a_terminated_notify():
    mwi, sip, _ = manager({}, min_expires=1, max_expires=3600, default_expires=3600)
    mwi.subscribe(subscribe(expires=1), "t1", SRC, ALICE)
    await asyncio.sleep(1.3)
    assert len(mwi.subscriptions) == 0
    assert [r.headers.get("subscription-state") for r, *_ in sip.requests] == [
        "active;expires=1", "terminated;reason=timeout"]
    await mwi.stop()


async def test_unsolicited_notify_goes_to_bindings_without_a_subscription_when_their_state_changes():
    counts = {"user-1": (0, 0)}
    mwi, sip, registrations = manager(counts)
    phone = Binding("cred-1", "org-1", "alice", "k1", "sip:alice@10.0.0.9:5080", 9e12, 1000, "c", 1, "ua",
                    Source("udp", "10.0.0.9", 5080))
    registrations.bindings.append(phone)
    await mwi.notify_mailbox("user-1")
    (notify, flow, _, _), = sip.requests
    assert notify.uri_text == "sip:alice@10.0.0.9:5080" and flow == phone.source and notify.to.tag is None
    assert notify.headers.get("event") == "message-summary"
    assert notify.body.startswith(b"Messages-Waiting: no")
    await mwi.notify_mailbox("user-1")
    assert len(sip.requests) == 1  # told already
    counts["user-1"] = (3, 1)
    await mwi.notify_mailbox("user-1")
    assert b"Voice-Message: 3/1 (0/0)" in sip.requests[-1][0].body

    # The same device subscribing: it hears through its subscription only.
    mwi.subscribe(subscribe(), "t1", phone.source, ALICE)
    await settle()
    before = len(sip.requests)
    counts["user-1"] = (0, 4)
    await mwi.notify_mailbox("user-1")
    assert len(sip.requests) == before + 1 and sip.requests[-1][0].to.tag == "phone1"
    await mwi.stop()
