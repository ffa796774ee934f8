"""E.164 normalization (pure: ``phonenumbers`` metadata only, no I/O).

Every number Ringwell stores or passes between slices is E.164 with a leading ``+``
("+14155550100"). ``normalize`` is the one way in: it accepts what people and carriers write
("(415) 555-0100" with a default region, "+1 415 555 0100", "0044 20 7946 0000",
RFC 3966 "tel:+1-415-555-0100") and refuses with a reason anything that is not a *possible*
number (right length for its country). Validity against the numbering plan is deliberately not
required: ranges reserved for fiction and testing (555-01XX, Ofcom's drama ranges) are possible
but not valid, and carriers hand out new ranges before the metadata knows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberType, ValidationResult

from ringwell.features.numbers.errors import InvalidNumber

__all__ = [
    "NUMBER_TYPES", "TYPE_NAMES", "InvalidNumber", "is_e164", "is_region", "national_number", "normalize",
    "number_type", "region_of",
]

MAX_INPUT = 64  # longer input is not a phone number anyway; keeps error messages short

TYPE_NAMES: Mapping[int, str] = MappingProxyType({
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed-or-mobile",
    PhoneNumberType.TOLL_FREE: "toll-free",
    PhoneNumberType.PREMIUM_RATE: "premium",
    PhoneNumberType.SHARED_COST: "shared-cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
})
NUMBER_TYPES: frozenset[str] = frozenset(TYPE_NAMES.values())
"""The names ``number_type`` returns (and the values an inventory's ``type`` column may take)."""

_PARSE_REASONS: dict[int, str] = {
    NumberParseException.INVALID_COUNTRY_CODE: "no valid country code",
    NumberParseException.NOT_A_NUMBER: "no number in it",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_LENGTH_REASONS: dict[int, str] = {
    ValidationResult.INVALID_COUNTRY_CODE: "no valid country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong length",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
}


def _where(number: PhoneNumber) -> str:
    region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    if region in (None, phonenumbers.UNKNOWN_REGION, "001"):
        return f"+{number.country_code}"
    return f"+{number.country_code} ({region})"


def _parse(text: str, region: str | None) -> PhoneNumber | str:
    """The parsed, possible number or the reason it is not one."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and region is None and text[:1] != "+":
            return "no country code (write it with '+' or give a region)"
        return _PARSE_REASONS.get(exc.error_type, "no number in it")
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != ValidationResult.IS_POSSIBLE:
        return f"{_LENGTH_REASONS.get(reason, 'not a possible number')} for {_where(number)}"
    return number


def normalize(raw: str, default_region: str | None) -> str:
    """``raw`` as E.164 with '+' ("+14155550100").

    ``default_region`` (ISO 3166-1 alpha-2, e.g. "US") is how national forms are read
    ("(415) 555-0100"); it is ignored when ``raw`` carries its country code ("+1 …", "tel:+1-…",
    or behind the region's international prefix, "011 44 …" in the US). A leading "00" is read
    as the international prefix even where it is not the region's own (ITU-T E.164 recommends
    it and no national number starts with it), so "0044 20 7946 0000" works everywhere.

    Raises ``InvalidNumber`` saying why for anything unparseable, with an extension, or not a
    possible number for its country (too short, too long, local-only).
    """
    text = raw.strip()
    if not text:
        raise InvalidNumber("empty phone number", {"number": raw})
    if len(text) > MAX_INPUT:
        raise InvalidNumber(f"not a phone number: {text[:MAX_INPUT]!r}… is too long", {"number": raw[:MAX_INPUT]})
    region = default_region.strip().upper() if default_region else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidNumber(f"unknown region {default_region!r} for phone number {text!r}",
                            {"number": raw, "region": default_region})
    parsed = _parse(text, region)
    digits = text.removeprefix("tel:").lstrip()
    if isinstance(parsed, str) and digits.startswith("00"):
        retry = _parse("+" + digits[2:], None)
        if not isinstance(retry, str):
            parsed = retry
    if isinstance(parsed, str):
        raise InvalidNumber(f"not a phone number: {text!r} ({parsed})", {"number": raw})
    if parsed.extension:
        raise InvalidNumber(f"not a phone number: {text!r} has an extension ({parsed.extension})", {"number": raw})
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _parse_e164(e164: str) -> PhoneNumber | None:
    if not e164.startswith("+"):
        return None
    try:
        return phonenumbers.parse(e164, None)
    except NumberParseException:
        return None


def is_e164(text: str) -> bool:
    """Whether ``text`` is already a normalized number (what ``normalize`` returns for it)."""
    number = _parse_e164(text)
    return (
        number is not None
        and phonenumbers.is_possible_number(number)
        and phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == text
    )


def region_of(e164: str) -> str | None:
    """The region (ISO 3166-1 alpha-2) a number belongs to; None for non-geographic numbers
    (+800 …) and anything that is not E.164.

    Shared country codes are resolved by the numbering plan ("+1 416 …" is CA); a number the
    metadata does not know (fictional 555-01XX) falls back to the code's main region (US for +1).
    """
    number = _parse_e164(e164)
    if number is None:
        return None
    region = phonenumbers.region_code_for_number(number) or phonenumbers.region_code_for_country_code(
        number.country_code or 0
    )
    if region in (None, phonenumbers.UNKNOWN_REGION, "001"):
        return None
    return region


def number_type(e164: str) -> str:
    """What kind of line a number is: one of ``NUMBER_TYPES`` ("fixed", "mobile",
    "fixed-or-mobile", "toll-free", "premium", "shared-cost", "voip", … or "unknown")."""
    number = _parse_e164(e164)
    if number is None:
        return "unknown"
    return TYPE_NAMES.get(phonenumbers.number_type(number), "unknown")


def national_number(e164: str) -> str:
    """The national significant number, the digits after the country code ("+14155550100" →
    "4155550100", "+390612345678" → "0612345678"); "" for anything that is not E.164."""
    number = _parse_e164(e164)
    return "" if number is None else phonenumbers.national_significant_number(number)


def is_region(code: str) -> bool:
    """Whether ``code`` is a region ``phonenumbers`` knows (ISO 3166-1 alpha-2, upper case)."""
    return code in phonenumbers.SUPPORTED_REGIONS
