"""Trunks: validate → persist carrier gateways; the routing view of them the call path uses.

A trunk is reached at ``host:port`` over UDP or TCP (an IP address: no DNS look-ups on the call
path; a TCP trunk is kept connected by ``pbx.trunk_connect``). Outbound INVITEs answer the
carrier's 401/407 with the trunk's credentials, or the trunk registers to the carrier. Inbound
INVITEs are recognised by their source: an address or network, optionally with a port
(``203.0.113.5``, ``198.51.100.0/24``, ``127.0.0.1:5090``); a trunk with no inbound list
accepts what comes from its own ``host:port``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

import phonenumbers
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.features.trunks import repository as repo
from ringwell.features.trunks.errors import DuplicateTrunk, InvalidTrunk, TrunkNotFound
from ringwell.features.trunks.models import Trunk
from ringwell.features.trunks.sealing import Sealer
from ringwell.tasks import Periodic
from ringwell.transport.source import Source

__all__ = ["KEEP", "NUMBER_FORMATS", "InTransaction", "TrunkChanges", "TrunkDirectory", "TrunkRoute", "TrunkSpec",
           "TrunksService", "dial_string"]

NUMBER_FORMATS = ("e164", "e164-noplus", "national")
TRANSPORTS = ("udp", "tcp")  # TLS to a carrier: not yet (it needs the carrier's CA per trunk)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,99}")
_PREFIX_RE = re.compile(r"[0-9#*]{0,16}")
# Stands for the stored password while an update is validated (never stored: only a new one is sealed).
_KEPT_PASSWORD = "\x00kept"  # noqa: S105 - a placeholder, not a credential

MAX_INBOUND_TEXT = 1000  # the column: every inbound entry, comma-separated
MAX_CREDENTIAL = 128  # username and password characters (the sealed password must fit its column)
MAX_DECK_NAME = 100

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # a TrunkChanges field left as it is
# Runs inside a change's database transaction with the id of what changed (an audit event, say).
InTransaction = Callable[[AsyncSession, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TrunkSpec:
    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    register: bool = False
    register_expires: int = 3600
    inbound: Sequence[str] = ()
    number_format: str = "e164"
    tech_prefix: str = ""
    priority: int = 10
    buy_deck: str | None = None
    max_channels: int = 0


@dataclass(frozen=True, slots=True)
class TrunkChanges:
    """What an update changes: every field is left as it is unless given. The name cannot change
    (the sealed password is bound to it); ``password=None`` removes the credentials' password."""

    host: str | _Keep = KEEP
    port: int | _Keep = KEEP
    transport: str | _Keep = KEEP
    username: str | _Keep | None = KEEP
    password: str | _Keep | None = field(default=KEEP, repr=False)
    register: bool | _Keep = KEEP
    register_expires: int | _Keep = KEEP
    inbound: Sequence[str] | _Keep = KEEP
    number_format: str | _Keep = KEEP
    tech_prefix: str | _Keep = KEEP
    priority: int | _Keep = KEEP
    buy_deck: str | _Keep | None = KEEP
    max_channels: int | _Keep = KEEP
    enabled: bool | _Keep = KEEP

    def given(self) -> dict[str, Any]:
        """The fields to change, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not KEEP}


@dataclass(frozen=True, slots=True)
class InboundMatch:
    network: Network
    port: int | None

    def matches(self, host: str, port: int) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return address in self.network and (self.port is None or self.port == port)


@dataclass(frozen=True, slots=True)
class TrunkRoute:
    """A trunk as the call path sees it (the password opened, never logged)."""

    id: str
    name: str
    host: str
    port: int
    transport: str
    username: str | None
    password: str | None = field(repr=False)
    register: bool
    register_expires: int
    inbound: tuple[InboundMatch, ...]
    number_format: str
    tech_prefix: str
    priority: int
    buy_deck: str | None
    max_channels: int

    @property
    def flow(self) -> Source:
        return Source(self.transport, self.host, self.port)

    def uri_host(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def caller_id(self, number: str | None) -> str | None:
        """A caller ID (E.164) in this trunk's number format."""
        if not number or not number.startswith("+") or self.number_format == "e164":
            return number
        if self.number_format == "e164-noplus":
            return number[1:]
        return dial_string(number, "national")

    def accepts(self, source: Source) -> bool:
        return any(match.matches(source.host, source.port) for match in self.inbound)


def dial_string(e164: str, number_format: str, tech_prefix: str = "") -> str:
    """How a trunk wants a number: ``+14155550100``, ``14155550100`` or national digits."""
    if number_format == "e164":
        body = e164
    elif number_format == "e164-noplus":
        body = e164.lstrip("+")
    else:
        parsed = phonenumbers.parse(e164, None)
        body = re.sub(r"\D", "", phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL))
    return tech_prefix + body


