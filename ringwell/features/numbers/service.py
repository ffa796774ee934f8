"""Numbers: the operator's inventory, rentals paid from credit, inbound routing, caller ID.

- ``import_numbers``: an inventory CSV, all or nothing (a bad line rejects the file and says
  which line and why).
- ``search`` / ``rent`` / ``release``: an org rents an available number (setup fee and first month
  charged from its credit, both or neither), releases it into quarantine (``quarantine_days``;
  nobody can find or rent it until then, after which it is simply available again).
- ``renew_due``: the renewal job. ``warn_days`` before a period ends the org is warned once; at
  the end the next month is charged, or — when the credit cannot pay it — the number is released.
- ``route`` / ``route_inbound``: which user a rented number rings.
- ``caller_id_for`` and the caller-ID verifications: what a user may send as caller ID.

Times are arguments (``now``, aware UTC) so every rule is testable without waiting.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ringwell.features.accounts.errors import OrganizationClosed, OrganizationNotFound, UserNotFound
from ringwell.features.accounts.service import AuditHook
from ringwell.features.billing import money
from ringwell.features.billing.errors import InvalidBillingData
from ringwell.features.numbers import repository as repo
from ringwell.features.numbers.e164 import (
    NUMBER_TYPES,
    is_e164,
    is_region,
    national_number,
    normalize,
    number_type,
    region_of,
)
from ringwell.features.numbers.errors import (
    CurrencyMismatch,
    InsufficientCredit,
    InvalidNumber,
    InvalidNumberImport,
    NumberNotAvailable,
    NumberNotFound,
    NumberOwnedElsewhere,
    TooManyVerifications,
)
from ringwell.features.numbers.models import CallerIdVerification, NumberState, PhoneNumber
from ringwell.features.numbers.periods import add_months
from ringwell.features.numbers.repository import InboundRoute
from ringwell.storage.base import new_id

__all__ = [
    "CODE_TTL",
    "MAX_ATTEMPTS",
    "MAX_STARTS_PER_HOUR",
    "Balance",
    "InboundRoute",
    "InventoryItem",
    "Ledger",
    "NumberView",
    "NumbersService",
    "PendingVerification",
    "RenewalLine",
    "RenewalReport",
]

log = logging.getLogger(__name__)

CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
MAX_STARTS_PER_HOUR = 5  # every start makes Ringwell call a number: not a free dialler
CODE_DIGITS = 6
MAX_SEARCH = 100
KIND_SETUP = "number_setup"
SYSTEM_OPERATOR = "ringwell"  # the "operator" of refunds Ringwell makes by itself
KIND_RENTAL = "number_rental"
REQUIRED_COLUMNS = ("number", "country", "type", "monthly_price", "setup_price", "trunk")
OPTIONAL_COLUMNS = ("currency",)
DEFAULT_CURRENCY = "USD"
_AREA_RE = re.compile(r"[0-9]{1,8}")
_CONTAINS_RE = re.compile(r"[0-9]{1,15}")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
MAX_PRICE_MINOR = 10**12  # a sanity bound far above any number's price


# -- seams -------------------------------------------------------------------------------------
class Balance(Protocol):
    """What the ledger says about an org's credit (minor units)."""

    @property
    def currency(self) -> str: ...

    @property
    def available_minor(self) -> int: ...


class Ledger(Protocol):
    """The part of ``billing.service.LedgerService`` the numbers slice uses."""

    async def try_charge(
        self, org_id: str, amount_minor: int, kind: str, description: str, reference: str
    ) -> str | None:
        """Debit ``amount_minor`` if the available credit covers it: the entry id, else None."""
        ...

    async def balance(self, org_id: str) -> Balance: ...

    async def refund(self, org_id: str, amount_minor: int, reason: str, operator: str, reference: str) -> str:
        """Credit back ``amount_minor`` (of an earlier charge)."""
        ...


# -- results -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NumberView:
    """A number as listings show it (``extension``: where it rings, if routed)."""

    e164: str
    country: str
    type: str
    state: str
    monthly_price_minor: int
    setup_price_minor: int
    currency: str
    rented_at: datetime | None
    paid_until: datetime | None
    extension: str | None

    @classmethod
    def of(cls, number: PhoneNumber, extension: str | None = None) -> NumberView:
        return cls(number.e164, number.country, number.type, number.state, number.monthly_price_minor,
                   number.setup_price_minor, number.currency, number.rented_at, number.paid_until, extension)


