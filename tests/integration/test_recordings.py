"""Recording policies and stored recordings (SQLite and PostgreSQL): who is recorded follows the
org's, users' and numbers' modes; a recording is Ogg/Opus encrypted on disk with its retention
deadline; a too-short one leaves nothing behind; delete and the retention purge remove file and row."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta

import av
import numpy as np
import pytest
from sqlalchemy import select, update

from ringwell.blobs import BlobKind, BlobStore, KeyRing, MasterKey
from ringwell.blobs.models import Blob
from ringwell.features.accounts.errors import UserNotFound
from ringwell.features.accounts.models import Organization
from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.service import AuditLog
from ringwell.features.numbers.errors import NumberNotFound
from ringwell.features.numbers.models import PhoneNumber
from ringwell.features.privacy.retention import RetentionPolicy
from ringwell.features.privacy.retention_service import RetentionService
from ringwell.features.recordings.errors import InvalidRecordingPolicy, RecordingNotFound
from ringwell.features.recordings.models import Mode, Recording, Trigger
from ringwell.features.recordings.service import CallParties, Decision, RecordingService, number_scope, user_scope
from ringwell.features.voicemail.service import VoicemailService
from ringwell.media.oggopus import CONTENT_TYPE, OggOpusWriter


def retention(sessions, store, voicemail=None, recordings=None):
    """The server's retention service: the one purge of expired media (legal holds honoured)."""
    return RetentionService(sessions, policy=RetentionPolicy(), blobs=store,
                            accounts=AccountsService(sessions, "ringwell"), audit=AuditLog(sessions),
                            voicemail=voicemail, recordings=recordings)


@pytest.fixture
def store(sessions, tmp_path):
    return BlobStore(sessions, KeyRing(sessions, MasterKey.generate("test")), tmp_path / "blobs")


@pytest.fixture
def recordings(sessions, store):
    return RecordingService(sessions, store, retention_days=30)


def stereo(seconds: float, left_hz: float = 440.0, right_hz: float = 300.0) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    frames = np.empty(2 * len(t), dtype="<i2")
    frames[0::2] = (8000 * np.sin(2 * math.pi * left_hz * t)).astype("<i2")
    frames[1::2] = (8000 * np.sin(2 * math.pi * right_hz * t)).astype("<i2")
    return frames.tobytes()


async def record(recordings: RecordingService, org_id: str, seconds: float, **parties: str | None) -> Recording | None:
    upload = await recordings.begin(org_id, CONTENT_TYPE)
    writer = OggOpusWriter(upload.feed)
    writer.write(stereo(seconds))
    writer.close()
    return await recordings.finish(upload, org_id=org_id, call_record_id="call-1", trigger=Trigger.POLICY,
                                   caller_user_id=parties.get("caller"), callee_user_id=parties.get("callee"),
                                   started_at=datetime.now(UTC), duration_s=seconds, paused_s=0.0,
                                   content_type=CONTENT_TYPE)


