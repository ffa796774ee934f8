"""Rating, the pure core: rate decks, longest-prefix match and exact call charges.

Standard library only: no I/O, no clock (the date a call is rated on is an argument).

Units (shared by every slice):

* a rate's price per minute and its connection fee are integer **micros**: 10^-6 of the
  currency's major unit ($0.0123/min = 12 300 micros);
* a charge leaves this module in integer **minor units** (cents), rounded **up**, once, at
  the very end (:func:`to_minor`): the micros of the fee and of the talk time are summed
  first, so a fee and a per-minute price never round up twice.

Billing a call (:func:`billable_seconds`, :func:`charge_micros`, :func:`call_charge`):

1. the measured talk time is rounded to the nearest whole second, halves up;
2. a call of 0 s (unanswered, or answered and dropped at once) is free;
3. otherwise the call is billed ``first`` seconds, then whole ``next``-second increments
   (``60/60``: per started minute; ``30/6``: 30 s, then 6 s steps; ``1/1``: per second);
4. the charge is the connection fee plus ``price_per_minute * billable / 60`` micros, rounded
   up to a whole micro, then converted to minor units, rounded up.

:func:`affordable_seconds` inverts this exactly: the longest call a budget pays for.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date

from ringwell.features.rating.errors import RateImportError

__all__ = [
    "DEFAULT_EFFECTIVE_FROM",
    "DEFAULT_INCREMENTS",
    "MAX_PREFIX_DIGITS",
    "MICROS_PER_UNIT",
    "UNLIMITED_SECONDS",
    "Increments",
    "PrefixTable",
    "Rate",
    "RateBuilder",
    "affordable_seconds",
    "billable_seconds",
    "call_charge",
    "charge_micros",
    "currency_exponent",
    "format_micros",
    "parse_increments",
    "parse_micros",
    "parse_rates_csv",
    "round_talk_seconds",
    "to_minor",
]

MICROS_PER_UNIT = 1_000_000
MAX_PREFIX_DIGITS = 15  # E.164: at most 15 digits, so no longer prefix can ever match
# What affordable_seconds answers for a rate a budget can never run out on (price 0):
# 2**31 - 1 s (68 years) still fits a 32-bit column and any timer API.
UNLIMITED_SECONDS = 2**31 - 1
# Prices are capped so that micros always fit a signed 64-bit column with room to spare.
MAX_PRICE_MICROS = 10**9 * MICROS_PER_UNIT
MAX_INCREMENT_SECONDS = 86_400
MAX_DESCRIPTION = 200

# ISO 4217 minor-unit exponents that are not 2. Currencies not listed have cents (2).
_EXPONENTS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF",
         "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip
# Micros per minor unit, by exponent.
_DIVISORS = (1_000_000, 100_000, 10_000, 1_000, 100)


# -- increments and rates ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Increments:
    """Billing increments: the first ``first`` seconds are billed as a block, then blocks of ``next``."""

    first: int
    next: int

    def __post_init__(self) -> None:
        for name, value in (("first", self.first), ("next", self.next)):
            if not 1 <= value <= MAX_INCREMENT_SECONDS:
                raise ValueError(f"increment {name} must be 1 to {MAX_INCREMENT_SECONDS} seconds, not {value}")

    def __str__(self) -> str:
        return f"{self.first}/{self.next}"


DEFAULT_INCREMENTS = Increments(60, 60)
DEFAULT_EFFECTIVE_FROM = date(1970, 1, 1)
_INCREMENTS_RE = re.compile(r"\s*([0-9]{1,6})\s*/\s*([0-9]{1,6})\s*")


def parse_increments(text: str) -> Increments:
    """``"60/60"``, ``"30/6"``, ``"1/1"`` → :class:`Increments` (both at least 1).

    Raises ``ValueError`` with the reason for anything else.
    """
    match = _INCREMENTS_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"increments must look like 60/60: {text!r}")
    return Increments(int(match[1]), int(match[2]))


@dataclass(frozen=True, slots=True)
class Rate:
    """One row of a rate deck: what calls to numbers starting with ``prefix`` cost from ``effective_from``.

    ``price_micros`` is per minute and ``connection_fee_micros`` per answered call, both in
    10^-6 of the deck currency's major unit; ``prefix`` is digits only (no ``+``).
    """

    prefix: str
    description: str
    price_micros: int
    connection_fee_micros: int
    increments: Increments
    effective_from: date


# -- charges --------------------------------------------------------------------------------
def round_talk_seconds(talk_seconds: float) -> int:
    """Talk time to whole seconds, halves up (37.02 → 37, 36.5 → 37).

    Rounding to the nearest second rather than up is deliberate: the answer and the BYE are
    measured at the B2BUA, so talk time includes a few milliseconds of SIP signalling latency
    (the 200 OK's and the BYE's transit, the ACK). Rounding up would let that latency alone
    push a 60.00 s call into a second minute on a 60/60 deck, or cost a second on 1/1.

    Exact for every float: the fractional part ``t - floor(t)`` of a float is itself exact, so
    no value just below a half is carried over it (``floor(t + 0.5)`` gets 0.49999999999999994
    wrong). Raises ``ValueError`` for a negative, infinite or NaN duration.
    """
    if not 0 <= talk_seconds < math.inf:  # also rejects NaN
        raise ValueError(f"talk seconds must be a finite duration >= 0, not {talk_seconds!r}")
    whole = math.floor(talk_seconds)
    return whole + 1 if talk_seconds - whole >= 0.5 else whole


def billable_seconds(talk_seconds: float, inc: Increments) -> int:
    """Seconds billed for a call of ``talk_seconds``: 0 when it rounds to 0 s (free), otherwise
    at least ``inc.first``, then whole ``inc.next`` increments.

    37 s: 60 on 60/60, 42 on 30/6, 37 on 1/1; 61 s on 60/60: 120.
    """
    talk = round_talk_seconds(talk_seconds)
    if talk == 0:
        return 0
    first, step = inc.first, inc.next
    if talk <= first:
        return first
    return first + -(-(talk - first) // step) * step


def charge_micros(rate: Rate, billable: int) -> int:
    """The connection fee plus ``billable`` seconds at the rate's price per minute, in micros,
    rounded up to a whole micro; 0 when nothing is billable (the fee is only for connected calls)."""
    if billable <= 0:
        return 0
    return rate.connection_fee_micros + -(-rate.price_micros * billable // 60)


def currency_exponent(currency: str) -> int:
    """Digits of the minor unit of an ISO 4217 currency: 2 (cents) unless it has none (JPY 0) or
    thousandths (KWD 3). Raises ``ValueError`` unless ``currency`` is three capital letters."""
    exponent = _EXPONENTS.get(currency)
    if exponent is not None:
        return exponent
    if not (len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper()):
        raise ValueError(f"currency must be an ISO 4217 code such as USD: {currency!r}")
    return 2


def to_minor(micros: int, currency: str) -> int:
    """Micros of ``currency``'s major unit in its minor units, rounded up (12 300 micros USD → 2 cents)."""
    return -(-micros // _DIVISORS[currency_exponent(currency)])


def call_charge(rate: Rate, talk_seconds: float, currency: str) -> tuple[int, int]:
    """``(billable seconds, charge in minor units)`` of a call with ``talk_seconds`` of talk at ``rate``.

    The only rounding to minor units happens here, once, on the total in micros.
    """
    billable = billable_seconds(talk_seconds, rate.increments)
    return billable, to_minor(charge_micros(rate, billable), currency)


def affordable_seconds(rate: Rate, currency: str, budget_minor: int) -> int:
    """The longest call ``budget_minor`` pays for: the largest whole number of talk seconds ``t``
    with ``call_charge(rate, t, currency)[1] <= budget_minor``.

    0 when not even the first increment is affordable (a call must not start), and
    :data:`UNLIMITED_SECONDS` when the budget can never run out (a free rate whose fee it pays).
    The answer always ends an increment (the charge only rises one second after it), so a
    1/1 deck at $0.10/min with a budget of 5 cents gives exactly 30.
    """
    if budget_minor < 0:
        return 0
    # charge <= budget  <=>  fee + ceil(price * b / 60) <= budget * divisor   (everything integer)
    #                   <=>  price * b <= 60 * (budget * divisor - fee)
    room = budget_minor * _DIVISORS[currency_exponent(currency)] - rate.connection_fee_micros
    if room < 0:
        return 0
    if rate.price_micros == 0:
        return UNLIMITED_SECONDS
    most = 60 * room // rate.price_micros  # the most billable seconds the budget covers
    first, step = rate.increments.first, rate.increments.next
    if most < first:
        return 0
    return min(first + (most - first) // step * step, UNLIMITED_SECONDS)


# -- money as text --------------------------------------------------------------------------
_DECIMAL_RE = re.compile(r"([0-9]*)(?:\.([0-9]*))?")


def parse_micros(text: str) -> int:
    """A non-negative decimal amount of major units (``"0.0123"``) → micros (12 300), exactly.

    At most 6 decimals (trailing zeros do not count). Raises ``ValueError`` with the reason.
    """
    text = text.strip()
    match = _DECIMAL_RE.fullmatch(text)
    if match is None or not (match[1] or match[2]):
        raise ValueError(f"is not a number: {text!r}")
    whole, fraction = match[1] or "0", (match[2] or "").rstrip("0")
    if len(fraction) > 6:
        raise ValueError(f"has more than 6 decimals: {text!r}")
    if len(whole.lstrip("0")) > 9:
        raise ValueError(f"is too large: {text!r}")
    micros = int(whole) * MICROS_PER_UNIT + int(fraction.ljust(6, "0"))
    if micros >= MAX_PRICE_MICROS:
        raise ValueError(f"is too large: {text!r}")
    return micros


def format_micros(micros: int, currency: str) -> str:
    """Micros as a decimal of the major unit, with at least the currency's minor digits and no
    more digits than needed (12 300 USD → ``"0.0123"``, 100 000 USD → ``"0.10"``, 5·10^6 JPY → ``"5"``)."""
    exponent = currency_exponent(currency)
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_UNIT)
    digits = f"{fraction:06d}".rstrip("0").ljust(exponent, "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


# -- the prefix table -------------------------------------------------------------------------
class PrefixTable:
    """Longest-prefix match over a deck's rates, effective-date aware.

    One dict maps each prefix to its only rate (the common case, which costs no tuple) or to
    its rates ordered by ``effective_from``. A look-up probes that dict with the number's
    leading digits, longest first, but only at the lengths some prefix of the deck has under
    the number's first :data:`HEAD` digits (a second, small dict of those lengths): in a
    100 000-prefix deck that skips most misses. No scan, whatever the deck's size.
    """

    HEAD = 4

    __slots__ = ("_heads", "_lengths", "_rows", "_short", "_size")

    def __init__(self, rates: Iterable[Rate]) -> None:
        grouped: dict[str, list[Rate]] = {}
        for rate in rates:
            grouped.setdefault(rate.prefix, []).append(rate)
        rows: dict[str, Rate | tuple[Rate, ...]] = {}
        size = 0
        for prefix, group in grouped.items():
            size += len(group)
            if len(group) == 1:
                rows[prefix] = group[0]
            else:
                group.sort(key=_effective_from)
                rows[prefix] = tuple(group)
        self._rows = rows
        self._size = size
        self._lengths = tuple(sorted({len(prefix) for prefix in rows}, reverse=True))
        # For numbers of at least HEAD digits: the lengths to try under each head (prefixes of
        # HEAD digits or more that start with it), then the shorter lengths present anywhere.
        head = self.HEAD
        short = tuple(length for length in self._lengths if length < head)
        under: dict[str, set[int]] = {}
        for prefix in rows:
            if len(prefix) >= head:
                under.setdefault(prefix[:head], set()).add(len(prefix))
        shared: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._heads = {
            key: shared.setdefault(lengths, lengths)
            for key, lengths in ((key, (*sorted(found, reverse=True), *short)) for key, found in under.items())
        }
        self._short = short

    def __len__(self) -> int:
        """How many rates (rows) the table holds."""
        return self._size

    @property
    def prefix_count(self) -> int:
        return len(self._rows)

    def lookup(self, number: str, on: date) -> Rate | None:
        """The rate for a call to ``number`` (E.164 with ``+``, or digits only) placed on ``on``.

        The longest prefix of the number that has a rate in effect on ``on`` wins; among that
        prefix's rates, the one with the latest ``effective_from`` not after ``on``. A prefix
        whose rates all start later is passed over for the next shorter one. ``None`` when no
        prefix matches, or when ``number`` is not digits.
        """
        digits = number[1:] if number[:1] == "+" else number
        if not (digits.isascii() and digits.isdigit()):
            return None
        rows = self._rows
        available = len(digits)
        head = self.HEAD
        lengths = self._heads.get(digits[:head], self._short) if available >= head else self._lengths
        for length in lengths:
            if length > available:
                continue
            entry = rows.get(digits[:length])
            if entry is None:
                continue
            if isinstance(entry, Rate):
                if entry.effective_from <= on:
                    return entry
                continue
            for rate in reversed(entry):
                if rate.effective_from <= on:
                    return rate
        return None

    def rates(self) -> Iterator[Rate]:
        """Every rate, grouped by prefix (in no particular order of prefixes)."""
        for entry in self._rows.values():
            if isinstance(entry, Rate):
                yield entry
            else:
                yield from entry


def _effective_from(rate: Rate) -> date:
    return rate.effective_from


# -- CSV import -----------------------------------------------------------------------------
_COLUMNS = ("prefix", "description", "price_per_minute", "connection_fee", "increments", "effective_date")
_REQUIRED = frozenset(("prefix", "description", "price_per_minute"))
_PREFIX_RE = re.compile(r"\+?([0-9]{1,15})")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class RateBuilder:
    """Makes :class:`Rate` objects that share equal descriptions, increments and dates.

    A 100 000-row deck names a few hundred destinations, a handful of increments and dates:
    sharing them keeps a loaded deck several megabytes smaller.
    """

    __slots__ = ("_dates", "_descriptions", "_increments")

    def __init__(self) -> None:
        self._descriptions: dict[str, str] = {}
        self._increments: dict[tuple[int, int], Increments] = {}
        self._dates: dict[date, date] = {}

    def rate(
        self, prefix: str, description: str, price_micros: int, fee_micros: int, first: int, step: int,
        effective_from: date,
    ) -> Rate:  # fmt: skip
        inc = self._increments.get((first, step))
        if inc is None:
            inc = self._increments[first, step] = Increments(first, step)
        return Rate(
            prefix,
            self._descriptions.setdefault(description, description),
            price_micros,
            fee_micros,
            inc,
            self._dates.setdefault(effective_from, effective_from),
        )


def parse_rates_csv(lines: Iterable[str]) -> list[Rate]:
    """Parse a rate deck: a header, then one rate per line.

    Header (names case-insensitive, any order): ``prefix,description,price_per_minute`` and,
    optionally, ``connection_fee`` (default 0), ``increments`` (default 60/60) and
    ``effective_date`` (YYYY-MM-DD, default 1970-01-01); an empty optional cell takes the
    default too. Prices are non-negative decimals of the major unit with at most 6 decimals;
    a prefix is 1 to 15 digits, a leading ``+`` allowed. Blank lines are skipped.

    The whole deck is refused on the first bad line with :class:`RateImportError`
    ("line 7: price is not a number: 'abc'", details ``{"line": 7}``; lines count from 1,
    the header included): so is a second rate for the same prefix and effective date, and a
    deck without any rate.
    """
    reader = csv.reader(_strip_bom(lines))
    try:
        header = _next_record(reader)
    except csv.Error as exc:
        raise RateImportError(reader.line_num or 1, f"unreadable CSV: {exc}") from exc
    if header is None:
        raise RateImportError(1, f"empty file; expected a header such as {','.join(_COLUMNS)}")
    parser = _LineParser(_header_index(header), len(header))
    rates: list[Rate] = []
    first_line: dict[tuple[str, date], int] = {}
    while True:
        try:
            record = _next_record(reader)
        except csv.Error as exc:
            raise RateImportError(reader.line_num, f"unreadable CSV: {exc}") from exc
        if record is None:
            break
        line = reader.line_num
        rate = parser.rate(record, line)
        previous = first_line.setdefault((rate.prefix, rate.effective_from), line)
        if previous != line:
            raise RateImportError(
                line, f"duplicate rate for prefix {rate.prefix} effective {rate.effective_from} (first on line "
                f"{previous})")  # fmt: skip
        rates.append(rate)
    if not rates:
        raise RateImportError(reader.line_num + 1, "the deck has no rates")
    return rates


def _strip_bom(lines: Iterable[str]) -> Iterator[str]:
    """Spreadsheets save UTF-8 CSV with a byte-order mark; it is not part of the first column's name."""
    iterator = iter(lines)
    for first in iterator:
        yield first.removeprefix("\ufeff")
        break
    yield from iterator


def _next_record(reader: Iterator[list[str]]) -> list[str] | None:
    for record in reader:
        if record and (record[0].strip() or any(cell.strip() for cell in record)):
            return record
    return None


def _header_index(header: Sequence[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, raw in enumerate(header):
        name = raw.strip().lower()
        if name not in _COLUMNS:
            raise RateImportError(1, f"unknown column {raw.strip()!r}; the columns are {','.join(_COLUMNS)}")
        if name in index:
            raise RateImportError(1, f"column {name!r} appears twice")
        index[name] = position
    missing = [name for name in _COLUMNS if name in _REQUIRED and name not in index]
    if missing:
        raise RateImportError(1, f"missing column {missing[0]!r}; the header must name {','.join(_COLUMNS[:3])}")
    return index


class _LineParser:
    """Turns one CSV record into a :class:`Rate`. A deck repeats the same few fees, increments
    and dates on every line: each distinct text is parsed once (and the objects shared)."""

    def __init__(self, index: dict[str, int], width: int) -> None:
        self.width = width
        self.prefix = index["prefix"]
        self.description = index["description"]
        self.price = index["price_per_minute"]
        self.fee = index.get("connection_fee")
        self.increments = index.get("increments")
        self.effective = index.get("effective_date")
        self.builder = RateBuilder()
        self.money: dict[str, int] = {}
        self.increment_texts: dict[str, Increments] = {"": DEFAULT_INCREMENTS}
        self.dates: dict[str, date] = {"": DEFAULT_EFFECTIVE_FROM}

    def rate(self, record: list[str], line: int) -> Rate:
        if len(record) != self.width:
            raise RateImportError(line, f"expected {self.width} fields like the header, got {len(record)}")
        raw_prefix = record[self.prefix].strip()
        match = _PREFIX_RE.fullmatch(raw_prefix)
        if match is None:
            raise RateImportError(line, f"prefix must be 1 to 15 digits: {raw_prefix!r}")
        description = record[self.description].strip()
        if len(description) > MAX_DESCRIPTION:
            raise RateImportError(line, f"description is longer than {MAX_DESCRIPTION} characters")
        price = self._money(record[self.price], "price", line)
        fee = 0 if self.fee is None else self._money(record[self.fee], "connection fee", line, required=False)
        increments = DEFAULT_INCREMENTS if self.increments is None else self._increments(record[self.increments], line)
        effective = DEFAULT_EFFECTIVE_FROM if self.effective is None else self._date(record[self.effective], line)
        return self.builder.rate(match[1], description, price, fee, increments.first, increments.next, effective)

    def _money(self, text: str, what: str, line: int, *, required: bool = True) -> int:
        micros = self.money.get(text)
        if micros is not None:
            return micros
        stripped = text.strip()
        if not stripped:
            if required:
                raise RateImportError(line, f"{what} is missing")
            return 0
        if stripped.startswith("-"):
            raise RateImportError(line, f"{what} must not be negative: {stripped!r}")
        try:
            micros = self.money[text] = parse_micros(stripped)
        except ValueError as exc:
            raise RateImportError(line, f"{what} {exc}") from exc
        return micros

    def _increments(self, text: str, line: int) -> Increments:
        increments = self.increment_texts.get(text.strip())
        if increments is None:
            try:
                increments = self.increment_texts[text.strip()] = parse_increments(text)
            except ValueError as exc:
                raise RateImportError(line, str(exc)) from exc
        return increments

    def _date(self, text: str, line: int) -> date:
        raw = text.strip()
        effective = self.dates.get(raw)
        if effective is None:
            try:
                if _DATE_RE.fullmatch(raw) is None:
                    raise ValueError(raw)
                effective = self.dates[raw] = date.fromisoformat(raw)
            except ValueError as exc:
                raise RateImportError(line, f"effective date must be a date like 2026-01-31: {raw!r}") from exc
        return effective
