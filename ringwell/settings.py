"""Typed, frozen settings: defaults in code → ``ringwell.toml`` in the data dir → ``RINGWELL_*``.

Validated once at start; a bad value raises ``ConfigError`` naming the key. Secrets have no
defaults: ``ensure_config()`` generates them into ``ringwell.toml`` (mode 0600) on first start.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ringwell.errors import ConfigError

__all__ = ["CONFIG_FILE", "Settings", "ensure_config", "load_settings"]

CONFIG_FILE = "ringwell.toml"
ENV_PREFIX = "RINGWELL_"
_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    secret_key: str = field(repr=False)
    database_url: str = ""
    bind: str = "0.0.0.0"  # noqa: S104 - a phone system listens on the network by default
    sip_port: int = 5060
    tls_port: int = 5061
    http_port: int = 8080
    rtp_ports: tuple[int, int] = (20000, 29999)
    public_host: str = ""
    sip_realm: str = "ringwell"
    tls_cert: str = ""
    tls_key: str = ""
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600
    max_bindings_per_user: int = 10
    max_message_size: int = 65535
    intake_per_source: int = 1000
    auth_failures_per_source: int = 20
    auth_failures_per_user: int = 10
    auth_failure_window: int = 60
    auth_block_seconds: int = 300
    nonce_lifetime: int = 300
    digest_algorithms: str = "MD5"
    media_timeout: int = 60  # an answered call with no RTP for this long is hung up
    session_expires: int = 1800  # RFC 4028 session interval offered and accepted
    min_se: int = 90  # the shortest session interval accepted (RFC 4028 Min-SE)
    credit_slice: int = 60  # seconds of talk reserved at a time for a call to the phone network
    number_quarantine_days: int = 30  # a released number cannot be rented again for this long
    number_warn_days: int = 3  # days before a number's rental is due that the org is warned (once)
    log_level: str = "INFO"
    # Stripe top-ups (billing): empty means disabled — these are secrets without defaults, never logged.
    stripe_secret_key: str = field(default="", repr=False)
    stripe_webhook_secret: str = field(default="", repr=False)  # the endpoint's signing secret (whsec_...)
    stripe_api_base: str = ""  # empty: Stripe's own https://api.stripe.com (tests point it at a fake)
    # The portal and API (issue 5).
    public_url: str = ""  # how browsers reach the portal, for links in emails; empty: http://<host>:<http_port>
    signup_open: bool = True  # anyone may create an organization from the sign-up page
    session_hours: int = 12  # a portal session lasts at most this long
    session_idle_minutes: int = 120  # and ends after this long without a request
    login_failures_per_account: int = 5  # failed logins per account per window before it is paused
    login_failures_per_source: int = 20  # failed logins per client address per window
    login_failure_window: int = 900  # seconds
    # Email (verification, password reset, change notices). Empty smtp_host: messages are written
    # to <data_dir>/outbox/ as .eml files and the path is logged — nothing leaves the machine.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls | tls | none
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_ca_file: str = ""  # PEM file of CAs the SMTP server's certificate is checked against; empty: the system's
    smtp_timeout: float = 30.0  # seconds for each step of talking to the SMTP server
    mail_from: str = "Ringwell <ringwell@localhost>"
    # Webhooks: retried with exponential back-off for this long, then the endpoint is disabled.
    webhook_retry_window: int = 86400  # seconds
    webhook_first_retry: float = 10.0  # seconds before the first retry (then doubling, capped at an hour)
    webhook_timeout: float = 10.0  # seconds for the receiver to answer
    # Endpoint URLs whose host resolves to a loopback, private, link-local or otherwise non-public
    # address are refused (the server must not be a way into its own network) unless this is true.
    webhook_allow_private: bool = False
    # The web phone (issue 6): HTTPS on the HTTP port (tls_cert/tls_key, else the generated
    # self-signed certificate) makes SIP over WebSocket at /ws secure (wss).
    http_tls: bool = False
    webphone_credential_hours: int = 12  # a browser's SIP credential stops working after this long
    # ICE servers handed to browsers (RTCIceServer urls): comma-separated in the environment.
    webrtc_stun_servers: tuple[str, ...] = ()  # e.g. stun:stun.example.com:3478
    webrtc_turn_servers: tuple[str, ...] = ()  # e.g. turn:turn.example.com:3478?transport=udp
    webrtc_turn_username: str = ""
    webrtc_turn_password: str = field(default="", repr=False)
    # Host candidates the server offers browsers (empty: every IPv4 interface, loopback included)
    # and its address beyond a 1:1 NAT (announced as a server-reflexive candidate).
    webrtc_ice_addresses: tuple[str, ...] = ()
    webrtc_public_address: str = ""
    # Encryption at rest (recordings, voicemail, transcripts; docs/encryption.md): the master key is
    # base64 of 32 random bytes from RINGWELL_MASTER_KEY, else from master_key_file (empty:
    # <data_dir>/master.key, generated with mode 0600 on first use). Never logged, never defaulted.
    master_key: str = field(default="", repr=False)
    master_key_file: str = ""
    # Key epochs: no data key is used longer than this, so a deleted file's copy (a backup) stops
    # decrypting within it (the daily job rotates, re-encrypts what is live, destroys old keys).
    key_epoch_days: int = 30
    voicemail_retention_days: int = 365  # a voicemail (audio and transcript) is kept this long (policy: 12 months)
    recording_retention_days: int = 365  # a call recording is kept this long (who is recorded: the org's policies)
    # Retention of everything else, in days (issue 8, docs/privacy-retention.md): the daily retention run
    # deletes what is older, except for people and orgs under a legal hold.
    call_record_retention_days: int = 365  # call records, unless the org chose its own period ...
    call_record_max_days: int = 365  # ... which may not exceed this ...
    # ... or its country's own bound, "CC=days" (ISO 3166-1 alpha-2): e.g. US carriers keep CDRs for years.
    call_record_max_days_by_country: tuple[str, ...] = ("US=2557",)
    usage_retention_days: int = 365  # sessions, webhook deliveries and attempts, other usage traces
    closed_account_retention_days: int = 90  # a disabled user (and their files) is deleted this long after
    ledger_retention_days: int = 2557  # ledger entries: the accounting period (7 years), without dialled numbers
    audit_retention_days: int = 1096  # audit events
    privacy_records_retention_days: int = 1096  # closed data requests and incidents, legal holds, retention reports
    # Unanswered calls to a user (busy, no answer, do-not-disturb, nothing registered) go to their
    # voicemail box, unless the user switched their mailbox off. False: no mailboxes on this server;
    # such calls fail with 480/486/408 as before.
    voicemail_enabled: bool = True
    voicemail_max_seconds: float = 120.0  # the longest message a caller may leave
    voicemail_silence_seconds: float = 5.0  # a caller silent this long has finished
    voicemail_pin_lockout_minutes: float = 15.0  # a mailbox stays locked this long after 3 wrong PINs on *97

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'ringwell.db'}"

    @property
    def advertised_host(self) -> str:
        """The address phones should be given: public_host, else the bind address."""
        if self.public_host:
            return self.public_host
        if self.bind in ("0.0.0.0", "::"):  # noqa: S104
            return "127.0.0.1"
        return self.bind

    @property
    def digest_offer(self) -> tuple[str, ...]:
        return tuple(a.strip().upper() for a in self.digest_algorithms.split(","))

    @property
    def portal_url(self) -> str:
        """The portal's base URL (no trailing slash), for links in emails."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.advertised_host
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.http_tls else "http"
        return f"{scheme}://{host}:{self.http_port}"

    @property
    def security_log(self) -> Path:
        return self.data_dir / "security.log"

    @property
    def master_key_path(self) -> Path:
        """The key file; a relative ``master_key_file`` is relative to the data dir."""
        return self.data_dir / (self.master_key_file or "master.key")


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(key: str, value: Any) -> Any:
    kind = _FIELDS[key].type
    try:
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError("not a number")
            number = int(value)
            if key.endswith("_port") and not 0 <= number <= 65535:
                raise ValueError("port out of range")
            if not key.endswith("_port") and number < 0:
                raise ValueError("must not be negative")
            return number
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError("not a number")
            real = float(value)
            if real < 0:
                raise ValueError("must not be negative")
            return real
        if kind == "tuple[int, int]":
            low, _, high = str(value).partition("-")
            pair = (int(low), int(high))
            if not 1024 <= pair[0] < pair[1] <= 65535:
                raise ValueError("expected LOW-HIGH within 1024-65535")
            return pair
        if kind == "tuple[str, ...]":
            items = value if isinstance(value, list) else str(value).split(",")
            return tuple(str(item).strip() for item in items if str(item).strip())
        if kind == "Path":
            return Path(str(value))
        return str(value)
    except ValueError as exc:
        raise ConfigError(key, f"invalid value {value!r}: {exc}") from None


