"""Call events as webhooks: a tee between the calls driver and the CDR writer.

:class:`CallEvents` is what ``CallManager`` reports to (``pbx.calls.CallRecorder``): every event
goes to the :class:`~ringwell.features.cdr.service.CdrWriter` unchanged, and becomes a
``call.started``, ``call.answered`` or ``call.ended`` webhook through the non-blocking
``emit``. Only what a customer knows about a call is sent — the call id (the call record's id),
direction, numbers, times, outcome, durations and charge — never SIP internals (Call-IDs,
addresses, codecs, nodes).

The direction in ``call.started`` is what is known when the call starts (``inbound`` from the
phone network, else ``internal``); a call that the dial plan then sends to the phone network is
``outbound`` in ``call.ended``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ringwell.features.billing.money import format_minor
from ringwell.features.cdr.service import CallAnswered, CallClosed, CallOpened, CdrWriter

__all__ = ["CallEvents", "Emit"]

log = logging.getLogger(__name__)

Emit = Callable[[str, str, dict[str, Any]], None]  # (org_id, event type, data), never blocking


@dataclass(slots=True)
class _Call:
    org_id: str
    data: dict[str, Any]  # what call.started said; the later events repeat and extend it


class CallEvents:
    """Forwards call events to ``cdr`` and emits them as webhooks (never blocks, never raises)."""

    def __init__(self, cdr: CdrWriter, emit: Emit, *, max_calls: int = 200_000) -> None:
        self.cdr = cdr
        self._emit = emit
        self._max_calls = max_calls
        self._calls: dict[str, _Call] = {}  # open calls, oldest first

    @property
    def open_calls(self) -> int:
        return len(self._calls)

    def opened(self, event: CallOpened) -> None:
        self.cdr.opened(event)
        try:
            if event.id in self._calls:
                return
            if len(self._calls) >= self._max_calls:
                # A call whose end never came (it cannot happen without a bug); forget the oldest.
                oldest = next(iter(self._calls))
                del self._calls[oldest]
                log.error("%d calls open for webhooks; forgot call %s", self._max_calls, oldest)
            data: dict[str, Any] = {
                "call_id": event.id,
                "direction": event.direction,
                "from": event.caller_number or event.caller_extension,
                "to": event.callee_number,
                "from_user_id": event.caller_user_id,
                "started_at": event.started_at,
            }
            self._calls[event.id] = _Call(event.org_id, data)
            self._emit(event.org_id, "call.started", dict(data))
        except Exception:
            log.exception("call %s: could not emit call.started", event.id)

    def answered(self, event: CallAnswered) -> None:
        self.cdr.answered(event)
        try:
            call = self._calls.get(event.id)
            if call is None or "answered_at" in call.data:
                return
            call.data.update(answered_at=event.answered_at, to_user_id=event.callee_user_id,
                             to_extension=event.callee_extension)
            self._emit(call.org_id, "call.answered", dict(call.data))
        except Exception:
            log.exception("call %s: could not emit call.answered", event.id)

    def closed(self, event: CallClosed) -> None:
        self.cdr.closed(event)
        try:
            call = self._calls.pop(event.id, None)
            if call is None:
                return
            self._emit(call.org_id, "call.ended", _ended(call.data, event))
        except Exception:
            log.exception("call %s: could not emit call.ended", event.id)


def _ended(started: dict[str, Any], event: CallClosed) -> dict[str, Any]:
    billing = event.billing
    charge: dict[str, Any] | None = None
    if billing is not None and billing.charge_minor is not None and billing.currency:
        charge = {"amount_minor": billing.charge_minor, "amount": format_minor(billing.charge_minor, billing.currency),
                  "currency": billing.currency}
    answered_at: datetime | None = event.answered_at
    return {
        **started,
        "direction": event.direction,
        "answered_at": answered_at,
        "to_user_id": event.callee_user_id,
        "to_extension": event.callee_extension,
        "ended_at": event.ended_at,
        "disposition": event.disposition,
        "hangup_by": event.hangup_by,
        "ring_seconds": round(max(0.0, event.ring_seconds), 3),
        "talk_seconds": round(max(0.0, event.talk_seconds), 3),
        "billable_seconds": billing.billable_seconds if billing is not None else None,
        "charge": charge,
    }
