"""API shapes of the accounts slice: the organization, its users and their registered devices.

Secrets: ``NewUserOut.sip_password`` and ``SipPasswordOut.sip_password`` are the only places a
SIP password ever appears — the response that generated it. No other shape has the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ringwell.features.accounts.models import Organization, User
from ringwell.features.accounts.repository import CredentialRecord
from ringwell.features.accounts.service import OrgSummary, UserView
from ringwell.features.billing.service import Balance
from ringwell.pbx.registrar import Binding
from ringwell.web.schemas import RequestBody

__all__ = [
    "NewUserOut",
    "OperatorOrgOut",
    "OperatorOrgPage",
    "OrgOut",
    "OrgPatch",
    "RegistrationList",
    "RegistrationOut",
    "RoleName",
    "SipPasswordOut",
    "UserCreate",
    "UserOut",
    "UserPage",
    "UserPatch",
    "user_event_data",
]

RoleName = Literal["owner", "admin", "member", "support", "billing", "privacy", "auditor"]
_EXTENSION = r"^[0-9]{2,8}$"
_SIP_USERNAME = r"^[A-Za-z0-9][A-Za-z0-9._\-]{1,63}$"
_MAX_MINOR = 10**15
_TEXT = r"^[^\x00-\x1f\x7f]*$"  # no control characters (PostgreSQL refuses NUL; names are shown in pages)


class _Request(RequestBody):
    model_config = ConfigDict(extra="forbid")


class OrgOut(BaseModel):
    id: str
    name: str
    country: str = Field(description="ISO 3166-1 alpha-2: how national phone numbers are read")
    currency: str = Field(description="ISO 4217: what the organization pays in")
    kind: Literal["customer", "operator"]
    created_at: datetime
    low_balance_minor: int | None = Field(description="balance.low fires when the credit falls below this "
                                                      "(minor units of the currency); null: never")
    voicemail_attach_audio: bool = Field(description="voicemail emails carry the recording (else the transcript "
                                                     "only)")
    voicemail_retention_days: int | None = Field(description="days a voicemail and its transcript are kept; "
                                                             "null: the server's default")
    recording_retention_days: int | None = Field(description="days a call recording is kept; null: the server's "
                                                             "default")
    call_record_retention_days: int | None = Field(None, description="days call records are kept; null: the "
                                                                     "server's default")

    @classmethod
    def of(cls, org: Organization) -> OrgOut:
        return cls(id=org.id, name=org.name, country=org.country, currency=org.currency,
                   kind="operator" if org.kind == "operator" else "customer", created_at=org.created_at,
                   low_balance_minor=org.low_balance_minor, voicemail_attach_audio=org.voicemail_attach_audio,
                   voicemail_retention_days=org.voicemail_retention_days,
                   recording_retention_days=org.recording_retention_days,
                   call_record_retention_days=org.call_record_retention_days)


class OrgPatch(_Request):
    """Only the fields sent change; ``low_balance_minor: null`` turns the low-balance alert off."""

    name: str | None = Field(None, min_length=1, max_length=200, pattern=_TEXT)
    low_balance_minor: int | None = Field(None, ge=0, le=_MAX_MINOR)
    voicemail_attach_audio: bool | None = Field(None, description="attach the recording to voicemail emails")
    voicemail_retention_days: int | None = Field(None, ge=1, le=3650, description="null: the server's default")
    recording_retention_days: int | None = Field(None, ge=1, le=3650, description="null: the server's default")
    call_record_retention_days: int | None = Field(None, ge=1, le=36500, description="null: the server's default; "
                                                   "at most the operator's bound for the organization's country")

    @model_validator(mode="after")
    def _name_not_null(self) -> Self:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null")
        return self


class UserOut(BaseModel):
    id: str
    email: str
    extension: str
    name: str | None
    role: RoleName
    ring_timeout: int = Field(description="seconds a call rings this user's devices before it is not answered")
    voicemail_email: bool = Field(description="new voicemail is emailed to the user (with its transcript)")
    voicemail_enabled: bool = Field(description="unanswered calls go to the user's mailbox (off: they fail)")
    dnd: bool = Field(description="do-not-disturb: no device rings; calls go to the mailbox (busy without one)")
    sip_username: str = Field(description="the SIP account of the user's phones (\"\" when none)")
    portal_access: bool = Field(description="whether the user can log in to the portal (invited)")
    email_verified: bool
    mfa_enabled: bool
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, view: UserView) -> UserOut:
        user = view.user
        return cls(
            id=user.id, email=user.email, extension=user.extension, name=user.name, role=user.role,  # type: ignore[arg-type]
            ring_timeout=user.ring_timeout, voicemail_email=user.voicemail_email,
            voicemail_enabled=user.voicemail_enabled, dnd=user.dnd, sip_username=view.sip_username,
            portal_access=user.login_email is not None, email_verified=user.email_verified_at is not None,
            mfa_enabled=user.mfa_enabled_at is not None, disabled=user.disabled_at is not None,
            created_at=user.created_at,
        )


class NewUserOut(UserOut):
    sip_password: str = Field(description="the generated SIP password: shown in this response only")


class UserCreate(_Request):
    email: str = Field(min_length=3, max_length=320, pattern=_TEXT)
    extension: str = Field(pattern=_EXTENSION, description="2 to 8 digits, unique in the organization")
    name: str | None = Field(None, max_length=200, pattern=_TEXT)
    role: RoleName = Field("member", description="anything but member needs users.roles")
    portal_access: bool = Field(False, description="invite the user to the portal by email")
    sip_username: str | None = Field(None, pattern=_SIP_USERNAME,
                                     description="unique on the server; generated from the extension when absent")


class UserPatch(_Request):
    """Only the fields sent change; a role change needs users.roles. A user may change their own
    ``voicemail_enabled`` and ``dnd`` without users.write."""

    name: str | None = Field(None, max_length=200, pattern=_TEXT)
    ring_timeout: int | None = Field(None, ge=1, le=600)
    role: RoleName | None = None
    voicemail_email: bool | None = Field(None, description="email new voicemail to the user")
    voicemail_enabled: bool | None = Field(None, description="unanswered calls go to the user's mailbox")
    dnd: bool | None = Field(None, description="do-not-disturb: ring no device (the user may set these two "
                                                "on themselves)")


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


class SipPasswordOut(BaseModel):
    user_id: str
    sip_username: str
    sip_password: str = Field(description="the new SIP password: shown in this response only")


class RegistrationOut(BaseModel):
    """A device registered now (RFC 3261 §10) with one of the organization's SIP credentials."""

    user_id: str
    extension: str
    sip_username: str
    contact: str
    transport: str
    source_host: str
    source_port: int
    user_agent: str
    expires_at: datetime

    @classmethod
    def of(cls, cred: CredentialRecord, binding: Binding) -> RegistrationOut:
        return cls(user_id=cred.user_id, extension=cred.extension, sip_username=cred.username,
                   contact=binding.contact, transport=binding.source.transport, source_host=binding.source.host,
                   source_port=binding.source.port, user_agent=binding.user_agent,
                   expires_at=datetime.fromtimestamp(binding.expires_at, UTC))


