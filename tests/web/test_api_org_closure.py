"""Closing an organization through the operator API, the console and the CLI (issue 8): billing staff
and the operator's owners only, a reason required (and the name typed in the console), audited; a
closed org's people, sessions and API keys stop working at once, and reopening before the purge
lets its people back in."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from ringwell.cli import main
from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor
from ringwell.web.deps import SESSION_COOKIE
from tests.web.test_auth_portal import login, post_form

API = "/api/v1"



async def test_billing_staff_close_an_org_and_its_people_and_keys_stop_working(web):
    a = await web.tenant()
    b = await web.tenant()
    _, support = await web.staff("support")
    billing_member, billing = await web.staff("billing")
    url = f"{API}/operator/orgs/{a.org.id}"
    body = {"reason": "the customer asked to close the account"}
    for client in (a.client, a.api, support):
        assert (await client.post(f"{url}/close", json=body)).status_code == 403
    assert (await billing.post(f"{url}/close", json={"reason": ""})).status_code == 422
    assert (await a.client.get(f"{API}/orgs/{a.org.id}")).status_code == 200

    closed = await billing.post(f"{url}/close", json=body)
    assert closed.status_code == 200, closed.text
    out = closed.json()
    assert out["closed_at"] and out["purge_after"] > out["closed_at"]
    assert (out["users_disabled"], out["sessions_ended"], out["api_keys_revoked"]) == (1, 1, 1)
    # Its owner's session and its API key are refused at once, and the owner cannot sign in.
    assert (await a.client.get(f"{API}/orgs/{a.org.id}")).status_code == 401
    assert (await a.api.get(f"{API}/orgs/{a.org.id}")).status_code == 401
    refused = await login(web.client(), a.owner.email, a.owner.password)
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
    # The other org goes on; the operator's list shows the closure.
    assert (await b.client.get(f"{API}/orgs/{b.org.id}")).status_code == 200
    assert (await b.api.get(f"{API}/orgs/{b.org.id}")).status_code == 200
    orgs = {o["id"]: o for o in (await billing.get(f"{API}/operator/orgs", params={"limit": 200})).json()["items"]}
    assert orgs[a.org.id]["closed_at"] == out["closed_at"] and orgs[b.org.id]["closed_at"] is None

    reopened = await billing.post(f"{url}/reopen", json={"reason": "paid after all"})
    assert reopened.status_code == 200 and reopened.json()["users_enabled"] == 1
    signed_in = await login(web.client(), a.owner.email, a.owner.password)
    assert SESSION_COOKIE in signed_in.headers.get("set-cookie", "")
    assert (await a.api.get(f"{API}/orgs/{a.org.id}")).status_code == 401  # keys are not restored
    twice = await billing.post(f"{url}/reopen", json={"reason": "again"})
    assert (twice.status_code, twice.json()["error_id"]) == (409, "organization_not_closed")
    missing = await billing.post(f"{API}/operator/orgs/nope/close", json=body)
    assert (missing.status_code, missing.json()["error_id"]) == (404, "organization_not_found")

    async with web.services.sessions() as session:
        events = (await session.execute(select(AuditEvent.action, AuditEvent.actor_user_id, AuditEvent.reason)
                                        .where(AuditEvent.action.startswith("orgs.")).order_by(AuditEvent.seq))).all()
    assert events == [("orgs.close", billing_member.user.id, body["reason"]),
                      ("orgs.reopen", billing_member.user.id, "paid after all")]


async def test_the_cli_closes_and_reopens_an_org(web, capsys):
    settings = web.services.settings
    (settings.data_dir / "ringwell.toml").write_text(
        f'secret_key = "{settings.secret_key}"\ndatabase_url = "{settings.database_url}"\n')
    a = await web.tenant()
    data = str(settings.data_dir)
    with pytest.raises(SystemExit):  # a reason is required
        main(["admin", "close-org", a.org.name, "--data-dir", data])
    assert "--reason" in capsys.readouterr().err
    code = await asyncio.to_thread(main, ["admin", "close-org", a.org.name, "--reason", "unpaid", "--data-dir", data])
    out = capsys.readouterr().out
    assert code == 0 and f"{a.org.name} closed at" in out
    assert "users disabled       1" in out and "its data is deleted after" in out
    assert (await a.client.get(f"{API}/orgs/{a.org.id}")).status_code == 401
    code = await asyncio.to_thread(main, ["admin", "reopen-org", a.org.name, "--reason", "paid", "--json",
                                          "--data-dir", data])
    assert code == 0 and json.loads(capsys.readouterr().out)["users_enabled"] == 1
    code = await asyncio.to_thread(main, ["admin", "reopen-org", a.org.name, "--reason", "paid", "--data-dir", data])
    assert code == 1 and "not closed" in capsys.readouterr().err


def body(html: str) -> str:
    """The page below its ``<head>`` (a title holds text, never a form)."""
    return html[html.index("</head>"):]


async def test_the_operator_console_closes_an_org_after_its_name_is_typed(web):
    a = await web.tenant()
    _, billing = await web.staff("billing")
    _, support = await web.staff("support")
    page = f"/operator/orgs/{a.org.id}"
    close_form = f'action="{page}/close"'
    assert close_form not in (await support.get(page)).text
    refused = await post_form(support, f"{page}/close", {"reason": "contract ended", "confirm": a.org.name},
                              page_path=page)
    assert refused.status_code == 403
    assert (await a.client.get(f"{API}/orgs/{a.org.id}")).status_code == 200  # support cannot close it
    shown = await billing.get(page)
    assert shown.status_code == 200 and close_form in body(shown.text)

    wrong = await post_form(billing, f"{page}/close", {"reason": "contract ended", "confirm": "not the name"},
                            page_path=page)
    assert wrong.status_code == 422 and "type the organization" in body(wrong.text)
    closure_card = body(wrong.text)[body(wrong.text).index("Close the organization"):]
    assert 'value="contract ended"' in closure_card  # what was typed is kept, in the closure's form
    credit_card = body(wrong.text)[:body(wrong.text).index("Close the organization")]
    assert "contract ended" not in credit_card
    assert (await a.client.get(f"{API}/orgs/{a.org.id}")).status_code == 200  # nothing happened

    done = await post_form(billing, f"{page}/close", {"reason": "contract ended", "confirm": a.org.name},
                           page_path=page)
    assert done.status_code == 303 and done.headers["location"] == f"{page}?done=closed"
    after = body((await billing.get(done.headers["location"])).text)
    assert "The organization is closed" in after and "Its data is deleted after" in after
    assert f'action="{page}/reopen"' in after and close_form not in after
    assert (await a.client.get(f"{API}/orgs/{a.org.id}")).status_code == 401
    listing = (await billing.get("/operator")).text
    row = listing[listing.index(a.org.name):]
    assert 'badge error">closed' in row[:row.index("</tr>")]

    reopened = await post_form(billing, f"{page}/reopen", {"reason": "closed by mistake"}, page_path=page)
    assert reopened.status_code == 303
    assert "open again" in body((await billing.get(reopened.headers["location"])).text)
    assert (await a.client.get(f"{API}/orgs/{a.org.id}")).status_code == 401  # its old session was ended


async def test_the_console_offers_no_reopening_once_the_purge_is_due(web):
    a = await web.tenant()
    closed = await web.services.closure.close(a.org.id, actor=Actor(user_agent="test"), reason="contract ended")
    page = f"/operator/orgs/{a.org.id}"
    with time_machine.travel(closed.closed_at + timedelta(days=91)):
        _, billing = await web.staff("billing")  # signed in then (a session does not last 91 days)
        shown = body((await billing.get(page)).text)
    assert "due for deletion" in shown and f'action="{page}/reopen"' not in shown
