"""Tables of the accounts slice: organizations, users and their SIP credentials."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column

from ringwell.storage.base import Base, new_id, utcnow

__all__ = ["CredentialKind", "OrgKind", "Organization", "SipCredential", "User"]


class OrgKind(StrEnum):
    CUSTOMER = "customer"
    OPERATOR = "operator"  # the company running Ringwell: its users hold the staff roles


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    country: Mapped[str] = mapped_column(String(2), default="US", server_default="US")  # ISO 3166-1 alpha-2
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")  # ISO 4217; one per org
    kind: Mapped[str] = mapped_column(String(16), default=OrgKind.CUSTOMER.value, server_default="customer")
    low_balance_minor: Mapped[int | None] = mapped_column(BigInteger)  # balance.low fires below this
    # Voicemail emails carry the message's audio only when the organization allows it (privacy: the
    # transcript alone tells the gist; the recording is the personal data).
    voicemail_attach_audio: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Retention of the org's voicemail (audio, transcript) and call recordings, in days; None: the
    # server's default (voicemail_retention_days, recording_retention_days). Each item stores its
    # own deadline when it is made.
    voicemail_retention_days: Mapped[int | None]
    recording_retention_days: Mapped[int | None]
    # Days the org's call records are kept; None: the server's call_record_retention_days. Bounded
    # by the operator's limit for the org's country (ringwell.features.privacy.retention).
    call_record_retention_days: Mapped[int | None]
    low_balance_alerted_at: Mapped[datetime | None]  # set when fired; cleared when the balance recovers
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Closing (ringwell.features.privacy.closure): its users disabled, numbers released, keys revoked;
    # closed_account_retention_days later its data is purged (purged_at) and its name anonymised. The
    # row and the ledger stay for the ledger's legal period.
    closed_at: Mapped[datetime | None]
    purged_at: Mapped[datetime | None]


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("org_id", "extension", name="uq_users_org_extension"),
        UniqueConstraint("org_id", "email", name="uq_users_org_email"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    extension: Mapped[str] = mapped_column(String(32))
    ring_timeout: Mapped[int] = mapped_column(default=30, server_default="30")  # seconds before "no answer"
    voicemail_email: Mapped[bool] = mapped_column(default=True, server_default=true())  # email new messages
    # Unanswered calls go to the user's mailbox (off: they fail as 480/486/408); do-not-disturb sends
    # every call straight there without ringing a device (or refuses it 486 when the mailbox is off).
    voicemail_enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    dnd: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Portal login (issue 5). A user created for a phone only has no password and cannot log in.
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="member", server_default="member")  # auth.permissions.Role
    # Set (lower-cased email) only for users who can log in: unique on the server, so an email
    # names one login even when the person has phones in several orgs.
    login_email: Mapped[str | None] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))  # Argon2id, PHC string
    email_verified_at: Mapped[datetime | None]
    mfa_secret: Mapped[str | None] = mapped_column(String(255))  # TOTP secret, sealed (AES-GCM)
    mfa_enabled_at: Mapped[datetime | None]
    phone: Mapped[str | None] = mapped_column(String(32))  # contact number (E.164), for change notices
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when the person restricted or objected to processing (GDPR arts. 18, 21): optional
    # processing stops (voicemail transcripts, marketing, analytics); see docs/privacy-requests.md.
    processing_restricted_at: Mapped[datetime | None]


class CredentialKind(StrEnum):
    DEVICE = "device"  # a phone's account, set up by a person
    WEBPHONE = "webphone"  # minted for the portal's web phone from a login session; expires


class SipCredential(Base):
    """A SIP account: the username is unique on the server; only HA1 hashes are stored.

    Web phone credentials (``kind`` webphone) are issued per browser session and stop working at
    ``expires_at``; listings for people ignore them.
    """

    __tablename__ = "sip_credentials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    realm: Mapped[str] = mapped_column(String(128))
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default=CredentialKind.DEVICE.value, server_default="device")
    expires_at: Mapped[datetime | None] = mapped_column(index=True)  # UTC; None: never
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
