"""Tables of the numbers slice: the phone-number inventory and caller-ID verifications.

A number's life: ``available`` (imported) → ``rented`` (by one organization, paid month by month)
→ ``quarantine`` (released; nobody can rent or find it until ``quarantine_until``) → available
again. An expired quarantine *is* available: no job has to flip the state back. ``org_id`` is set
only while rented.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id, utcnow

__all__ = ["CallerIdVerification", "NumberState", "PhoneNumber"]


class NumberState(StrEnum):
    AVAILABLE = "available"
    RENTED = "rented"
    QUARANTINE = "quarantine"


class PhoneNumber(Base):
    """One number of the operator's inventory. Prices in the currency's minor units; times UTC."""

    __tablename__ = "phone_numbers"
    __table_args__ = (
        Index("ix_phone_numbers_state_country", "state", "country"),
        Index("ix_phone_numbers_org_id_state", "org_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    e164: Mapped[str] = mapped_column(String(16), unique=True)  # "+14155550100"; the inbound look-up key
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2 region code
    national_number: Mapped[str] = mapped_column(String(17))  # "4155550100": searched by area (leading digits)
    type: Mapped[str] = mapped_column(String(16))  # e164.NUMBER_TYPES: fixed, mobile, toll-free, ...
    monthly_price_minor: Mapped[int] = mapped_column(BigInteger)
    setup_price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217; only orgs paying in it can rent the number
    trunk_id: Mapped[str | None] = mapped_column(ForeignKey("trunks.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default=NumberState.AVAILABLE.value)
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id", ondelete="SET NULL"))
    route_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    rented_at: Mapped[datetime | None]
    paid_until: Mapped[datetime | None] = mapped_column(index=True)  # the renewal job's look-up
    renewal_warned_at: Mapped[datetime | None]  # the warning of the current period; cleared on renewal
    quarantine_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallerIdVerification(Base):
    """A user proving they answer a number (to send it as caller ID). The code is never stored:
    ``code_hash`` is "salt$HMAC-SHA256(salt, code)" in hex. Dead once ``attempts`` reaches the
    maximum or ``expires_at`` passed; verified once ``verified_at`` is set."""

    __tablename__ = "caller_id_verifications"
    __table_args__ = (Index("ix_caller_id_verifications_user_id_e164", "user_id", "e164"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    e164: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str] = mapped_column(String(97))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    verified_at: Mapped[datetime | None]
