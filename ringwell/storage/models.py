"""Imports every slice's tables so that ``Base.metadata`` knows them all."""

from ringwell.features.accounts.models import Organization, SipCredential, User
from ringwell.features.billing.models import (
    CreditReservation,
    LedgerAccount,
    LedgerPosting,
    LedgerTransaction,
    Payment,
    PaymentEvent,
)
from ringwell.features.cdr.models import CallRecord
from ringwell.features.fraud.models import DestinationPermission, FraudSettings
from ringwell.features.numbers.models import CallerIdVerification, PhoneNumber
from ringwell.features.rating.models import OrgRateDeck, RateDeck, RateRow
from ringwell.features.registrations.models import BindingRow
from ringwell.features.trunks.models import Trunk

__all__ = [
    "BindingRow",
    "CallRecord",
    "CallerIdVerification",
    "CreditReservation",
    "DestinationPermission",
    "FraudSettings",
    "LedgerAccount",
    "LedgerPosting",
    "LedgerTransaction",
    "OrgRateDeck",
    "Organization",
    "Payment",
    "PaymentEvent",
    "PhoneNumber",
    "RateDeck",
    "RateRow",
    "SipCredential",
    "Trunk",
    "User",
]
