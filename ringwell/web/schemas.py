"""The base of every API request body.

Strict: JSON ``true`` is not the integer 1 and ``"5"`` is not 5 — an amount of credit or a
port number arrives as a JSON number or the request is refused (422), never coerced.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["RequestBody"]


class RequestBody(BaseModel):
    model_config = ConfigDict(strict=True)