def _parse_inbound(entry: str) -> InboundMatch:
    text = entry.strip()
    port: int | None = None
    if text.startswith("["):  # [v6]:port
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
        text = host
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
        port = int(port_text)
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("port out of range")
    return InboundMatch(ipaddress.ip_network(text, strict=False), port)


def _validate(spec: TrunkSpec) -> None:
    def bad(field_name: str, problem: str) -> InvalidTrunk:
        return InvalidTrunk(f"{field_name}: {problem}", {"field": field_name})

    if not _NAME_RE.fullmatch(spec.name):
        raise bad("name", "1 to 100 letters, digits, '.', '_' or '-'")
    try:
        ipaddress.ip_address(spec.host)
    except ValueError:
        raise bad("host", f"{spec.host!r} is not an IP address (DNS names are not supported yet)") from None
    if not 1 <= spec.port <= 65535:
        raise bad("port", "must be 1-65535")
    if spec.transport not in TRANSPORTS:
        raise bad("transport", f"must be one of {', '.join(TRANSPORTS)} (TLS to carriers: not yet)")
    if spec.number_format not in NUMBER_FORMATS:
        raise bad("number_format", f"must be one of {', '.join(NUMBER_FORMATS)}")
    if not _PREFIX_RE.fullmatch(spec.tech_prefix):
        raise bad("tech_prefix", "at most 16 of 0-9, # and *")
    if spec.register and not (spec.username and spec.password):
        raise bad("register", "registering to a carrier needs a username and a password")
    if bool(spec.username) != bool(spec.password):
        raise bad("password", "give both a username and a password, or neither")
    if not 60 <= spec.register_expires <= 86400:
        raise bad("register_expires", "must be 60-86400 seconds")
    if spec.max_channels < 0:
        raise bad("max_channels", "must not be negative (0 = no limit)")
    if spec.username is not None and len(spec.username) > MAX_CREDENTIAL:
        raise bad("username", f"at most {MAX_CREDENTIAL} characters")
    if spec.password is not None and len(spec.password) > MAX_CREDENTIAL:
        raise bad("password", f"at most {MAX_CREDENTIAL} characters")
    if spec.buy_deck is not None and not 1 <= len(spec.buy_deck) <= MAX_DECK_NAME:
        raise bad("buy_deck", f"a rate deck name of 1 to {MAX_DECK_NAME} characters")
    if len(",".join(e.strip() for e in spec.inbound)) > MAX_INBOUND_TEXT:
        raise bad("inbound", f"at most {MAX_INBOUND_TEXT} characters in all")
    for entry in spec.inbound:
        try:
            _parse_inbound(entry)
        except ValueError as exc:
            raise bad("inbound", f"{entry!r}: {exc}") from None


