"""Tables of the billing slice: a double-entry ledger, credit reservations and payments.

Every movement of money is a ``LedgerTransaction`` with two or more ``LedgerPosting`` rows
that sum to zero. Each organization has one customer account in its currency; the other side
of each transaction is a system account of the same currency (``revenue:calls``,
``payments:stripe``, ...). The customer account row also carries the materialized
``balance_minor`` (= the sum of its postings) and ``reserved_minor`` (= the sum of its open
reservations), changed in the same database transaction as the postings and reservations
they summarize, so that a reservation is one conditional UPDATE (docs/decisions/0010).
System accounts do not materialize a balance: every organization posts to them, and a row
all of them updated would serialize the whole platform's calls.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id, utcnow

__all__ = [
    "CreditReservation",
    "LedgerAccount",
    "LedgerPosting",
    "LedgerTransaction",
    "Payment",
    "PaymentEvent",
    "PaymentStatus",
    "TransactionKind",
]


class TransactionKind(StrEnum):
    TOP_UP = "top_up"
    CALL_CHARGE = "call_charge"
    NUMBER_SETUP = "number_setup"
    NUMBER_RENTAL = "number_rental"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class LedgerAccount(Base):
    """A customer account (``org_id`` set, name ``customer``) or a system account (no org)."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (CheckConstraint("reserved_minor >= 0", name="reserved_not_negative"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(120), unique=True)  # "customer:<org id>" | "system:<name>:<currency>"
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # customer accounts only
    reserved_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # customer accounts only
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)  # the org's last LedgerTransaction.seq
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerTransaction(Base):
    """One movement of an organization's money; its postings sum to zero."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (UniqueConstraint("org_id", "seq"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)  # 1, 2, 3 ... per org, in the order the balance moved
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(255))
    reference: Mapped[str | None] = mapped_column(String(255))  # call id, payment id, number
    reason: Mapped[str | None] = mapped_column(String(500))  # why an operator did it
    operator: Mapped[str | None] = mapped_column(String(200))  # who did it
    balance_after_minor: Mapped[int] = mapped_column(BigInteger)  # the customer's balance right after
    cost_minor: Mapped[int | None] = mapped_column(BigInteger)  # what a call cost the operator (margin)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class LedgerPosting(Base):
    """One side of a transaction: ``amount_minor`` added to an account (negative takes away)."""

    __tablename__ = "ledger_postings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id", ondelete="CASCADE"),
                                                index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id", ondelete="CASCADE"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class CreditReservation(Base):
    """Credit held for a running call (key = call id) until it is settled or released.

    Open while ``closed_at`` is NULL; a settled reservation stays, closed, so that a second
    settle of the same call does nothing and a late reserve for it is refused.
    """

    __tablename__ = "credit_reservations"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # held now (0 once closed)
    node: Mapped[str | None] = mapped_column(String(64))  # the server that holds it (stale after its crash)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    transaction_id: Mapped[str | None] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="SET NULL"))  # the call charge, if any


class Payment(Base):
    """A top-up through a payment provider. About the card only what the provider returns:
    brand, last 4 digits and expiry — never a card number."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("provider", "provider_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_id: Mapped[str] = mapped_column(String(255))  # e.g. Stripe's PaymentIntent id "pi_..."
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=PaymentStatus.PENDING.value)
    card_brand: Mapped[str | None] = mapped_column(String(32))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    card_exp_month: Mapped[int | None] = mapped_column(Integer)
    card_exp_year: Mapped[int | None] = mapped_column(Integer)
    transaction_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_transactions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    succeeded_at: Mapped[datetime | None]


class PaymentEvent(Base):
    """A provider event already handled (webhooks are delivered at least once)."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
