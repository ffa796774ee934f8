"""Tables of the fraud slice: an org's own caps and its destination rules.

Neither table needs a row: an org without them has the defaults (``policy.default_policy``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id, utcnow

__all__ = ["DestinationPermission", "FraudSettings"]


class FraudSettings(Base):
    """An org's caps; NULL keeps the default for that cap."""

    __tablename__ = "fraud_settings"

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    max_calls_per_minute: Mapped[int | None] = mapped_column(Integer)
    daily_spend_cap_minor: Mapped[int | None] = mapped_column(BigInteger)  # minor units of the org's currency
    max_price_per_minute_micros: Mapped[int | None] = mapped_column(BigInteger)  # 10^-6 of the major unit
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DestinationPermission(Base):
    """Allow or deny a country (``risk`` NULL), a risk class everywhere (``region`` NULL) or a
    class in one country. NULLs are distinct in a unique constraint on both databases, so the
    service keeps the "one rule per key" promise itself (see ``repository.replace_rule``)."""

    __tablename__ = "destination_permissions"
    __table_args__ = (
        UniqueConstraint("org_id", "region", "risk", name="uq_destination_permissions_org_region_risk"),
        CheckConstraint("region IS NOT NULL OR risk IS NOT NULL", name="target"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    region: Mapped[str | None] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    risk: Mapped[str | None] = mapped_column(String(16))  # international | premium | high-risk
    allow: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
