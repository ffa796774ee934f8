"""API routes of the webphone slice (`/api/v1/webphone/...`): for a person logged in to the portal."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ringwell.features.auth.tokens import Identity
from ringwell.features.webphone.errors import SessionRequired
from ringwell.features.webphone.quality import QualityReport, store_report
from ringwell.features.webphone.schemas import WebphoneSessionOut
from ringwell.features.webphone.service import WebphoneService
from ringwell.web.deps import actor_of, require_identity, services
from ringwell.web.errors import ErrorBody

__all__ = ["router"]

router = APIRouter(tags=["webphone"])


async def session_identity(request: Request) -> Identity:
    """A logged-in portal session (cookie, with ``X-CSRF-Token``); an API key is refused (403)."""
    identity = await require_identity(request)
    if identity.api_key_id is not None or identity.session_id is None or identity.user_id is None:
        raise SessionRequired("the web phone is for people logged in to the portal, not API keys")
    return identity


def _service(request: Request) -> WebphoneService:
    web = services(request)
    if web.webphone is None:  # pragma: no cover - the composition root always builds it
        raise RuntimeError("the web phone service is not configured")
    return web.webphone


@router.post("/webphone/session", response_model=WebphoneSessionOut, response_model_exclude_none=True,
             status_code=201, operation_id="create_webphone_session",
             summary="A short-lived SIP account for this browser's web phone; the password is in this "
                     "response only (logged-in session with X-CSRF-Token; API keys are refused)",
             responses={403: {"model": ErrorBody, "description": "An API key, or no valid CSRF token"}})
async def create_webphone_session(request: Request) -> WebphoneSessionOut:
    identity = await session_identity(request)
    assert identity.user_id is not None
    opened = await _service(request).open_session(identity.org_id, identity.user_id, actor_of(request, identity),
                                                  request_base=str(request.base_url))
    return WebphoneSessionOut.of(opened)


@router.post("/webphone/quality", status_code=202, operation_id="report_webphone_quality",
             summary="The browser's WebRTC statistics of a call that just ended, kept with its call record "
                     "(logged-in session with X-CSRF-Token; only a party of the call)",
             responses={404: {"model": ErrorBody, "description": "No recent web phone call of yours with that "
                                                                 "Call-ID"},
                        409: {"model": ErrorBody, "description": "The call has not ended"}})
async def report_webphone_quality(request: Request, report: QualityReport) -> dict[str, str]:
    identity = await session_identity(request)
    assert identity.user_id is not None
    web = services(request)
    lookup = web.webrtc_calls or (lambda _sip_call_id: None)
    await store_report(web.sessions, lookup, org_id=identity.org_id, user_id=identity.user_id, report=report)
    return {"status": "stored"}
