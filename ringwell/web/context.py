"""The typed dependency object the HTTP side is built from (one per server, on ``app.state``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.service import AuditLog
from ringwell.features.auth.tokens import ApiKeys, SessionStore
from ringwell.features.billing.service import LedgerService
from ringwell.features.numbers.service import NumbersService
from ringwell.features.rating.service import RatingService
from ringwell.features.trunks.service import TrunksService
from ringwell.pbx.registrar import Registrar
from ringwell.settings import Settings

if TYPE_CHECKING:
    from ringwell.features.auth.service import AuthService
    from ringwell.features.billing.payments import StripeProvider
    from ringwell.features.privacy.closure import ClosureService
    from ringwell.features.privacy.erasure import ErasureService
    from ringwell.features.privacy.requests_service import RequestsService
    from ringwell.features.recordings.service import RecordingService
    from ringwell.features.voicemail.service import VoicemailService
    from ringwell.features.webhooks.service import WebhooksService
    from ringwell.features.webphone.service import WebphoneService
    from ringwell.mail import Mailer
    from ringwell.pbx.recording import CallRecordings

__all__ = ["WebServices"]


@dataclass(slots=True)
class WebServices:
    settings: Settings
    sessions: async_sessionmaker[Any]
    accounts: AccountsService
    ledger: LedgerService
    numbers: NumbersService
    rating: RatingService
    trunks: TrunksService
    registrar: Registrar
    audit: AuditLog
    web_sessions: SessionStore
    api_keys: ApiKeys
    auth: AuthService
    mailer: Mailer
    webhooks: WebhooksService
    payments: StripeProvider | None = None
    webphone: WebphoneService | None = None
    # SIP Call-ID of a browser leg that ended recently -> (call record id, side): BrowserLegs.call_of
    webrtc_calls: Callable[[str], tuple[str, str] | None] | None = None
    voicemail: VoicemailService | None = None  # composed on first use by the voicemail routes when unset
    recordings: RecordingService | None = None  # composed on first use by the recordings routes when unset
    live_recordings: CallRecordings | None = None  # the calls in progress on this node (None: no SIP here)
    privacy_requests: RequestsService | None = None  # composed on first use by the privacy request routes
    # The server's ErasureService (its credentials_changed hook tells the SIP side): privacy deletions use it.
    erasure: ErasureService | None = None
    closure: ClosureService | None = None  # closing organizations; composed on first use when unset
