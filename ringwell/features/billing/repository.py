"""Queries of the billing slice. Every query is scoped to one organization or one account.

The customer account row is each organization's lock: every change of an organization's
money starts with an UPDATE of that row (``lock``, ``hold``, ``post``, ``post_if_available``),
which PostgreSQL holds as a row lock and SQLite as its write lock until the transaction ends.
So the reads that follow inside the same transaction see what no one else can change, and
there is one lock per transaction, taken first: no deadlocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.accounts.models import Organization
from ringwell.features.billing.models import (
    CreditReservation,
    LedgerAccount,
    LedgerPosting,
    LedgerTransaction,
    Payment,
    PaymentEvent,
)

__all__ = [
    "account_by_key",
    "charges_since",
    "customer_key",
    "entries",
    "event_seen",
    "hold",
    "lock",
    "open_reservations",
    "open_reservations_sum",
    "org_currency",
    "payment_by_provider_id",
    "payments_of_org",
    "post",
    "post_if_available",
    "postings_sum",
    "reservation",
    "system_key",
    "transaction_by_idempotency_key",
    "unbalanced_transactions",
    "unhold",
]


def customer_key(org_id: str) -> str:
    return f"customer:{org_id}"


def system_key(name: str, currency: str) -> str:
    return f"system:{name}:{currency}"


async def org_currency(session: AsyncSession, org_id: str) -> str | None:
    result = await session.execute(select(Organization.currency).where(Organization.id == org_id))
    return result.scalar_one_or_none()


async def account_by_key(session: AsyncSession, key: str) -> LedgerAccount | None:
    result = await session.execute(select(LedgerAccount).where(LedgerAccount.key == key))
    return result.scalar_one_or_none()


async def lock(session: AsyncSession, account_id: str) -> bool:
    """Take the account's lock without changing it (a no-op UPDATE); False if it does not exist."""
    result = await session.execute(
        update(LedgerAccount)
        .where(LedgerAccount.id == account_id)
        .values(reserved_minor=LedgerAccount.reserved_minor)
        .returning(LedgerAccount.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def hold(session: AsyncSession, account_id: str, amount_minor: int) -> bool:
    """Reserve ``amount_minor`` if the available credit covers it — one atomic conditional UPDATE."""
    result = await session.execute(
        update(LedgerAccount)
        .where(
            LedgerAccount.id == account_id,
            LedgerAccount.balance_minor - LedgerAccount.reserved_minor >= amount_minor,
        )
        .values(reserved_minor=LedgerAccount.reserved_minor + amount_minor)
        .returning(LedgerAccount.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def unhold(session: AsyncSession, account_id: str, amount_minor: int) -> None:
    await session.execute(
        update(LedgerAccount)
        .where(LedgerAccount.id == account_id)
        .values(reserved_minor=LedgerAccount.reserved_minor - amount_minor)
        .execution_options(synchronize_session=False)
    )


async def post(session: AsyncSession, account_id: str, delta_minor: int, unhold_minor: int = 0) -> tuple[int, int]:
    """Move the customer's balance by ``delta_minor`` (and release ``unhold_minor``); returns
    (balance after, the transaction's sequence number)."""
    result = await session.execute(
        update(LedgerAccount)
        .where(LedgerAccount.id == account_id)
        .values(
            balance_minor=LedgerAccount.balance_minor + delta_minor,
            reserved_minor=LedgerAccount.reserved_minor - unhold_minor,
            last_seq=LedgerAccount.last_seq + 1,
        )
        .returning(LedgerAccount.balance_minor, LedgerAccount.last_seq)
        .execution_options(synchronize_session=False)
    )
    balance, seq = result.one()
    return int(balance), int(seq)


async def post_if_available(session: AsyncSession, account_id: str, debit_minor: int) -> tuple[int, int] | None:
    """Take ``debit_minor`` off the balance only if the available credit covers it."""
    result = await session.execute(
        update(LedgerAccount)
        .where(
            LedgerAccount.id == account_id,
            LedgerAccount.balance_minor - LedgerAccount.reserved_minor >= debit_minor,
        )
        .values(balance_minor=LedgerAccount.balance_minor - debit_minor, last_seq=LedgerAccount.last_seq + 1)
        .returning(LedgerAccount.balance_minor, LedgerAccount.last_seq)
        .execution_options(synchronize_session=False)
    )
    row = result.one_or_none()
    return None if row is None else (int(row[0]), int(row[1]))


async def transaction_by_idempotency_key(session: AsyncSession, org_id: str, key: str) -> str | None:
    result = await session.execute(
        select(LedgerTransaction.id).where(LedgerTransaction.org_id == org_id,
                                           LedgerTransaction.idempotency_key == key)
    )
    return result.scalar_one_or_none()


async def reservation(session: AsyncSession, key: str) -> CreditReservation | None:
    """The reservation with this key, whatever its org (keys are call ids: unique on the server)."""
    return await session.get(CreditReservation, key, populate_existing=True)


async def open_reservations(session: AsyncSession, node: str | None) -> Sequence[CreditReservation]:
    query = select(CreditReservation).where(CreditReservation.closed_at.is_(None))
    if node is not None:
        query = query.where(CreditReservation.node == node)
    return (await session.execute(query.order_by(CreditReservation.org_id))).scalars().all()


async def open_reservations_sum(session: AsyncSession, org_id: str) -> int:
    result = await session.execute(
        select(func.coalesce(func.sum(CreditReservation.amount_minor), 0)).where(
            CreditReservation.org_id == org_id, CreditReservation.closed_at.is_(None)
        )
    )
    return int(result.scalar_one())


async def postings_sum(session: AsyncSession, account_id: str) -> int:
    result = await session.execute(
        select(func.coalesce(func.sum(LedgerPosting.amount_minor), 0)).where(LedgerPosting.account_id == account_id)
    )
    return int(result.scalar_one())


async def unbalanced_transactions(session: AsyncSession, org_id: str) -> list[str]:
    """Ids of the org's transactions whose postings do not sum to zero (there must be none)."""
    result = await session.execute(
        select(LedgerTransaction.id)
        .join(LedgerPosting, LedgerPosting.transaction_id == LedgerTransaction.id)
        .where(LedgerTransaction.org_id == org_id)
        .group_by(LedgerTransaction.id)
        .having(func.sum(LedgerPosting.amount_minor) != 0)
    )
    return list(result.scalars().all())


async def entries(
    session: AsyncSession, org_id: str, account_id: str, limit: int
) -> Sequence[tuple[LedgerTransaction, int]]:
    """The org's transactions, newest first, each with the customer account's posting."""
    result = await session.execute(
        select(LedgerTransaction, LedgerPosting.amount_minor)
        .join(LedgerPosting, LedgerPosting.transaction_id == LedgerTransaction.id)
        .where(LedgerTransaction.org_id == org_id, LedgerPosting.account_id == account_id)
        .order_by(LedgerTransaction.seq.desc())
        .limit(limit)
    )
    return [(txn, int(amount)) for txn, amount in result.all()]


async def charges_since(session: AsyncSession, org_id: str, account_id: str, kind: str, since: datetime) -> int:
    """What the org was charged (a positive number) by transactions of ``kind`` since ``since``."""
    result = await session.execute(
        select(func.coalesce(func.sum(LedgerPosting.amount_minor), 0))
        .join(LedgerTransaction, LedgerPosting.transaction_id == LedgerTransaction.id)
        .where(
            LedgerTransaction.org_id == org_id,
            LedgerTransaction.kind == kind,
            LedgerTransaction.created_at >= since,
            LedgerPosting.account_id == account_id,
        )
    )
    return -int(result.scalar_one())


async def payment_by_provider_id(session: AsyncSession, provider: str, provider_id: str) -> Payment | None:
    result = await session.execute(
        select(Payment).where(Payment.provider == provider, Payment.provider_id == provider_id)
    )
    return result.scalar_one_or_none()


async def event_seen(session: AsyncSession, provider: str, event_id: str) -> bool:
    result = await session.execute(
        select(PaymentEvent.id).where(PaymentEvent.provider == provider, PaymentEvent.event_id == event_id)
    )
    return result.scalar_one_or_none() is not None


async def payments_of_org(session: AsyncSession, org_id: str) -> Sequence[Payment]:
    result = await session.execute(
        select(Payment).where(Payment.org_id == org_id).order_by(Payment.created_at.desc())
    )
    return result.scalars().all()
