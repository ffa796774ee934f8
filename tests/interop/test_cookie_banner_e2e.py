"""The cookie banner in a real browser (Debian's headless Chromium driven by playwright, against
``ringwell serve`` on loopback): it asks on the first visit with only essential cookies set,
"Accept" (sent in the background by app.js) hides it and leaves a 13-month analytics cookie,
"Decline" on the cookie page removes it; a browser sending Global Privacy Control is never asked."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.interop.test_portal_e2e import CHROMIUM, CHROMIUM_ARGS
from tests.peers.ports import LOOPBACK
from tests.peers.server import RingwellServer

pytestmark = pytest.mark.peers

THIRTEEN_MONTHS = 395 * 86400


def test_the_banner_asks_once_sets_analytics_only_after_accept_and_honours_gpc(tmp_path: Path) -> None:
    server = RingwellServer(tmp_path)
    base = f"http://{LOOPBACK}:{server.http_port}"
    with server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{base}/login")
            banner = page.get_by_test_id("cookie-banner")
            expect(banner).to_be_visible()
            assert {c["name"] for c in context.cookies()} <= {"__Host-rw_csrf"}

            page.get_by_test_id("login-email").fill("typed@example.com")
            page.get_by_test_id("cookie-banner-accept").click()
            expect(banner).to_be_hidden()
            # Answered in the background: the page was not reloaded (what was typed is still there).
            assert page.get_by_test_id("login-email").input_value() == "typed@example.com"
            cookies = {c["name"]: c for c in context.cookies()}
            assert "rw_consent" in cookies
            analytics = cookies["rw_analytics"]
            assert analytics["sameSite"] == "Lax" and 0 < analytics["expires"] - time.time() <= THIRTEEN_MONTHS
            page.reload()
            expect(page.get_by_test_id("login-email")).to_be_visible()
            assert page.get_by_test_id("cookie-banner").count() == 0  # asked once

            page.goto(f"{base}/privacy/cookies")
            page.get_by_test_id("cookie-decline").click()
            expect(page.get_by_test_id("flash")).to_be_visible()
            assert "rw_analytics" not in {c["name"] for c in context.cookies()}

            gpc = browser.new_context(extra_http_headers={"Sec-GPC": "1"})
            other = gpc.new_page()
            other.goto(f"{base}/login")
            expect(other.get_by_test_id("login-email")).to_be_visible()
            assert other.get_by_test_id("cookie-banner").count() == 0
            assert "rw_analytics" not in {c["name"] for c in gpc.cookies()}
        finally:
            browser.close()
