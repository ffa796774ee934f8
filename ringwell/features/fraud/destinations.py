"""Destinations: what a dialled number is and how risky it is to call (pure: ``phonenumbers``
metadata only, no I/O, no clock).

``classify`` gives every number one ``Risk``, the first that applies in this order:

1. ``EMERGENCY`` — an emergency short code (``is_emergency``). Never refused (``policy.decide``).
2. ``HIGH_RISK`` — a range in ``HIGH_RISK_RANGES`` (the destinations International Revenue Share
   Fraud pumps traffic to; not for an org in that very country), or a *foreign* number the
   numbering plan does not know: unallocated ranges that a carrier chain still routes are where
   IRSF number resellers park their numbers, and a number the metadata does not know cannot be
   told apart from one.
3. ``PREMIUM`` — a number type where the caller pays a rate shared with the number's holder
   (``PREMIUM_TYPES``): premium rate (+1 900, UK 09), shared cost (UK 084/087) and personal
   numbers (UK 070, +1 500/533/…: "follow-me" numbers billed far above a mobile, the vehicle of
   the UK's 070 scams until Ofcom capped them). UAN (UK 03, national "one number" services) is
   *not* premium: it is billed like a geographic number in most plans, and the price cap still
   catches an expensive one. Toll-free, mobile, fixed, VoIP and pagers are ordinary.
4. ``DOMESTIC`` — the org's own country. For the North American Numbering Plan that is the
   *region*, not the country code: +1 covers the US, Canada and twenty Caribbean and Pacific
   states, and +1 876 (Jamaica) or +1 809 (Dominican Republic) from a US org is international —
   a classic one-ring/IRSF target dialled like a domestic number. The US territories inside
   NANP (Puerto Rico, the US Virgin Islands, Guam, the Northern Mariana Islands, American Samoa)
   are domestic for a US org (US carriers rate them domestic); nothing else is aliased.
5. ``INTERNATIONAL`` — everything else.

A premium number at home is both premium and domestic: ``Destination.domestic`` says where a
number is, ``Destination.risk`` what kind it is.

Dialled forms (``dialled_to_e164``): "+14155550100"; national forms of the org's country
("4155550100", "14155550100" in the US, "02079460000" in GB); the country's own international
prefix ("011 44 …" in the US, "0011 …" in AU); and "00" + country code everywhere (ITU-T's
recommended prefix, which phones and people use even where it is not the local one — no
national number starts with "00").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberType, ValidationResult, shortnumberinfo

from ringwell.features.fraud.errors import UnparseableNumber
from ringwell.features.numbers.e164 import TYPE_NAMES

__all__ = [
    "HIGH_RISK_RANGES",
    "PREMIUM_TYPES",
    "UNIVERSAL_EMERGENCY",
    "Destination",
    "HighRiskRange",
    "Risk",
    "UnparseableNumber",
    "classify",
    "dialled_to_e164",
    "domestic_regions",
    "emergency_number",
    "high_risk_range",
    "is_emergency",
]


class Risk(StrEnum):
    """How dangerous it is to let a call to a destination through (see the module docstring)."""

    EMERGENCY = "emergency"
    DOMESTIC = "domestic"
    INTERNATIONAL = "international"
    PREMIUM = "premium"
    HIGH_RISK = "high-risk"


@dataclass(frozen=True, slots=True)
class Destination:
    """A classified destination.

    ``e164`` is the number with '+' (for an emergency call: the short code to send the carrier,
    "911"); ``region`` the ISO 3166-1 alpha-2 code, None for non-geographic numbers (+882 …) and
    for numbers the plan does not know on a shared country code; ``number_type`` one of the
    names in ``numbers.e164.TYPE_NAMES`` ("fixed", "mobile", "premium", … "unknown") or "emergency";
    ``domestic`` whether it is in the org's own country; ``note`` why it is high risk, if it is.
    """

    e164: str
    region: str | None
    country_code: int
    number_type: str
    risk: Risk
    domestic: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class HighRiskRange:
    """A range known for International Revenue Share Fraud: E.164 digits (no '+') it starts with."""

    prefix: str
    name: str
    why: str


_SATELLITE = "satellite service: termination rates of several dollars a minute"
_NETWORKS = "global network numbers: sold by international premium-rate number resellers"
_IRSF = "a recurring top destination in IRSF hot lists and carrier fraud advisories"
_PACIFIC = "a small Pacific numbering plan with high termination rates: a long-standing IRSF target"
_REMOTE = "a remote territory with high termination rates: a long-standing IRSF target"

# The kind of source: the destinations that recur, year after year, in carriers' published
# "high-risk destination" lists, in the test-number hot lists of IRSF monitoring services and in
# the CFCA's fraud-loss surveys (Cuba, Latvia, Lithuania and Somalia topped them for a decade),
# plus the ITU's non-geographic satellite and network codes. It is a starting point, not a
# guarantee: fraud moves to ordinary countries too (IPRN resellers now advertise ranges in
# Belgium or the UK), which is why international calling is off by default and the price cap
# applies to every call. An operator lifts an entry for one org with
# `ringwell admin allow-destination --org NAME --country CU --risk high-risk`.
HIGH_RISK_RANGES: tuple[HighRiskRange, ...] = (
    HighRiskRange("870", "Inmarsat", _SATELLITE),
    HighRiskRange("881", "Global Mobile Satellite System (Iridium, Globalstar, Thuraya)", _SATELLITE),
    HighRiskRange("882", "International Networks", _NETWORKS),
    HighRiskRange("883", "International Networks", _NETWORKS),
    HighRiskRange("53", "Cuba", _IRSF),
    HighRiskRange("370", "Lithuania", _IRSF),
    HighRiskRange("371", "Latvia", _IRSF),
    HighRiskRange("216", "Tunisia", _IRSF),
    HighRiskRange("220", "Gambia", _IRSF),
    HighRiskRange("224", "Guinea", _IRSF),
    HighRiskRange("231", "Liberia", _IRSF),
    HighRiskRange("232", "Sierra Leone", _IRSF),
    HighRiskRange("235", "Chad", _IRSF),
    HighRiskRange("239", "São Tomé and Príncipe", _IRSF),
    HighRiskRange("245", "Guinea-Bissau", _IRSF),
    HighRiskRange("252", "Somalia", _IRSF),
    HighRiskRange("269", "Comoros", _IRSF),
    HighRiskRange("291", "Eritrea", _IRSF),
    HighRiskRange("850", "North Korea", _IRSF),
    HighRiskRange("246", "Diego Garcia", _REMOTE),
    HighRiskRange("674", "Nauru", _PACIFIC),
    HighRiskRange("675", "Papua New Guinea", _PACIFIC),
    HighRiskRange("676", "Tonga", _PACIFIC),
    HighRiskRange("677", "Solomon Islands", _PACIFIC),
    HighRiskRange("678", "Vanuatu", _PACIFIC),
    HighRiskRange("682", "Cook Islands", _PACIFIC),
    HighRiskRange("683", "Niue", _PACIFIC),
    HighRiskRange("686", "Kiribati", _PACIFIC),
    HighRiskRange("688", "Tuvalu", _PACIFIC),
    HighRiskRange("690", "Tokelau", _PACIFIC),
)
_HIGH_RISK_BY_PREFIX = MappingProxyType({entry.prefix: entry for entry in HIGH_RISK_RANGES})
_LONGEST_PREFIX = max(len(entry.prefix) for entry in HIGH_RISK_RANGES)

PREMIUM_TYPES: frozenset[int] = frozenset({
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.PERSONAL_NUMBER,
})


# Regions dialled and rated as one country: the US and its territories inside NANP.
_DOMESTIC_GROUPS: tuple[frozenset[str], ...] = (frozenset({"US", "PR", "VI", "GU", "MP", "AS"}),)

UNIVERSAL_EMERGENCY: frozenset[str] = frozenset({"911", "112", "999"})
"""Emergency codes honoured in every country (GSM phones dial 112 and 911 anywhere)."""

# When a universal code is not the org country's own, the carrier gets the first of these that is.
_EMERGENCY_PREFERENCE = ("112", "911", "999", "000", "110", "111", "119")
_SHORT_CODE = re.compile(r"[0-9]{2,6}")
# RFC 3966 visual separators a phone or a person may leave in a dialled string.
_SEPARATORS = re.compile(r"[\s\-.()]")
_DIALLED = re.compile(r"\+?[0-9]{2,20}")
_MAX_DIALLED = 40

_LENGTH_REASONS = MappingProxyType({
    ValidationResult.INVALID_COUNTRY_CODE: "no valid country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong length",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
})


# -- emergency ---------------------------------------------------------------------------------
def emergency_number(dialled: str, org_country: str) -> str | None:
    """The emergency short code to send the carrier if ``dialled`` is an emergency call, else None.

    Emergency calls are "911", "112" and "999" in every country, plus what ``phonenumbers``'
    short-number metadata lists for ``org_country`` ("000" in AU, "110" and "119" in JP, "15",
    "17", "18" in FR). Matching is exact: "9111" or "1120" is not an emergency call, since an
    emergency call bypasses every cap and balance check.

    "+1911" (the org's own country code in front of one of its codes) is tolerated: softphones
    and dial plans that rewrite everything to E.164 produce it, and answering an emergency call
    484 for a dial-plan artefact is the worse failure. Only the org's own country code counts
    ("+44999" is not an emergency call for a US org); the carrier gets the bare code.

    A universal code that is not the country's own is sent as the country's first code in
    ``_EMERGENCY_PREFERENCE`` ("112" in JP becomes "110").
    """
    text = dialled.strip()
    home = org_country.strip().upper()
    code = text
    if text.startswith("+"):
        country_code = phonenumbers.country_code_for_region(home)
        prefix = f"+{country_code}"
        if country_code == 0 or not text.startswith(prefix):
            return None
        code = text[len(prefix):]
    if not _SHORT_CODE.fullmatch(code):
        return None
    if shortnumberinfo.is_emergency_number(code, home):
        return code
    if code not in UNIVERSAL_EMERGENCY:
        return None
    for local in _EMERGENCY_PREFERENCE:
        if shortnumberinfo.is_emergency_number(local, home):
            return local
    return code


def is_emergency(dialled: str, org_country: str) -> bool:
    """Whether ``dialled`` is an emergency call for an org in ``org_country`` (see ``emergency_number``)."""
    return emergency_number(dialled, org_country) is not None


# -- dialled strings -----------------------------------------------------------------------------
def _parse(text: str, region: str | None) -> PhoneNumber | str:
    """The parsed number, or why it is not one."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            return "no valid country code"
        if exc.error_type == NumberParseException.TOO_LONG:
            return "too long"
        return "too short"
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != ValidationResult.IS_POSSIBLE:
        return _LENGTH_REASONS.get(reason, "not a possible number")
    return number


def dialled_to_e164(dialled: str, org_country: str) -> str:
    """What a phone dialled, as E.164 with '+' (see the module docstring for the forms read).

    A "possible" number (right length for its country) is enough: validity against the numbering
    plan is ``classify``'s business (an unknown foreign range is high risk, not unparseable).
    When a string reads two ways ("00…" under a country whose own prefix is not "00"), the
    reading that is a valid number wins.

    Raises ``UnparseableNumber`` (answered 484 Address Incomplete) for anything else: letters,
    "*" and "#" codes, too short or too long, an unknown country code, a local number without
    its area code.
    """
    if len(dialled) > _MAX_DIALLED:
        raise UnparseableNumber(f"cannot dial {dialled[:_MAX_DIALLED]!r}…: too long", {"dialled": dialled[:64]})
    compact = _SEPARATORS.sub("", dialled)
    if not _DIALLED.fullmatch(compact):
        raise UnparseableNumber(f"cannot dial {dialled!r}: not a phone number", {"dialled": dialled})
    home = org_country.strip().upper()
    region = home if home in phonenumbers.SUPPORTED_REGIONS else None
    readings: list[tuple[str, str | None]] = []
    if compact.startswith("+"):
        readings.append((compact, None))
    else:
        if region is not None:
            readings.append((compact, region))
        if compact.startswith("00"):
            readings.append(("+" + compact[2:], None))
    if not readings:
        raise UnparseableNumber(f"cannot dial {dialled!r}: no country code", {"dialled": dialled})
    parsed = [_parse(text, where) for text, where in readings]
    numbers = [number for number in parsed if isinstance(number, PhoneNumber)]
    if not numbers:
        raise UnparseableNumber(f"cannot dial {dialled!r}: {parsed[0]}", {"dialled": dialled})
    best = next((number for number in numbers if phonenumbers.is_valid_number(number)), numbers[0])
    return phonenumbers.format_number(best, phonenumbers.PhoneNumberFormat.E164)


# -- classification ------------------------------------------------------------------------------
def domestic_regions(org_country: str) -> frozenset[str]:
    """The regions that are domestic for an org in ``org_country`` (itself, and for the US its
    NANP territories)."""
    home = org_country.strip().upper()
    for group in _DOMESTIC_GROUPS:
        if home in group:
            return group
    return frozenset({home})


def high_risk_range(e164: str) -> HighRiskRange | None:
    """The ``HIGH_RISK_RANGES`` entry ``e164`` falls in (longest prefix), if any."""
    digits = e164.removeprefix("+")
    for length in range(min(_LONGEST_PREFIX, len(digits)), 0, -1):
        entry = _HIGH_RISK_BY_PREFIX.get(digits[:length])
        if entry is not None:
            return entry
    return None


def _region(number: PhoneNumber, valid: bool) -> str | None:
    if valid:
        region = phonenumbers.region_code_for_number(number)
    else:
        # The plan does not say which of the regions sharing a code it is: only a code with a
        # single region ("+49" is DE) names one. "+1 284 …" unknown could be in the Caribbean.
        regions = phonenumbers.region_codes_for_country_code(number.country_code or 0)
        region = regions[0] if len(regions) == 1 else None
    if region in (None, phonenumbers.UNKNOWN_REGION, phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY):
        return None
    return region


def classify(e164: str, org_country: str) -> Destination:
    """Classify a destination for an org in ``org_country`` (ISO 3166-1 alpha-2).

    ``e164`` is a number with '+' (what ``dialled_to_e164`` returns) or an emergency code
    ("911", "+1911"), which classifies as ``Risk.EMERGENCY`` so that ``policy.decide`` lets it
    through even if a caller forgot ``is_emergency``. Raises ``UnparseableNumber`` for anything
    that is neither.
    """
    home = org_country.strip().upper()
    emergency = emergency_number(e164, home)
    if emergency is not None:
        return Destination(emergency, home, phonenumbers.country_code_for_region(home), "emergency",
                           Risk.EMERGENCY, domestic=True)
    if not e164.startswith("+"):
        raise UnparseableNumber(f"not an E.164 number: {e164!r}", {"number": e164})
    parsed = _parse(e164, None)
    if isinstance(parsed, str):
        raise UnparseableNumber(f"not an E.164 number: {e164!r}: {parsed}", {"number": e164})
    number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    country_code = parsed.country_code or 0
    valid = phonenumbers.is_valid_number(parsed)
    region = _region(parsed, valid)
    domestic = region is not None and region in domestic_regions(home)
    kind = phonenumbers.number_type(parsed) if valid else PhoneNumberType.UNKNOWN
    type_name = TYPE_NAMES.get(kind, "unknown")
    # A listed country is high risk from abroad; its own orgs call it like anyone calls home.
    listed = None if domestic else high_risk_range(number)
    if listed is not None:
        return Destination(number, region, country_code, type_name, Risk.HIGH_RISK, domestic,
                           f"{listed.name}: {listed.why}")
    if not valid and not domestic:
        where = region if region is not None else f"+{country_code} (the region cannot be told)"
        return Destination(number, region, country_code, type_name, Risk.HIGH_RISK, domestic,
                           f"outside the allocated ranges of {where}")
    if kind in PREMIUM_TYPES:
        return Destination(number, region, country_code, type_name, Risk.PREMIUM, domestic)
    risk = Risk.DOMESTIC if domestic else Risk.INTERNATIONAL
    return Destination(number, region, country_code, type_name, risk, domestic)
