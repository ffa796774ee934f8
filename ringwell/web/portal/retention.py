"""Portal pages: retention in the operator console (``/operator/retention``).

Privacy staff (``operator.privacy.manage``) see and manage what keeps data past its period and
what the daily run did: legal holds (placed for an organization, or one person in it found by
email, with a reason; released with one click), organizations closed and waiting for their data
to be deleted (with the date, and whether a hold or an open request keeps them), and the reports
of the latest retention runs, per data class. Placing and releasing a hold go through
``LegalHolds`` and are audited there. Anyone else gets a 403 page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from ringwell.errors import DomainError
from ringwell.features.accounts.models import Organization, User
from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.tokens import Identity
from ringwell.features.privacy.closure import kept_by
from ringwell.features.privacy.holds import InvalidLegalHold, LegalHolds
from ringwell.features.privacy.retention_service import DATA_CLASSES, recent_runs
from ringwell.web.deps import actor_of
from ringwell.web.portal.common import can, page_identity, services
from ringwell.web.portal.operator import TABS
from ringwell.web.portal.pages import show

__all__ = ["router"]

router = APIRouter()

PageIdentity = Annotated[Identity, Depends(page_identity)]
HoldId = Annotated[str, Path(min_length=1, max_length=36)]
MANAGE = "operator.privacy.manage"
PAGE = "/operator/retention"
RELEASED_SHOWN = 50  # released holds listed below the active ones
CLOSED_SHOWN = 500
_DONE = {
    "placed": ("ok", "The legal hold is placed: nothing it covers is deleted until it is released."),
    "released": ("ok", "The legal hold is released: what it kept goes with the next run if it is past its period."),
}


@dataclass(frozen=True, slots=True)
class _HoldRow:
    id: str
    org: str
    person: str | None  # the person's email; None: the whole organization
    reason: str
    created_at: datetime
    released_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Closed:
    org_id: str
    name: str
    closed_at: datetime
    purge_after: datetime
    kept: str | None  # why it waits past its date: a hold, an open request


def _staff(identity: Identity) -> None:
    if not identity.staff or not can(identity, MANAGE):
        raise PermissionDenied("retention and legal holds: privacy staff only", {"permission": MANAGE})


async def _holds(request: Request) -> list[_HoldRow]:
    """Every active hold, then the newest released ones (kept as proof, never to be acted on)."""
    web = services(request)
    service = LegalHolds(web.sessions, web.audit)
    active = await service.all(active_only=True, limit=10_000)
    released = [h for h in await service.all(limit=len(active) + RELEASED_SHOWN) if h.released_at is not None]
    holds = [*active, *released[:RELEASED_SHOWN]]
    async with web.sessions() as session:
        names = dict((await session.execute(select(Organization.id, Organization.name).where(
            Organization.id.in_({h.org_id for h in holds})))).all())
        emails = dict((await session.execute(select(User.id, User.email).where(
            User.id.in_({h.user_id for h in holds if h.user_id})))).all())
    return [_HoldRow(h.id, names.get(h.org_id, h.org_id), None if h.user_id is None else
                     emails.get(h.user_id, f"erased person {h.user_id[:8]}"), h.reason, h.created_at, h.released_at)
            for h in holds]


async def _closed(request: Request) -> list[_Closed]:
    """Closed orgs whose data is not deleted yet, the soonest first (a few queries, whatever their number)."""
    web = services(request)
    period = timedelta(days=web.settings.closed_account_retention_days)
    async with web.sessions() as session:
        orgs = (await session.execute(select(Organization.id, Organization.name, Organization.closed_at).where(
            Organization.closed_at.is_not(None), Organization.purged_at.is_(None))
            .order_by(Organization.closed_at).limit(CLOSED_SHOWN))).all()
        kept = await kept_by(session, [row[0] for row in orgs])
    return [_Closed(org_id, name, closed_at, closed_at + period, kept.get(org_id))
            for org_id, name, closed_at in orgs]


async def _page(request: Request, identity: Identity, *, error: str | None = None,
                form: dict[str, str] | None = None, status_code: int = 200, error_in: str = "place") -> HTMLResponse:
    web = services(request)
    runs = await recent_runs(web.sessions, limit=10)
    latest = runs[0] if runs else None
    rows: list[tuple[str, int, int]] = []
    if latest is not None:
        counts: dict[str, Any] = latest.counts or {}
        rows = [(name, int(counts.get(name, {}).get("purged", 0)), int(counts.get(name, {}).get("held", 0)))
                for name in DATA_CLASSES]
    widest = max((purged for _, purged, _ in rows), default=0) or 1
    done = request.query_params.get("done")
    return show(request, "operator/retention.html", {
        "tabs": [(path, label) for path, label, permission in TABS if can(identity, permission)],
        "holds": await _holds(request), "closed": await _closed(request), "latest": latest, "rows": rows,
        "widest": widest, "runs": runs, "error": error, "error_in": error_in, "form": form or {},
        "closed_shown": CLOSED_SHOWN,
    }, status_code=status_code, flash=_DONE.get(done or ""))


@router.get(PAGE, response_class=HTMLResponse)
async def retention_page(request: Request, identity: PageIdentity) -> HTMLResponse:
    _staff(identity)
    return await _page(request, identity)


@router.post(f"{PAGE}/holds", response_model=None)
async def place_hold(request: Request, identity: PageIdentity,
                     org: Annotated[str, Form(max_length=200)] = "",
                     email: Annotated[str, Form(max_length=320)] = "",
                     reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    """Hold an organization (by name), or one person in it (by email)."""
    _staff(identity)
    web = services(request)
    form = {"org": org, "email": email, "reason": reason}
    try:
        async with web.sessions() as session:
            org_id = (await session.execute(select(Organization.id).where(Organization.name == org.strip()))
                      ).scalar_one_or_none()
            if org_id is None:
                raise InvalidLegalHold(f"no organization named {org.strip()!r}", {"field": "org"})
            user_id = None
            if email.strip():
                user_id = (await session.execute(select(User.id).where(
                    User.org_id == org_id, User.email == email.strip().lower()))).scalar_one_or_none()
                if user_id is None:
                    raise InvalidLegalHold(f"no one with the email {email.strip()!r} in {org.strip()}",
                                           {"field": "email"})
        await LegalHolds(web.sessions, web.audit).place(org_id, user_id, reason, actor=actor_of(request, identity))
    except DomainError as exc:
        return await _page(request, identity, error=exc.message, form=form, status_code=exc.status)
    return RedirectResponse(f"{PAGE}?done=placed", status_code=303)


@router.post(f"{PAGE}/holds/{{hold_id}}/release", response_model=None)
async def release_hold(request: Request, identity: PageIdentity, hold_id: HoldId) -> Response:
    _staff(identity)
    web = services(request)
    try:
        await LegalHolds(web.sessions, web.audit).release(hold_id, actor=actor_of(request, identity))
    except DomainError as exc:
        return await _page(request, identity, error=exc.message, status_code=exc.status, error_in="release")
    return RedirectResponse(f"{PAGE}?done=released", status_code=303)
