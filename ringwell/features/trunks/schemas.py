"""API shapes of the trunks slice (operator console). The SIP password is write-only: it is
accepted on create and update and never returned (``has_password`` says whether one is set)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from ringwell.features.trunks.models import Trunk
from ringwell.web.schemas import RequestBody

__all__ = ["TrunkIn", "TrunkList", "TrunkOut", "TrunkPatch", "trunk_out"]

Transport = Literal["udp", "tcp"]
NumberFormat = Literal["e164", "e164-noplus", "national"]
_Inbound = list[str]
_NULLABLE = frozenset({"username", "password", "buy_deck"})


class TrunkOut(BaseModel):
    id: str
    name: str
    host: str
    port: int
    transport: str
    username: str | None
    has_password: bool = Field(description="Whether a password is stored (it is never shown)")
    # "register" would shadow BaseModel's ABC classmethod: the attribute has another name, the JSON this one.
    register_: bool = Field(alias="register", description="Whether Ringwell registers to the carrier")
    register_expires: int
    inbound: list[str] = Field(description="Addresses or networks the carrier's calls come from (empty: host:port)")
    number_format: str
    tech_prefix: str
    priority: int = Field(description="Lower goes first among trunks of equal cost")
    buy_deck: str | None = Field(description="The rate deck of what the carrier charges")
    max_channels: int = Field(description="Concurrent calls at most (0: no limit)")
    enabled: bool
    created_at: datetime


class TrunkList(BaseModel):
    items: list[TrunkOut]
    next_cursor: str | None = Field(description="Always null: every trunk is listed")


class TrunkIn(RequestBody):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
    host: str = Field(min_length=1, max_length=64, description="The carrier's IP address")
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Transport = "udp"
    username: str | None = Field(default=None, min_length=1, max_length=128)
    password: str | None = Field(default=None, min_length=1, max_length=128, description="Write-only")
    register_: bool = Field(default=False, alias="register")
    register_expires: int = Field(default=3600, ge=60, le=86400)
    inbound: _Inbound = Field(default_factory=list, max_length=50)
    number_format: NumberFormat = "e164"
    tech_prefix: str = Field(default="", max_length=16, pattern=r"^[0-9#*]*$")
    priority: int = Field(default=10, ge=0, le=1000)
    buy_deck: str | None = Field(default=None, min_length=1, max_length=100)
    max_channels: int = Field(default=0, ge=0, le=100_000)


class TrunkPatch(RequestBody):
    """Only the fields sent change (the name cannot). ``password: null`` removes the password."""

    host: str | None = Field(default=None, min_length=1, max_length=64)
    port: int | None = Field(default=None, ge=1, le=65535)
    transport: Transport | None = None
    username: str | None = Field(default=None, min_length=1, max_length=128)
    password: str | None = Field(default=None, min_length=1, max_length=128, description="Write-only")
    register_: bool | None = Field(default=None, alias="register")
    register_expires: int | None = Field(default=None, ge=60, le=86400)
    inbound: _Inbound | None = Field(default=None, max_length=50)
    number_format: NumberFormat | None = None
    tech_prefix: str | None = Field(default=None, max_length=16, pattern=r"^[0-9#*]*$")
    priority: int | None = Field(default=None, ge=0, le=1000)
    buy_deck: str | None = Field(default=None, min_length=1, max_length=100)
    max_channels: int | None = Field(default=None, ge=0, le=100_000)
    enabled: bool | None = None

    @model_validator(mode="after")
    def _only_credentials_may_be_null(self) -> Self:
        for name in sorted(self.model_fields_set - _NULLABLE):
            if getattr(self, name) is None:
                raise ValueError(f"{name.rstrip('_')} cannot be null")
        return self


def trunk_out(trunk: Trunk) -> TrunkOut:
    return TrunkOut(
        id=trunk.id, name=trunk.name, host=trunk.host, port=trunk.port, transport=trunk.transport,
        username=trunk.username, has_password=trunk.password_enc is not None, register=trunk.register,
        register_expires=trunk.register_expires,
        inbound=[e.strip() for e in trunk.inbound_addresses.split(",") if e.strip()],
        number_format=trunk.number_format, tech_prefix=trunk.tech_prefix, priority=trunk.priority,
        buy_deck=trunk.buy_deck, max_channels=trunk.max_channels, enabled=trunk.enabled, created_at=trunk.created_at,
    )
