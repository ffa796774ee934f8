"""Endpoint URLs: what is accepted, and which addresses a delivery may go to.

A webhook makes the server send requests to addresses its users choose, so by default those
must be public: a URL whose host resolves to a loopback, private, link-local, shared,
reserved or multicast address is refused (``webhook_allow_private`` lifts this, for a
receiver on the same machine or network). The check is made when the endpoint is saved and
again before every delivery, and the delivery connects to the very address that was checked
(so a name that resolves elsewhere a second later — DNS rebinding — gains nothing).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

from ringwell.features.webhooks.errors import InvalidWebhookUrl

__all__ = ["MAX_URL_LENGTH", "Target", "check_url", "is_public", "resolve"]

MAX_URL_LENGTH = 2000
_RESOLVE_TIMEOUT = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect for a URL: its host name and the checked address (None: let httpx resolve)."""

    host: str
    address: str | None


def check_url(url: str) -> SplitResult:
    """The parts of an acceptable endpoint URL: http or https, a host, no credentials or fragment."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"the URL is longer than {MAX_URL_LENGTH} characters", {"field": "url"})
    if not url.isprintable() or any(ch.isspace() for ch in url):
        raise InvalidWebhookUrl("the URL contains spaces or control characters", {"field": "url"})
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)  # what will send it must understand it too
    except (ValueError, httpx.InvalidURL) as exc:
        raise InvalidWebhookUrl(f"not a valid URL: {exc}", {"field": "url"}) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhookUrl("the URL must start with https:// (or http://)", {"field": "url"})
    if not parts.hostname:
        raise InvalidWebhookUrl("the URL has no host", {"field": "url"})
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("credentials in the URL are not allowed: every request is signed instead",
                                {"field": "url"})
    if parts.fragment:
        raise InvalidWebhookUrl("the URL must not have a #fragment", {"field": "url"})
    if port == 0:
        raise InvalidWebhookUrl("port 0 is not a valid port", {"field": "url"})
    return parts


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a globally routable unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def resolve(url: str, *, allow_private: bool) -> Target:
    """Check ``url`` and pick the address to connect to; :class:`InvalidWebhookUrl` if refused.

    With ``allow_private`` nothing is resolved here (httpx connects as usual). Otherwise every
    address the host resolves to must be public, and the first one is returned.
    """
    parts = check_url(url)
    host = parts.hostname or ""
    if allow_private:
        return Target(host, None)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), _RESOLVE_TIMEOUT)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise InvalidWebhookUrl(f"the host {host!r} cannot be resolved", {"field": "url"}) from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
        if not addresses:
            raise InvalidWebhookUrl(f"the host {host!r} has no address", {"field": "url"})
    for address in addresses:
        if not is_public(address):
            raise InvalidWebhookUrl(
                f"the host {host!r} is not a public address ({address}); webhooks go to the internet only",
                {"field": "url"})
    return Target(host, str(addresses[0]))
