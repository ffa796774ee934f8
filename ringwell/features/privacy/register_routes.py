"""``GET /api/v1/privacy/register``: the data register as JSON, public (issue 8).

It holds no data of anyone — only what Ringwell stores, why and for how long — so it needs no
login, like the privacy notice (``/privacy``) made from the same register.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from ringwell.features.privacy.catalog import REGISTER
from ringwell.features.privacy.notice import register_document
from ringwell.features.privacy.retention import policy_from_settings
from ringwell.web.context import WebServices
from ringwell.web.deps import services

__all__ = ["router"]

router = APIRouter()


@router.get("/privacy/register", tags=["privacy"], operation_id="get_data_register",
            summary="The data register: every stored column, its purpose, legal basis, retention and erasure")
async def get_data_register(web: Annotated[WebServices, Depends(services)]) -> dict[str, Any]:
    """Public. ``tables`` maps each table to its columns; ``retention`` gives each retention class's
    period as configured on this server (days, or null when not purged by age)."""
    return register_document(REGISTER, policy_from_settings(web.settings))
