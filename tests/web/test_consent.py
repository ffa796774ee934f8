"""Consent on the web: the cookie banner (no non-essential cookie before consent, Global Privacy
Control honoured, a 13-month analytics cookie after an accept and none after a decline, every answer
recorded), a person's CPNI and marketing choices through the API and the Settings page, and the CPNI
rule that call detail goes only to an authenticated account holder — checked on every route of the app
that serves calls, recordings or voicemail."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

import ringwell.storage.models  # noqa: F401  (every table on Base.metadata)
from ringwell.features.privacy.consent import GPC_TEXT, TEXTS
from ringwell.features.privacy.cookies import ANALYTICS_COOKIE, CONSENT_COOKIE
from ringwell.features.privacy.models_consent import ConsentRecord
from ringwell.features.recordings.models import Trigger
from ringwell.media.oggopus import CONTENT_TYPE, OggOpusWriter
from ringwell.storage.base import Base
from ringwell.web.deps import SESSION_COOKIE
from ringwell.web.portal.auth import CSRF_COOKIE
from tests.integration.test_recordings import stereo
from tests.web.test_api_voicemail import deposit
from tests.web.test_portal_pages import add_call, as_browser, text, token_of

ESSENTIAL = {SESSION_COOKIE, CSRF_COOKIE, CONSENT_COOKIE}
THIRTEEN_MONTHS = 395 * 86400


def set_cookies(response) -> dict[str, dict[str, str]]:
    """The response's Set-Cookie headers: name -> {"value": ..., attribute (lower case): value}."""
    out: dict[str, dict[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        fields = {"value": value.strip('"')}
        for attribute in attributes:
            key, _, val = attribute.partition("=")
            fields[key.lower()] = val
        out[name] = fields
    return out


async def records(web, **where) -> list[ConsentRecord]:
    async with web.services.sessions() as session:
        query = select(ConsentRecord).order_by(ConsentRecord.at, ConsentRecord.id)
        for key, value in where.items():
            query = query.where(getattr(ConsentRecord, key) == value)
        return list((await session.execute(query)).scalars().all())


async def tables_holding(web, value: str) -> list[str]:
    """The tables with a row that holds ``value`` in any column (as text, JSON included)."""
    found = []
    async with web.services.sessions() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            if any(value in str(column) for row in rows for column in row if column is not None):
                found.append(table.name)
    return found


# -- the cookie banner ------------------------------------------------------------------------------------
async def test_a_first_visit_sets_only_essential_cookies_and_asks(web):
    visitor = web.client()
    page = await visitor.get("/login")
    assert page.status_code == 200
    assert set(set_cookies(page)) <= {CSRF_COOKIE}
    assert 'data-testid="cookie-banner"' in page.text and "Accept analytics" in page.text
    acme = await web.tenant("Acme Banner")
    for path in ("/", "/settings", "/calls"):
        response = await acme.client.get(path)
        assert response.status_code == 200, path
        assert set(set_cookies(response)) <= ESSENTIAL - {CONSENT_COOKIE}, path
        assert 'data-testid="cookie-banner"' in response.text
    assert ANALYTICS_COOKIE not in visitor.cookies and ANALYTICS_COOKIE not in acme.client.cookies


async def test_accepting_sets_a_13_month_analytics_cookie_and_records_the_choice(web):
    visitor = web.client()
    page = await visitor.get("/login")
    answer = await visitor.post("/privacy/cookies", data={"csrf_token": token_of(page.text), "analytics": "accept",
                                                          "next": "/login"})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    cookies = set_cookies(answer)
    analytics = cookies[ANALYTICS_COOKIE]
    assert 0 < int(analytics["max-age"]) <= THIRTEEN_MONTHS
    assert "secure" in analytics and analytics["samesite"].lower() == "lax"
    choice = cookies[CONSENT_COOKIE]
    visitor_id = choice["value"].rpartition(".")[0]
    assert choice["value"].endswith(".1")
    # The analytics id is its own random id, not the visitor id a consent record holds: stored nowhere.
    assert len(analytics["value"]) >= 22 and analytics["value"] != visitor_id
    assert await tables_holding(web, analytics["value"]) == []
    assert await tables_holding(web, visitor_id) == ["consent_records"]
    (record,) = await records(web, visitor_id=visitor_id)
    assert (record.purpose, record.granted, record.source) == ("analytics_cookies", True, "cookie_banner")
    assert record.text_shown == TEXTS[record.purpose].text and record.user_id is None  # type: ignore[index]
    again = await visitor.get("/login")
    assert 'data-testid="cookie-banner"' not in again.text  # asked once
    assert ANALYTICS_COOKIE not in set_cookies(again)


async def test_declining_removes_the_analytics_cookie_and_is_recorded(web):
    visitor = web.client()
    token = token_of((await visitor.get("/login")).text)
    await visitor.post("/privacy/cookies", data={"csrf_token": token, "analytics": "accept", "next": "/login"})
    assert ANALYTICS_COOKIE in visitor.cookies
    answer = await visitor.post("/privacy/cookies", data={"csrf_token": token, "analytics": "decline",
                                                          "next": "/privacy/cookies?done=1"})
    assert answer.status_code == 303
    removed = set_cookies(answer)[ANALYTICS_COOKIE]
    assert removed["value"] == "" and removed["max-age"] == "0"
    assert ANALYTICS_COOKIE not in visitor.cookies
    visitor_id = visitor.cookies[CONSENT_COOKIE].rpartition(".")[0]
    history = await records(web, visitor_id=visitor_id)
    assert [(r.granted, r.superseded_at is None) for r in history] == [(True, False), (False, True)]
    page = await visitor.get("/privacy/cookies?done=1")
    assert "You declined" in text(page) and "Your cookie choice was saved" in text(page)


async def test_a_stray_analytics_cookie_without_consent_is_removed(web):
    visitor = web.client()
    visitor.cookies.set(ANALYTICS_COOKIE, "planted-by-someone", domain="ringwell.test", path="/")
    page = await visitor.get("/login")
    assert set_cookies(page)[ANALYTICS_COOKIE]["max-age"] == "0"


async def test_global_privacy_control_means_no_banner_analytics_off_and_a_record_for_the_person(web):
    visitor = web.client(**{"Sec-GPC": "1"})
    page = await visitor.get("/login")
    assert 'data-testid="cookie-banner"' not in page.text
    assert set(set_cookies(page)) <= {CSRF_COOKIE}
    # An accept sent anyway is the opt-out the browser signalled: no analytics cookie.
    answer = await visitor.post("/privacy/cookies", data={"csrf_token": token_of(page.text), "analytics": "accept"})
    assert answer.status_code == 303 and ANALYTICS_COOKIE not in visitor.cookies
    assert visitor.cookies[CONSENT_COOKIE].endswith(".0")
    assert "Global Privacy Control" in text(await visitor.get("/privacy/cookies"))

    acme = await web.tenant("Acme GPC")
    acme.client.headers["Sec-GPC"] = "1"
    acme.client.cookies.set(ANALYTICS_COOKIE, "an-earlier-accept-0123", domain="ringwell.test", path="/")
    settings = await acme.client.get("/settings")
    assert settings.status_code == 200 and 'data-testid="cookie-banner"' not in settings.text
    assert set_cookies(settings)[ANALYTICS_COOKIE]["max-age"] == "0"  # analytics off
    await acme.client.get("/calls")
    (record,) = await records(web, user_id=acme.owner.user.id)
    assert (record.org_id, record.purpose, record.granted, record.source) == (
        acme.org.id, "analytics_cookies", False, "gpc")
    assert record.text_shown == GPC_TEXT.text


async def test_the_cookie_form_needs_its_csrf_token(web):
    visitor = web.client()
    await visitor.get("/login")
    refused = await visitor.post("/privacy/cookies", data={"analytics": "accept"})
    assert refused.status_code == 403
    assert ANALYTICS_COOKIE not in set_cookies(refused) and await records(web) == []


async def test_a_logged_in_answer_counts_for_the_person_and_scripts_get_json(web):
    acme = await web.tenant("Acme Script")
    client = acme.client  # sends the session's CSRF header, as app.js's fetch sends the form's token
    page = await client.get("/settings")
    answer = await client.post("/privacy/cookies", data={"csrf_token": token_of(page.text), "analytics": "accept"},
                               headers={"Accept": "application/json"})
    assert answer.status_code == 200 and answer.json() == {"analytics": True}
    (record,) = await records(web, user_id=acme.owner.user.id)
    assert record.visitor_id == client.cookies[CONSENT_COOKIE].rpartition(".")[0] and record.org_id == acme.org.id
    # The person is known here, so the analytics cookie must not lead back to them: no table holds its id.
    analytics = client.cookies[ANALYTICS_COOKIE]
    assert analytics != record.visitor_id and await tables_holding(web, analytics) == []
    # Accepting again gives a fresh id (an older cookie could hold a visitor id from before this rule).
    again = await client.post("/privacy/cookies", data={"csrf_token": token_of(page.text), "analytics": "accept"},
                              headers={"Accept": "application/json"})
    assert again.status_code == 200 and client.cookies[ANALYTICS_COOKIE] not in (analytics, record.visitor_id)


# -- a person's choices: API and Settings -------------------------------------------------------------------
async def test_cpni_marketing_is_off_by_default_and_opt_in_and_out_are_recorded_with_the_text(web):
    acme = await web.tenant("Acme CPNI")
    got = await acme.client.get("/api/v1/me/consents")
    assert got.status_code == 200, got.text
    choices = {c["purpose"]: c for c in got.json()["choices"]}
    assert choices["cpni_marketing"]["granted"] is False and choices["cpni_marketing"]["default"] is True
    assert choices["marketing_email"]["granted"] is False and got.json()["history"] == []
    opted_in = await acme.client.put("/api/v1/me/consents", json={"cpni_marketing": True})
    assert opted_in.status_code == 200, opted_in.text
    assert {c["purpose"]: c["granted"] for c in opted_in.json()["choices"]}["cpni_marketing"] is True
    opted_out = await acme.client.put("/api/v1/me/consents", json={"cpni_marketing": False, "marketing_email": False})
    history = opted_out.json()["history"]
    assert [(h["purpose"], h["granted"], h["source"]) for h in history] == [
        ("cpni_marketing", False, "api"), ("cpni_marketing", True, "api")]  # email was off already: no change
    assert all(h["text_shown"] == TEXTS["cpni_marketing"].text for h in history)  # type: ignore[index]
    # An API key is the org's, not a person's; nobody else's choices are reachable.
    assert (await acme.api.get("/api/v1/me/consents")).status_code == 403
    assert (await web.client().get("/api/v1/me/consents")).status_code == 401
    assert (await acme.client.put("/api/v1/me/consents", json={"cpni_marketing": "yes"})).status_code == 422
    assert (await acme.client.put("/api/v1/me/consents", json={"analytics_cookies": True})).status_code == 422


async def test_the_settings_page_explains_cpni_and_keeps_what_changed_and_when(web):
    acme = await web.tenant("Acme Choices")
    browser = as_browser(acme.client)
    page = await browser.get("/settings/privacy")
    assert page.status_code == 200
    shown = text(page)
    assert "Privacy choices" in shown and TEXTS["cpni_marketing"].text in shown  # type: ignore[index]
    assert "Off: you have not said yes" in shown and "No choice made yet" in shown
    nav = (await browser.get("/settings")).text  # in the settings navigation, beside the person's requests
    assert 'href="/settings/privacy"' in nav and 'href="/privacy/me"' in nav
    saved = await browser.post("/settings/privacy", data={"csrf_token": token_of(page.text),
                                                          "cpni_marketing": "yes", "marketing_email": "no"})
    assert saved.status_code == 303 and saved.headers["location"] == "/settings/privacy?done=1"
    after = text(await browser.get("/settings/privacy?done=1"))
    assert "Your privacy choices were saved" in after
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert f"On since {today}" in after and "(in the portal)" in after
    (record,) = await records(web, user_id=acme.owner.user.id)
    assert (record.purpose, record.granted, record.source) == ("cpni_marketing", True, "portal")
    forged = await browser.post("/settings/privacy", data={"cpni_marketing": "no"})
    assert forged.status_code == 403 and len(await records(web, user_id=acme.owner.user.id)) == 1


# -- CPNI: call detail only to an authenticated account holder -------------------------------------------
_CDR = re.compile(r"call|recording|voicemail|mailbox")


def cdr_routes(app) -> list[tuple[str, str]]:
    """(method, path template) of every HTTP route serving calls, recordings or voicemail."""
    def walk(routes):
        for route in routes:
            if hasattr(route, "effective_route_contexts"):  # FastAPI's included routers
                for context in route.effective_route_contexts():
                    yield context.path, context.methods or set()
            elif getattr(route, "methods", None):
                yield route.path, route.methods
            elif hasattr(route, "routes"):
                yield from walk(route.routes)

    return sorted({(method, path) for path, methods in walk(app.routes) if _CDR.search(path)
                   for method in methods if method != "HEAD"})


async def _recording(web, org_id: str, call_id: str) -> str:
    service = web.server.recordings
    upload = await service.begin(org_id, CONTENT_TYPE)
    writer = OggOpusWriter(upload.feed)
    writer.write(stereo(1.0))
    writer.close()
    row = await service.finish(upload, org_id=org_id, call_record_id=call_id, caller_user_id=None,
                               callee_user_id=None, trigger=Trigger.POLICY, started_at=datetime.now(UTC),
                               duration_s=1.0, paused_s=0.0, content_type=CONTENT_TYPE)
    assert row is not None
    return row.id


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_no_route_serving_calls_recordings_or_voicemail_answers_without_authentication(web):
    acme = await web.tenant("Acme Records")
    call_id = await add_call(web, acme.org.id, caller_user=acme.owner.user.id, caller_number="+14155550123")
    voicemail = await deposit(web, acme.owner, "+14155550199")
    ids = {"org_id": acme.org.id, "call_id": call_id, "voicemail_id": voicemail.id, "user_id": acme.owner.user.id,
           "recording_id": await _recording(web, acme.org.id, call_id), "e164": "+14155550100"}
    routes = cdr_routes(web.app)
    assert ("GET", "/api/v1/orgs/{org_id}/calls") in routes and ("GET", "/calls") in routes
    anonymous = web.client()
    leaks = []
    for method, template in routes:
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: ids.get(m.group(1), "x"), template)
        response = await anonymous.request(method, path, json={} if method in ("POST", "PUT", "PATCH") else None)
        to_login = response.status_code in (302, 303) and response.headers["location"].startswith("/login")
        if not (response.status_code == 401 or to_login):
            leaks.append((method, template, response.status_code))
        for secret in ("+14155550123", "+14155550199", call_id, voicemail.id):
            assert secret not in response.text, (method, template)
    assert leaks == []
    # The owner does get them (the ids above are real): the check is about who asks, not what exists.
    assert call_id in (await acme.api.get(f"/api/v1/orgs/{acme.org.id}/calls")).text
