"""Errors of the billing slice (stable ``error_id`` values)."""

from __future__ import annotations

from ringwell.errors import Conflict, DomainError, Invalid

__all__ = [
    "InsufficientCredit",
    "InvalidBillingData",
    "InvalidWebhook",
    "PaymentProviderError",
    "PaymentsNotConfigured",
    "ReservationConflict",
]


class InvalidBillingData(Invalid):
    """An amount, reason, operator or key a ledger operation cannot accept."""

    error_id = "invalid_billing_data"


class ReservationConflict(Conflict):
    """A reservation key that belongs to another organization."""

    error_id = "reservation_conflict"


class InsufficientCredit(DomainError):
    """The available credit (balance minus reservations) does not cover an amount."""

    error_id = "insufficient_credit"
    status = 402


class PaymentsNotConfigured(Invalid):
    """A top-up was asked for but no payment provider is configured (stripe_secret_key)."""

    error_id = "payments_not_configured"


class InvalidWebhook(Invalid):
    """A webhook whose signature does not verify, is too old, or is not a provider event (HTTP 400)."""

    error_id = "invalid_webhook"


class PaymentProviderError(DomainError):
    """The payment provider refused a request or could not be reached (HTTP 502; it retries webhooks)."""

    error_id = "payment_provider_error"
    status = 502
