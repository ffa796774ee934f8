"""The ledger: prepaid credit in double entry, and credit reservations for running calls.

Contract (docs/decisions/0010):
- Amounts are ``int`` minor units of the organization's currency (``organizations.currency``,
  fixed once its ledger account exists). Amounts shown to the customer are signed from the
  customer's point of view: a top-up is positive, a call charge negative.
- Every transaction's postings sum to zero; the customer account's ``balance_minor`` equals the
  sum of its postings and ``reserved_minor`` the sum of its open reservations, always, because
  both are changed in the same database transaction as what they summarize (``verify``).
- Reservations never overdraw: ``reserve`` succeeds only when balance − reserved covers the
  amount, decided by one conditional UPDATE — correct on SQLite and PostgreSQL and across
  server processes. A call charge can exceed what was reserved (the call happened and is
  posted in full), so a balance can go below zero by at most the last unreserved part of a
  call; an operator's debit (``adjust``) can take it below zero on purpose.
- ``settle`` is idempotent per key; ``top_up`` per (provider, reference).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.billing import repository as repo
from ringwell.features.billing.errors import InvalidBillingData, ReservationConflict
from ringwell.features.billing.models import (
    CreditReservation,
    LedgerAccount,
    LedgerPosting,
    LedgerTransaction,
    TransactionKind,
)
from ringwell.storage.base import new_id, utcnow

__all__ = ["Balance", "EntryView", "InTransaction", "LedgerService", "TransactionKind", "Verification"]

log = logging.getLogger(__name__)

# Runs inside a change's database transaction with the id of what changed (an audit event, say).
InTransaction = Callable[[AsyncSession, str], Awaitable[None]]

MAX_ENTRIES = 10_000
MAX_KEY_LENGTH = 255
MAX_TEXT = {"description": 255, "reference": 255, "reason": 500, "operator": 200}

# The system account on the other side of each kind of transaction.
_CONTRA = {
    TransactionKind.CALL_CHARGE: "revenue:calls",
    TransactionKind.NUMBER_SETUP: "revenue:numbers",
    TransactionKind.NUMBER_RENTAL: "revenue:numbers",
    TransactionKind.REFUND: "refunds",
    TransactionKind.ADJUSTMENT: "adjustments",
}
_PROVIDER_RE = re.compile(r"[a-z0-9_-]{1,32}")
_CHARGE_KINDS = (TransactionKind.CALL_CHARGE, TransactionKind.NUMBER_SETUP, TransactionKind.NUMBER_RENTAL)


@dataclass(frozen=True, slots=True)
class Balance:
    currency: str
    balance_minor: int
    reserved_minor: int
    available_minor: int  # balance − reserved: what a new reservation or charge may use


@dataclass(frozen=True, slots=True)
class EntryView:
    """One ledger transaction as the customer sees it (amount signed: + credit, − charge)."""

    id: str
    seq: int
    time: datetime
    kind: str
    amount_minor: int
    balance_after_minor: int
    currency: str
    description: str
    reference: str | None
    reason: str | None
    operator: str | None


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of checking that the materialized numbers equal what the entries say."""

    ok: bool
    balance_minor: int
    postings_sum: int
    reserved_minor: int
    reservations_sum: int
    unbalanced_transactions: tuple[str, ...] = ()  # transactions whose postings do not sum to zero


@dataclass(frozen=True, slots=True)
class _Account:
    id: str
    org_id: str
    currency: str


def _text(field: str, value: str | None, *, required: bool) -> str | None:
    cleaned = (value or "").strip()
    if not cleaned:
        if required:
            raise InvalidBillingData(f"{field} is required", {"field": field})
        return None
    if len(cleaned) > MAX_TEXT[field]:
        raise InvalidBillingData(f"{field} is longer than {MAX_TEXT[field]} characters", {"field": field})
    return cleaned


def _positive(amount_minor: int, field: str = "amount") -> int:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise InvalidBillingData(f"{field} must be a positive whole number of minor units", {"field": field})
    return amount_minor


