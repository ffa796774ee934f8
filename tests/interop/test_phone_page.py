"""The /phone page in a real browser: Debian's headless Chromium (playwright, never a downloaded
browser) against ``ringwell serve`` on loopback, logged in as the demo owner (extension 101).

What a user would notice: the page registers with no console error or CSP violation, the dial pad
types, a call to an extension nobody answers says so and the phone is ready again, a blocked
microphone is named as such, a server that goes away shows "Not registered" and the phone comes
back, the page fits a 360 px screen, and the installed phone opens offline (service worker).

The page's observable state (for these tests and the call tests): ``#phone[data-state]`` (idle |
registering | registered | calling | ringing | incall | ended | error), ``data-registration``,
``data-error``, ``data-end-reason``, ``data-sip-status``, ``data-call-id``, and ``#status``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect, sync_playwright

from tests.peers.ports import LOOPBACK
from tests.peers.server import RingwellServer

pytestmark = pytest.mark.peers

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream"]
ALLOW_MICROPHONE = "--use-fake-ui-for-media-stream"  # answers the permission prompt with "allow"
PHONE = 360


@dataclass
class Demo:
    server: RingwellServer
    base: str
    email: str
    password: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("phone")
    # No mailboxes: the page must show what an unreachable extension looks like (480 at once).
    server = RingwellServer(tmp, extra_env={"RINGWELL_VOICEMAIL_ENABLED": "false"})
    server.data_dir.mkdir(parents=True, exist_ok=True)
    logins = server.setup_demo()
    with server:
        yield Demo(server, f"http://{LOOPBACK}:{server.http_port}", logins.email, logins.password)


@pytest.fixture(scope="module")
def playwright_instance():
    with sync_playwright() as playwright:
        yield playwright


def launch(playwright, *, microphone: bool = True) -> Browser:
    args = [*CHROMIUM_ARGS, ALLOW_MICROPHONE] if microphone else CHROMIUM_ARGS
    return playwright.chromium.launch(executable_path=CHROMIUM, args=args)


class Watch:
    """Console errors, uncaught exceptions and CSP violations of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium reports a CSP violation as a console error ("Refused to ... Content Security Policy").
        if message.type == "error" or "Content Security Policy" in message.text:
            self.errors.append(f"{message.type}: {message.text}")


