"""A new organization, from sign-up to its first call, in a real browser.

Debian's headless Chromium driven by playwright (never a downloaded browser) against ``ringwell
serve`` on loopback, with a real SMTP server (aiosmtpd) receiving the verification email and
two real softphones (baresip) registered with the SIP credentials the portal showed once:
sign up → verify via the emailed link → log in → enable TOTP MFA → log out → log in with a TOTP
code → create two users → rent a number → baresip calls the other user → the call appears in
the call history → the CSV download holds it.
"""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.audio import speech_wav
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.ports import LOOPBACK
from tests.peers.server import RingwellServer
from tests.peers.smtp import SmtpSink

pytestmark = pytest.mark.peers

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
INVENTORY = "number,country,type,monthly_price,setup_price,trunk\n+1 415 555 0123,US,fixed,2.50,1.00,\n"
ORG = "Acme Plumbing"
EMAIL = "owner@acme-plumbing.example"
PASSWORD = "correct horse battery staple"


def _create_user(page: Page, base: str, name: str, email: str, extension: str) -> tuple[str, str]:
    page.goto(f"{base}/users/new")
    page.locator("#name").fill(name)
    page.locator("#email").fill(email)
    page.locator("#extension").fill(extension)
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#sip-password")).to_be_visible()
    return page.locator("#sip-username").inner_text().strip(), page.locator("#sip-password").inner_text().strip()


def _login(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_test_id("login-email").fill(EMAIL)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()


def test_an_organization_signs_up_and_sees_its_first_call_in_the_browser(tmp_path: Path) -> None:
    voice = speech_wav(tmp_path / "caller.wav", "Hello, this is the first call of Acme Plumbing.")
    with SmtpSink() as smtp:
        server = RingwellServer(tmp_path, extra_env={
            "RINGWELL_SMTP_HOST": smtp.host, "RINGWELL_SMTP_PORT": str(smtp.port), "RINGWELL_SMTP_SECURITY": "none",
        })
        base = f"http://{LOOPBACK}:{server.http_port}"
        server.extra_env["RINGWELL_PUBLIC_URL"] = base
        inventory = tmp_path / "numbers.csv"
        inventory.write_text(INVENTORY)
        phones: list[Baresip] = []
        with server, sync_playwright() as playwright:
            server.admin("import-numbers", str(inventory))
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(accept_downloads=True)
                page = context.new_page()
                page.set_default_timeout(15_000)

                # Sign up; nothing works before the address is verified.
                page.goto(f"{base}/signup")
                page.get_by_test_id("signup-org").fill(ORG)
                page.get_by_test_id("signup-name").fill("Olive Owner")
                page.get_by_test_id("signup-email").fill(EMAIL)
                page.get_by_test_id("signup-password").fill(PASSWORD)
                page.get_by_test_id("signup-submit").click()
                page.wait_for_url(re.compile(r"/signup/done"))
                mail = smtp.wait_for_sync(to=EMAIL, timeout=20)
                page.goto(mail.link(f"{base}/verify-email"))
                expect(page.locator("main")).to_contain_text("email address is confirmed")

                # Log in, turn on MFA, log out, log in again with a TOTP code.
                _login(page, base)
                page.wait_for_url(f"{base}/")
                page.goto(f"{base}/settings/security")
                page.get_by_test_id("mfa-begin").click()
                secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "").strip()
                totp = pyotp.TOTP(secret)
                page.get_by_test_id("mfa-confirm-code").fill(totp.now())
                page.get_by_test_id("mfa-confirm-submit").click()
                expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)
                page.get_by_role("button", name="Log out").click()
                page.wait_for_url(re.compile(r"/login"))
                page.goto(f"{base}/")
                page.wait_for_url(re.compile(r"/login"))  # the session is gone
                _login(page, base)
                page.wait_for_url(re.compile(r"/login/mfa"))
                page.get_by_test_id("mfa-code").fill(totp.at(time.time() + 30))  # the enrolment code is spent
                page.get_by_test_id("mfa-submit").click()
                page.wait_for_url(f"{base}/")
                expect(page.locator("header")).to_contain_text(ORG)

                # Two users; their SIP passwords are shown once.
                caller_user, caller_password = _create_user(page, base, "Carl Caller", "carl@acme-plumbing.example",
                                                            "201")
                callee_user, callee_password = _create_user(page, base, "Cleo Callee", "cleo@acme-plumbing.example",
                                                            "202")
                page.goto(f"{base}/users")
                expect(page.locator("main")).to_contain_text("Carl Caller")
                assert caller_password not in page.content()

                # Rent a number with credit the operator added.
                server.admin("credit", "--org", ORG, "--amount", "20.00", "--reason", "welcome credit")
                page.goto(f"{base}/numbers/search?country=US")
                page.get_by_role("link", name="Rent…").first.click()
                page.get_by_role("button", name=re.compile(r"^Rent for")).click()
                page.goto(f"{base}/numbers")
                expect(page.locator("main")).to_contain_text("415")

                # A real call between two softphones registered with those credentials.
                answers = ("mwi=no", "pubint=0", "audio_codecs=pcmu", "answermode=auto")
                callee = Baresip(tmp_path / "callee", BaresipAccount(callee_user, callee_password, server.sip_port,
                                                                     extra=answers), audio_source=voice, seconds=90)
                caller = Baresip(tmp_path / "caller", BaresipAccount(caller_user, caller_password, server.sip_port),
                                 audio_source=voice, seconds=90)
                phones += [callee, caller]
                callee.start()
                callee.wait_registered(15)
                caller.start()
                caller.wait_registered(15)
                page.goto(f"{base}/users")
                caller.dial(f"sip:202@{LOOPBACK}:{server.sip_port}")
                caller.wait_event("CALL_ESTABLISHED", timeout=15)
                time.sleep(2.0)
                caller.command("hangup")
                caller.wait_event("CALL_CLOSED", timeout=15)

                # The call history shows it once its record is closed (written behind the call: poll briefly).
                deadline = time.monotonic() + 20
                while True:
                    page.goto(f"{base}/calls")
                    answered = page.locator("table.calls tbody .badge", has_text="answered")
                    if answered.count() > 0:
                        break
                    assert time.monotonic() < deadline, page.locator("table.calls").inner_text()
                    time.sleep(0.5)
                expect(page.locator("table.calls tbody tr")).to_have_count(1)
                expect(page.locator("table.calls tbody tr").first).to_contain_text("202")
                with page.expect_download() as download:
                    page.get_by_role("link", name="Download CSV").click()
                rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
                assert len(rows) == 1, rows
                row = rows[0]
                assert "201" in row.values() or "'201" in row.values(), row
                assert any(value.lstrip("'") == "202" for value in row.values()), row
                assert "answered" in row.values(), row
            finally:
                for phone in phones:
                    phone.stop()
                browser.close()
