"""API routes of the rating slice (`/api/v1`): thin — parse, call the service, serialise.

STUB — being written (issue 5).
"""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
