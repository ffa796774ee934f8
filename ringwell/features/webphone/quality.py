"""The web phone's call-quality report: what the browser's ``getStats()`` saw, stored with the call.

After each call the page posts a summary (round-trip time, jitter, loss, packets, received audio
energy, codec). It is kept in the call record's per-leg media summary, under ``browser``, next to
the server's own figures for that leg (``webrtc``, from ``ringwell.webrtc.leg``) — so a record
shows both ends' view of the browser's network. Only a party of the call may report, once the
record is closed (the report usually arrives a moment before the record is written: it waits).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pydantic import Field
from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.errors import Conflict, NotFound
from ringwell.features.cdr import repository as cdr
from ringwell.web.schemas import RequestBody

__all__ = ["CallNotEnded", "CallNotFound", "QualityReport", "store_report"]

LegLookup = Callable[[str], tuple[str, str] | None]  # SIP Call-ID -> (call record id, side)
WAIT_FOR_RECORD = (0.2, 0.3, 0.5, 1.0, 1.0, 2.0)  # seconds between tries while the record is still open


class CallNotFound(NotFound):
    error_id = "call_not_found"


class CallNotEnded(Conflict):
    error_id = "call_not_ended"


class QualityReport(RequestBody):
    """One call's WebRTC statistics as the browser saw them (any figure may be unknown: null)."""

    call_id: str = Field(min_length=1, max_length=255, description="the SIP Call-ID of the browser's dialog")
    rtt_ms: float | None = Field(default=None, ge=0, le=60_000)
    jitter_ms: float | None = Field(default=None, ge=0, le=60_000)
    packets_lost: int | None = Field(default=None, ge=-(2**31), le=2**31)  # RTCP's cumulative loss may be < 0
    packets_received: int | None = Field(default=None, ge=0, le=2**40)
    packets_sent: int | None = Field(default=None, ge=0, le=2**40)
    total_audio_energy: float | None = Field(default=None, ge=0, le=1e9)
    codec: str | None = Field(default=None, max_length=64)
    duration_s: float | None = Field(default=None, ge=0, le=7 * 86400)


async def store_report(sessions: async_sessionmaker[Any], legs: LegLookup, *, org_id: str, user_id: str,
                       report: QualityReport) -> None:
    """Keep ``report`` with the call; ``CallNotFound`` unless the user took part in that call."""
    found = legs(report.call_id)
    if found is None:
        raise CallNotFound("no recent web phone call with that Call-ID", {"call_id": report.call_id})
    call_id, side = found
    values = report.model_dump(exclude={"call_id"})
    for pause in (*WAIT_FOR_RECORD, None):
        async with sessions() as session, session.begin():
            stored = await cdr.add_leg_report(session, org_id=org_id, call_id=call_id, side=side, user_id=user_id,
                                              key="browser", report=values)
        if stored is None:
            raise CallNotFound("no recent web phone call with that Call-ID", {"call_id": report.call_id})
        if stored or pause is None:
            break
        await asyncio.sleep(pause)
    if not stored:
        raise CallNotEnded("the call has not ended yet: report it when it has", {"call_id": report.call_id})
