"""Tables of the registrations slice: registrar bindings (RFC 3261 §10)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, utcnow

__all__ = ["BindingRow"]


class BindingRow(Base):
    """One registered contact of a SIP credential."""

    __tablename__ = "bindings"
    __table_args__ = (UniqueConstraint("credential_id", "binding_key", name="uq_bindings_credential_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("sip_credentials.id", ondelete="CASCADE"), index=True)
    binding_key: Mapped[str] = mapped_column(String(512))
    contact: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    q: Mapped[int] = mapped_column(Integer, default=1000)
    call_id: Mapped[str] = mapped_column(String(255))
    cseq: Mapped[int] = mapped_column(Integer)
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    transport: Mapped[str] = mapped_column(String(8))
    source_host: Mapped[str] = mapped_column(String(64))
    source_port: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
