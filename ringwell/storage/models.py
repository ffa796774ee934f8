"""Imports every slice's tables so that ``Base.metadata`` knows them all."""

from ringwell.blobs.models import Blob, OrgDataKey
from ringwell.features.accounts.models import Organization, SipCredential, User
from ringwell.features.audit.models import AuditChainHead, AuditEvent
from ringwell.features.auth.models import ApiKey, EmailToken, RecoveryCode, WebSession
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
from ringwell.features.privacy.models_consent import ConsentRecord
from ringwell.features.privacy.models_holds import LegalHold, RetentionRun
from ringwell.features.privacy.models_incidents import Incident, IncidentNote
from ringwell.features.privacy.models_requests import DataRequest
from ringwell.features.rating.models import OrgRateDeck, RateDeck, RateRow
from ringwell.features.recordings.models import Recording, RecordingPolicy
from ringwell.features.registrations.models import BindingRow
from ringwell.features.trunks.models import Trunk
from ringwell.features.voicemail.mailbox_models import MailboxRow
from ringwell.features.voicemail.models import Voicemail
from ringwell.features.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "AuditChainHead",
    "AuditEvent",
    "BindingRow",
    "Blob",
    "CallRecord",
    "CallerIdVerification",
    "ConsentRecord",
    "CreditReservation",
    "DataRequest",
    "DestinationPermission",
    "EmailToken",
    "FraudSettings",
    "Incident",
    "IncidentNote",
    "LedgerAccount",
    "LedgerPosting",
    "LedgerTransaction",
    "LegalHold",
    "MailboxRow",
    "OrgDataKey",
    "OrgRateDeck",
    "Organization",
    "Payment",
    "PaymentEvent",
    "PhoneNumber",
    "RateDeck",
    "RateRow",
    "Recording",
    "RecordingPolicy",
    "RecoveryCode",
    "RetentionRun",
    "SipCredential",
    "Trunk",
    "User",
    "Voicemail",
    "WebSession",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
