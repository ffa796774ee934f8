"""Tables of the rating slice: rate decks, their rates, and the sell deck each organization pays.

A deck is replaced as a whole by each import (its rates deleted and inserted again in one
transaction); ``rate_decks.updated_at`` moves with every import, which is how servers notice
that a deck they hold in memory has changed.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id, utcnow

__all__ = ["OrgRateDeck", "RateDeck", "RateRow"]

# Rates are written 100 000 at a time and never referenced by id from elsewhere: a 64-bit
# counter (SQLite's rowid, where BIGINT would not autoincrement) instead of a UUID per row.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


class RateDeck(Base):
    __tablename__ = "rate_decks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217 of every price in the deck
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)  # the last import


class RateRow(Base):
    """One rate of a deck (see ``rates.Rate``): prices in micros of the deck currency's major unit."""

    __tablename__ = "rates"
    __table_args__ = (Index("ix_rates_deck_id_prefix", "deck_id", "prefix"),)

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    deck_id: Mapped[str] = mapped_column(ForeignKey("rate_decks.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(15))  # digits, no '+'
    description: Mapped[str] = mapped_column(String(200))
    price_micros: Mapped[int] = mapped_column(BigInteger)  # per minute
    connection_fee_micros: Mapped[int] = mapped_column(BigInteger)
    first_increment: Mapped[int] = mapped_column(Integer)  # seconds
    next_increment: Mapped[int] = mapped_column(Integer)  # seconds
    effective_from: Mapped[date] = mapped_column(Date)


class OrgRateDeck(Base):
    """The sell deck an organization's outbound calls are charged by (at most one)."""

    __tablename__ = "org_rate_decks"

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    deck_id: Mapped[str] = mapped_column(ForeignKey("rate_decks.id"), index=True)
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