def _key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidBillingData(f"reservation key must be 1 to {MAX_KEY_LENGTH} characters", {"field": "key"})
    return key


async def _entries_before(session: AsyncSession, org_id: str, account_id: str, before_seq: int,
                          limit: int) -> list[tuple[LedgerTransaction, int]]:
    """``repo.entries`` after a keyset position: (org_id, seq) is unique, so ``seq < before`` pages exactly."""
    result = await session.execute(
        select(LedgerTransaction, LedgerPosting.amount_minor)
        .join(LedgerPosting, LedgerPosting.transaction_id == LedgerTransaction.id)
        .where(LedgerTransaction.org_id == org_id, LedgerPosting.account_id == account_id,
               LedgerTransaction.seq < before_seq)
        .order_by(LedgerTransaction.seq.desc())
        .limit(limit)
    )
    return [(txn, int(amount)) for txn, amount in result.all()]


class LedgerService:
    """The organization's money. Every method takes the org explicitly; accounts are created lazily.

    ``node`` names this server in the reservations it makes, so that after a crash
    ``release_stale_reservations(node)`` frees exactly what it held.
    """

    def __init__(self, sessions: async_sessionmaker[Any], node: str | None = None) -> None:
        self._sessions = sessions
        self._node = node
        # Account ids never change once created: remember them (per service instance, bounded by orgs).
        self._customers: dict[str, _Account] = {}
        self._system: dict[str, str] = {}

    # -- accounts -------------------------------------------------------------------------------

    async def _customer(self, org_id: str) -> _Account:
        cached = self._customers.get(org_id)
        if cached is not None:
            return cached
        key = repo.customer_key(org_id)
        async with self._sessions() as session:
            row = await repo.account_by_key(session, key)
            currency = None if row is not None else await repo.org_currency(session, org_id)
        if row is None:
            if currency is None:
                raise OrganizationNotFound(f"no organization with id {org_id!r}", {"org_id": org_id})
            row = await self._create_account(key, "customer", currency, org_id)
        account = _Account(row.id, org_id, row.currency)
        self._customers[org_id] = account
        return account

    async def _contra(self, name: str, currency: str) -> str:
        key = repo.system_key(name, currency)
        cached = self._system.get(key)
        if cached is not None:
            return cached
        async with self._sessions() as session:
            row = await repo.account_by_key(session, key)
        if row is None:
            row = await self._create_account(key, name, currency, None)
        self._system[key] = row.id
        return row.id

    async def _create_account(self, key: str, name: str, currency: str, org_id: str | None) -> LedgerAccount:
        """Insert an account in its own transaction; if another process just created it, use that one."""
        try:
            async with self._sessions() as session, session.begin():
                row = LedgerAccount(key=key, name=name, currency=currency, org_id=org_id)
                session.add(row)
            return row
        except IntegrityError:
            async with self._sessions() as session:
                existing = await repo.account_by_key(session, key)
            if existing is None:
                raise
            return existing

    # -- reading ----------------------------------------------------------------------------

    async def balance(self, org_id: str) -> Balance:
        """Balance, reserved and available credit (an org without entries has 0 in its currency)."""
        account = await self._customer(org_id)
        async with self._sessions() as session:
            row = await session.get(LedgerAccount, account.id, populate_existing=True)
        if row is None:
            raise OrganizationNotFound(f"no organization with id {org_id!r}", {"org_id": org_id})
        return Balance(row.currency, row.balance_minor, row.reserved_minor, row.balance_minor - row.reserved_minor)

    async def entries(self, org_id: str, limit: int = 100, *, before_seq: int | None = None) -> list[EntryView]:
        """The org's ledger, newest first, with the balance right after each entry.

        ``before_seq``: only entries older than that one (keyset paging: pass the last ``seq`` seen).
        """
        if not 1 <= limit <= MAX_ENTRIES:
            raise InvalidBillingData(f"limit must be 1 to {MAX_ENTRIES}", {"field": "limit"})
        account = await self._customer(org_id)
        async with self._sessions() as session:
            if before_seq is None:
                rows = await repo.entries(session, org_id, account.id, limit)
            else:
                rows = await _entries_before(session, org_id, account.id, before_seq, limit)
        return [
            EntryView(txn.id, txn.seq, txn.created_at, txn.kind, amount, txn.balance_after_minor, account.currency,
                      txn.description, txn.reference, txn.reason, txn.operator)
            for txn, amount in rows
        ]

    async def verify(self, org_id: str) -> Verification:
        """Check the materialized balance and reservations against the entries themselves."""
        account = await self._customer(org_id)
        async with self._sessions() as session, session.begin():
            # Read under the account's lock so that no change lands between the sums.
            await repo.lock(session, account.id)
            row = await session.get(LedgerAccount, account.id, populate_existing=True)
            assert row is not None
            postings = await repo.postings_sum(session, account.id)
            reservations = await repo.open_reservations_sum(session, org_id)
            unbalanced = tuple(await repo.unbalanced_transactions(session, org_id))
            balance, reserved = row.balance_minor, row.reserved_minor
        ok = balance == postings and reserved == reservations and not unbalanced
        if not ok:
            log.error("ledger of org %s does not verify: balance %d vs postings %d, reserved %d vs reservations %d, "
                      "%d unbalanced transactions", org_id, balance, postings, reserved, reservations,
                      len(unbalanced))
        return Verification(ok, balance, postings, reserved, reservations, unbalanced)

    async def spent_since(self, org_id: str, since: datetime) -> int:
        """What the org was charged for calls since ``since`` (a positive number; for a daily spend cap)."""
        if since.tzinfo is None:
            raise InvalidBillingData("since must be an aware datetime (UTC)", {"field": "since"})
        account = await self._customer(org_id)
        async with self._sessions() as session:
            return await repo.charges_since(session, org_id, account.id, TransactionKind.CALL_CHARGE.value, since)

    # -- posting ------------------------------------------------------------------------------

    async def _post(
        self,
        session: AsyncSession,
        account: _Account,
        kind: TransactionKind,
        amount_minor: int,
        contra_id: str,
        *,
        description: str,
        reference: str | None = None,
        reason: str | None = None,
        operator: str | None = None,
        cost_minor: int | None = None,
        idempotency_key: str | None = None,
        unhold_minor: int = 0,
        only_if_available: bool = False,
    ) -> str | None:
        """Post ``amount_minor`` (customer's view) against ``contra_id`` inside ``session``'s transaction.

        The account UPDATE comes first and takes the org's lock; the time is read after it, so
        on one clock the entries' times follow their ``seq``.
        """
        if only_if_available:
            moved = await repo.post_if_available(session, account.id, -amount_minor)
            if moved is None:
                return None
        else:
            moved = await repo.post(session, account.id, amount_minor, unhold_minor)
        balance_after, seq = moved
        txn = LedgerTransaction(
            id=new_id(), org_id=account.org_id, seq=seq, kind=kind.value, description=description, reference=reference,
            reason=reason, operator=operator, balance_after_minor=balance_after, cost_minor=cost_minor,
            idempotency_key=idempotency_key, created_at=utcnow(),
        )
        session.add(txn)
        await session.flush()  # the unit of work orders inserts by relationships, and there are none here
        session.add_all([
            LedgerPosting(transaction_id=txn.id, account_id=account.id, amount_minor=amount_minor),
            LedgerPosting(transaction_id=txn.id, account_id=contra_id, amount_minor=-amount_minor),
        ])
        await session.flush()
        return txn.id

    async def adjust(self, org_id: str, amount_minor: int, reason: str, operator: str, *,
                     in_transaction: InTransaction | None = None) -> str:
        """A manual credit (+) or debit (−) by an operator, with the reason and who did it.

        A debit is applied as stated even if it takes the balance below zero (a correction).
        ``in_transaction(session, transaction_id)`` runs inside the same database transaction
        (e.g. to record the audit event: both commit, or neither).
        """
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor == 0:
            raise InvalidBillingData("amount must be a non-zero whole number of minor units", {"field": "amount"})
        why = _text("reason", reason, required=True)
        who = _text("operator", operator, required=True)
        account = await self._customer(org_id)
        contra = await self._contra(_CONTRA[TransactionKind.ADJUSTMENT], account.currency)
        async with self._sessions() as session, session.begin():
            txn = await self._post(session, account, TransactionKind.ADJUSTMENT, amount_minor, contra,
                                   description="manual credit" if amount_minor > 0 else "manual debit",
                                   reason=why, operator=who)
            assert txn is not None
            if in_transaction is not None:
                await in_transaction(session, txn)
        return txn

    async def refund(self, org_id: str, amount_minor: int, reason: str, operator: str,
                     reference: str | None = None) -> str:
        """Give credit back to the org (e.g. for a bad call): the balance goes up by ``amount_minor``."""
        _positive(amount_minor)
        why = _text("reason", reason, required=True)
        who = _text("operator", operator, required=True)
        ref = _text("reference", reference, required=False)
        account = await self._customer(org_id)
        contra = await self._contra(_CONTRA[TransactionKind.REFUND], account.currency)
        async with self._sessions() as session, session.begin():
            txn = await self._post(session, account, TransactionKind.REFUND, amount_minor, contra,
                                   description="refund", reference=ref, reason=why, operator=who)
        assert txn is not None
        return txn

    async def top_up(self, org_id: str, amount_minor: int, *, provider: str, reference: str) -> str:
        """Credit a payment received through ``provider`` (``reference``: its payment id).

        Idempotent per (provider, reference): crediting the same payment again returns the
        first transaction's id and changes nothing.
        """
        _positive(amount_minor)
        if not _PROVIDER_RE.fullmatch(provider):
            raise InvalidBillingData(f"not a payment provider name: {provider!r}", {"field": "provider"})
        name = provider
        ref = _text("reference", reference, required=True)
        assert ref is not None
        account = await self._customer(org_id)
        contra = await self._contra(f"payments:{name}", account.currency)
        idempotency_key = f"top_up:{name}:{ref}"
        async with self._sessions() as session, session.begin():
            await repo.lock(session, account.id)
            existing = await repo.transaction_by_idempotency_key(session, org_id, idempotency_key)
            if existing is not None:
                return existing
            txn = await self._post(session, account, TransactionKind.TOP_UP, amount_minor, contra,
                                   description=f"top-up ({name})", reference=ref, idempotency_key=idempotency_key)
        assert txn is not None
        return txn

    async def try_charge(self, org_id: str, amount_minor: int, kind: TransactionKind | str, description: str,
                         reference: str | None = None) -> str | None:
        """Charge ``amount_minor`` only if the available credit covers it (number setup and rental).

        Returns the transaction id, or None when the credit is not there (nothing is posted).
        """
        _positive(amount_minor)
        try:
            what = TransactionKind(kind)
        except ValueError:
            raise InvalidBillingData(f"not a charge kind: {kind!r}", {"field": "kind"}) from None
        if what not in _CHARGE_KINDS:
            raise InvalidBillingData(f"not a charge kind: {kind!r}", {"field": "kind"})
        text = _text("description", description, required=True)
        assert text is not None
        ref = _text("reference", reference, required=False)
        account = await self._customer(org_id)
        contra = await self._contra(_CONTRA[what], account.currency)
        async with self._sessions() as session, session.begin():
            return await self._post(session, account, what, -amount_minor, contra, description=text,
                                    reference=ref, only_if_available=True)

    # -- reservations -------------------------------------------------------------------------

    async def reserve(self, org_id: str, key: str, amount_minor: int) -> bool:
        """Hold ``amount_minor`` for ``key`` (a call id) if the available credit covers it.

        Reserving an open key again adds to it (the next slice of a running call). A settled
        key is refused (False): its call is over. 0 holds nothing and succeeds.
        """
        _key(key)
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor < 0:
            raise InvalidBillingData("amount must be a whole number of minor units, not negative",
                                     {"field": "amount"})
        if amount_minor == 0:
            return True
        account = await self._customer(org_id)
        async with self._sessions() as session:
            if not await repo.hold(session, account.id, amount_minor):
                return False
            row = await repo.reservation(session, key)
            now = utcnow()
            if row is None:
                session.add(CreditReservation(key=key, org_id=org_id, amount_minor=amount_minor, node=self._node,
                                              created_at=now, updated_at=now))
            elif row.org_id == org_id and row.closed_at is None:
                row.amount_minor += amount_minor
                row.updated_at = now
            else:
                foreign = row.org_id != org_id
                await session.rollback()  # give the hold back: the key is another org's, or its call is over
                if foreign:
                    raise ReservationConflict("reservation key belongs to another organization", {"key": key})
                return False
            await session.commit()
        return True

    async def settle(self, org_id: str, key: str, charge_minor: int, *, description: str,
                     reference: str | None = None, cost_minor: int | None = None) -> str | None:
        """End ``key``'s reservation: release all of it and post a call charge of ``charge_minor``.

        One database transaction. A charge of 0 posts nothing (returns None). The charge may
        exceed what was reserved: the call happened, it is posted in full. Idempotent: settling
        a key again changes nothing and returns the first charge's id (or None).
        """
        _key(key)
        if isinstance(charge_minor, bool) or not isinstance(charge_minor, int) or charge_minor < 0:
            raise InvalidBillingData("charge must be a whole number of minor units, not negative",
                                     {"field": "charge"})
        if cost_minor is not None and (isinstance(cost_minor, bool) or not isinstance(cost_minor, int)
                                       or cost_minor < 0):
            raise InvalidBillingData("cost must be a whole number of minor units, not negative", {"field": "cost"})
        text = _text("description", description, required=True)
        assert text is not None
        ref = _text("reference", reference, required=False)
        account = await self._customer(org_id)
        contra = await self._contra(_CONTRA[TransactionKind.CALL_CHARGE], account.currency) if charge_minor else ""
        async with self._sessions() as session:
            await repo.lock(session, account.id)
            row = await repo.reservation(session, key)
            if row is not None and row.org_id != org_id:
                raise ReservationConflict("reservation key belongs to another organization", {"key": key})
            if row is not None and row.closed_at is not None:
                return row.transaction_id
            held = row.amount_minor if row is not None else 0
            txn_id: str | None = None
            if charge_minor:
                txn_id = await self._post(session, account, TransactionKind.CALL_CHARGE, -charge_minor, contra,
                                          description=text, reference=ref, cost_minor=cost_minor,
                                          idempotency_key=f"call_charge:{key}", unhold_minor=held)
            elif held:
                await repo.unhold(session, account.id, held)
            now = utcnow()
            if row is None:
                row = CreditReservation(key=key, org_id=org_id, amount_minor=0, node=self._node, created_at=now)
                session.add(row)
            row.amount_minor, row.updated_at, row.closed_at, row.transaction_id = 0, now, now, txn_id
            await session.commit()
        return txn_id

    async def release(self, org_id: str, key: str) -> int:
        """Drop ``key``'s open reservation without charging; returns what was released (0 if none)."""
        _key(key)
        account = await self._customer(org_id)
        async with self._sessions() as session:
            await repo.lock(session, account.id)
            row = await repo.reservation(session, key)
            if row is None or row.org_id != org_id or row.closed_at is not None:
                return 0
            held = row.amount_minor
            await repo.unhold(session, account.id, held)
            await session.delete(row)
            await session.commit()
        return held

    async def release_stale_reservations(self, node: str | None = None) -> int:
        """Release the open reservations a crashed run left (of ``node``, or every one if None).

        Call at server start, before calls are taken; with several nodes pass this node's name
        (the others' calls are still running). Returns how many were released.
        """
        async with self._sessions() as session:
            stale = [(row.key, row.org_id) for row in await repo.open_reservations(session, node)]
        released = 0
        for key, org_id in stale:
            if await self.release(org_id, key):
                released += 1
        if released:
            log.warning("released %d credit reservations left open by a previous run", released)
        return released