class TrunksService:
    def __init__(self, sessions: async_sessionmaker[Any], secret_key: str) -> None:
        self._sessions = sessions
        self._sealer = Sealer(secret_key)

    async def add(self, spec: TrunkSpec, *, in_transaction: InTransaction | None = None) -> Trunk:
        """A new trunk (enabled). ``in_transaction(session, trunk_id)`` here and in :meth:`update` and
        :meth:`delete` runs inside the change's transaction (e.g. its audit event: both or neither)."""
        _validate(spec)
        async with self._sessions() as session, session.begin():
            if await repo.trunk_by_name(session, spec.name) is not None:
                raise DuplicateTrunk(f"a trunk named {spec.name!r} exists", {"field": "name"})
            trunk = Trunk(
                name=spec.name, host=spec.host, port=spec.port, transport=spec.transport, username=spec.username,
                password_enc=self._sealer.seal(spec.password, spec.name) if spec.password else None,
                register=spec.register, register_expires=spec.register_expires,
                inbound_addresses=",".join(e.strip() for e in spec.inbound), number_format=spec.number_format,
                tech_prefix=spec.tech_prefix, priority=spec.priority, buy_deck=spec.buy_deck,
                max_channels=spec.max_channels, enabled=True,
            )
            session.add(trunk)
            await session.flush()
            if in_transaction is not None:
                await in_transaction(session, trunk.id)
        return trunk

    async def remove(self, name: str) -> None:
        async with self._sessions() as session, session.begin():
            trunk = await repo.trunk_by_name(session, name)
            if trunk is None:
                raise TrunkNotFound(f"no trunk named {name!r}", {"name": name})
            await session.delete(trunk)

    async def set_enabled(self, name: str, enabled: bool) -> None:
        async with self._sessions() as session, session.begin():
            trunk = await repo.trunk_by_name(session, name)
            if trunk is None:
                raise TrunkNotFound(f"no trunk named {name!r}", {"name": name})
            trunk.enabled = enabled

    async def by_id(self, trunk_id: str) -> Trunk:
        async with self._sessions() as session:
            trunk: Trunk | None = await session.get(Trunk, trunk_id) if len(trunk_id) <= 36 else None
        if trunk is None:
            raise TrunkNotFound("no such trunk", {"trunk_id": trunk_id[:36]})
        return trunk

    async def update(self, trunk_id: str, changes: TrunkChanges, *,
                     in_transaction: InTransaction | None = None) -> Trunk:
        """Apply ``changes`` to a trunk (validated as a whole, like a new trunk); the password is
        sealed again only when a new one is given."""
        given = changes.given()
        enabled = given.pop("enabled", None)
        async with self._sessions() as session, session.begin():
            trunk: Trunk | None = await session.get(Trunk, trunk_id) if len(trunk_id) <= 36 else None
            if trunk is None:
                raise TrunkNotFound("no such trunk", {"trunk_id": trunk_id[:36]})
            current = TrunkSpec(
                name=trunk.name, host=trunk.host, port=trunk.port, transport=trunk.transport, username=trunk.username,
                password=_KEPT_PASSWORD if trunk.password_enc else None, register=trunk.register,
                register_expires=trunk.register_expires,
                inbound=tuple(e for e in trunk.inbound_addresses.split(",") if e.strip()),
                number_format=trunk.number_format, tech_prefix=trunk.tech_prefix, priority=trunk.priority,
                buy_deck=trunk.buy_deck, max_channels=trunk.max_channels,
            )
            spec = replace(current, **given)
            _validate(spec)
            trunk.host, trunk.port, trunk.transport = spec.host, spec.port, spec.transport
            trunk.username = spec.username
            trunk.register, trunk.register_expires = spec.register, spec.register_expires
            trunk.inbound_addresses = ",".join(e.strip() for e in spec.inbound)
            trunk.number_format, trunk.tech_prefix, trunk.priority = spec.number_format, spec.tech_prefix, spec.priority
            trunk.buy_deck, trunk.max_channels = spec.buy_deck, spec.max_channels
            if "password" in given:
                trunk.password_enc = self._sealer.seal(spec.password, spec.name) if spec.password else None
            if enabled is not None:
                trunk.enabled = bool(enabled)
            if in_transaction is not None:
                await in_transaction(session, trunk.id)
        return trunk

    async def delete(self, trunk_id: str, *, in_transaction: InTransaction | None = None) -> Trunk:
        """Remove a trunk by id; returns what it was (calls that used it keep their records)."""
        async with self._sessions() as session, session.begin():
            trunk: Trunk | None = await session.get(Trunk, trunk_id) if len(trunk_id) <= 36 else None
            if trunk is None:
                raise TrunkNotFound("no such trunk", {"trunk_id": trunk_id[:36]})
            await session.delete(trunk)
            if in_transaction is not None:
                await in_transaction(session, trunk.id)
        return trunk

    async def all(self) -> list[Trunk]:
        async with self._sessions() as session:
            return list(await repo.all_trunks(session))

    async def routes(self) -> list[TrunkRoute]:
        """Enabled trunks, by priority, ready for the call path."""
        routes = []
        for trunk in await self.all():
            if not trunk.enabled:
                continue
            inbound = tuple(_parse_inbound(e) for e in trunk.inbound_addresses.split(",") if e.strip())
            if not inbound:
                inbound = (_parse_inbound(f"[{trunk.host}]:{trunk.port}" if ":" in trunk.host
                                          else f"{trunk.host}:{trunk.port}"),)
            password = self._sealer.open(trunk.password_enc, trunk.name) if trunk.password_enc else None
            routes.append(TrunkRoute(
                trunk.id, trunk.name, trunk.host, trunk.port, trunk.transport, trunk.username, password,
                trunk.register, trunk.register_expires, inbound, trunk.number_format, trunk.tech_prefix,
                trunk.priority, trunk.buy_deck, trunk.max_channels,
            ))
        return routes


class TrunkDirectory:
    """The enabled trunks, reloaded every ``ttl`` seconds (the CLI may add one while serving)."""

    def __init__(self, service: TrunksService, ttl: float = 5.0) -> None:
        self._service = service
        self._ttl = ttl
        self._routes: list[TrunkRoute] = []
        self._loaded = -1e9
        self._lock = asyncio.Lock()
        self._refresher = Periodic("trunk-directory", self._reload, every=ttl, first=ttl)

    async def load(self) -> list[TrunkRoute]:
        async with self._lock:
            if time.monotonic() - self._loaded >= self._ttl:
                self._routes = await self._service.routes()
                self._loaded = time.monotonic()
        return self._routes

    async def start(self) -> None:
        """Load now, then keep the list fresh in the background (identify() is synchronous)."""
        await self.load()
        self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()

    async def _reload(self) -> None:
        await self.load()

    @property
    def service(self) -> TrunksService:
        return self._service

    def cached(self) -> list[TrunkRoute]:
        return self._routes

    def identify(self, source: Source) -> TrunkRoute | None:
        """The trunk a request came from (from the last load; refreshed in the background)."""
        for route in self._routes:
            if route.accepts(source):
                return route
        return None
