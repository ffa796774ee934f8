"""The periodic access review: who holds a staff role, with MFA on or off and when they last
signed in. Running it is itself an audit event (``audit.access_review``), so the trail shows
the reviews were done.

Staff are the holders of the operator roles (support, billing, privacy, auditor) anywhere, and
the owners and admins of the operator organization (who hold every operator permission).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from ringwell.features.accounts.models import Organization, OrgKind, User
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.auth.permissions import Role

__all__ = ["ACCESS_REVIEW_ACTION", "REVIEW_EVERY", "StaffAccess", "access_review", "review_if_due"]

log = logging.getLogger(__name__)

ACCESS_REVIEW_ACTION = "audit.access_review"
REVIEW_EVERY = timedelta(days=30)  # the server reviews staff access at least this often
_STAFF_ROLES = (Role.SUPPORT.value, Role.BILLING.value, Role.PRIVACY.value, Role.AUDITOR.value)
_OPERATOR_ADMINS = (Role.OWNER.value, Role.ADMIN.value)


@dataclass(frozen=True, slots=True)
class StaffAccess:
    user_id: str
    email: str
    name: str | None
    org_name: str
    role: str
    mfa: bool
    disabled: bool
    last_sign_in: datetime | None  # the last successful sign-in the audit trail still holds
    created_at: datetime


async def access_review(audit: AuditLog, actor: Actor) -> list[StaffAccess]:
    """Every staff user (by org, role, email), recorded as an ``audit.access_review`` event."""
    staff_filter = or_(User.role.in_(_STAFF_ROLES),
                       (Organization.kind == OrgKind.OPERATOR.value) & User.role.in_(_OPERATOR_ADMINS))
    async with audit.sessions() as session:
        rows = (await session.execute(
            select(User, Organization.name).join(Organization, Organization.id == User.org_id)
            .where(staff_filter).order_by(Organization.name, User.role, User.email))).all()
        ids = [user.id for user, _ in rows]
        last: dict[str, datetime] = {}
        if ids:
            signed_in = await session.execute(
                select(AuditEvent.target_id, func.max(AuditEvent.at))
                .where(AuditEvent.action == "auth.login", AuditEvent.outcome == "ok",
                       AuditEvent.target_type == "user", AuditEvent.target_id.in_(ids))
                .group_by(AuditEvent.target_id))
            last = {str(user_id): at for user_id, at in signed_in.all() if user_id is not None and at is not None}
    staff = [StaffAccess(user.id, user.login_email or user.email, user.name, org_name, user.role,
                         user.mfa_enabled_at is not None, user.disabled_at is not None, last.get(user.id),
                         user.created_at) for user, org_name in rows]
    await audit.record(ACCESS_REVIEW_ACTION, actor, org_id=None, target_type="staff",
                       details={"staff": len(staff), "without_mfa": sum(1 for s in staff if not s.mfa),
                                "user_ids": [s.user_id for s in staff]})
    return staff


async def review_if_due(audit: AuditLog, now: datetime, *, every: timedelta = REVIEW_EVERY) -> list[StaffAccess] | None:
    """The periodic review (the server's daily job): run it as the system when the last review,
    by anyone, is ``every`` or more before ``now``; None when one is recent. Staff without MFA
    and disabled staff still holding a role are logged as warnings (ids only)."""
    async with audit.sessions() as session:
        last = (await session.execute(select(func.max(AuditEvent.at)).where(
            AuditEvent.action == ACCESS_REVIEW_ACTION))).scalar_one_or_none()
    if last is not None and now - last < every:
        return None
    staff = await access_review(audit, Actor())
    for person in staff:
        if not person.mfa and not person.disabled:
            log.warning("access review: staff user %s (%s) has no MFA", person.user_id, person.role)
        if person.disabled:
            log.warning("access review: disabled user %s still holds the role %s", person.user_id, person.role)
    return staff
