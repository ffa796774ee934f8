"""The HTTP side: health for now (the API and portal arrive with later slices)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

__all__ = ["build_app"]


def build_app(status: Callable[[], dict[str, Any]], routes: Sequence[BaseRoute] = ()) -> Starlette:
    """``/healthz`` plus the slices' ``routes`` (e.g. billing's ``POST /webhooks/stripe``)."""

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", **status()})

    return Starlette(routes=[Route("/healthz", healthz), *routes])
