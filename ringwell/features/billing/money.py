"""Money as integers of a currency's minor unit: exponents, exact parsing and formatting.

Pure functions, no I/O. Amounts are ``int`` minor units everywhere (cents for USD, yen for
JPY, fils for KWD); the exponent of a currency is ISO 4217's (2 unless listed below). Text
is parsed with ``Decimal`` and refused, never rounded, when it has more decimals than the
currency has: an operator typing 10.005 USD made a mistake we should not guess about.
"""

from __future__ import annotations

import re
from decimal import Decimal

from ringwell.features.billing.errors import InvalidBillingData

__all__ = ["exponent", "format_minor", "from_stripe_amount", "parse_amount", "to_stripe_amount"]

# ISO 4217 minor-unit exponents other than 2.
_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                     "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
# Where Stripe's "smallest currency unit" differs from ISO 4217 (stripe.com/docs/currencies#special-cases):
# ISK and UGX stay two-decimal in the Stripe API for backwards compatibility; MGA is zero-decimal there.
_STRIPE_EXPONENTS = {"ISK": 2, "UGX": 2, "MGA": 0}
# Stripe requires the last digit of three-decimal amounts to be 0 (card networks settle to 1/100).
_STRIPE_THREE_DECIMAL_STEP = 10

_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_AMOUNT_RE = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def _currency(currency: str) -> str:
    code = currency.strip().upper()
    if not _CURRENCY_RE.fullmatch(code):
        raise InvalidBillingData(f"not an ISO 4217 currency code: {currency!r}", {"field": "currency"})
    return code


def exponent(currency: str) -> int:
    """Decimal places of the currency's minor unit (USD 2, JPY 0, KWD 3)."""
    return _EXPONENTS.get(_currency(currency), 2)


def parse_amount(text: str, currency: str) -> int:
    """``"10.00"`` USD → 1000. A sign is allowed; more decimals than the currency has is an error."""
    cleaned = text.strip()
    if not _AMOUNT_RE.fullmatch(cleaned):
        raise InvalidBillingData(f"not an amount: {text!r} (expected e.g. 10.00)", {"field": "amount"})
    places = exponent(currency)
    decimals = len(cleaned.partition(".")[2])
    if decimals > places:
        raise InvalidBillingData(
            f"{_currency(currency)} has {places} decimal places; {text!r} has {decimals}", {"field": "amount"}
        )
    return int(Decimal(cleaned).scaleb(places))


def format_minor(amount_minor: int, currency: str) -> str:
    """1050 USD → ``"10.50"``; -5 USD → ``"-0.05"``; 1000 JPY → ``"1000"``."""
    places = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), _pow10(places))
    return f"{sign}{whole}.{fraction:0{places}d}" if places else f"{sign}{whole}"


def _pow10(places: int) -> int:
    return int(10**places)  # typeshed types int ** int as Any (a negative exponent makes a float)


def _stripe_shift(currency: str) -> int:
    code = _currency(currency)
    return _STRIPE_EXPONENTS.get(code, exponent(code)) - exponent(code)


def to_stripe_amount(amount_minor: int, currency: str) -> int:
    """Our minor units → the integer Stripe expects for ``amount`` (its smallest currency unit)."""
    shift = _stripe_shift(currency)
    if shift >= 0:
        value = amount_minor * _pow10(shift)
    else:
        value, rest = divmod(amount_minor, _pow10(-shift))
        if rest:
            raise InvalidBillingData(
                f"Stripe takes whole units of {_currency(currency)}; {format_minor(amount_minor, currency)} is not",
                {"field": "amount"},
            )
    if exponent(currency) == 3 and value % _STRIPE_THREE_DECIMAL_STEP:
        raise InvalidBillingData(
            f"Stripe takes {_currency(currency)} amounts in steps of 0.010; "
            f"{format_minor(amount_minor, currency)} is not", {"field": "amount"})
    return value


def from_stripe_amount(amount: int, currency: str) -> int:
    """Stripe's ``amount`` / ``amount_received`` → our minor units (exact; Stripe's ISK/UGX are whole)."""
    shift = _stripe_shift(currency)
    if shift >= 0:
        return amount // _pow10(shift)
    return amount * _pow10(-shift)
