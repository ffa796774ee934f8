"""Errors of the webphone slice (stable ``error_id`` values)."""

from __future__ import annotations

from ringwell.errors import Forbidden

__all__ = ["SessionRequired"]


class SessionRequired(Forbidden):
    """SIP secrets are minted for a person logged in to the portal, never for an API key."""

    error_id = "session_required"
