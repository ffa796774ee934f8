"""The composition root: builds every part from the settings and runs them in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import signal
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from aioice.ice import get_host_addresses

from ringwell.blobs import blob_store
from ringwell.blobs.rotation import EPOCH_JOB_EVERY, rotate_due
from ringwell.features.accounts import repository as accounts_repo
from ringwell.features.accounts.models import User
from ringwell.features.accounts.repository import CredentialRecord
from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.review import review_if_due
from ringwell.features.audit.service import AuditLog
from ringwell.features.auth.service import AuthService
from ringwell.features.auth.tokens import ApiKeys, SessionStore
from ringwell.features.billing.payments import stripe_provider
from ringwell.features.billing.routes import stripe_routes
from ringwell.features.billing.service import LedgerService
from ringwell.features.cdr.service import CdrWriter
from ringwell.features.fraud.counters import CallCounters
from ringwell.features.fraud.service import FraudService
from ringwell.features.numbers.service import NumbersService
from ringwell.features.outbound.service import OrgProfile, OutboundService
from ringwell.features.privacy.closure import ClosureService
from ringwell.features.privacy.consent import ConsentService, recording_announced
from ringwell.features.privacy.erasure import ErasureService
from ringwell.features.privacy.retention import policy_from_settings
from ringwell.features.privacy.retention_service import RetentionService
from ringwell.features.rating.service import RatingService
from ringwell.features.recordings.service import RecordingService
from ringwell.features.trunks.service import TrunkDirectory, TrunksService
from ringwell.features.voicemail import repository as voicemail_repo
from ringwell.features.voicemail.email import VoicemailMailer
from ringwell.features.voicemail.hold_music import HoldMusicService
from ringwell.features.voicemail.mailbox import MailboxService
from ringwell.features.voicemail.service import VoicemailService
from ringwell.features.voicemail.transcripts import TranscriptionJobs
from ringwell.features.webhooks.calls import CallEvents
from ringwell.features.webhooks.service import WebhooksService
from ringwell.features.webphone.service import WebphoneService
from ringwell.mail import mailer_from
from ringwell.media.ports import PortPool
from ringwell.media.prompts import PromptCache
from ringwell.media.relay import MediaRelay, MediaSession
from ringwell.pbx.call import CallConfig
from ringwell.pbx.calls import CachedDirectory, CallManager
from ringwell.pbx.endpoint import CredentialCache, SipEndpoint
from ringwell.pbx.mwi import ExpiresPolicy, MwiManager
from ringwell.pbx.on_hold import HoldMusic
from ringwell.pbx.originate import DigitCall
from ringwell.pbx.recording import CallRecordings
from ringwell.pbx.registrar import BindingStore, Registrar, RegistrarLimits
from ringwell.pbx.security import AuthGuard, GuardLimits, open_security_log
from ringwell.pbx.trunk_connect import TrunkConnections
from ringwell.pbx.trunk_register import TrunkRegistrations
from ringwell.pbx.verifier import CallerIdVerifier
from ringwell.pbx.voicemail_box import Message, VoicemailBoxes
from ringwell.settings import Settings
from ringwell.sip.dialog import ViaSpec
from ringwell.sip.digest import NonceManager
from ringwell.storage.engine import create_engine, migrate, session_factory
from ringwell.tasks import Periodic
from ringwell.transport.certs import ensure_self_signed, server_context
from ringwell.transport.source import Source
from ringwell.transport.stream import StreamConnection, StreamServer
from ringwell.transport.udp import UdpTransport, open_udp
from ringwell.transport.ws import WsConnection, WsServer
from ringwell.web.app import build_app
from ringwell.web.context import WebServices
from ringwell.webrtc.leg import IceConfig, WebRtcLeg, local_host_of

__all__ = ["RingwellServer", "serve"]

log = logging.getLogger(__name__)


def _raise_fd_limit() -> None:
    """Every call holds four RTP/RTCP sockets: allow as many descriptors as the system lets us."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1_048_576 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            log.debug("could not raise the open-file limit from %d", soft)


