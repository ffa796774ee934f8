"""Pure rules of webhooks: the retry schedule, which URLs and addresses are accepted, the event
envelope, and the API's list of event types staying in step with the service's."""

from __future__ import annotations

import ipaddress
import json
import typing
from datetime import UTC, datetime

import pytest

from ringwell.features.webhooks import events as ev
from ringwell.features.webhooks.dispatch import MAX_DELAY, retry_delay
from ringwell.features.webhooks.errors import InvalidWebhookUrl
from ringwell.features.webhooks.schemas import EventName
from ringwell.features.webhooks.urls import check_url, is_public, resolve


def test_retry_delays_double_and_stop_at_an_hour():
    assert [retry_delay(n, 10.0, 0.0) for n in range(1, 11)] == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert retry_delay(500, 10.0, 0.0) == MAX_DELAY == 3600
    # Jitter only ever makes a wait up to 20 % longer, and never beyond the hour.
    assert retry_delay(1, 10.0, 0.999) == pytest.approx(11.998)
    assert retry_delay(9, 10.0, 0.999) == pytest.approx(2560 * 1.1998)
    assert retry_delay(10, 10.0, 0.999) == 3600


def test_a_day_of_retries():
    elapsed, attempts = 0.0, 1
    while elapsed < 86400:
        elapsed += retry_delay(attempts, 10.0, 0.0)
        attempts += 1
    assert 30 <= attempts <= 35  # about 10 attempts in the first 1.5 h, then hourly


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("::", False), ("ff02::1", False),
])
def test_public_addresses(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize("url, words", [
    ("ftp://example.com/x", "https://"),
    ("example.com/hook", "https://"),
    ("https://", "no host"),
    ("https://user:pw@example.com/", "credentials"),
    ("https://example.com/a#b", "fragment"),
    ("https://example.com/a b", "spaces"),
    ("https://example.com:99999/", "valid URL"),
    ("https://example.com/" + "a" * 2000, "longer"),
])
def test_bad_urls(url, words):
    with pytest.raises(InvalidWebhookUrl, match=words):
        check_url(url)


async def test_private_hosts_are_refused_unless_allowed():
    for url in ("http://127.0.0.1:8080/x", "http://localhost/x", "https://[::1]/x", "http://10.0.0.5/",
                "http://169.254.169.254/latest/meta-data"):
        with pytest.raises(InvalidWebhookUrl, match="not a public address"):
            await resolve(url, allow_private=False)
        target = await resolve(url, allow_private=True)
        assert target.address is None  # httpx resolves as usual
    with pytest.raises(InvalidWebhookUrl, match="not a public address"):
        await resolve("https://203.0.113.9/x", allow_private=False)  # documentation range: not routable


async def test_a_public_literal_is_pinned():
    target = await resolve("https://8.8.8.8/hook", allow_private=False)
    assert (target.host, target.address) == ("8.8.8.8", "8.8.8.8")


def test_event_envelope():
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    event = ev.make_event("org-1", "call.ended", {"at": at, "n": 1}, now=at, event_id="e-1")
    assert json.loads(event.body) == {"id": "e-1", "type": "call.ended", "created_at": "2026-01-02T03:04:05.678Z",
                                      "org_id": "org-1", "data": {"at": "2026-01-02T03:04:05.678Z", "n": 1}}
    with pytest.raises(ValueError, match="unknown webhook event type"):
        ev.make_event("org-1", "call.exploded", {}, now=at)
    with pytest.raises(TypeError):
        ev.make_event("org-1", "call.ended", {"x": object()}, now=at)
    with pytest.raises(ValueError, match="naive"):
        ev.make_event("org-1", "call.ended", {}, now=datetime(2026, 1, 1))


def test_subscriptions():
    assert ev.subscribed(["*"], "balance.low")
    assert ev.subscribed(["call.ended"], "call.ended")
    assert not ev.subscribed(["call.ended"], "call.started")


def test_the_api_offers_exactly_the_subscribable_types():
    assert set(typing.get_args(EventName)) == {ev.ALL, *ev.SUBSCRIBABLE}
    assert ev.TEST_EVENT not in ev.SUBSCRIBABLE
