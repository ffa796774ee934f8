"""Portal pages: billing.

STUB — being written (issue 5).
"""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