class Housekeeping:
    """Watches the event loop and keeps the cyclic garbage collector's pauses short.

    Every ``tick`` it measures how late the loop ran it (stalls become SIP retransmissions;
    ``/healthz`` shows the worst recent and overall lag). The heap of a busy server is mostly
    live transactions and calls, and a collection scans every tracked object of its
    generations: the default schedule paused everything for 0.5–0.9 s at 400 calls/s
    (decision 0009). So at start-up and then every second the survivors are frozen, and
    collections only scan what was allocated since; per-call objects are acyclic (tests check
    it) and are freed by reference counting while frozen. Every ``full_every`` seconds all is
    unfrozen and fully collected (one longer pause), bounding what a library's cycle could keep.
    """

    def __init__(self, tick: float = 0.05, freeze_every: float = 1.0, full_every: float = 600.0) -> None:
        self.tick = tick
        self.freeze_every = freeze_every
        self.full_every = full_every
        self.worst_ms = 0.0  # since start
        self.recent_ms = 0.0  # worst over the last ~10 s
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _gc_watch(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = (time.perf_counter() - self._gc_started) * 1000
        if pause > 100:
            log.warning("garbage collection (generation %s) paused everything for %.0f ms",
                        info.get("generation"), pause)

    async def _run(self) -> None:
        window = frozen = full = time.monotonic()
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            lag = (now - before - self.tick) * 1000
            if now - window > 10:
                window, self.recent_ms = now, 0.0
            self.recent_ms = max(self.recent_ms, lag)
            self.worst_ms = max(self.worst_ms, lag)
            if lag > 250:
                log.warning("event loop stalled for %.0f ms", lag)
            if now - full >= self.full_every:
                full = frozen = now
                gc.unfreeze()
                gc.collect()
                gc.freeze()
            elif now - frozen >= self.freeze_every:
                frozen = now
                gc.freeze()

    def start(self) -> None:
        if self._task is None:
            gc.collect()
            gc.freeze()  # everything built at start-up
            gc.set_threshold(50_000, 20, 100)
            gc.callbacks.append(self._gc_watch)
            self._task = asyncio.create_task(self._run(), name="housekeeping")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            gc.callbacks.remove(self._gc_watch)
            gc.unfreeze()  # back to Python's own schedule (matters when embedded, e.g. in tests)


class _HttpServer(uvicorn.Server):
    """uvicorn inside Ringwell's loop: Ringwell owns the signals, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def ice_config(settings: Settings) -> IceConfig:
    """How browser legs take part in ICE: the configured host addresses, else every IPv4 interface
    with loopback added (aioice leaves it out; a browser on this host may reach us only there)."""
    addresses = settings.webrtc_ice_addresses
    if not addresses:
        found = [a for a in get_host_addresses(use_ipv4=True, use_ipv6=False) if not a.startswith("127.")]
        addresses = ("127.0.0.1", *found)
    return IceConfig(addresses=addresses, public_address=settings.webrtc_public_address or None,
                     stun_servers=settings.webrtc_stun_servers, turn_servers=settings.webrtc_turn_servers,
                     turn_username=settings.webrtc_turn_username or None,
                     turn_password=settings.webrtc_turn_password or None)


class RingwellServer:
    """One Ringwell node: SIP over UDP, TCP, TLS and WebSocket, and HTTP(S)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings.effective_database_url)
        self.sessions = session_factory(self.engine)
        self.accounts = AccountsService(self.sessions, settings.sip_realm)
        self.registrar = Registrar(
            RegistrarLimits(settings.min_expires, settings.max_expires, settings.default_expires,
                            settings.max_bindings_per_user)
        )
        self.store = BindingStore(self.registrar, self.sessions)
        self.endpoint = SipEndpoint(
            realm=settings.sip_realm,
            registrar=self.registrar,
            credentials=CredentialCache(self.accounts.credential),
            guard=AuthGuard(GuardLimits(settings.auth_failures_per_source, settings.auth_failures_per_user,
                                        settings.auth_failure_window, settings.auth_block_seconds)),
            nonces=NonceManager(settings.secret_key.encode(), settings.nonce_lifetime),
            max_message_size=settings.max_message_size,
            intake_per_source=settings.intake_per_source,
            algorithms=settings.digest_offer,
        )
        self.cdr = CdrWriter(self.sessions)
        self.ports = PortPool(*settings.rtp_ports)
        self.relay = MediaRelay(self.ports, settings.bind, timeout=settings.media_timeout,
                                on_timeout=self._media_timeout)
        host = settings.advertised_host
        self._ice = ice_config(settings)
        self.trunks = TrunkDirectory(TrunksService(self.sessions, settings.secret_key))
        self.node = socket.gethostname()[:64]
        self.ledger = LedgerService(self.sessions, node=self.node)
        self.rating = RatingService(self.sessions)
        self.numbers = NumbersService(self.sessions, self.ledger, quarantine_days=settings.number_quarantine_days,
                                      warn_days=settings.number_warn_days)
        self.counters = CallCounters()
        self.outbound = OutboundService(
            orgs=self._org_profile, rating=self.rating, ledger=self.ledger, fraud=FraudService(self.sessions),
            counters=self.counters, numbers=self.numbers, trunks=self.trunks, slice_seconds=settings.credit_slice,
        )
        self._orgs: dict[str, tuple[float, OrgProfile | None]] = {}
        self.payments = stripe_provider(settings, self.sessions, self.ledger)  # None unless Stripe is configured
        self.calls = CallManager(
            sip=self.endpoint,
            registrar=self.registrar,
            directory=CachedDirectory(self.accounts.reachable),
            relay=self.relay,
            # Call records, and call.* webhooks (a lambda: self.web is built below, before any call).
            cdr=CallEvents(self.cdr, lambda org_id, kind, data: self.web.webhooks.emit(org_id, kind, data)),  # noqa: PLW0108
            config=CallConfig(host=host, via_for=self._via_for, contact_for=self._contact_for,
                              session_expires=settings.session_expires, min_se=settings.min_se),
            node=self.node,
            outbound=self.outbound,
            inbound=self.numbers.route_inbound,
            counters=self.counters,
            webrtc=self._webrtc_leg,
        )
        self.endpoint.calls = self.calls
        # Message-waiting lamps (RFC 3842); the voicemail feature sets ``mwi.counts`` and calls
        # ``mwi.notify_mailbox(user_id)`` when a mailbox changes.
        self.mwi = MwiManager(sip=self.endpoint, registrar=self.registrar, via_for=self._via_for,
                              contact_for=self._contact_for, credentials_of=self._user_credentials,
                              policy=ExpiresPolicy(settings.min_expires, settings.max_expires,
                                                   min(3600, settings.max_expires)))
        self.endpoint.subscriptions = self.mwi
        # Voicemail: encrypted messages (ringwell.blobs), boxes answering unanswered calls
        # (pbx.voicemail_box), the lamps told of every change.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.blobs = blob_store(settings, self.sessions)
        self.prompts = PromptCache(settings.data_dir)
        self.voicemail = VoicemailService(self.sessions, self.blobs, on_change=self._mailbox_changed,
                                          retention_days=settings.voicemail_retention_days)
        self.mwi.counts = self.voicemail.counts
        self.mailboxes = MailboxService(self.sessions, self.voicemail, audit=AuditLog(self.sessions),
                                        lockout_minutes=settings.voicemail_pin_lockout_minutes)
        self.hold_music = HoldMusicService(self.blobs)  # hold_music(org_id): the PCM a held call hears
        self.voicemail_mail = VoicemailMailer(self.sessions, self.voicemail, mailer_from(settings), settings.portal_url)
        self.transcripts = TranscriptionJobs(self.voicemail, on_done=self.voicemail_mail.message_ready)
        self.voicemail_purge = Periodic("voicemail-retention", self._purge_voicemail, every=3600.0, first=120.0)
        if settings.voicemail_enabled:
            self.calls.voicemail = VoicemailBoxes(
                self.calls, ports=self.ports, local_host=local_host_of(settings.bind), prompts=self.prompts,
                deposit=self._deposit_voicemail, max_seconds=settings.voicemail_max_seconds,
                silence_seconds=settings.voicemail_silence_seconds)
            self.calls.voicemail.mailboxes = self.mailboxes  # *97 (PIN, messages) and custom greetings
        # Call recording: the org's policies decide, every party hears the announcement first,
        # the audio is encrypted as it is written (pbx.recording, features.recordings).
        self.recordings = RecordingService(self.sessions, self.blobs,
                                           retention_days=settings.recording_retention_days)
        self.consent = ConsentService(self.sessions)  # the announcement played is recorded as consent
        self.calls.recordings = CallRecordings(self.recordings, self.prompts,
                                               on_announced=recording_announced(self.consent))
        self.calls.hold_music = HoldMusic(self.hold_music.hold_music)  # the org's upload, to whoever waits
        self.recording_purge = Periodic("recording-retention", self._purge_recordings, every=3600.0, first=150.0)
        self._mwi_tasks: set[asyncio.Task[None]] = set()
        self.accounts.credentials_changed = self._credentials_changed
        self.accounts.user_files = voicemail_repo.user_files  # a deleted user's mailbox files go with them
        self.accounts.delete_file = self.blobs.delete
        # Deleting a user erases the person: rows, files, their data keys, anonymised records (issue 8).
        self.erasure = ErasureService(self.sessions, self.blobs, audit=AuditLog(self.sessions),
                                     policy=policy_from_settings(settings))
        self.erasure.credentials_changed = self._credentials_changed
        self.accounts.erase = self.erasure.erase_hook()
        self.endpoint.sender = self._sender
        self.endpoint.trunk_of = self.trunks.identify
        self.registrations = TrunkRegistrations(self.endpoint, self._via_for, host, settings.sip_port,
                                                self.trunks.cached)
        self.verifier = CallerIdVerifier(self.numbers, self.outbound, lambda: DigitCall(
            sip=self.endpoint, dialogs=self.calls, ports=self.ports, bind=settings.bind, host=host,
            via_for=self._via_for, contact_for=self._contact_for))
        self.renewals = Periodic("number-renewals", self._renew_numbers, every=3600.0, first=60.0)
        self.web = self._web_services()
        if self.calls.browsers is not None:
            self.web.webrtc_calls = self.calls.browsers.call_of  # the web phone's quality reports
        self.web.voicemail = self.voicemail
        self.web.recordings = self.recordings
        self.web.live_recordings = self.calls.recordings
        self.web.erasure = self.erasure  # privacy deletion requests: the SIP side forgets the person's logins
        # Closing an organization (operator API), and its purge 90 days later (the retention run).
        self.closure = ClosureService.from_settings(settings, self.sessions, self.blobs, self.erasure)
        self.closure.credentials_changed = self._credentials_changed
        self.closure.api_keys_changed = self.web.api_keys.forget
        self.web.closure = self.closure
        self.webphone_purge = Periodic("webphone-purge", self._purge_webphone, every=3600.0, first=60.0)
        # The daily retention run (issue 8): everything past its period, except what a legal hold keeps.
        # Voicemail and recordings are also purged hourly (within the hour of their deadline), through
        # the same service so that legal holds are honoured there too.
        self.retention = RetentionService(self.sessions, policy=policy_from_settings(settings), blobs=self.blobs,
                                          accounts=self.accounts, audit=AuditLog(self.sessions),
                                          voicemail=self.voicemail, recordings=self.recordings, closure=self.closure)
        self.retention_job = Periodic("retention", self._run_retention, every=86400.0, first=600.0)
        self.access_review = Periodic("access-review", self._review_access, every=86400.0, first=1200.0)
        # Key epochs (issue 8): no data key lives longer than key_epoch_days, so a deleted file's
        # backup copy stops decrypting within that time (ringwell.blobs.rotation.rotate_due).
        self.key_epochs = Periodic("key-epochs", self._rotate_key_epochs, every=EPOCH_JOB_EVERY.total_seconds(),
                                   first=900.0)
        self.housekeeping = Housekeeping()
        self.udp: UdpTransport | None = None
        self.tcp = StreamServer("tcp", self._stream_message, self._stream_error,
                                max_message_size=settings.max_message_size)
        self.trunk_links = TrunkConnections(self.tcp, self.trunks.cached)
        self.tls: StreamServer | None = None
        # SIP over WebSocket on the HTTP port: idle longer than the longest registration, since
        # a closed connection takes its bindings with it.
        self.ws = WsServer(self._ws_message, self._ws_closed, max_message_size=settings.max_message_size,
                           idle_timeout=max(3600.0, settings.max_expires + 120.0))
        self._http: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._security_handler: logging.Handler | None = None
        self.started = False

    def _credentials_changed(self, credential_id: str, username: str) -> None:
        """A SIP password changed or a credential was deleted: forget its HA1 and its devices here.
        (Other nodes notice within the credential cache's TTL and their registrations expire.)"""
        self.endpoint.credentials.forget(username)
        dropped = self.registrar.forget(credential_id)
        if dropped:
            log.info("dropped %d registrations of %s after its credentials changed", dropped, username)

    async def _user_credentials(self, user_id: str) -> list[CredentialRecord]:
        """Every SIP credential of a user (devices and web phones): where their lamps are."""
        async with self.sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                return []
            return await accounts_repo.credential_records(session, user.org_id, user_id, webphone=True)

    def _web_services(self) -> WebServices:
        """What the API and the portal are built on: the same services the SIP side uses."""
        settings = self.settings
        audit = AuditLog(self.sessions)
        mailer = mailer_from(settings)
        api_keys = ApiKeys(self.sessions)
        web_sessions = SessionStore(self.sessions, lifetime=timedelta(hours=settings.session_hours),
                                    idle=timedelta(minutes=settings.session_idle_minutes))
        return WebServices(
            settings=settings, sessions=self.sessions, accounts=self.accounts, ledger=self.ledger,
            numbers=self.numbers, rating=self.rating, trunks=self.trunks.service, registrar=self.registrar,
            audit=audit, web_sessions=web_sessions, api_keys=api_keys,
            auth=AuthService(self.sessions, accounts=self.accounts, web_sessions=web_sessions, audit=audit,
                             mailer=mailer, settings=settings, api_keys=api_keys),
            mailer=mailer,
            webhooks=WebhooksService(self.sessions, audit=audit, mailer=mailer, settings=settings),
            payments=self.payments,
            webphone=WebphoneService(self.sessions, self.accounts, audit, settings),
        )

    async def _org_profile(self, org_id: str) -> OrgProfile | None:
        """An organization's country, currency and age, cached for a minute."""
        cached = self._orgs.get(org_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        org = await self.accounts.org_by_id(org_id)
        profile = OrgProfile(org.id, org.name, org.country, org.currency, org.created_at) if org else None
        if len(self._orgs) > 10_000:
            self._orgs.clear()
        self._orgs[org_id] = (now + 60.0, profile)
        return profile

    async def _renew_numbers(self) -> None:
        report = await self.numbers.renew_due(datetime.now(UTC))
        if report.warned or report.renewed or report.released:
            log.info("number renewals: %d warned, %d renewed, %d released", len(report.warned),
                     len(report.renewed), len(report.released))

    async def _purge_webphone(self) -> None:
        purged = await self.web.webphone.purge_expired() if self.web.webphone is not None else 0
        if purged:
            log.info("purged %d expired web phone credentials", purged)

    async def _deposit_voicemail(self, message: Message) -> None:
        box = message.mailbox
        stored = await self.voicemail.deposit(box.org_id, box.user_id, message.caller_number, message.caller_name,
                                              message.pcm, message.call_id)
        if stored is not None:
            self.transcripts.submit(box.org_id, stored.id, message.pcm)

    async def _purge_recordings(self) -> None:
        await self.retention.purge_recordings(datetime.now(UTC))

    async def _rotate_key_epochs(self) -> None:
        await rotate_due(self.blobs, datetime.now(UTC), epoch=timedelta(days=self.settings.key_epoch_days),
                         org_rotated=self.voicemail.reindex)  # the search key follows the org's key

    async def _run_retention(self) -> None:
        await self.retention.run(datetime.now(UTC))

    async def _review_access(self) -> None:
        await review_if_due(self.web.audit, datetime.now(UTC))  # who holds staff roles, every 30 days

    async def _purge_voicemail(self) -> None:
        purged = await self.retention.purge_voicemails(datetime.now(UTC))
        if purged:
            log.info("deleted %d voicemails past their retention", purged)

    def _mailbox_changed(self, user_id: str) -> None:
        """Light (or put out) the user's message-waiting lamps, in the background."""
        task = asyncio.ensure_future(self.mwi.notify_mailbox(user_id))
        self._mwi_tasks.add(task)
        task.add_done_callback(self._mwi_done)

    def _mwi_done(self, task: asyncio.Task[None]) -> None:
        self._mwi_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("message-waiting notification failed", exc_info=task.exception())

    def _webrtc_leg(self, label: str, on_failed: Callable[[], None]) -> WebRtcLeg:
        """A browser leg (``ringwell.webrtc``): its plain side on the relay's host and port pool."""
        return WebRtcLeg(label=label, ports=self.ports, local_host=local_host_of(self.settings.bind),
                         ice=self._ice, on_failed=on_failed)

    def _media_timeout(self, session: MediaSession) -> None:
        self.calls.media_timeout(session)

    def _port_for(self, transport: str) -> int:
        if transport in ("ws", "wss"):
            return self.settings.http_port
        return self.settings.tls_port if transport == "tls" else self.settings.sip_port

    def _via_for(self, flow: Source) -> ViaSpec:
        return ViaSpec(flow.transport, self.settings.advertised_host, self._port_for(flow.transport))

    def _contact_for(self, flow: Source) -> str:
        host = self.settings.advertised_host
        if ":" in host:
            host = f"[{host}]"
        # RFC 7118 §5.2: the URI parameter is "ws" for WebSocket and secure WebSocket alike (Via says WSS).
        transport = "ws" if flow.transport == "wss" else flow.transport
        return f"<sip:{host}:{self._port_for(flow.transport)};transport={transport}>"

    def _sender(self, flow: Source) -> Callable[[bytes], None] | None:
        """How to reach a peer: UDP to its address, TCP/TLS/WebSocket over the connection it opened."""
        if flow.transport == "udp":
            udp = self.udp
            if udp is None:
                return None
            host, port = flow.host, flow.port
            return lambda data: udp.send(data, host, port)
        if flow.transport in ("ws", "wss"):
            ws = self.ws.connections.get((flow.host, flow.port))
            return ws.send if ws is not None and ws.source == flow else None
        server = self.tls if flow.transport == "tls" else self.tcp
        if server is None:
            return None
        connection = server.connections.get((flow.host, flow.port))
        return connection.send if connection is not None else None

    def _datagram(self, data: bytes, source: Source) -> None:
        udp = self.udp
        assert udp is not None
        self.endpoint.datagram(data, source, lambda out: udp.send(out, source.host, source.port))

    def _stream_message(self, data: bytes, source: Source, conn: StreamConnection) -> None:
        self.endpoint.stream_message(data, source, conn.send)

    def _stream_error(self, exc: Any, source: Source, conn: StreamConnection) -> None:
        self.endpoint.stream_error(exc, conn.send)

    def _ws_message(self, data: bytes, source: Source, conn: WsConnection) -> None:
        self.endpoint.stream_message(data, source, conn.send)

    def _ws_closed(self, source: Source) -> None:
        """RFC 7118 §5: the bindings of a closed WebSocket are unreachable: drop them now."""
        dropped = self.registrar.drop_flow(source)
        if dropped:
            log.info("dropped %d registrations of %s after its WebSocket closed", len(dropped),
                     ", ".join(sorted({b.username for b in dropped})))

    def status(self) -> dict[str, Any]:
        lag = self.housekeeping
        return {
            "sip": {"udp": self.settings.sip_port, "tcp": self.settings.sip_port, "tls": self.settings.tls_port,
                    "ws": self.settings.http_port},
            "websockets": len(self.ws.connections),
            "registrations": len(self.registrar.all(time.time())),
            "transactions": self.endpoint.transactions,
            "calls": self.calls.active,
            "media_sessions": self.relay.sessions,
            "webrtc_legs": self.calls.browsers.active if self.calls.browsers is not None else 0,
            "intake_dropped": self.endpoint.intake.dropped,
            "loop_lag_ms": {"recent": round(lag.recent_ms, 1), "worst": round(lag.worst_ms, 1)},
            "trunks": self.registrations.status(),
            "webhooks": {"queued": self.web.webhooks.queued, "dropped": self.web.webhooks.dropped},
        }

    async def start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._security_handler = open_security_log(settings.security_log)
        _raise_fd_limit()
        await migrate(self.engine)
        recovered = await self.cdr.recover(datetime.now(UTC))
        if recovered:
            log.warning("closed %d call records left open by an earlier run as interrupted", recovered)
        loaded = await self.store.load(time.time())
        log.info("loaded %d registrations", loaded)
        released = await self.ledger.release_stale_reservations(self.node)
        if released:
            log.warning("released %d credit reservations left by an earlier run", released)
        await self.trunks.start()
        bind = settings.bind
        self.udp = await open_udp(bind, settings.sip_port, self._datagram)
        await self.tcp.start(bind, settings.sip_port)
        if settings.tls_cert and settings.tls_key:
            cert, key = Path(settings.tls_cert), Path(settings.tls_key)
        else:
            cert, key = ensure_self_signed(settings.data_dir / "tls", [settings.advertised_host])
        self.tls = StreamServer("tls", self._stream_message, self._stream_error, server_context(cert, key),
                                settings.max_message_size)
        await self.tls.start(bind, settings.tls_port)
        await self.endpoint.start()
        await self.store.start()
        await self.cdr.start()
        self.relay.start()
        self.trunk_links.start()
        self.registrations.start()
        self.verifier.start()
        self.renewals.start()
        self.webphone_purge.start()
        self.voicemail_purge.start()
        self.recording_purge.start()
        self.retention_job.start()
        self.access_review.start()
        self.key_epochs.start()
        self.transcripts.start()
        self.web.webhooks.start(ledger=self.ledger)  # with the ledger: balance.low checks
        routes = [*(stripe_routes(self.payments) if self.payments else ()), self.ws.route()]
        app = build_app(self.status, routes, self.web, warm=True)
        # WebSocket messages are SIP messages: uvicorn refuses larger ones (close 1009) before
        # reading them whole; no per-message deflate (small messages, and memory per connection).
        config = uvicorn.Config(app, host=bind, port=settings.http_port, log_level="warning", lifespan="off",
                                access_log=False, ws_max_size=settings.max_message_size,
                                ws_per_message_deflate=False,
                                ssl_certfile=str(cert) if settings.http_tls else None,
                                ssl_keyfile=str(key) if settings.http_tls else None)
        self._http = _HttpServer(config)
        self._http_task = asyncio.create_task(self._http.serve(), name="http")
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.02)
        self.started = True
        self.housekeeping.start()
        log.info("SIP on %s udp/tcp %d, tls %d; HTTP%s on %d (SIP over WebSocket at /ws)", bind, settings.sip_port,
                 settings.tls_port, "S" if settings.http_tls else "", settings.http_port)

    async def stop(self) -> None:
        """Stop taking messages first, then the logic, then write what is left (idempotent)."""
        try:
            await self.housekeeping.stop()
            if self.started:
                await self.calls.stop()
            await self.mwi.stop()
            await self.registrations.stop()
            await self.trunk_links.stop()
            await self.verifier.stop()
            await self.renewals.stop()
            await self.webphone_purge.stop()
            await self.voicemail_purge.stop()
            await self.recording_purge.stop()
            await self.retention_job.stop()
            await self.access_review.stop()
            await self.key_epochs.stop()
            await self.transcripts.stop()
            await self.web.webhooks.stop()
            await self.trunks.stop()
            if self._http is not None and self._http_task is not None:
                self._http.should_exit = True
                with contextlib.suppress(asyncio.CancelledError):
                    await self._http_task
                self._http_task = None
            if self.udp is not None:
                self.udp.close()
                self.udp = None
            await self.tcp.stop()
            if self.tls is not None:
                await self.tls.stop()
            await self.endpoint.stop()
            await self.relay.stop()
            await self.store.stop()
            await self.cdr.stop()
            self.started = False
        finally:
            await self.engine.dispose()
            if self._security_handler is not None:
                logging.getLogger("ringwell.security").removeHandler(self._security_handler)
                self._security_handler.close()
                self._security_handler = None


async def serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM."""
    server = RingwellServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        await stop.wait()
    finally:
        log.info("shutting down")
        await server.stop()