@dataclass(frozen=True, slots=True)
class InventoryItem:
    """A number of the inventory as the operator sees it. ``state`` is what a customer sees
    (an ended quarantine is available); ``org_name`` is the renter's."""

    number: NumberView
    org_id: str | None
    org_name: str | None
    trunk: str | None
    quarantine_until: datetime | None


@dataclass(frozen=True, slots=True)
class RenewalLine:
    """One number the renewal job acted on. ``paid_until``: the end of the period warned about,
    the new end after a renewal, the end that was not paid for a release. ``covered``: for a
    warning, whether the credit available now would pay the renewal."""

    org_id: str
    e164: str
    amount_minor: int
    currency: str
    paid_until: datetime
    covered: bool = True


@dataclass(frozen=True, slots=True)
class RenewalReport:
    warned: list[RenewalLine] = field(default_factory=list)
    renewed: list[RenewalLine] = field(default_factory=list)
    released: list[RenewalLine] = field(default_factory=list)


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() != timedelta(0):
        raise ValueError("now must be an aware UTC datetime")
    return now


def _code_hash(code: str, salt: str | None = None) -> str:
    """"salt$hex(HMAC-SHA256(salt, code))" with a fresh random salt unless given."""
    salt = salt or secrets.token_hex(16)
    digest = hmac.new(salt.encode(), code.encode(), hashlib.sha256).hexdigest()
    return f"{salt}${digest}"


