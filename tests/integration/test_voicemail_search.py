"""Searching voicemail transcripts (SQLite and PostgreSQL) through the blind index: by word, by
number, every word of the query (AND), never another organization's messages, no plaintext word
in the database, and a deleted message leaves no term behind."""

from __future__ import annotations

import hashlib
import math
import re
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from ringwell.blobs import BlobStore, KeyRing, MasterKey
from ringwell.blobs.rotation import rotate_due
from ringwell.features.voicemail.errors import InvalidVoicemail
from ringwell.features.voicemail.models import Folder, VoicemailTerm
from ringwell.features.voicemail.service import VoicemailService

ROBERT = "Hello, this is Robert Brown from Northwind Logistics. Call me back at 3 1 2, 7 0 4, 8 2 6 1."
PLUMBER = "Hi, it's Quentin the plumber. The quokka-shaped tap is fixed; ring me on five five five, oh one four two."
CAROL = "Northwind Logistics again, Robert here: three one two, seven oh four."  # another org's mailbox


def tone(seconds: float, rate: int = 8000) -> bytes:
    return b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * 440 * n / rate)))
                    for n in range(int(seconds * rate)))


@pytest.fixture
def store(sessions, tmp_path):
    return BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), tmp_path / "blobs")


@pytest.fixture
def voicemail(sessions, store):
    return VoicemailService(sessions, store, retention_days=30)


@pytest.fixture
async def messages(voicemail, acme):
    """alice has Robert's message and the plumber's; carol (another org) has one like Robert's."""
    robert = await voicemail.deposit(acme["acme"], acme["alice"], "+13127048261", "Robert Brown", tone(1.5))
    plumber = await voicemail.deposit(acme["acme"], acme["alice"], "+15550142000", None, tone(1.5))
    carol = await voicemail.deposit(acme["other"], acme["carol"], "+13127040000", None, tone(1.5))
    assert robert is not None and plumber is not None and carol is not None
    await voicemail.set_transcript(acme["acme"], robert.id, ROBERT)
    await voicemail.set_transcript(acme["acme"], plumber.id, PLUMBER)
    await voicemail.set_transcript(acme["other"], carol.id, CAROL)
    return {"robert": robert.id, "plumber": plumber.id, "carol": carol.id}


async def found(voicemail: VoicemailService, org_id: str, query: str, **kwargs) -> set[str]:
    return {m.id for m in await voicemail.list(org_id, query=query, **kwargs)}


async def test_a_word_of_the_transcript_finds_the_message(voicemail, acme, messages):
    assert await found(voicemail, acme["acme"], "northwind") == {messages["robert"]}
    assert await found(voicemail, acme["acme"], "Quokka!") == {messages["plumber"]}  # case and punctuation
    assert await found(voicemail, acme["acme"], "plumber") == {messages["plumber"]}
    assert await found(voicemail, acme["acme"], "elephant") == set()
    # the existing filters still apply to a search
    assert await found(voicemail, acme["acme"], "northwind", user_id=acme["bob"]) == set()
    assert await found(voicemail, acme["acme"], "northwind", folder=Folder.NEW) == {messages["robert"]}
    assert await found(voicemail, acme["acme"], "northwind", folder=Folder.SAVED) == set()
    with pytest.raises(InvalidVoicemail):
        await voicemail.list(acme["acme"], query="?!")
    with pytest.raises(InvalidVoicemail):  # a bounded query
        await voicemail.list(acme["acme"], query=" ".join(f"word{chr(97 + i)}" for i in range(21)))


async def test_numbers_are_found_as_digits(voicemail, acme, messages):
    # Robert said "3 1 2, 7 0 4, 8 2 6 1"; the plumber "five five five, oh one four two".
    assert await found(voicemail, acme["acme"], "312 704") == {messages["robert"]}
    assert await found(voicemail, acme["acme"], "704-8261") == {messages["robert"]}
    assert await found(voicemail, acme["acme"], "three one two") == {messages["robert"]}
    assert await found(voicemail, acme["acme"], "3127048261") == {messages["robert"]}
    assert await found(voicemail, acme["acme"], "555 0142") == {messages["plumber"]}
    assert await found(voicemail, acme["acme"], "312 999") == set()  # digits that are not in the number
    assert await found(voicemail, acme["acme"], "2 1 3") == set()  # the digits, but not in that order


