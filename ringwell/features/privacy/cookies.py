"""The portal's cookie rules, as pure functions (issue 8, deliverable 4; ePrivacy art. 5(3), CCPA/GPC).

* Essential cookies only until the visitor chooses: the login session, the CSRF token and the choice
  itself (``rw_consent``: a random visitor id and the answer). Nothing else is set before consent.
* ``rw_analytics`` — the one non-essential cookie, an anonymous random id — is set only after an
  "accept", lives ``ANALYTICS_MAX_AGE`` (390 days: within the 13 months regulators allow), is
  ``Secure`` over HTTPS and ``SameSite=Lax``; "decline" removes it. Its id (``new_analytics_id``) is
  not the visitor id of ``rw_consent`` (which a consent record ties to a logged-in person) and is stored
  nowhere on the server, so that it stays anonymous.
* Global Privacy Control (``Sec-GPC: 1``, https://privacycg.github.io/gpc-spec/) is an opt-out the
  browser already gave: the banner does not ask, analytics are off whatever was chosen before.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

__all__ = [
    "ANALYTICS_COOKIE",
    "ANALYTICS_MAX_AGE",
    "CONSENT_COOKIE",
    "CONSENT_MAX_AGE",
    "Banner",
    "CookieChoice",
    "banner",
    "gpc_requested",
    "new_analytics_id",
    "new_visitor_id",
]

CONSENT_COOKIE = "rw_consent"
ANALYTICS_COOKIE = "rw_analytics"
ANALYTICS_MAX_AGE = 390 * 86400  # seconds; 13 months is 395 days at most
CONSENT_MAX_AGE = 390 * 86400  # the choice is asked again after as long as an analytics cookie may live

_VISITOR = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_visitor_id() -> str:
    return secrets.token_urlsafe(18)


def new_analytics_id() -> str:
    """The value of ``rw_analytics``: random, unrelated to the visitor id, never written server-side."""
    return secrets.token_urlsafe(18)


def gpc_requested(header: str | None) -> bool:
    """Whether the ``Sec-GPC`` request header asks not to sell or share (its only defined value is ``1``)."""
    return header is not None and header.strip() == "1"


@dataclass(frozen=True, slots=True)
class CookieChoice:
    """What ``rw_consent`` holds: the visitor's random id and whether they accepted analytics."""

    visitor_id: str
    analytics: bool

    def __post_init__(self) -> None:
        if not _VISITOR.fullmatch(self.visitor_id):
            raise ValueError("a visitor id is 16 to 64 URL-safe characters")

    def value(self) -> str:
        return f"{self.visitor_id}.{'1' if self.analytics else '0'}"

    @classmethod
    def parse(cls, value: str | None) -> CookieChoice | None:
        """The choice in a cookie's value; None for none or anything this code did not write."""
        if not value or len(value) > 80:
            return None
        visitor_id, dot, answer = value.rpartition(".")
        if not dot or answer not in ("0", "1") or not _VISITOR.fullmatch(visitor_id):
            return None
        return cls(visitor_id, answer == "1")


@dataclass(frozen=True, slots=True)
class Banner:
    """What the layout shows: whether to ask, and whether analytics are on for this request."""

    ask: bool
    analytics: bool
    gpc: bool


def banner(choice: CookieChoice | None, gpc: bool) -> Banner:
    """Ask when nothing was chosen and the browser sent no GPC; analytics only after an accept, never with GPC."""
    return Banner(ask=choice is None and not gpc, analytics=choice is not None and choice.analytics and not gpc,
                  gpc=gpc)
