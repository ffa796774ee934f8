"""Portal accounts: sign-up, email verification, login, TOTP MFA, password reset, change notices.

STUB — being written (issue 5).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.service import AuditLog
from ringwell.features.auth.tokens import SessionStore
from ringwell.mail import Mailer
from ringwell.settings import Settings

__all__ = ["AuthService"]


class AuthService:
    def __init__(self, sessions: async_sessionmaker[Any], *, accounts: AccountsService, web_sessions: SessionStore,
                 audit: AuditLog, mailer: Mailer, settings: Settings) -> None:
        self._sessions = sessions
        self._accounts = accounts
        self._web_sessions = web_sessions
        self._audit = audit
        self._mailer = mailer
        self._settings = settings