async def test_every_word_of_the_query_must_be_there(voicemail, acme, messages):
    assert await found(voicemail, acme["acme"], "robert northwind 312") == {messages["robert"]}
    assert await found(voicemail, acme["acme"], "robert plumber") == set()  # one word in each message
    assert await found(voicemail, acme["acme"], "quokka 312") == set()
    assert await found(voicemail, acme["acme"], "me") == {messages["robert"], messages["plumber"]}


async def test_another_organizations_messages_never_match(voicemail, sessions, acme, messages):
    assert await found(voicemail, acme["acme"], "northwind robert 312 704") == {messages["robert"]}
    assert await found(voicemail, acme["other"], "northwind robert 312 704") == {messages["carol"]}
    assert await found(voicemail, acme["other"], "quokka") == set()
    # The same word is another hash in each org: the index of one says nothing about the other's.
    async with sessions() as session:
        terms = {vm: set((await session.execute(select(VoicemailTerm.term).where(
            VoicemailTerm.voicemail_id == vm))).scalars()) for vm in (messages["robert"], messages["carol"])}
    assert terms[messages["robert"]] and terms[messages["carol"]]
    assert not terms[messages["robert"]] & terms[messages["carol"]]


async def test_the_database_holds_no_plaintext_word(voicemail, sessions, acme, messages, db_url):
    async with sessions() as session:
        rows = (await session.execute(select(VoicemailTerm.org_id, VoicemailTerm.term))).all()
        dumped = [str(v) for row in (await session.execute(text("SELECT * FROM voicemail_terms"))).all()
                  for v in row]
        dumped += [str(v) for row in (await session.execute(text("SELECT * FROM voicemails"))).all() for v in row]
        dumped += [str(v) for row in (await session.execute(text("SELECT * FROM blobs"))).all() for v in row]
    assert len(rows) > 20
    assert all(re.fullmatch(r"[0-9a-f]{64}", term) for _, term in rows)
    plain_hashes = {hashlib.sha256(word.encode()).hexdigest() for word in ("w:northwind", "northwind", "quokka")}
    assert not plain_hashes & {term for _, term in rows}  # keyed, not a bare hash anyone can compute
    everything = " ".join(dumped).lower()
    for word in ("northwind", "logistics", "quokka", "plumber", "quentin"):
        assert word not in everything
    if db_url.startswith("sqlite"):
        raw = Path(db_url.split("///", 1)[1]).read_bytes().lower()
        for word in (b"northwind", b"logistics", b"quokka", b"plumber", b"quentin"):
            assert word not in raw


async def test_deleting_a_message_removes_its_terms(voicemail, sessions, acme, messages):
    async def terms_of(voicemail_id: str) -> int:
        async with sessions() as session:
            return int((await session.execute(select(func.count()).select_from(VoicemailTerm).where(
                VoicemailTerm.voicemail_id == voicemail_id))).scalar_one())

    assert await terms_of(messages["robert"]) > 0
    await voicemail.delete(acme["acme"], messages["robert"])
    assert await terms_of(messages["robert"]) == 0
    assert await found(voicemail, acme["acme"], "northwind") == set()
    assert await terms_of(messages["plumber"]) > 0  # the others keep theirs
    # A new transcript replaces the old one's terms.
    await voicemail.set_transcript(acme["acme"], messages["plumber"], "Actually, it is the kitchen sink.")
    assert await found(voicemail, acme["acme"], "quokka") == set()
    assert await found(voicemail, acme["acme"], "kitchen sink") == {messages["plumber"]}


async def test_a_shredded_organization_key_leaves_an_index_that_matches_nothing(voicemail, store, acme, messages):
    assert await found(voicemail, acme["acme"], "northwind") == {messages["robert"]}
    await store.shred(acme["acme"])
    assert await found(voicemail, acme["acme"], "northwind") == set()
    assert await found(voicemail, acme["acme"], "312 704") == set()
    assert await found(voicemail, acme["other"], "northwind") == {messages["carol"]}  # other orgs unaffected


async def test_search_still_finds_after_the_key_epoch_rotates_the_orgs_key(voicemail, store, acme, messages):
    before = await store.search_key(acme["acme"])
    later = datetime.now(UTC) + timedelta(days=31)
    report = await rotate_due(store, later, epoch=timedelta(days=30), org_rotated=voicemail.reindex)
    assert report.keys_created >= 2  # Acme's own key (the search key's root) and alice's
    assert await store.search_key(acme["acme"]) != before
    assert await found(voicemail, acme["acme"], "northwind") == {messages["robert"]}
    assert await found(voicemail, acme["acme"], "312 704") == {messages["robert"]}
    assert await found(voicemail, acme["other"], "northwind") == {messages["carol"]}  # each org its own key
