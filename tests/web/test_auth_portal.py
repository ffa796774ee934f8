"""Accounts through the portal, as a browser would use them, with mail over real SMTP (aiosmtpd):
sign-up, verification, login, TOTP, recovery codes, reset, changes and their notices, CSRF, cookies."""

from __future__ import annotations

import dataclasses
import html
import re
import time
from urllib.parse import urlsplit

import pyotp
import pytest
from sqlalchemy import select

from ringwell.features.accounts.errors import OrganizationNotFound
from ringwell.features.accounts.models import User
from ringwell.features.accounts.service import UserSpec
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor
from ringwell.features.auth.errors import LoginExists
from ringwell.features.auth.service import AuthService
from ringwell.web.deps import SESSION_COOKIE
from tests.peers.smtp import SmtpSink

PORTAL = "https://ringwell.test"
PASSWORD = "correct horse battery"


@pytest.fixture
def smtp(request):
    with SmtpSink(tls=getattr(request, "param", None)) as sink:
        yield sink


@pytest.fixture
def web_settings(smtp):
    return {**smtp.settings(), "public_url": PORTAL}


# -- helpers: what a browser reads off a page ---------------------------------------------------------
def field(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no field {name!r} in the page"
    return html.unescape(match.group(1))


def by_testid(page: str, name: str) -> str:
    match = re.search(rf'data-testid="{re.escape(name)}"[^>]*>(.*?)</', page, re.S)
    assert match, f"no data-testid={name!r} in the page"
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def recovery_codes(page: str) -> list[str]:
    block = re.search(r'data-testid="recovery-codes"[^>]*>(.*?)</ul>', page, re.S)
    assert block
    return re.findall(r"<code>([^<]+)</code>", block.group(1))


def path_of(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PORTAL
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def post_form(client, path: str, data: dict[str, str], *, page_path: str | None = None):
    """GET the page the form is on (for its CSRF token), then POST the form with it."""
    page = await client.get(page_path or path)
    return await client.post(path, data={"csrf_token": field(page.text, "csrf_token"), **data})


async def login(client, email: str, password: str, next_path: str = "/"):
    page = await client.get(f"/login?next={next_path}")
    return await client.post("/login", data={"csrf_token": field(page.text, "csrf_token"), "email": email,
                                             "password": password, "next": field(page.text, "next")})


def set_cookie(response, name: str) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


def code_after(totp: pyotp.TOTP, used: set[str]) -> str:
    """A current code not used yet (the previous/next step is accepted too; a used step never again)."""
    for offset in (0, 30):
        code = totp.at(time.time() + offset)
        if code not in used:
            used.add(code)
            return code
    raise AssertionError("no fresh code")


async def audit(web, action: str) -> list[AuditEvent]:
    async with web.services.sessions() as session:
        rows = (await session.execute(select(AuditEvent).where(AuditEvent.action == action)
                                      .order_by(AuditEvent.at))).scalars().all()
    return list(rows)


async def signup(client, email: str, org: str, password: str = PASSWORD):
    return await post_form(client, "/signup", {
        "org_name": org, "name": "Ann Owner", "email": email, "password": password, "country": "GB",
        "currency": "GBP",
    })


# -- the whole journey --------------------------------------------------------------------------------
async def test_signup_verify_login_enable_mfa_and_log_in_with_codes(web, smtp):
    browser = web.client()
    email = "ann@example.com"
    done = await signup(browser, "Ann@Example.com", "Ann's Bakery")
    assert done.status_code == 303 and done.headers["location"] == "/signup/done"
    org = await web.services.accounts.org("Ann's Bakery")
    assert (org.country, org.currency, org.kind) == ("GB", "GBP", "customer")
    mail = await smtp.wait_for(to=email, subject="Confirm your email", timeout=10)
    link = mail.link(f"{PORTAL}/verify-email?token=")

    # Not verified yet: the right password is refused, with a way to get a new link.
    refused = await login(browser, email, PASSWORD)
    assert refused.status_code == 403 and "confirm your email" in refused.text
    assert 'data-testid="resend-form"' in refused.text
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")

    verified = await browser.get(path_of(link))
    assert verified.status_code == 200 and "confirmed" in by_testid(verified.text, "flash")
    again = await browser.get(path_of(link))
    assert again.status_code == 422  # used once

    # The owner got an extension and SIP credentials like any user.
    async with web.services.sessions() as session:
        owner = (await session.execute(select(User).where(User.login_email == email))).scalar_one()
    assert (owner.role, owner.extension, owner.name) == ("owner", "100", "Ann Owner")
    assert owner.password_hash.startswith("$argon2id$")
    assert await web.services.accounts.sip_credentials(org.id, owner.id)

    ok = await login(browser, email, PASSWORD, "/settings")
    assert ok.status_code == 303 and ok.headers["location"] == "/settings"
    assert (await browser.get("/settings")).status_code == 200

    # Enrol: the key is on the page (text and QR), the first code turns MFA on, recovery codes shown once.
    begun = await post_form(browser, "/settings/security/mfa/begin", {}, page_path="/settings/security")
    assert begun.status_code == 303
    page = (await browser.get("/settings/security")).text
    secret = by_testid(page, "totp-secret")
    assert 'src="data:image/svg+xml' in page
    totp, used = pyotp.TOTP(secret), set()
    wrong = await post_form(browser, "/settings/security/mfa/confirm", {"code": "000000" if totp.now() != "000000"
                                                                        else "111111"},
                            page_path="/settings/security")
    assert wrong.status_code == 422 and by_testid(wrong.text, "form-error")
    confirmed = await post_form(browser, "/settings/security/mfa/confirm", {"code": code_after(totp, used)},
                                page_path="/settings/security")
    assert confirmed.status_code == 200
    codes = recovery_codes(confirmed.text)
    assert len(codes) == 10
    later = (await browser.get("/settings/security")).text
    assert not any(code in later for code in codes) and "10 recovery codes left" in later
    assert (await smtp.wait_for(to=email, subject="turned on", timeout=10))

    out = await post_form(browser, "/logout", {}, page_path="/settings")
    assert out.status_code == 303 and out.headers["location"].startswith("/login")
    assert "Max-Age=0" in set_cookie(out, SESSION_COOKIE) or 'rw_session=""' in set_cookie(out, SESSION_COOKIE)
    assert (await browser.get("/settings")).status_code == 303

    # Password alone now gives a session that owes a code and can do nothing else.
    pending = await login(browser, email, PASSWORD, "/settings")
    assert pending.status_code == 303 and pending.headers["location"] == "/login/mfa?next=/settings"
    pending_token = browser.cookies[SESSION_COOKIE]
    blocked = await browser.get("/settings")
    assert blocked.status_code == 303 and blocked.headers["location"].startswith("/login/mfa")
    assert (await browser.get("/api/v1/me")).status_code == 401
    mfa_page = await browser.get("/login/mfa?next=/settings")
    replayed = await browser.post("/login/mfa", data={"csrf_token": field(mfa_page.text, "csrf_token"),
                                                      "next": "/settings", "code": next(iter(used))})
    assert replayed.status_code == 401  # the code that turned MFA on cannot be used again
    passed = await browser.post("/login/mfa", data={"csrf_token": field(mfa_page.text, "csrf_token"),
                                                    "next": "/settings", "code": code_after(totp, used)})
    assert passed.status_code == 303 and passed.headers["location"] == "/settings"
    fresh_token = browser.cookies[SESSION_COOKIE]
    assert fresh_token != pending_token  # a new token once the second factor is given
    assert await web.services.web_sessions.resolve(pending_token) is None
    assert (await browser.get("/settings")).status_code == 200

    # A recovery code works once.
    await post_form(browser, "/logout", {}, page_path="/settings")
    await login(browser, email, PASSWORD)
    mfa_page = await browser.get("/login/mfa")
    recovered = await browser.post("/login/mfa", data={"csrf_token": field(mfa_page.text, "csrf_token"),
                                                       "next": "/", "code": codes[0].upper().replace("-", " ")})
    assert recovered.status_code == 303
    notice = await smtp.wait_for(to=email, subject="recovery code", timeout=10)
    assert "9 are left" in notice.body
    await post_form(browser, "/logout", {}, page_path="/settings")
    await login(browser, email, PASSWORD)
    mfa_page = await browser.get("/login/mfa")
    reused = await browser.post("/login/mfa", data={"csrf_token": field(mfa_page.text, "csrf_token"),
                                                    "next": "/", "code": codes[0]})
    assert reused.status_code == 401

    logins = await audit(web, "auth.login")
    assert [(e.outcome, e.reason) for e in logins] == [
        ("denied", "email_not_verified"), ("ok", None), ("ok", None), ("ok", None), ("ok", None)]
    assert [e.outcome for e in await audit(web, "auth.mfa")] == ["failed", "ok", "ok", "failed"]
    assert [e.details for e in await audit(web, "auth.mfa") if e.outcome == "ok"] == [
        {"method": "totp"}, {"method": "recovery"}]
    assert len(await audit(web, "auth.signup")) == len(await audit(web, "account.mfa_enable")) == 1


async def test_session_and_csrf_cookie_flags(web):
    member = await web.member(await web.org(), "admin")
    browser = web.client()
    page = await browser.get("/login")
    csrf = set_cookie(page, "__Host-rw_csrf")
    assert {"Secure", "HttpOnly", "Path=/"} <= {p.strip() for p in csrf.split(";")}
    assert "samesite=strict" in csrf.lower() and "domain" not in csrf.lower()
    ok = await browser.post("/login", data={"csrf_token": field(page.text, "csrf_token"), "email": member.email,
                                            "password": member.password})
    assert ok.status_code == 303
    cookie = set_cookie(ok, SESSION_COOKIE)
    parts = {p.strip().lower() for p in cookie.split(";")}
    assert cookie.startswith("__Host-rw_session=")
    assert {"secure", "httponly", "path=/", "samesite=lax", f"max-age={12 * 3600}"} <= parts
    assert not any(p.startswith("domain") for p in parts)
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 43 and await web.services.web_sessions.resolve(token) is not None


async def test_forms_without_the_csrf_token_are_refused_and_change_nothing(web, smtp):
    member = await web.member(await web.org(), "owner")
    browser = web.client()
    await browser.get("/login")  # has the cookie, but posts no token
    refused = await browser.post("/login", data={"email": member.email, "password": member.password})
    assert refused.status_code == 403
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
    assert await audit(web, "auth.login") == []
    forged = await browser.post("/login", data={"csrf_token": "x" * 43, "email": member.email,
                                                "password": member.password})
    assert forged.status_code == 403
    # A sign-up posted from elsewhere (no cookie at all): refused, no org, no mail.
    stranger = web.client()
    token = field((await web.client().get("/signup")).text, "csrf_token")
    refused = await stranger.post("/signup", data={"csrf_token": token, "org_name": "Forged Ltd", "name": "X",
                                                   "email": "x@example.com", "password": PASSWORD,
                                                   "country": "US", "currency": "USD"})
    assert refused.status_code == 403
    with pytest.raises(OrganizationNotFound):
        await web.services.accounts.org("Forged Ltd")
    for path in ("/password/forgot", "/verify-email/resend"):
        assert (await stranger.post(path, data={"email": member.email})).status_code == 403
    await smtp.assert_none(within=0.2)
    # A logged-in form without the session's token: refused, the name stays.
    client = await web.logged_in(member)
    del client.headers["X-CSRF-Token"]
    assert (await client.post("/settings/profile", data={"name": "Mallory"})).status_code == 403
    assert (await client.post("/logout", data={})).status_code == 403
    assert (await web.services.auth.account(member.user.id)).name is None
    assert (await client.get("/settings")).status_code == 200  # still logged in


async def test_login_failures_are_rate_limited_per_account_and_source(web):
    member = await web.member(await web.org(), "owner")
    browser = web.client()
    for _ in range(5):
        wrong = await login(browser, member.email, "not the password")
        assert wrong.status_code == 401 and "wrong email or password" in wrong.text
    limited = await login(browser, member.email, member.password)  # even the right one, now
    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= 900
    assert SESSION_COOKIE not in limited.headers.get("set-cookie", "")
    rows = await audit(web, "auth.login")
    assert [(e.outcome, e.reason) for e in rows] == [("failed", "bad_credentials")] * 5 + [("denied", "rate_limited")]
    assert {e.ip for e in rows} == {"127.0.0.1"}
    assert rows[0].org_id == member.org.id and rows[0].target_id == member.user.id
    # An unknown address answers exactly like a wrong password.
    unknown = await login(browser, "nobody@example.com", "whatever password")
    assert unknown.status_code == 401 and "wrong email or password" in unknown.text
    # Per source: 20 failures from one address (over many accounts) close it for everyone.
    for n in range(14):
        assert (await login(browser, f"guess{n}@example.com", "x" * 10)).status_code == 401
    other = await web.member(member.org, "member")
    assert (await login(browser, other.email, other.password)).status_code == 429


async def test_password_reset_ends_every_session(web, smtp):
    member = await web.member(await web.org(), "owner")
    old_session = await web.logged_in(member)
    assert (await old_session.get("/settings")).status_code == 200
    browser = web.client()
    sent = await post_form(browser, "/password/forgot", {"email": member.email.upper()})
    assert sent.status_code == 303 and sent.headers["location"] == "/password/forgot?sent=1"
    unknown = await post_form(browser, "/password/forgot", {"email": "nobody@example.com"})
    assert (unknown.status_code, unknown.headers["location"]) == (sent.status_code, sent.headers["location"])
    mail = await smtp.wait_for(to=member.email, subject="Reset your password", timeout=10)
    await smtp.assert_none(to="nobody@example.com", within=0.1)
    link = path_of(mail.link(f"{PORTAL}/password/reset?token="))
    form = await browser.get(link)
    assert form.status_code == 200
    token = field(form.text, "token")
    csrf = field(form.text, "csrf_token")
    weak = await browser.post("/password/reset", data={"csrf_token": csrf, "token": token, "password": "short",
                                                       "password2": "short"})
    assert weak.status_code == 422 and "characters" in by_testid(weak.text, "form-error")
    differ = await browser.post("/password/reset", data={"csrf_token": csrf, "token": token,
                                                         "password": "a new passphrase", "password2": "another one"})
    assert differ.status_code == 422
    done = await browser.post("/password/reset", data={"csrf_token": csrf, "token": token,
                                                       "password": "a new passphrase",
                                                       "password2": "a new passphrase"})
    assert done.status_code == 303 and done.headers["location"] == "/login?flash=reset"
    assert (await old_session.get("/settings")).status_code == 303  # logged out everywhere
    notice = await smtp.wait_for(to=member.email, subject="password was changed", timeout=10)
    assert "a new passphrase" not in notice.body
    assert (await browser.get(link)).status_code == 422  # the link worked once
    assert (await login(web.client(), member.email, member.password)).status_code == 401
    assert (await login(web.client(), member.email, "a new passphrase")).status_code == 303
    assert [e.outcome for e in await audit(web, "auth.password_reset")] == ["ok"]


async def test_changes_are_announced_to_the_previous_address_without_the_new_value(web, smtp):
    member = await web.member(await web.org(country="US"), "admin")
    client = await web.logged_in(member)
    other_device = await web.logged_in(member)
    old = member.email

    # Phone: the wrong password changes nothing; the right one stores E.164 and tells the email address.
    bad = await client.post("/settings/phone", data={"phone": "(415) 555-2671", "password": "wrong password"})
    assert bad.status_code == 401 and by_testid(bad.text, "form-error")
    assert (await web.services.auth.account(member.user.id)).phone is None
    ok = await client.post("/settings/phone", data={"phone": "(415) 555-2671", "password": member.password})
    assert ok.status_code == 303
    assert (await web.services.auth.account(member.user.id)).phone == "+14155552671"
    notice = await smtp.wait_for(to=old, subject="phone number", timeout=10)
    assert not re.search(r"415|555|2671", notice.body)
    invalid = await client.post("/settings/phone", data={"phone": "12", "password": member.password})
    assert invalid.status_code == 422

    # Password: other sessions end, this one goes on; the notice does not contain it.
    changed = await client.post("/settings/password", data={
        "current_password": member.password, "new_password": "brand new passphrase",
        "new_password2": "brand new passphrase"})
    assert changed.status_code == 303
    assert (await client.get("/settings")).status_code == 200
    assert (await other_device.get("/settings")).status_code == 303
    notice = await smtp.wait_for(to=old, subject="password was changed", timeout=10)
    assert "brand new passphrase" not in notice.body

    # Email: a notice to the old address at once, a link to the new one; the login moves only via the link.
    new = "ann.new@example.org"
    asked = await client.post("/settings/email", data={"email": new, "password": "brand new passphrase"})
    assert asked.status_code == 303
    requested = await smtp.wait_for(to=old, subject="change of your login email", timeout=10)
    assert new not in requested.body and "ann.new" not in requested.body
    confirm = await smtp.wait_for(to=new, subject="Confirm your new email", timeout=10)
    assert "email-change-pending" in (await client.get("/settings")).text
    assert (await login(web.client(), new, "brand new passphrase")).status_code == 401  # not yet
    followed = await web.client().get(path_of(confirm.link(f"{PORTAL}/verify-email?token=")))
    assert followed.status_code == 200 and "new email address is confirmed" in by_testid(followed.text, "flash")
    done = await smtp.wait_for(to=old, subject="login email was changed", timeout=10)
    assert new not in done.body and "ann.new" not in done.body
    assert (await login(web.client(), new, "brand new passphrase")).status_code == 303
    assert (await login(web.client(), old, "brand new passphrase")).status_code == 401
    await smtp.assert_none(within=0.1)  # nothing else went anywhere
    actions = [e.action for e in await audit(web, "account.email_change")]
    assert actions == ["account.email_change"]
    assert all(e.details is None or new not in str(e.details)
               for e in await audit(web, "account.email_change_request"))


async def test_signup_with_a_taken_address_reveals_nothing_and_tells_its_owner(web, smtp):
    member = await web.member(await web.org("First Org"), "owner")
    browser = web.client()
    taken = await signup(browser, member.email.upper(), "Second Org")
    free = await signup(browser, "free@example.com", "Third Org")
    assert (taken.status_code, taken.headers["location"]) == (free.status_code, free.headers["location"])
    notice = await smtp.wait_for(to=member.email, subject="tried to sign up", timeout=10)
    assert "/password/forgot" in notice.body
    await smtp.wait_for(to="free@example.com", subject="Confirm", timeout=10)
    with pytest.raises(OrganizationNotFound):
        await web.services.accounts.org("Second Org")
    assert [(e.outcome, e.reason) for e in await audit(web, "auth.signup")] == [
        ("denied", "email_has_login"), ("ok", None)]
    # A taken organization name is said (names are public inside the server: they must be unique).
    clash = await signup(browser, "other@example.com", "Third Org")
    assert clash.status_code == 409 and by_testid(clash.text, "form-error")
    assert field(clash.text, "csrf_token")  # the form comes back, filled in (but for the password)
    assert 'value="other@example.com"' in clash.text and PASSWORD not in clash.text


async def test_signup_can_be_closed(web):
    services = web.services
    settings = dataclasses.replace(services.settings, signup_open=False)
    services.settings = settings
    services.auth = AuthService(services.sessions, accounts=services.accounts, web_sessions=services.web_sessions,
                                audit=services.audit, mailer=services.mailer, settings=settings)
    browser = web.client()
    page = await browser.get("/signup")
    assert page.status_code == 403 and "closed" in page.text
    assert 'name="password"' not in page.text  # no form to fill in
    token = field((await browser.get("/login")).text, "csrf_token")  # a valid token, from the same browser
    refused = await browser.post("/signup", data={"csrf_token": token,
                                                  "org_name": "Nope", "name": "N", "email": "n@example.com",
                                                  "password": PASSWORD, "country": "US", "currency": "USD"})
    assert refused.status_code == 403 and "closed" in refused.text
    with pytest.raises(OrganizationNotFound):
        await services.accounts.org("Nope")


async def test_invite_gives_an_existing_user_a_login(web, smtp):
    tenant = await web.tenant("Invite Org")
    created = await web.services.accounts.create_user(tenant.org.name, UserSpec("Bob@Example.com", "205"))
    actor = Actor(user_id=tenant.owner.user.id, org_id=tenant.org.id, role="owner")
    await web.services.auth.invite(created.user.id, actor)
    mail = await smtp.wait_for(to="bob@example.com", subject="invited to Invite Org", timeout=10)
    browser = web.client()
    form = await browser.get(path_of(mail.link(f"{PORTAL}/password/reset?token=")))
    done = await browser.post("/password/reset", data={
        "csrf_token": field(form.text, "csrf_token"), "token": field(form.text, "token"),
        "password": "bobs own passphrase", "password2": "bobs own passphrase"})
    assert done.status_code == 303
    assert (await login(browser, "bob@example.com", "bobs own passphrase")).status_code == 303  # verified by the link
    assert [e.org_id for e in await audit(web, "users.invite")] == [tenant.org.id]
    # The same address in another org cannot get a second login.
    other = await web.org("Elsewhere")
    twin = await web.services.accounts.create_user(other.name, UserSpec("bob@example.com", "300"))
    with pytest.raises(LoginExists):
        await web.services.auth.invite(twin.user.id, actor)


async def test_mfa_can_be_turned_off_and_codes_regenerated(web, smtp):
    member = await web.member(await web.org(), "member")
    client = await web.logged_in(member)
    await client.post("/settings/security/mfa/begin")
    secret = by_testid((await client.get("/settings/security")).text, "totp-secret")
    totp, used = pyotp.TOTP(secret), set()
    first = recovery_codes((await client.post("/settings/security/mfa/confirm",
                                              data={"code": code_after(totp, used)})).text)
    regenerated = await client.post("/settings/security/recovery-codes", data={"password": member.password})
    second = recovery_codes(regenerated.text)
    assert len(second) == 10 and not set(first) & set(second)
    wrong = await client.post("/settings/security/mfa/disable", data={"password": member.password,
                                                                       "code": first[0]})
    assert wrong.status_code == 401  # the old codes stopped working
    off = await client.post("/settings/security/mfa/disable", data={"password": member.password,
                                                                     "code": second[0]})
    assert off.status_code == 303
    assert 'data-testid="mfa-begin"' in (await client.get("/settings/security")).text
    await smtp.wait_for(to=member.email, subject="turned on", timeout=10)
    await smtp.wait_for(to=member.email, subject="turned off", timeout=10)
    assert (await login(web.client(), member.email, member.password)).headers["location"] == "/"


async def test_next_never_leaves_the_site(web):
    member = await web.member(await web.org(), "owner")
    for target, expected in (("https://evil.example/", "/"), ("//evil.example", "/"), ("/settings", "/settings")):
        response = await login(web.client(), member.email, member.password, target)
        assert response.headers["location"] == expected


@pytest.mark.parametrize("smtp", ["starttls"], indirect=True)
async def test_mail_goes_over_starttls_with_a_private_ca(web, smtp):
    assert web.services.settings.smtp_ca_file == smtp.ca_file
    await signup(web.client(), "tls@example.com", "TLS Org")
    mail = await smtp.wait_for(to="tls@example.com", timeout=10)
    assert mail.link(f"{PORTAL}/verify-email?token=")