def dominant(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples[rate // 2: rate // 2 + rate]))
    return float(np.argmax(spectrum))  # 1 s window: the bin is the frequency in Hz


async def test_nobody_is_recorded_until_a_policy_says_so(recordings, acme):
    internal = CallParties(acme["acme"], "internal", acme["alice"], acme["bob"])
    assert await recordings.decide(internal) == Decision(False, False)
    await recordings.set_policy(acme["acme"], "org", Mode.ON_DEMAND)
    assert await recordings.decide(internal) == Decision(False, True)
    await recordings.set_policy(acme["acme"], user_scope(acme["bob"]), Mode.INBOUND)
    assert await recordings.decide(internal) == Decision(True, True)  # bob receives: recorded
    reverse = CallParties(acme["acme"], "internal", acme["bob"], acme["alice"])
    assert await recordings.decide(reverse) == Decision(False, True)  # bob calls: inbound only
    await recordings.set_policy(acme["acme"], user_scope(acme["bob"]), Mode.OFF)
    await recordings.set_policy(acme["acme"], "org", Mode.OFF)
    assert await recordings.decide(internal) == Decision(False, False)
    await recordings.set_policy(acme["acme"], user_scope(acme["bob"]), None)  # inherit again
    assert await recordings.policies(acme["acme"]) == {"org": Mode.OFF}
    # another org's policies never apply
    elsewhere = CallParties(acme["other"], "internal", acme["carol"], None)
    assert await recordings.decide(elsewhere) == Decision(False, False)


async def test_a_number_policy_wins_over_the_user_and_the_org(recordings, acme, sessions):
    async with sessions() as session, session.begin():
        session.add(PhoneNumber(e164="+14155550100", country="US", national_number="4155550100", type="fixed",
                                monthly_price_minor=100, setup_price_minor=0, currency="USD", state="rented",
                                org_id=acme["acme"], route_user_id=acme["alice"]))
    await recordings.set_policy(acme["acme"], "org", Mode.ALWAYS)
    await recordings.set_policy(acme["acme"], number_scope("+14155550100"), Mode.OUTBOUND)
    inbound = CallParties(acme["acme"], "inbound", None, acme["alice"], "+14155550100")
    outbound = CallParties(acme["acme"], "outbound", acme["alice"], None, "+14155550100")
    assert await recordings.decide(inbound) == Decision(False, True)
    assert await recordings.decide(outbound) == Decision(True, True)
    other_number = CallParties(acme["acme"], "inbound", None, acme["alice"], "+14155550199")
    assert await recordings.decide(other_number) == Decision(True, True)  # the org's always


async def test_a_policy_only_names_the_orgs_own_users_and_numbers(recordings, acme, sessions):
    with pytest.raises(UserNotFound):
        await recordings.set_policy(acme["acme"], user_scope(acme["carol"]), Mode.ALWAYS)
    with pytest.raises(NumberNotFound):
        await recordings.set_policy(acme["acme"], number_scope("+14155550100"), Mode.ALWAYS)
    for scope in ("user:", "everyone", "number:"):
        with pytest.raises(InvalidRecordingPolicy):
            await recordings.set_policy(acme["acme"], scope, Mode.ALWAYS)
    assert await recordings.policies(acme["acme"]) == {}


async def test_a_recording_is_ogg_opus_encrypted_on_disk_with_its_retention(recordings, store, acme):
    before = datetime.now(UTC)
    row = await record(recordings, acme["acme"], 3.0, caller=acme["alice"], callee=acme["bob"])
    assert row is not None and row.content_type == CONTENT_TYPE and row.channels == 2
    assert before + timedelta(days=30) <= row.retention_until <= datetime.now(UTC) + timedelta(days=30)
    blob = await store.get(acme["acme"], row.blob_id)
    assert blob.kind == BlobKind.RECORDING and blob.retention_until == row.retention_until
    on_disk = store.path(acme["acme"], row.blob_id).read_bytes()
    assert b"OggS" not in on_disk and b"OpusHead" not in on_disk
    with pytest.raises(av.error.InvalidDataError), av.open(io.BytesIO(on_disk)):
        pass  # not decodable as audio without the key
    _, opened = await recordings.open_audio(acme["acme"], row.id)
    data = await opened.read_all()
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        pcm = np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1)
        rate = stream.codec_context.sample_rate
    assert pcm.shape[0] == 2 and pcm.shape[1] / rate == pytest.approx(3.0, abs=0.1)
    assert dominant(pcm[0], rate) == pytest.approx(440, abs=3)  # left: the caller
    assert dominant(pcm[1], rate) == pytest.approx(300, abs=3)  # right: the callee
    assert [r.id for r in await recordings.list(acme["acme"], user_id=acme["bob"])] == [row.id]
    assert await recordings.list(acme["acme"], user_id=acme["carol"]) == []
    assert await recordings.list(acme["other"]) == []
    with pytest.raises(RecordingNotFound):
        await recordings.get(acme["other"], row.id)


async def test_a_stretch_under_half_a_second_leaves_nothing(recordings, acme, sessions):
    assert await record(recordings, acme["acme"], 0.3) is None
    async with sessions() as session:
        assert (await session.execute(select(Recording))).scalars().all() == []
        assert (await session.execute(select(Blob))).scalars().all() == []


async def test_delete_and_the_retention_purge_remove_file_and_row(recordings, store, acme, sessions):
    kept = await record(recordings, acme["acme"], 1.0)
    expired = await record(recordings, acme["acme"], 1.0)
    gone = await record(recordings, acme["acme"], 1.0)
    assert kept and expired and gone
    await recordings.delete(acme["acme"], gone.id)
    assert not store.path(acme["acme"], gone.blob_id).exists()
    with pytest.raises(RecordingNotFound):
        await recordings.delete(acme["acme"], gone.id)
    async with sessions() as session, session.begin():
        await session.execute(update(Recording).where(Recording.id == expired.id).values(
            retention_until=datetime.now(UTC) - timedelta(minutes=1)))
    assert await retention(sessions, store, recordings=recordings).purge_recordings(datetime.now(UTC)) == 1
    assert not store.path(acme["acme"], expired.blob_id).exists()
    assert [r.id for r in await recordings.list(acme["acme"])] == [kept.id]


async def test_the_orgs_own_retention_decides_each_new_items_deadline(recordings, sessions, store, acme):
    async with sessions() as session, session.begin():
        org = await session.get(Organization, acme["acme"])
        org.recording_retention_days, org.voicemail_retention_days = 7, 400
    row = await record(recordings, acme["acme"], 1.0)
    assert row is not None
    assert timedelta(days=7) - timedelta(minutes=1) < row.retention_until - datetime.now(UTC) <= timedelta(days=7)
    message = await VoicemailService(sessions, store, retention_days=30).deposit(
        acme["acme"], acme["alice"], "102", None, stereo(1.5)[: 2 * 12000])
    assert message is not None
    assert timedelta(days=399) < message.retention_until - datetime.now(UTC) <= timedelta(days=400)
    other = await record(recordings, acme["other"], 1.0)  # no override: the server's 30 days
    assert other is not None and timedelta(days=29) < other.retention_until - datetime.now(UTC) <= timedelta(days=30)