def _code_matches(code: str, stored: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(_code_hash(code, salt), stored)


@dataclass(frozen=True, slots=True)
class PendingVerification:
    """A verification whose call Ringwell has to place."""

    id: str
    org_id: str
    user_id: str
    e164: str


class NumbersService:
    def __init__(
        self, sessions: async_sessionmaker[Any], ledger: Ledger, *, quarantine_days: int = 30, warn_days: int = 3
    ) -> None:
        if quarantine_days < 0 or warn_days < 0:
            raise ValueError("quarantine_days and warn_days must not be negative")
        self._sessions = sessions
        self._ledger = ledger
        self._quarantine = timedelta(days=quarantine_days)
        self._warn = timedelta(days=warn_days)

    # -- inventory ---------------------------------------------------------------------------
    async def import_numbers(self, lines: Iterable[str], *, audit: AuditHook | None = None) -> int:
        """Add the numbers of an inventory CSV; returns how many.

        Header ``number,country,type,monthly_price,setup_price,trunk`` (any order; an optional
        ``currency`` column, default USD). ``number`` is read with the row's ``country`` as its
        region and must belong to that country; ``type`` one of ``e164.NUMBER_TYPES`` (empty:
        derived from the number); prices in major units, exact for the currency ("2.50");
        ``trunk`` the name of an existing trunk or empty. A number twice in the file or already
        in the inventory is refused.

        Any bad line rejects the whole file with ``InvalidNumberImport`` ("line 7: …",
        details {"line": 7}); nothing is imported. One transaction (``audit`` recorded in it, with
        the count).
        """
        reader = csv.reader(iter(lines))
        records = _records(reader)
        header = next(records, None)
        if header is None:
            raise InvalidNumberImport("line 1: the file is empty (expected a header: "
                                      + ",".join(REQUIRED_COLUMNS) + ")", {"line": 1})
        columns = [name.strip().lower() for name in header]
        self._check_header(columns)
        rows: list[dict[str, Any]] = []
        line_of: dict[str, int] = {}
        async with self._sessions() as session, session.begin():
            trunks = await repo.trunk_ids(session)
            for record in records:
                line = reader.line_num
                if not any(cell.strip() for cell in record):
                    continue  # blank line
                if len(record) != len(columns):
                    raise InvalidNumberImport(
                        f"line {line}: {len(record)} fields, the header has {len(columns)}", {"line": line})
                values = {name: cell.strip() for name, cell in zip(columns, record, strict=True)}
                try:
                    row = self._inventory_row(values, trunks)
                except (InvalidNumber, ValueError) as exc:
                    reason = exc.message if isinstance(exc, InvalidNumber) else str(exc)
                    raise InvalidNumberImport(f"line {line}: {reason}", {"line": line}) from exc
                first = line_of.setdefault(row["e164"], line)
                if first != line:
                    raise InvalidNumberImport(f"line {line}: {row['e164']} is also on line {first}",
                                              {"line": line, "number": row["e164"]})
                rows.append(row)
            existing = await repo.existing_numbers(session, [row["e164"] for row in rows])
            if existing:
                e164 = min(existing, key=line_of.__getitem__)
                line = line_of[e164]
                raise InvalidNumberImport(f"line {line}: {e164} is already in the inventory",
                                          {"line": line, "number": e164})
            try:
                await repo.insert_numbers(session, rows)
            except IntegrityError as exc:  # a concurrent import added one of them meanwhile
                raise InvalidNumberImport("a number of the file was added to the inventory meanwhile; "
                                          "nothing imported, try again") from exc
            if audit is not None:
                await audit(session, "inventory", {"imported": len(rows)})
        log.info("imported %d numbers into the inventory", len(rows))
        return len(rows)

    @staticmethod
    def _check_header(columns: list[str]) -> None:
        known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
        for name in columns:
            if name not in known:
                raise InvalidNumberImport(f"line 1: unknown column {name!r} (expected "
                                          + ",".join(REQUIRED_COLUMNS) + "[,currency])", {"line": 1})
            if columns.count(name) > 1:
                raise InvalidNumberImport(f"line 1: column {name!r} appears twice", {"line": 1})
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise InvalidNumberImport(f"line 1: missing column(s) {', '.join(missing)}", {"line": 1})

    @staticmethod
    def _inventory_row(values: dict[str, str], trunks: dict[str, str]) -> dict[str, Any]:
        """One CSV line as column values; ValueError/InvalidNumber saying what is wrong."""
        country = values["country"].upper()
        if not is_region(country):
            raise ValueError(f"unknown country {values['country']!r} (ISO 3166-1 alpha-2, e.g. US)")
        e164 = normalize(values["number"], country)
        region = region_of(e164)
        if region != country:
            raise ValueError(f"{e164} is a number of {region or 'no country'}, not {country}")
        kind = values["type"].lower() or number_type(e164)
        if kind not in NUMBER_TYPES:
            raise ValueError(f"unknown type {values['type']!r} (one of {', '.join(sorted(NUMBER_TYPES))})")
        currency = (values.get("currency") or DEFAULT_CURRENCY).upper()
        if not _CURRENCY_RE.fullmatch(currency):
            raise ValueError(f"currency is not an ISO 4217 code: {values.get('currency')!r}")
        prices: dict[str, int] = {}
        for name in ("monthly_price", "setup_price"):
            try:
                prices[name] = money.parse_amount(values[name], currency)
            except InvalidBillingData as exc:
                raise ValueError(f"{name}: {exc.message}") from None
            if prices[name] < 0 or values[name].startswith("+"):
                raise ValueError(f"{name} must be a plain amount of at least 0, not {values[name]!r}")
            if prices[name] > MAX_PRICE_MINOR:
                raise ValueError(f"{name} is too large: {values[name]!r}")
        trunk_id = None
        if values["trunk"]:
            trunk_id = trunks.get(values["trunk"])
            if trunk_id is None:
                raise ValueError(f"no trunk named {values['trunk']!r}")
        return {
            "id": new_id(), "e164": e164, "country": country, "national_number": national_number(e164),
            "type": kind, "monthly_price_minor": prices["monthly_price"], "setup_price_minor": prices["setup_price"],
            "currency": currency, "trunk_id": trunk_id, "state": NumberState.AVAILABLE.value,
        }

    async def search(
        self, *, country: str | None = None, area: str | None = None, type: str | None = None,
        limit: int = 20, now: datetime | None = None, contains: str | None = None, currency: str | None = None,
    ) -> list[PhoneNumber]:
        """Numbers an org can rent (available, or out of quarantine at ``now``), by E.164.

        ``area``: leading digits of the national number ("415" for +1 415 …, "20" for London);
        ``contains``: digits anywhere in the national number ("5555"); ``currency``: only numbers
        priced in it (an org can rent only numbers in its own currency).
        """
        moment = _utc(now) if now is not None else datetime.now(UTC)
        if country is not None:
            country = country.strip().upper()
            if not _COUNTRY_RE.fullmatch(country):
                raise InvalidNumber(f"country must be an ISO 3166-1 alpha-2 code, not {country!r}")
        if area is not None and not _AREA_RE.fullmatch(area.strip()):
            raise InvalidNumber(f"area must be 1 to 8 digits, not {area!r}")
        if contains is not None and not _CONTAINS_RE.fullmatch(contains.strip()):
            raise InvalidNumber(f"contains must be 1 to 15 digits, not {contains!r}")
        if currency is not None and not _CURRENCY_RE.fullmatch(currency):
            raise InvalidNumber(f"currency must be an ISO 4217 code, not {currency!r}")
        if type is not None and type not in NUMBER_TYPES:
            raise InvalidNumber(f"unknown type {type!r} (one of {', '.join(sorted(NUMBER_TYPES))})")
        if not 1 <= limit <= MAX_SEARCH:
            raise InvalidNumber(f"limit must be 1 to {MAX_SEARCH}")
        async with self._sessions() as session:
            found = await repo.search(session, moment, country=country, area=area.strip() if area else None,
                                      type_=type, limit=limit, contains=contains.strip() if contains else None,
                                      currency=currency)
        return list(found)

    # -- renting -----------------------------------------------------------------------------
    async def rent(self, org_id: str, e164: str, now: datetime, *, audit: AuditHook | None = None) -> PhoneNumber:
        """Rent an available number to the org: charges the setup fee ("number_setup") and the
        first month ("number_rental"), one ledger entry each; paid until ``now`` + 1 calendar month.

        Raises ``NumberNotFound`` (not in the inventory), ``NumberNotAvailable`` (rented or in
        quarantine), ``CurrencyMismatch`` (priced in another currency than the org pays in),
        ``InsufficientCredit`` (the available credit does not cover setup + month; nothing changed).

        Both or neither are charged. The credit is checked first, then the number claimed, then
        the two charges made. Credit can go meanwhile (a call reserving its next slice): if the
        setup charge is refused the claim is undone; if the month is refused after the setup was
        charged the setup is refunded (a separate ledger entry) and the claim undone — the org
        sees a charge and its refund, never a number it did not pay for.

        ``audit`` is recorded with the last step (the paid period): number, prices, paid until.
        """
        _utc(now)
        async with self._sessions() as session:
            org = await repo.org_country_currency(session, org_id)
            if org is None:
                raise OrganizationNotFound(f"no organization {org_id}")
            if await repo.org_closed(session, org_id):
                raise OrganizationClosed("the organization is closed: it cannot rent numbers", {"org_id": org_id})
            country, currency = org
            normalized = normalize(e164, country)
            number = await repo.number_by_e164(session, normalized)
        if number is None:
            raise NumberNotFound(f"{normalized} is not in the inventory", {"number": normalized})
        if number.state == NumberState.RENTED.value:
            mine = " (by this organization already)" if number.org_id == org_id else ""
            raise NumberNotAvailable(f"{normalized} is rented{mine}", {"number": normalized})
        if not _rentable(number, now):
            raise NumberNotAvailable(f"{normalized} is in quarantine", {"number": normalized})
        if number.currency != currency:
            raise CurrencyMismatch(f"{normalized} is priced in {number.currency}; the organization pays in {currency}",
                                   {"number": normalized, "currency": number.currency})
        setup, month = number.setup_price_minor, number.monthly_price_minor
        paid_until = add_months(now, 1)
        balance = await self._ledger.balance(org_id)
        if balance.available_minor < setup + month:
            raise self._short(normalized, setup, month, balance.available_minor, currency)
        async with self._sessions() as session, session.begin():
            # Under the org's row lock: a closure committing meanwhile (it releases every number it
            # finds under the same lock) cannot miss this one.
            if await repo.org_closed(session, org_id, lock=True):
                raise OrganizationClosed("the organization is closed: it cannot rent numbers", {"org_id": org_id})
            if not await repo.claim(session, number.id, org_id, now):
                raise NumberNotAvailable(f"{normalized} was just rented by someone else", {"number": normalized})
        setup_entry = None
        try:
            if setup:
                setup_entry = await self._ledger.try_charge(
                    org_id, setup, KIND_SETUP, f"setup of {normalized}", f"number:{number.id}:setup:{now.isoformat()}")
                if setup_entry is None:
                    raise self._short(normalized, setup, month, None, currency)
            if month and await self._ledger.try_charge(
                org_id, month, KIND_RENTAL, f"rental of {normalized} until {paid_until:%Y-%m-%d}",
                _rental_reference(number.id, now),
            ) is None:
                if setup_entry is not None:
                    await self._ledger.refund(
                        org_id, setup, f"setup of {normalized} undone: the first month could not be charged",
                        SYSTEM_OPERATOR, f"number:{number.id}:setup-refund:{now.isoformat()}")
                raise self._short(normalized, setup, month, None, currency)
        except Exception as exc:
            # Nothing charged (or the setup refunded): the number goes back. Otherwise (the
            # ledger failed after the setup was charged) it stays rented with paid_until == now,
            # so the renewal job charges the month or releases it.
            if isinstance(exc, InsufficientCredit) or setup_entry is None:
                async with self._sessions() as session, session.begin():
                    await repo.unclaim(session, number, org_id, now)
            raise
        async with self._sessions() as session, session.begin():
            await repo.advance(session, number.id, org_id, now, paid_until)
            rented = await repo.number_by_e164(session, normalized)
            assert rented is not None
            if audit is not None:
                await audit(session, normalized, {
                    "number": normalized, "setup_price_minor": setup, "monthly_price_minor": month,
                    "currency": currency, "paid_until": paid_until.isoformat()})
        log.info("org %s rented %s: setup %s, first month %s, paid until %s", org_id, normalized,
                 _money(setup, currency), _money(month, currency), paid_until.isoformat())
        return rented

    @staticmethod
    def _short(e164: str, setup: int, month: int, available: int | None, currency: str) -> InsufficientCredit:
        total = setup + month
        message = (f"renting {e164} costs {_money(total, currency)} (setup {_money(setup, currency)} "
                   f"+ first month {_money(month, currency)})")
        if available is not None:
            message += f"; the available credit is {_money(available, currency)}"
        else:
            message += "; the available credit no longer covers it"
        return InsufficientCredit(message, {"number": e164, "needed_minor": total, "available_minor": available,
                                            "currency": currency})

    async def release(self, org_id: str, e164: str, now: datetime, *, audit: AuditHook | None = None) -> PhoneNumber:
        """Give a rented number back: in quarantine until ``now`` + ``quarantine_days``, unrouted.
        Nothing is refunded. ``NumberNotFound`` unless the org rents it (the same error for a
        number of another org as for one that does not exist)."""
        _utc(now)
        async with self._sessions() as session, session.begin():
            normalized = await self._normalize_for(session, org_id, e164)
            released = await repo.release(session, org_id, normalized, now + self._quarantine)
            if released is None:
                raise NumberNotFound(f"{normalized} is not rented by this organization", {"number": normalized})
            if audit is not None:
                await audit(session, normalized, {"number": normalized})
        log.info("org %s released %s; in quarantine until %s", org_id, normalized, now + self._quarantine)
        return released

    async def numbers(self, org_id: str) -> list[NumberView]:
        """The org's rented numbers, oldest rental first, with where each rings."""
        async with self._sessions() as session:
            rows = await repo.numbers_of_org(session, org_id)
        return [NumberView.of(number, extension) for number, extension in rows]

    async def numbers_page(self, org_id: str, *, after: str | None = None, limit: int = 50) -> list[NumberView]:
        """The org's rented numbers by E.164 after ``after``, with where each rings."""
        async with self._sessions() as session:
            rows = await repo.numbers_page(session, org_id, after, limit)
        return [NumberView.of(number, extension) for number, extension in rows]

    async def inventory(self, *, state: str | None = None, org_id: str | None = None, after: str | None = None,
                        limit: int = 50, now: datetime | None = None) -> list[InventoryItem]:
        """The whole inventory by E.164 (the operator console), optionally only numbers in
        ``state`` (as customers see it) or rented by ``org_id``."""
        moment = _utc(now) if now is not None else datetime.now(UTC)
        if state is not None and state not in {s.value for s in NumberState}:
            raise InvalidNumber(f"state must be one of {', '.join(s.value for s in NumberState)}, not {state!r}")
        async with self._sessions() as session:
            rows = await repo.inventory_page(session, moment, state=state, org_id=org_id, after=after, limit=limit)
        items = []
        for number, org_name, trunk in rows:
            view = NumberView.of(number)
            if _rentable(number, moment) and number.state != NumberState.AVAILABLE.value:
                view = replace(view, state=NumberState.AVAILABLE.value)
            items.append(InventoryItem(view, number.org_id, org_name, trunk,
                                       number.quarantine_until if view.state == NumberState.QUARANTINE.value
                                       else None))
        return items

    # -- routing -----------------------------------------------------------------------------
    async def route(self, e164: str, extension: str | None, *, org_id: str | None = None,
                    audit: AuditHook | None = None) -> PhoneNumber:
        """Route a rented number to the user with ``extension`` in the org that rents it (None:
        unrouted). With ``org_id`` the number must be rented by that org. ``NumberNotFound``
        when it is not rented (by that org), ``UserNotFound`` when the extension is not the org's.
        ``audit`` gets the number and the extension.
        """
        async with self._sessions() as session, session.begin():
            normalized = (
                await self._normalize_for(session, org_id, e164) if org_id is not None else _normalize_e164(e164)
            )
            number = await repo.rented_number(session, org_id, normalized)
            if number is None or number.org_id is None:
                whom = "this organization" if org_id is not None else "any organization"
                raise NumberNotFound(f"{normalized} is not rented by {whom}", {"number": normalized})
            user_id = None
            if extension is not None:
                user = await repo.user_in_org(session, number.org_id, extension=extension.strip())
                if user is None:
                    raise UserNotFound(f"no extension {extension} in the organization renting {normalized}",
                                       {"extension": extension})
                user_id = user.id
            if not await repo.set_route(session, number.id, number.org_id, user_id):
                raise NumberNotFound(f"{normalized} is not rented any more", {"number": normalized})
            number.route_user_id = user_id
            if audit is not None:
                await audit(session, normalized, {"number": normalized,
                                                  "extension": extension.strip() if extension else None})
        return number

    async def route_inbound(self, e164: str) -> InboundRoute | None:
        """Where a call from a carrier to ``e164`` goes; None if it is not a rented number.

        ``e164`` must be normalized already (E.164 with '+'; ``e164.normalize`` with the trunk's
        region does that for national forms). One indexed query.
        """
        async with self._sessions() as session:
            return await repo.inbound_route(session, e164)

    # -- caller ID -----------------------------------------------------------------------------
    async def caller_id_for(self, org_id: str, user_id: str | None, requested: str | None) -> str | None:
        """The caller ID a call from the user goes out with.

        ``requested`` (normalized with the org's country) when it is one of the org's rented
        numbers, or a number this user verified that is not another org's rental here; otherwise
        the org's default number: a number routed to this user, else the org's oldest rental.
        None when the org rents no number.
        """
        async with self._sessions() as session:
            if requested:
                org = await repo.org_country_currency(session, org_id)
                if org is None:
                    return None
                try:
                    candidate = normalize(requested, org[0])
                except InvalidNumber:
                    candidate = None
                if candidate is not None:
                    number = await repo.number_by_e164(session, candidate)
                    if number is not None:
                        if number.state == NumberState.RENTED.value and number.org_id == org_id:
                            return candidate
                    elif user_id is not None and await repo.is_verified(session, org_id, user_id, candidate):
                        return candidate
            return await repo.default_number(session, org_id, user_id)

    async def start_verification(self, org_id: str, user_id: str, e164: str, now: datetime) -> str:
        """Start proving the user answers ``e164``: returns the 6-digit code to show them (valid
        for 10 minutes; Ringwell calls the number and they key it in). Stored only hashed; an
        earlier pending code of the same number stops working.

        ``NumberOwnedElsewhere`` for a number of the inventory the org does not rent,
        ``TooManyVerifications`` after 5 starts by the user within an hour, ``UserNotFound``.
        """
        _utc(now)
        async with self._sessions() as session, session.begin():
            normalized = await self._normalize_for(session, org_id, e164)
            if await repo.user_in_org(session, org_id, user_id=user_id) is None:
                raise UserNotFound(f"no user {user_id} in this organization")
            number = await repo.number_by_e164(session, normalized)
            if number is not None and not (number.state == NumberState.RENTED.value and number.org_id == org_id):
                raise NumberOwnedElsewhere(
                    f"{normalized} is a number of this server the organization does not rent", {"number": normalized})
            if await repo.verifications_started_since(session, org_id, user_id, now - timedelta(hours=1)) \
                    >= MAX_STARTS_PER_HOUR:
                raise TooManyVerifications(f"at most {MAX_STARTS_PER_HOUR} verifications an hour; try later")
            await repo.kill_pending(session, org_id, user_id, normalized, MAX_ATTEMPTS)
            code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
            session.add(CallerIdVerification(org_id=org_id, user_id=user_id, e164=normalized,
                                             code_hash=_code_hash(code), attempts=0, created_at=now,
                                             expires_at=now + CODE_TTL))
        return code

    async def confirm_verification(self, org_id: str, user_id: str, e164: str, digits: str, now: datetime) -> bool:
        """Check the digits keyed in for the user's pending verification of ``e164``.

        True once the code is right (the number is then verified for good). False when it is
        wrong, or there is no live verification: expired, already verified, or its 5 attempts used
        (each call counts, right or wrong; the 5th wrong one kills it — start a new one).
        """
        _utc(now)
        async with self._sessions() as session, session.begin():
            normalized = await self._normalize_for(session, org_id, e164)
            pending = await repo.pending_verification(session, org_id, user_id, normalized)
            if pending is None or not await repo.count_attempt(session, pending.id, MAX_ATTEMPTS, now):
                return False
            if not _code_matches(digits.strip(), pending.code_hash):
                return False
            await repo.mark_verified(session, pending.id, now)
        log.info("user %s of org %s verified caller ID %s", user_id, org_id, normalized)
        return True

    async def verifications_to_call(self, since: datetime, now: datetime) -> list[PendingVerification]:
        """Live verifications started after ``since`` (the server's verification caller polls this)."""
        _utc(now)
        async with self._sessions() as session:
            rows = await repo.verifications_created_since(session, since, now, MAX_ATTEMPTS)
        return [PendingVerification(v.id, v.org_id, v.user_id, v.e164) for v in rows]

    async def verified_numbers(self, org_id: str, user_id: str) -> list[str]:
        """The numbers the user verified, sorted."""
        async with self._sessions() as session:
            return await repo.verified_numbers(session, org_id, user_id)

    # -- renewals ------------------------------------------------------------------------------
    async def renew_due(self, now: datetime) -> RenewalReport:
        """The renewal job (run it daily or more often; idempotent at the same ``now``).

        - A rental whose period ends within ``warn_days`` is warned about once per period (log
          line, ``renewal_warned_at``, listed in ``warned`` with whether the credit available
          now covers it after the renewals due before it).
        - A period that has ended is renewed: the next month is charged ("number_rental") and
          ``paid_until`` advances a calendar month (several months when the job did not run
          for longer, each its own charge), listed in ``renewed``.
        - When the credit cannot pay a month the number is released into quarantine, listed in
          ``released``. Like any release, nothing is refunded.

        A period is claimed (``paid_until`` moved on conditionally) before it is charged, so two
        runs never charge it twice; a crash between the two leaves a month uncharged rather than
        charged twice.
        """
        _utc(now)
        report = RenewalReport()
        async with self._sessions() as session:
            rows = await repo.due(session, now + self._warn)
        available: dict[str, int] = {}
        for number in rows:
            org_id, paid_until = number.org_id, number.paid_until
            if org_id is None or paid_until is None:
                continue
            if paid_until > now:
                await self._warn_once(number, org_id, paid_until, now, available, report)
                continue
            await self._renew(number, org_id, paid_until, now, report)
        return report

    async def _warn_once(self, number: PhoneNumber, org_id: str, paid_until: datetime, now: datetime,
                         available: dict[str, int], report: RenewalReport) -> None:
        if number.renewal_warned_at is not None:
            return
        async with self._sessions() as session, session.begin():
            if not await repo.mark_warned(session, number.id, paid_until, now):
                return
        if org_id not in available:
            available[org_id] = (await self._ledger.balance(org_id)).available_minor
        # Renewals due earlier in the period come first (rows by paid_until): what they will take
        # is not there for this one.
        covered = available[org_id] >= number.monthly_price_minor
        available[org_id] -= number.monthly_price_minor
        log.warning("number %s of org %s: the rental of %s is due %s%s", number.e164, org_id,
                    _money(number.monthly_price_minor, number.currency), paid_until.isoformat(),
                    "" if covered else "; the credit does not cover it: the number will be released")
        report.warned.append(RenewalLine(org_id, number.e164, number.monthly_price_minor, number.currency,
                                         paid_until, covered))

    async def _renew(self, number: PhoneNumber, org_id: str, paid_until: datetime, now: datetime,
                     report: RenewalReport) -> None:
        anchor = (number.rented_at or paid_until).day
        price = number.monthly_price_minor
        while paid_until <= now:
            following = add_months(paid_until, 1, anchor)
            async with self._sessions() as session, session.begin():
                if not await repo.advance(session, number.id, org_id, paid_until, following):
                    return  # another run has it, or the org released it meanwhile
            charged = not price or await self._ledger.try_charge(
                org_id, price, KIND_RENTAL, f"rental of {number.e164} until {following:%Y-%m-%d}",
                _rental_reference(number.id, paid_until)) is not None
            if not charged:
                async with self._sessions() as session, session.begin():
                    released = await repo.release(session, org_id, number.e164, now + self._quarantine,
                                                  paid_until=following)
                if released is not None:
                    log.warning("number %s of org %s released: the credit does not pay the rental of %s",
                                number.e164, org_id, _money(price, number.currency))
                    report.released.append(RenewalLine(org_id, number.e164, price, number.currency, paid_until,
                                                        covered=False))
                return
            log.info("number %s of org %s renewed until %s for %s", number.e164, org_id, following.isoformat(),
                     _money(price, number.currency))
            report.renewed.append(RenewalLine(org_id, number.e164, price, number.currency, following))
            paid_until = following

    # -- helpers -------------------------------------------------------------------------------
    async def _normalize_for(self, session: AsyncSession, org_id: str | None, e164: str) -> str:
        """``e164`` normalized with the org's country as the region of national forms."""
        if org_id is None:
            return _normalize_e164(e164)
        org = await repo.org_country_currency(session, org_id)
        if org is None:
            raise OrganizationNotFound(f"no organization {org_id}")
        return normalize(e164, org[0])


def _records(reader: Any) -> Iterator[list[str]]:
    """The reader's rows; a line the csv module cannot read is the import's error, with its number."""
    while True:
        try:
            record: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidNumberImport(f"line {reader.line_num}: {exc}", {"line": reader.line_num}) from exc
        yield record


def _normalize_e164(e164: str) -> str:
    """Without an org there is no region: the number must carry its country code."""
    return e164 if is_e164(e164) else normalize(e164, None)


def _rentable(number: PhoneNumber, now: datetime) -> bool:
    if number.state == NumberState.AVAILABLE.value:
        return True
    return (number.state == NumberState.QUARANTINE.value and number.quarantine_until is not None
            and number.quarantine_until <= now)


def _rental_reference(number_id: str, period_start: datetime) -> str:
    """The ledger reference of one month's rental (the same period → the same reference)."""
    return f"number:{number_id}:rental:{period_start.isoformat()}"


def _money(amount_minor: int, currency: str) -> str:
    """250, "USD" → "2.50 USD"."""
    return f"{money.format_minor(amount_minor, currency)} {currency}"