def open_phone(context: BrowserContext, demo: Demo) -> Page:
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{demo.base}/login?next=/phone")
    page.get_by_test_id("login-email").fill(demo.email)
    page.get_by_test_id("login-password").fill(demo.password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{demo.base}/phone")
    return page


def test_the_phone_registers_dials_and_fits_a_phone_screen(demo, playwright_instance):
    browser = launch(playwright_instance)
    try:
        context = browser.new_context(viewport={"width": PHONE, "height": 740}, has_touch=True)
        page = open_phone(context, demo)
        watch = Watch(page)
        page.reload()
        phone = page.locator("#phone")
        expect(phone).to_have_attribute("data-state", "registered")
        expect(page.locator("#status")).to_have_text("Registered as 101")
        expect(phone).to_have_attribute("data-service-worker", "registered")
        scope = page.evaluate("navigator.serviceWorker.getRegistration('/phone').then((r) => r && r.scope)")
        assert scope == f"{demo.base}/phone"

        # The dial pad and the keyboard type into the input; ⌫ deletes.
        dial = page.locator("#dial-input")
        for key in "1023":
            page.locator(f'#dialpad [data-key="{key}"]').click()
        expect(dial).to_have_value("1023")
        page.locator("#backspace-button").click()
        expect(dial).to_have_value("102")
        page.locator("#status").click()  # the focus leaves the input: keys still type
        page.keyboard.press("#")
        expect(dial).to_have_value("102#")
        dial.fill("12a")
        dial.press("Enter")
        expect(page.locator("#dial-error")).to_contain_text("Enter an extension")
        expect(phone).to_have_attribute("data-state", "registered")

        # Extension 102 exists but nothing of it is registered: the server answers 480 at once.
        dial.fill("102")
        started = time.monotonic()
        dial.press("Enter")
        expect(phone).to_have_attribute("data-state", "ended")
        assert time.monotonic() - started < 5
        expect(phone).to_have_attribute("data-end-reason", "unreachable")
        expect(phone).to_have_attribute("data-sip-status", "480")
        assert re.fullmatch(r"[0-9a-z]{8,}", phone.get_attribute("data-call-id") or "")
        expect(page.locator("#status")).to_contain_text("Not reachable")
        expect(phone).to_have_attribute("data-state", "registered", timeout=6_000)
        # The attempt is in the recent calls (the call history API); a click dials it again.
        first_call = phone.get_attribute("data-call-id")
        recent = page.locator('#recent-list [data-number="102"]').first
        expect(recent).to_contain_text("102", timeout=10_000)
        recent.click()
        expect(phone).not_to_have_attribute("data-call-id", first_call or "")
        expect(phone).to_have_attribute("data-end-reason", "unreachable")
        expect(phone).to_have_attribute("data-state", "registered", timeout=6_000)

        # One column, nothing wider than the screen, keys big enough for a thumb.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE
        for selector in ("#dialpad [data-key='5']", "#call-button", "#dial-input"):
            box = page.locator(selector).bounding_box()
            assert box is not None and box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= PHONE
        assert watch.errors == []

        # Installed and offline: the service worker shows its offline page, not a browser error.
        context.set_offline(True)
        page.goto(f"{demo.base}/phone")
        expect(page.locator("h1")).to_have_text("You are offline")
        context.set_offline(False)
        context.close()
    finally:
        browser.close()


def test_a_blocked_microphone_is_named(demo, playwright_instance):
    browser = launch(playwright_instance, microphone=False)
    try:
        context = browser.new_context(viewport={"width": PHONE, "height": 740})  # no permission granted
        page = open_phone(context, demo)
        phone = page.locator("#phone")
        expect(phone).to_have_attribute("data-state", "error")
        expect(phone).to_have_attribute("data-error", "microphone")
        expect(page.locator("#status")).to_contain_text("Microphone blocked")
        # Registered all the same: the page says so beside the message.
        expect(phone).to_have_attribute("data-registration", "registered")
        expect(page.locator("#registration")).to_have_text("Ext. 101")
        # A call fails on the microphone, and says so.
        page.locator("#dial-input").fill("102")
        page.locator("#call-button").click()
        expect(phone).to_have_attribute("data-end-reason", "microphone")
        expect(page.locator("#status")).to_contain_text("Microphone blocked")
        context.close()
    finally:
        browser.close()


def test_not_registered_while_the_server_is_away_then_registered_again(demo, playwright_instance):
    browser = launch(playwright_instance)
    try:
        context = browser.new_context()
        page = open_phone(context, demo)
        phone = page.locator("#phone")
        expect(phone).to_have_attribute("data-state", "registered")
        demo.server.stop()
        try:
            expect(phone).to_have_attribute("data-state", "error")
            expect(phone).to_have_attribute("data-registration", "failed")
            expect(page.locator("#status")).to_contain_text("Not registered")
            expect(page.locator("#registration")).to_have_text("Not registered")
            retry = page.locator("#retry-button")
            expect(retry).to_be_visible()
            # Retrying with the server still away: the credential request fails, and says why.
            retry.click()
            expect(page.locator("#status")).to_contain_text("no connection to the server")
            page.locator("#dial-input").fill("102")
            page.locator("#dial-input").press("Enter")
            expect(page.locator("#dial-error")).to_contain_text("not registered")
        finally:
            demo.server.start()
        # The page keeps retrying (2, 5, 10 s apart): it registers again by itself.
        expect(phone).to_have_attribute("data-state", "registered", timeout=25_000)
        expect(page.locator("#status")).to_have_text("Registered as 101")
        context.close()
    finally:
        browser.close()

