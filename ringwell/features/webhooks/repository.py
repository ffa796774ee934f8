"""Queries of the webhooks slice. Everything a user can name is looked up with its org id."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.accounts.models import Organization, User
from ringwell.features.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "admin_emails",
    "attempts",
    "claim",
    "deliveries",
    "delivery",
    "due",
    "endpoint",
    "endpoints",
    "fail_pending",
    "next_due",
    "rowcount",
    "subscribers",
    "threshold_orgs",
]

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def rowcount(result: object) -> int:
    """Rows an UPDATE or DELETE matched."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def endpoints(session: AsyncSession, org_id: str) -> list[WebhookEndpoint]:
    query = (select(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id)
             .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id))
    return list((await session.execute(query)).scalars())


async def endpoint(session: AsyncSession, org_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    query = select(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id, WebhookEndpoint.id == endpoint_id)
    return (await session.execute(query)).scalar_one_or_none()


async def subscribers(session: AsyncSession, org_ids: Collection[str]) -> list[WebhookEndpoint]:
    """The enabled endpoints of these orgs (the caller filters by event type: ``events`` is JSON)."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.org_id.in_(list(org_ids)),
                                          WebhookEndpoint.enabled.is_(True))
    return list((await session.execute(query)).scalars())


async def deliveries(session: AsyncSession, org_id: str, endpoint_id: str, limit: int,
                     before: tuple[datetime, str] | None = None) -> list[WebhookDelivery]:
    """An endpoint's deliveries, newest first, strictly after the ``before`` cursor position."""
    query = select(WebhookDelivery).where(WebhookDelivery.org_id == org_id, WebhookDelivery.endpoint_id == endpoint_id)
    if before is not None:
        at, last_id = before
        query = query.where(or_(WebhookDelivery.created_at < at,
                                and_(WebhookDelivery.created_at == at, WebhookDelivery.id < last_id)))
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def delivery(session: AsyncSession, org_id: str, delivery_id: str) -> WebhookDelivery | None:
    query = select(WebhookDelivery).where(WebhookDelivery.org_id == org_id, WebhookDelivery.id == delivery_id)
    return (await session.execute(query)).scalar_one_or_none()


async def attempts(session: AsyncSession, delivery_id: str) -> list[WebhookAttempt]:
    query = (select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
             .order_by(WebhookAttempt.at, WebhookAttempt.id))
    return list((await session.execute(query)).scalars())


async def due(session: AsyncSession, now: datetime, limit: int,
              busy: Collection[str] = ()) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
    """Pending deliveries whose time has come, oldest first, of enabled endpoints not in ``busy``."""
    query = (select(WebhookDelivery, WebhookEndpoint)
             .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
             .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now,
                    WebhookEndpoint.enabled.is_(True)))
    if busy:
        query = query.where(WebhookDelivery.endpoint_id.not_in(list(busy)))
    query = query.order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at, WebhookDelivery.id)
    rows = (await session.execute(query.limit(limit))).all()
    return [(row[0], row[1]) for row in rows]


async def next_due(session: AsyncSession) -> datetime | None:
    """When the next pending delivery is due (None: nothing pending)."""
    query = select(func.min(WebhookDelivery.next_attempt_at)).where(WebhookDelivery.status == PENDING)
    value: datetime | None = (await session.execute(query)).scalar()
    return value


async def claim(session: AsyncSession, delivery_id: str, seen: datetime | None, lease_until: datetime) -> bool:
    """Take a due delivery for one attempt (optimistic: only if nobody moved it since it was read).

    Its next attempt moves to ``lease_until``, so if this node dies mid-attempt another retries it then.
    """
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == PENDING,
               WebhookDelivery.next_attempt_at == seen)
        .values(next_attempt_at=lease_until)
        .execution_options(synchronize_session=False))
    return rowcount(result) == 1


async def fail_pending(session: AsyncSession, endpoint_id: str, reason: str) -> int:
    """Give up every pending delivery of an endpoint (it was disabled); returns how many."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == PENDING)
        .values(status=FAILED, next_attempt_at=None, last_error=reason[:255])
        .execution_options(synchronize_session=False))
    return rowcount(result)


async def admin_emails(session: AsyncSession, org_id: str) -> list[str]:
    """Login emails of the org's active owners and admins (who get notices about webhooks)."""
    query = (select(User.login_email)
             .where(User.org_id == org_id, User.role.in_(("owner", "admin")), User.login_email.is_not(None),
                    User.disabled_at.is_(None))
             .order_by(User.created_at))
    return [email for email in (await session.execute(query)).scalars() if email]


async def threshold_orgs(session: AsyncSession) -> list[Organization]:
    """Organizations with a low-balance threshold set."""
    query = select(Organization).where(Organization.low_balance_minor.is_not(None)).order_by(Organization.id)
    return list((await session.execute(query)).scalars())
