"""The ``*97`` menu's keys, driven over RTP (SQLite and PostgreSQL): a plain UDP socket plays the
phone (RFC 4733 key presses at exact moments, a tone as the caller's voice), the menu runs on a
real ``MediaEndpoint`` with espeak-ng prompts and the real mailbox service.

A message played to its end is saved (the lamp follows), ``#`` goes to the next one, ``7``
deletes, ``3`` records a greeting that ``1`` keeps, ``4`` goes back to the default; no PIN set or a
locked mailbox ends the call after one sentence."""

from __future__ import annotations

import asyncio
import itertools
import math
import struct
import time
from collections.abc import AsyncIterator, Callable

import pytest

from ringwell.blobs import BlobStore, KeyRing, MasterKey
from ringwell.features.audit.service import AuditLog
from ringwell.features.voicemail.mailbox import MailboxService
from ringwell.features.voicemail.models import Folder
from ringwell.features.voicemail.service import VoicemailService
from ringwell.media.apps import MediaEndpoint, rms
from ringwell.media.ports import PortPool
from ringwell.media.prompts import PromptCache
from ringwell.pbx.voicemail_menu import MailboxMenu
from tests.integration.test_media_apps import HOST, Peer, dtmf, frames, free_range, rtp

PIN = "285046"


def tone(seconds: float, hz: float = 440.0) -> bytes:
    return b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * hz * n / 8000)))
                    for n in range(int(seconds * 8000)))


class Phone:
    """The caller's RTP: key presses and voice, one stream with a running sequence and clock."""

    def __init__(self, endpoint: MediaEndpoint) -> None:
        self.peer = Peer(HOST)
        self.endpoint = endpoint
        self.seq = itertools.count(1)
        self.ts = 8000
        endpoint.set_remote(HOST, self.peer.port)

    async def press(self, keys: str) -> None:
        for key in keys:
            for data in dtmf(key, next(self.seq), self.ts):
                self.peer.send(data, self.endpoint.local_port)
            self.ts += 800
            await asyncio.sleep(0.05)

    async def speak(self, pcm: bytes) -> None:
        start = time.monotonic()
        for n, payload in enumerate(frames(pcm)):
            delay = start + n * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.peer.send(rtp(next(self.seq), self.ts, payload), self.endpoint.local_port)
            self.ts += 160


async def until(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await condition() if asyncio.iscoroutinefunction(condition) else not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.fixture
def mailboxes(sessions, tmp_path) -> MailboxService:
    store = BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), tmp_path / "blobs")
    return MailboxService(sessions, VoicemailService(sessions, store), audit=AuditLog(sessions))


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> PromptCache:
    return PromptCache(tmp_path_factory.mktemp("prompts"))


@pytest.fixture
async def endpoint() -> AsyncIterator[MediaEndpoint]:
    ep = MediaEndpoint(PortPool(*free_range(2)), HOST, label="menu")
    yield ep
    ep.close()


async def test_keys_save_skip_delete_and_record_a_greeting(mailboxes, prompts, endpoint, acme):
    org, alice = acme["acme"], acme["alice"]
    voicemail = mailboxes.voicemail
    first = await voicemail.deposit(org, alice, "102", None, tone(1.2))
    second = await voicemail.deposit(org, alice, "103", None, tone(1.4, 660.0))
    assert first is not None and second is not None
    await mailboxes.set_pin(org, alice, PIN)
    phone = Phone(endpoint)
    menu = MailboxMenu(endpoint, prompts, mailboxes, org_id=org, user_id=alice, digit_timeout=20.0)
    task = asyncio.create_task(menu.run())
    try:
        await phone.press(PIN + "#")  # typed ahead, over the PIN prompt
        # the first message plays to its end: saved, the lamp's count follows
        async def first_saved() -> bool:
            return (await voicemail.get(org, first.id)).folder == Folder.SAVED.value
        await until(first_saved, 40, "the first message to be played and saved")
        assert menu.played == [first.id]
        await phone.press("#")  # next
        await until(lambda: second.id in menu.played, 30, "the second message")
        await phone.press("7")  # delete it
        async def second_gone() -> bool:
            return await voicemail.counts(alice) == (0, 1)
        await until(second_gone, 20, "the second message to be deleted")
        # main menu: 3 records a greeting (the voice goes on over the prompt and the beep), # ends it, 1 keeps it
        await phone.press("3")
        await phone.speak(tone(7.0, 500.0))
        await phone.press("#")
        await asyncio.sleep(0.3)
        await phone.press("1")

        async def greeting_kept() -> bool:
            return (await mailboxes.state(org, alice)).custom_greeting
        await until(greeting_kept, 30, "the greeting to be kept")
        greeting = await mailboxes.greeting(org, alice)
        assert greeting is not None and 1.0 < len(greeting) / 16000 < 7.5 and rms(greeting) > 3000
        await phone.press("4")  # back to the default greeting

        async def default_again() -> bool:
            return not (await mailboxes.state(org, alice)).custom_greeting
        await until(default_again, 30, "the default greeting")
        assert await voicemail.counts(alice) == (0, 1)
        assert [m.id for m in await mailboxes.messages(org, alice, Folder.SAVED)] == [first.id]
    finally:
        endpoint.close()
        await asyncio.wait_for(task, 10)
        phone.peer.close()


async def test_no_pin_or_a_lock_ends_the_call_after_one_sentence(mailboxes, prompts, endpoint, acme):
    org, alice = acme["acme"], acme["alice"]
    phone = Phone(endpoint)
    try:
        started = time.monotonic()
        await asyncio.wait_for(MailboxMenu(endpoint, prompts, mailboxes, org_id=org, user_id=alice).run(), 15)
        assert time.monotonic() - started < 10
        assert endpoint.packets_sent > 50  # it said something ("No PIN is set …")
        await mailboxes.set_pin(org, alice, PIN)
        for wrong in ("1111", "2222", "3333"):
            await mailboxes.check_pin(org, alice, wrong)
        sent = endpoint.packets_sent
        started = time.monotonic()
        await phone.press(PIN + "#")  # the right PIN does not help a locked mailbox
        await asyncio.wait_for(MailboxMenu(endpoint, prompts, mailboxes, org_id=org, user_id=alice).run(), 15)
        assert time.monotonic() - started < 10 and endpoint.packets_sent > sent + 50
        assert (await mailboxes.state(org, alice)).failed_pin_attempts == 3
        assert len(phone.peer.received) == endpoint.packets_sent
    finally:
        phone.peer.close()
