"""The audit event table and its chain head.

Rows are only ever inserted: the database refuses UPDATE, and DELETE of anything but a purged
prefix of the chain (triggers of migrations 0008 and 0017, on SQLite and PostgreSQL). Each row
is hash-chained to the one before it (``chain.py``): ``seq``, ``prev_hash`` and ``hash`` are
filled in as the row is inserted, under a lock on the one-row ``audit_chain_head`` so that two
writers (two server nodes on PostgreSQL) never fork the chain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Connection, Integer, String, Table, event, update
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from ringwell.features.audit.chain import FIELDS, GENESIS, event_hash
from ringwell.storage.base import Base, new_id, utcnow

__all__ = ["HEAD_ID", "AuditChainHead", "AuditEvent"]


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Who: a user (with the org they acted from and their role), an API key, or the system.
    actor_user_id: Mapped[str | None] = mapped_column(String(36))
    actor_org_id: Mapped[str | None] = mapped_column(String(36))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    api_key_id: Mapped[str | None] = mapped_column(String(36))
    # Whose data: no foreign keys on purpose — the trail outlives what it describes.
    org_id: Mapped[str | None] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(64))  # dotted, e.g. "auth.login", "numbers.rent", "staff.read"
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | denied | failed
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(String(255))  # why, for staff access
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # The hash chain (chain.py): filled in by ``_chain`` below as the row is inserted.
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The one row (id 1) naming the chain's last event, and where a purged trail now starts.

    ``anchor_seq``/``anchor_hash``: the last event removed by ``AuditLog.purge_before`` (0 and
    64 zeros if none ever was); verification starts from them. The DELETE trigger only lets
    rows with ``seq <= anchor_seq`` go, so nothing but a purged prefix can ever be deleted.
    """

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    anchor_seq: Mapped[int] = mapped_column(BigInteger)
    anchor_hash: Mapped[str] = mapped_column(String(64))


HEAD_ID = 1
_head = cast(Table, AuditChainHead.__table__)


def _chain(_mapper: Mapper[Any], connection: Connection, target: AuditEvent) -> None:
    """Give ``target`` the next seq and its hashes, in the inserting transaction.

    The head row stays locked until the transaction ends, so concurrent writers queue here and
    the chain stays a line; a rolled back transaction rolls back its seq too, leaving no gap.
    """
    if target.id is None:
        target.id = new_id()
    if target.at is None:
        target.at = utcnow()
    if target.outcome is None:
        target.outcome = "ok"
    # Incrementing first takes the row's write lock at once (PostgreSQL row lock; SQLite's write
    # lock, which a SELECT would not take), so no two writers can read the same last seq.
    row = connection.execute(update(_head).where(_head.c.id == HEAD_ID).values(seq=_head.c.seq + 1)
                             .returning(_head.c.seq, _head.c.hash)).first()
    if row is None:  # a schema made without the migrations (which create the head)
        connection.execute(_head.insert().values(id=HEAD_ID, seq=1, hash=GENESIS, anchor_seq=0,
                                                 anchor_hash=GENESIS))
        last_seq, last_hash = 0, GENESIS
    else:
        last_seq, last_hash = int(row.seq) - 1, str(row.hash)
    target.seq = last_seq + 1
    target.prev_hash = last_hash
    target.hash = event_hash(last_hash, {name: getattr(target, name) for name in FIELDS})
    connection.execute(update(_head).where(_head.c.id == HEAD_ID).values(hash=target.hash))


event.listen(AuditEvent, "before_insert", _chain)
