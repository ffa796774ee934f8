"""The public privacy notice at ``/privacy``, generated from the data register (issue 8)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ringwell.features.privacy.catalog import REGISTER
from ringwell.features.privacy.notice import notice
from ringwell.features.privacy.retention import policy_from_settings
from ringwell.web.portal.common import render, services

__all__ = ["router"]

router = APIRouter()


@router.get("/privacy", response_class=HTMLResponse)
async def privacy_notice(request: Request) -> HTMLResponse:
    """No login needed: it says what the server keeps about anyone, with this server's periods."""
    sections = notice(REGISTER, policy_from_settings(services(request).settings))
    return render(request, "privacy/notice.html", {"sections": sections})
