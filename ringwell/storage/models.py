"""Imports every slice's tables so that ``Base.metadata`` knows them all."""

from ringwell.features.accounts.models import Organization, SipCredential, User
from ringwell.features.cdr.models import CallRecord
from ringwell.features.registrations.models import BindingRow

__all__ = ["BindingRow", "CallRecord", "Organization", "SipCredential", "User"]
