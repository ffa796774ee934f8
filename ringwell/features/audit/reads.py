"""Auditing reads of other people's communications: call records, recordings, voicemail.

Every read of such records by anyone but their owner — an org owner or admin looking at a
colleague's calls, an API key (which is nobody's own), operator staff — is one audit event per
request (not per row), naming which records (ids, count). A person reading their own calls,
recordings or mailbox leaves no event: that is not an access to someone else's data. Staff
give their reason in the ``X-Access-Reason`` header; it travels on the ``Actor``.

``others`` is the pure rule; ``record_reads`` applies it and writes the event.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from ringwell.features.audit.service import Actor, AuditLog

__all__ = ["MAX_IDS", "Owned", "others", "record_reads"]

MAX_IDS = 500  # ids named in one event; the count is always exact
Owned = tuple[str, Collection[str | None]]  # a record's id and the users it belongs to (caller, callee, mailbox)


def others(viewer_user_id: str | None, records: Iterable[Owned], *, staff: bool) -> list[str]:
    """The ids of the records that are not the viewer's own (all of them for staff or an API key)."""
    if staff or viewer_user_id is None:
        return [record_id for record_id, _ in records]
    return [record_id for record_id, owners in records if viewer_user_id not in owners]


async def record_reads(audit: AuditLog, actor: Actor, *, action: str, org_id: str, target_type: str,
                       records: Sequence[Owned], staff: bool) -> int:
    """Record one ``action`` event for the records of ``records`` that are not the actor's own;
    returns how many that was (0: nothing recorded)."""
    ids = others(actor.user_id, records, staff=staff)
    if not ids:
        return 0
    await audit.record(action, actor, org_id=org_id, target_type=target_type,
                       target_id=ids[0] if len(ids) == 1 else None,
                       details={"ids": ids[:MAX_IDS], "count": len(ids)})
    return len(ids)
