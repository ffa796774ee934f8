"""HTTP for billing: the Stripe webhook endpoint (thin: parse → provider → serialise)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ringwell.errors import DomainError
from ringwell.features.billing.errors import InvalidWebhook, PaymentProviderError
from ringwell.features.billing.payments import PaymentProvider

__all__ = ["MAX_WEBHOOK_BYTES", "router", "stripe_routes"]

router = APIRouter()  # /api/v1 billing routes (balance, ledger, top-ups) — being written (issue 5)

MAX_WEBHOOK_BYTES = 512 * 1024  # Stripe events are a few kB; refuse to buffer more than this


def _error(exc: DomainError, status: int) -> JSONResponse:
    return JSONResponse({"error_id": exc.error_id, "message": exc.message, "details": exc.details}, status_code=status)


def stripe_routes(provider: PaymentProvider) -> list[Route]:
    """``POST /webhooks/stripe``: 200 ``{"received": true}`` once handled (also for events
    ignored or already handled); 400 for a bad signature or body; 502 when Stripe could not be
    asked about the payment (Stripe delivers the event again later)."""

    async def webhook(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
            return _error(InvalidWebhook("the body is too large", {"max_bytes": MAX_WEBHOOK_BYTES}), 413)
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            return _error(InvalidWebhook("the body is too large", {"max_bytes": MAX_WEBHOOK_BYTES}), 413)
        try:
            await provider.handle_webhook(body, request.headers.get("stripe-signature", ""))
        except InvalidWebhook as exc:
            return _error(exc, 400)
        except PaymentProviderError as exc:
            return _error(exc, 502)
        return JSONResponse({"received": True})

    return [Route("/webhooks/stripe", webhook, methods=["POST"])]