def _validate(values: dict[str, Any]) -> None:
    try:
        ipaddress.ip_address(values.get("bind", "0.0.0.0"))  # noqa: S104
    except ValueError:
        raise ConfigError("bind", "must be an IP address") from None
    if values.get("min_expires", 60) > values.get("max_expires", 7200):
        raise ConfigError("min_expires", "must not exceed max_expires")
    algorithms = [a.strip().upper() for a in values.get("digest_algorithms", "MD5").split(",")]
    if not algorithms or any(a not in ("MD5", "SHA-256") for a in algorithms) or len(set(algorithms)) != len(
        algorithms
    ):
        raise ConfigError("digest_algorithms", "a comma-separated list of MD5 and SHA-256, most preferred first")
    if values.get("min_se", 90) > values.get("session_expires", 1800) or values.get("min_se", 90) < 2:
        raise ConfigError("min_se", "must be at least 2 and not exceed session_expires")
    if not 10 <= values.get("credit_slice", 60) <= 3600:
        raise ConfigError("credit_slice", "must be 10-3600 seconds")
    if values.get("media_timeout", 60) < 1:
        raise ConfigError("media_timeout", "must be at least 1 second")
    if values.get("stripe_secret_key") and not values.get("stripe_webhook_secret"):
        raise ConfigError("stripe_webhook_secret", "required when stripe_secret_key is set (payments are credited "
                          "by signed webhooks)")
    if values.get("stripe_api_base", "") and not values["stripe_api_base"].startswith(("https://", "http://")):
        raise ConfigError("stripe_api_base", "must be an http(s) URL")
    if values.get("smtp_security", "starttls") not in ("starttls", "tls", "none"):
        raise ConfigError("smtp_security", "one of starttls, tls, none")
    if values.get("smtp_ca_file") and not Path(values["smtp_ca_file"]).is_file():
        raise ConfigError("smtp_ca_file", f"no such file: {values['smtp_ca_file']}")
    if not 1 <= values.get("smtp_timeout", 30.0) <= 300:
        raise ConfigError("smtp_timeout", "must be 1-300 seconds")
    if (values.get("smtp_username") and values.get("smtp_security") == "none"
            and values.get("smtp_host", "") not in ("localhost", "127.0.0.1", "::1")):
        raise ConfigError("smtp_security", "none would send smtp_password in clear: use starttls or tls")
    if values.get("public_url", "") and not values["public_url"].startswith(("https://", "http://")):
        raise ConfigError("public_url", "must be an http(s) URL")
    if values.get("session_hours", 12) < 1 or values.get("session_idle_minutes", 120) < 1:
        raise ConfigError("session_hours", "session_hours and session_idle_minutes must be at least 1")
    if not 0 < values.get("webhook_first_retry", 10.0) <= 3600:
        raise ConfigError("webhook_first_retry", "must be more than 0 and at most 3600 seconds")
    if not 0 < values.get("webhook_timeout", 10.0) <= 60:
        raise ConfigError("webhook_timeout", "must be more than 0 and at most 60 seconds")
    if values.get("webhook_retry_window", 86400) < 1:
        raise ConfigError("webhook_retry_window", "must be at least 1 second")
    if not 1 <= values.get("webphone_credential_hours", 12) <= 168:
        raise ConfigError("webphone_credential_hours", "must be 1-168 hours")
    if not 1 <= values.get("voicemail_retention_days", 365) <= 3650:
        raise ConfigError("voicemail_retention_days", "must be 1-3650 days")
    if not 1 <= values.get("recording_retention_days", 365) <= 3650:
        raise ConfigError("recording_retention_days", "must be 1-3650 days")
    if not 1 <= values.get("key_epoch_days", 30) <= 30:
        raise ConfigError("key_epoch_days", "must be 1-30 days (deleted media must be unrecoverable within 30 days)")
    _validate_retention(values)
    if not 0 < values.get("voicemail_pin_lockout_minutes", 15.0) <= 1440:
        raise ConfigError("voicemail_pin_lockout_minutes", "must be more than 0 and at most 1440 minutes")
    for key, schemes in (("webrtc_stun_servers", ("stun:", "stuns:")), ("webrtc_turn_servers", ("turn:", "turns:"))):
        for url in values.get(key, ()):
            if not url.startswith(schemes) or _CONTROL_RE.search(url):
                raise ConfigError(key, f"{url!r} is not a {schemes[0][:-1]}: URL (RFC 7064/7065)")
    if values.get("webrtc_turn_servers") and not (values.get("webrtc_turn_username")
                                                  and values.get("webrtc_turn_password")):
        raise ConfigError("webrtc_turn_username", "TURN servers need webrtc_turn_username and webrtc_turn_password")
    url = values.get("database_url", "")
    if url and not url.startswith(("sqlite", "postgresql")):
        raise ConfigError("database_url", "only sqlite and postgresql URLs are supported")


