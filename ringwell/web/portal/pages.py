"""What the dashboard, calls, numbers, users, billing and operator pages share.

``show`` renders with the layout's context plus the formatting helpers below; ``need`` refuses
a page or action the identity's role does not allow (403, the same permission names as the
API); ``org_of`` is the identity's own organization. Times are UTC everywhere in Ringwell (the
layout says so once in its footer). Money is integer minor units formatted exactly by
``billing.money`` with thousands separators added here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from ringwell.features.accounts.models import Organization
from ringwell.features.auth.errors import LoginRequired, PermissionDenied
from ringwell.features.auth.tokens import Identity
from ringwell.features.billing.money import format_minor
from ringwell.web.portal.common import can, render, services

__all__ = ["HELPERS", "day", "duration", "money", "need", "org_of", "short_time", "show", "when"]


def money(amount_minor: int | None, currency: str | None, *, sign: bool = False) -> str:
    """1234550, "USD" → ``"12,345.50 USD"``; ``sign``: a credit shows ``+``. None → ``"—"``."""
    if amount_minor is None or not currency:
        return "—"
    text = format_minor(amount_minor, currency)
    negative = text.startswith("-")
    whole, dot, fraction = text.lstrip("-").partition(".")
    grouped = f"{int(whole):,}"
    prefix = "-" if negative else "+" if sign and amount_minor > 0 else ""
    return f"{prefix}{grouped}{dot}{fraction} {currency}"


def when(moment: datetime | None) -> str:
    """``"2026-03-01 12:05"`` (UTC) or ``"—"``."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "—"


def short_time(moment: datetime | None, now: datetime | None = None) -> str:
    """``"12:05"`` for today, ``"3 Mar 12:05"`` this year, else ``"3 Mar 2025"``."""
    if moment is None:
        return "—"
    if now is not None and moment.date() == now.date():
        return moment.strftime("%H:%M")
    if now is not None and moment.year == now.year:
        return f"{moment.day} {moment:%b %H:%M}"
    return f"{moment.day} {moment:%b %Y}"


def day(moment: datetime | None) -> str:
    """``"3 Mar 2026"`` or ``"—"``."""
    return f"{moment.day} {moment:%b %Y}" if moment is not None else "—"


def duration(seconds: float | None) -> str:
    """65.4 → ``"1:05"``; 3725 → ``"1:02:05"``; None → ``"—"``."""
    if seconds is None:
        return "—"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


HELPERS: dict[str, Any] = {"money": money, "when": when, "day": day, "duration": duration,
                           "short_time": short_time}


def show(request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200,
         flash: tuple[str, str] | None = None) -> HTMLResponse:
    """``render`` with the formatting helpers and an optional ``flash`` (kind, text) banner."""
    values: dict[str, Any] = {**HELPERS, "flash": flash, **(context or {})}
    return render(request, template, values, status_code=status_code)


def need(identity: Identity, permission: str) -> None:
    """Refuse (403 page) unless the identity's role holds ``permission``."""
    if not can(identity, permission):
        raise PermissionDenied(f"your role does not allow this ({permission})", {"permission": permission})


async def org_of(request: Request, identity: Identity) -> Organization:
    """The identity's own organization (a session outliving its org is logged out)."""
    org = await services(request).accounts.org_by_id(identity.org_id)
    if org is None:
        raise LoginRequired("your organization no longer exists")
    return org
