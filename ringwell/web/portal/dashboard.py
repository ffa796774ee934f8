"""Portal page: the dashboard — credit, today's calls and spend, 14 days in a chart, recent calls.

Owners and admins see the whole organization's calls; a member sees their own (the same rule
as the call history; colleagues' calls among the recent ones are a ``calls.read`` audit event).
The days come from ``cdr.history.daily_summary`` (a member's only over their own calls).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ringwell.features.accounts.models import CredentialKind
from ringwell.features.audit.reads import record_reads
from ringwell.features.auth.tokens import Identity
from ringwell.features.cdr import history
from ringwell.web.deps import actor_of
from ringwell.web.portal.calls import call_row, own_calls_only
from ringwell.web.portal.charts import daily_chart
from ringwell.web.portal.common import can, page_identity, services
from ringwell.web.portal.pages import need, org_of, show

__all__ = ["DAYS", "router"]

router = APIRouter()

PageIdentity = Annotated[Identity, Depends(page_identity)]
DAYS = 14
RECENT = 5


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, identity: PageIdentity) -> HTMLResponse:
    need(identity, "org.read")
    org = await org_of(request, identity)
    web = services(request)
    now = datetime.now(UTC)
    context: dict[str, Any] = {"org": org, "now": now, "sip_host": web.settings.advertised_host}
    balance = await web.ledger.balance(org.id) if can(identity, "billing.read") else None
    context["balance"] = balance
    currency = balance.currency if balance is not None else org.currency
    if can(identity, "calls.read"):
        own = own_calls_only(identity)
        days = await history.daily_summary(web.sessions, org.id, DAYS, now, own)
        recent = await history.call_page(web.sessions, org.id, history.CallFilter(user_id=own), None, RECENT)
        # The recent calls are records: colleagues' calls among them are an audited read (as on /calls).
        await record_reads(web.audit, actor_of(request, identity), action="calls.read", org_id=org.id,
                           target_type="call", staff=False,
                           records=[(r.id, (r.caller_user_id, r.callee_user_id)) for r in recent.items])
        context.update(
            own=own is not None, today=days[-1], days=days,
            # Two drawings of the same days; the stylesheet shows the one that fits the screen.
            chart=daily_chart(days, currency, css_class="chart-wide"),
            chart_narrow=daily_chart(days, currency, width=360, height=240, css_class="chart-narrow"),
            period_calls=sum(d.calls for d in days), period_spend=sum(d.charge_minor for d in days),
            recent=[call_row(r) for r in recent.items], currency=currency,
        )
    if identity.user_id is not None:
        context["me"] = await _me(request, org.id, identity.user_id)
    if can(identity, "numbers.read"):
        context["number_count"] = len(await web.numbers.numbers(org.id))
    context["links"] = _links(identity)
    return show(request, "dashboard/index.html", context)


async def _me(request: Request, org_id: str, user_id: str) -> dict[str, Any] | None:
    """The logged-in user's own phone: extension, SIP username, devices registered now."""
    web = services(request)
    creds = await web.accounts.sip_credentials(org_id, user_id, webphone=True)
    devices = [cred for cred in creds if cred.kind != CredentialKind.WEBPHONE.value]
    if not devices:
        return None
    now = time.time()
    online = sum(len(web.registrar.lookup(cred.credential_id, now)) for cred in creds)  # the web phone counts
    return {"extension": devices[0].extension, "sip_username": devices[0].username, "devices": online,
            "user_id": user_id}


def _links(identity: Identity) -> list[tuple[str, str, str]]:
    """Quick links the role may use: (href, label, what it is for)."""
    offered = [
        ("/calls", "Call history", "Filter, page and export calls", "calls.read"),
        ("/users/new", "Add a user", "An extension and a SIP account", "users.write"),
        ("/numbers/search", "Get a number", "Rent a phone number", "numbers.write"),
        ("/billing#top-up", "Add credit", "Pay by card", "billing.topup"),
        ("/billing", "Billing", "Balance, ledger and receipts", "billing.read"),
    ]
    return [(href, label, text) for href, label, text, permission in offered if can(identity, permission)][:4]