def _validate_retention(values: dict[str, Any]) -> None:
    """The retention periods (issue 8): each in range, and an org's default within the bound."""
    for key, low, high, default in (("call_record_retention_days", 1, 36500, 365),
                                    ("call_record_max_days", 1, 36500, 365),
                                    ("usage_retention_days", 1, 3650, 365),
                                    ("closed_account_retention_days", 1, 3650, 90),
                                    ("ledger_retention_days", 365, 36500, 2557),
                                    ("audit_retention_days", 30, 36500, 1096),
                                    # at least two years: 47 CFR 64.2011(d) (breach records), CCPA (requests)
                                    ("privacy_records_retention_days", 731, 36500, 1096)):
        if not low <= values.get(key, default) <= high:
            raise ConfigError(key, f"must be {low}-{high} days")
    if values.get("call_record_retention_days", 365) > values.get("call_record_max_days", 365):
        raise ConfigError("call_record_retention_days", "must not exceed call_record_max_days")
    seen: set[str] = set()
    for entry in values.get("call_record_max_days_by_country", ("US=2557",)):
        country, _, days = entry.partition("=")
        if (not re.fullmatch(r"[A-Z]{2}", country) or not days.isdigit() or not 1 <= int(days) <= 36500
                or country in seen):
            raise ConfigError("call_record_max_days_by_country",
                              f"{entry!r}: expected COUNTRY=DAYS (ISO 3166-1 alpha-2 in capitals, 1-36500 days, "
                              "each country once), e.g. US=2557")
        seen.add(country)


