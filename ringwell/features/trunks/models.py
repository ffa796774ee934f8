"""Tables of the trunks slice: carrier gateways.

A trunk's SIP password is needed in clear to answer the carrier's digest challenge (the realm
is only known when challenged), so it is stored encrypted (AES-256-GCM under a key derived
from the server's secret), never in clear and never logged.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id, utcnow

__all__ = ["Trunk"]


class Trunk(Base):
    __tablename__ = "trunks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=5060)
    transport: Mapped[str] = mapped_column(String(8), default="udp")
    username: Mapped[str | None] = mapped_column(String(128))
    password_enc: Mapped[str | None] = mapped_column(String(512))  # base64 of nonce + AES-GCM ciphertext
    register: Mapped[bool] = mapped_column(Boolean, default=False)
    register_expires: Mapped[int] = mapped_column(Integer, default=3600)
    inbound_addresses: Mapped[str] = mapped_column(String(1000), default="")  # comma-separated IPs/CIDRs
    number_format: Mapped[str] = mapped_column(String(16), default="e164")  # e164 | e164-noplus | national
    tech_prefix: Mapped[str] = mapped_column(String(16), default="")
    priority: Mapped[int] = mapped_column(Integer, default=10)  # lower goes first among equal cost
    buy_deck: Mapped[str | None] = mapped_column(String(100))  # rate deck name: what the carrier costs
    max_channels: Mapped[int] = mapped_column(Integer, default=0)  # 0 = no limit
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
