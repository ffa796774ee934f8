"""The audit trail's hash chain: the recipe, and the rules that check a trail against it (pure).

Every audit event carries ``seq`` (1, 2, 3 … over the whole server), ``prev_hash`` (the hash of
event ``seq - 1``; 64 zeros for the first event) and ``hash``::

    hash = SHA-256( prev_hash + "\\n" + canonical(event) )   # lower-case hex

``canonical(event)`` is the JSON object of every field of the row (``FIELDS``), keys sorted, no
whitespace (separators ``,`` and ``:``), non-ASCII kept as UTF-8, ``at`` written as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (microseconds: what SQLite and PostgreSQL both keep) and
``details`` as the JSON value the database gives back (objects with sorted keys too). Absent
values are ``null``. The recipe is written out in ``docs/privacy-audit.md`` so an auditor can
recompute it from an export with any tool.

Editing any field of an event changes its hash ("edited"); removing an event leaves a gap in
``seq`` and a ``prev_hash`` that matches nothing ("removed"); an event out of ``seq`` order, or
chained to an earlier event than the one before it (moved, or a fork: written by a second writer
that did not see the latest event), is "reordered". ``ChainChecker`` applies these
rules to rows fed in ``seq`` order, keeping only a bounded window of recent hashes, so a trail of
any length is checked in constant memory.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "FIELDS",
    "GENESIS",
    "Break",
    "ChainChecker",
    "Problem",
    "canonical",
    "event_hash",
    "format_time",
]

GENESIS = "0" * 64  # prev_hash of the first event ever written

# Every column of ``audit_events`` but ``prev_hash`` and ``hash`` themselves.
FIELDS = ("id", "seq", "at", "actor_user_id", "actor_org_id", "actor_role", "api_key_id", "org_id", "action",
          "target_type", "target_id", "outcome", "ip", "user_agent", "reason", "details")


def format_time(value: datetime) -> str:
    """UTC, microsecond precision, ``Z`` suffix: identical however the database returned it."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: audit times are UTC")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The canonical encoding of one event (``fields`` holds every name of ``FIELDS``)."""
    values: dict[str, Any] = {}
    for name in FIELDS:
        value = fields[name]
        if name == "at":
            value = format_time(value)
        elif name == "details" and value is not None:
            # What the database gives back: tuples became lists, keys became strings.
            value = json.loads(json.dumps(value, allow_nan=False))
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def event_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """``SHA-256(prev_hash + "\\n" + canonical(fields))`` in lower-case hex."""
    digest = hashlib.sha256(prev_hash.encode("ascii") + b"\n")
    digest.update(canonical(fields))
    return digest.hexdigest()


class Problem(StrEnum):
    EDITED = "edited"  # the event's hash does not match its content
    REMOVED = "removed"  # events are missing before this one (or at the end of the trail)
    REORDERED = "reordered"  # the event follows another event than the one it was chained to


@dataclass(frozen=True, slots=True)
class Break:
    """The first place the trail is not what was written: which event and why."""

    problem: Problem
    event_id: str | None  # None: the break is at the end (events after the last one are missing)
    seq: int
    explanation: str


class ChainChecker:
    """Feed rows in ``seq`` order; the first break is returned (and kept in ``broken``).

    Starts after ``anchor_seq``/``anchor_hash`` (0 and ``GENESIS`` for a trail never purged;
    after a purge, the last purged event's). Memory: ``window`` recent hashes, whatever the
    trail's length — enough to tell a moved event from a removed one nearby.
    """

    def __init__(self, anchor_seq: int = 0, anchor_hash: str = GENESIS, *, window: int = 1024) -> None:
        self.last_seq = anchor_seq
        self.last_hash = anchor_hash
        self.count = 0
        self.broken: Break | None = None
        self._window = window
        self._recent: OrderedDict[str, int] = OrderedDict()

    def feed(self, fields: Mapping[str, Any], prev_hash: str, stored_hash: str) -> Break | None:
        if self.broken is not None:
            return self.broken
        seq = int(fields["seq"])
        event_id = str(fields["id"])
        if event_hash(prev_hash, fields) != stored_hash:
            return self._break(Problem.EDITED, event_id, seq,
                               "its content does not match its hash (a field was changed after it was written)")
        if seq <= self.last_seq:
            return self._break(Problem.REORDERED, event_id, seq, f"it comes after seq {self.last_seq}")
        if prev_hash != self.last_hash or seq != self.last_seq + 1:
            if prev_hash in self._recent and prev_hash != self.last_hash:
                return self._break(Problem.REORDERED, event_id, seq,
                                   f"it was chained after event seq {self._recent[prev_hash]}, "
                                   f"not after seq {self.last_seq}")
            missing = f"seq {self.last_seq + 1}" + (f" to {seq - 1}" if seq - 1 > self.last_seq + 1 else "")
            return self._break(Problem.REMOVED, event_id, seq,
                               f"the event(s) before it are missing ({missing} expected, or the previous hash "
                               "does not match)")
        self._remember(stored_hash, seq)
        self.last_seq, self.last_hash = seq, stored_hash
        self.count += 1
        return None

    def finish(self, head_seq: int, head_hash: str) -> Break | None:
        """Check the end against the chain head (the last seq and hash ever written)."""
        if self.broken is not None:
            return self.broken
        if head_seq != self.last_seq or head_hash != self.last_hash:
            return self._break(Problem.REMOVED, None, head_seq,
                               f"the trail ends at seq {self.last_seq} but seq {head_seq} was written "
                               "(the last events are missing)")
        return None

    def _remember(self, digest: str, seq: int) -> None:
        self._recent[digest] = seq
        if len(self._recent) > self._window:
            self._recent.popitem(last=False)

    def _break(self, problem: Problem, event_id: str | None, seq: int, explanation: str) -> Break:
        self.broken = Break(problem, event_id, seq, explanation)
        return self.broken