def load_settings(data_dir: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build the settings from the data dir's TOML file and the environment."""
    env = dict(os.environ) if env is None else env
    root = Path(data_dir or env.get("RINGWELL_DATA_DIR") or "data").resolve()
    values: dict[str, Any] = {}
    path = root / CONFIG_FILE
    if path.exists():
        try:
            loaded = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from None
        for key, value in loaded.items():
            if key not in _FIELDS or key == "data_dir":
                raise ConfigError(key, f"unknown setting in {path}")
            values[key] = _coerce(key, value)
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == "RINGWELL_DATA_DIR" or name.startswith("RINGWELL_TEST_"):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in _FIELDS:
            raise ConfigError(name, "unknown setting")
        values[key] = _coerce(key, value)
    if not values.get("secret_key"):
        raise ConfigError("secret_key", f"missing: run 'ringwell serve' once to generate {path}")
    _validate(values)
    return Settings(data_dir=root, **values)


def ensure_config(data_dir: str | Path | None = None) -> Path:
    """Create the data dir and a ``ringwell.toml`` with generated secrets if there is none."""
    root = Path(data_dir or os.environ.get("RINGWELL_DATA_DIR") or "data").resolve()
    root.mkdir(parents=True, exist_ok=True)
    path = root / CONFIG_FILE
    if not path.exists():
        text = (
            "# Ringwell settings. Every key can be overridden by RINGWELL_<KEY> in the environment.\n"
            "# Generated on first start; keep this file private (it holds secrets).\n"
            f'secret_key = "{secrets.token_urlsafe(32)}"\n'
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    return path
