"""One HTTP POST of a delivery: signed headers, a bounded time, no redirects, nothing read back.

Only the status code matters (2xx: delivered); the response body is never read, so a receiver
cannot make the server download anything. Proxies from the environment are not used, and
redirects are not followed (a redirect would lead around the address check of ``urls``).
"""

from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass

import httpx

from ringwell import __version__
from ringwell.features.webhooks.errors import InvalidWebhookUrl
from ringwell.features.webhooks.signing import SIGNATURE_HEADER, sign
from ringwell.features.webhooks.urls import resolve

__all__ = ["USER_AGENT", "Outcome", "Sender"]

log = logging.getLogger(__name__)

USER_AGENT = f"Ringwell-Webhooks/{__version__}"
_ERROR_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt got: the HTTP status (None: no answer) and why it failed, if it did."""

    status: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sender:
    """Posts signed event bodies (see ``signing``) to endpoint URLs."""

    def __init__(self, *, timeout: float, allow_private: bool) -> None:
        self._timeout = timeout
        self._allow_private = allow_private
        self._ssl: ssl.SSLContext | None = None

    def _context(self) -> ssl.SSLContext:
        # Built once (loading the CA bundle takes a while); certificates and host names are checked.
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def post(self, url: str, body: str, *, secret: str, event_type: str, delivery_id: str,
                   now: float | None = None) -> Outcome:
        """POST ``body`` to ``url`` signed with ``secret`` at ``now`` (unix time; default: the clock)."""
        started = time.monotonic()
        payload = body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Ringwell-Event": event_type,
            "Ringwell-Delivery": delivery_id,
            SIGNATURE_HEADER: sign(secret, payload, int(time.time() if now is None else now)),
        }

        def done(status: int | None, error: str | None) -> Outcome:
            return Outcome(status, error[:_ERROR_LENGTH] if error else None, int((time.monotonic() - started) * 1000))

        try:
            target = await resolve(url, allow_private=self._allow_private)
        except InvalidWebhookUrl as exc:
            return done(None, exc.message)
        try:
            request_url = httpx.URL(url)
            extensions: dict[str, str] = {}
            if target.address is not None:
                # Connect to the checked address; the Host header and TLS (SNI and the certificate
                # check) still use the name.
                headers["Host"] = request_url.netloc.decode("ascii")
                request_url = request_url.copy_with(host=target.address)
                extensions["sni_hostname"] = target.host
            verify: ssl.SSLContext | bool = self._context() if request_url.scheme == "https" else True
            # A client per attempt: pooled connections would be shared between endpoints whose
            # names point at the same address, each checked for a different name.
            async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False, trust_env=False,
                                         verify=verify) as client:
                request = client.build_request("POST", request_url, content=payload, headers=headers,
                                               extensions=extensions)
                response = await client.send(request, stream=True)
                status = response.status_code
                await response.aclose()  # the body is not read
        except httpx.TimeoutException:
            return done(None, f"no answer within {self._timeout:g} s")
        except httpx.ConnectError as exc:
            return done(None, f"could not connect: {exc or type(exc).__name__}")
        except httpx.HTTPError as exc:
            return done(None, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            # Whatever broke, the attempt is recorded (and retried on schedule) rather than lost:
            # an attempt that raises would keep its delivery claimed and retried for ever.
            log.exception("webhook delivery %s to %s: unexpected error", delivery_id, url)
            return done(None, f"internal error ({type(exc).__name__})")
        if 200 <= status < 300:
            return done(status, None)
        if 300 <= status < 400:
            return done(status, f"HTTP {status}: redirects are not followed; use the final URL")
        return done(status, f"HTTP {status}")