class RegistrationList(BaseModel):
    """Every current registration (a live view, not paged: at most a few per user)."""

    items: list[RegistrationOut]


class OperatorOrgOut(BaseModel):
    id: str
    name: str
    kind: Literal["customer", "operator"]
    country: str
    currency: str
    created_at: datetime
    user_count: int
    balance_minor: int
    available_minor: int = Field(description="balance minus credit reserved by calls in progress")
    closed_at: datetime | None = Field(None, description="when the organization was closed (empty: open)")
    purged_at: datetime | None = Field(None, description="when the closed organization's data was deleted")

    @classmethod
    def of(cls, summary: OrgSummary, balance: Balance) -> OperatorOrgOut:
        org = summary.org
        return cls(id=org.id, name=org.name, kind="operator" if org.kind == "operator" else "customer",
                   country=org.country, currency=org.currency, created_at=org.created_at,
                   user_count=summary.user_count, balance_minor=balance.balance_minor,
                   available_minor=balance.available_minor, closed_at=org.closed_at, purged_at=org.purged_at)


class OperatorOrgPage(BaseModel):
    items: list[OperatorOrgOut]
    next_cursor: str | None



def user_event_data(user: User) -> dict[str, Any]:
    """The ``data`` of the ``user.created`` webhook (docs/webhooks.md), the same from the API and the portal."""
    return {"user_id": user.id, "email": user.email, "extension": user.extension, "name": user.name,
            "role": user.role}
