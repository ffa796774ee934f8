"""The operator console's retention page (issue 8): privacy staff only; legal holds placed for an
organization or one person in it (by name and email) and released, audited; closed organizations
waiting for deletion with their date and what keeps them; the latest run's counts per data class."""

from __future__ import annotations

from sqlalchemy import select

from ringwell.features.audit.models import AuditEvent
from ringwell.features.audit.service import Actor
from tests.web.test_auth_portal import post_form

PAGE = "/operator/retention"



async def test_privacy_staff_place_and_release_holds_and_see_what_waits(web):
    a = await web.tenant()
    bob = await web.member(a.org, "member")
    _, support = await web.staff("support")
    privacy_member, privacy = await web.staff("privacy")
    assert (await support.get(PAGE)).status_code == 403
    assert (await a.client.get(PAGE)).status_code == 403
    page = await privacy.get(PAGE)
    assert page.status_code == 200 and "No legal holds" in page.text and "No run yet" in page.text

    unknown = await post_form(privacy, f"{PAGE}/holds", {"org": "No Such Org", "email": "", "reason": "case 1"},
                              page_path=PAGE)
    assert unknown.status_code == 422 and "no organization named" in unknown.text
    form = unknown.text[unknown.text.index("Place a hold"):]
    assert 'value="No Such Org"' in form and 'value="case 1"' in form  # what was typed is kept
    stranger = await post_form(privacy, f"{PAGE}/holds", {"org": a.org.name, "email": "who@example.com",
                                                          "reason": "case 1"}, page_path=PAGE)
    assert stranger.status_code == 422 and "no one with the email" in stranger.text

    placed = await post_form(privacy, f"{PAGE}/holds", {"org": a.org.name, "email": bob.email.upper(),
                                                        "reason": "case 2027-17"}, page_path=PAGE)
    assert placed.status_code == 303 and placed.headers["location"] == f"{PAGE}?done=placed"
    shown = (await privacy.get(placed.headers["location"])).text
    assert "The legal hold is placed" in shown and bob.email in shown and "case 2027-17" in shown
    assert 'badge warn">active' in shown

    # The org closed: it waits for its date, kept by the hold on bob.
    await web.services.closure.close(a.org.id, actor=Actor(user_agent="test"), reason="contract ended")
    shown = (await privacy.get(PAGE)).text
    closed = shown[shown.index("Closed organizations"):]
    assert a.org.name in closed and "a legal hold" in closed

    async with web.services.sessions() as session:
        hold_id = (await session.execute(select(AuditEvent.target_id).where(
            AuditEvent.action == "legal_hold.place"))).scalar_one()
    released = await post_form(privacy, f"{PAGE}/holds/{hold_id}/release", {}, page_path=PAGE)
    assert released.status_code == 303
    shown = (await privacy.get(released.headers["location"])).text
    assert "The legal hold is released" in shown and 'badge">released' in shown
    assert 'badge warn">active' not in shown and "/release" not in shown
    closed = shown[shown.index("Closed organizations"):]
    assert "a legal hold" not in closed
    again = await post_form(privacy, f"{PAGE}/holds/{hold_id}/release", {}, page_path=PAGE)
    assert again.status_code == 409
    holds_card = again.text[again.text.index("Legal holds"):again.text.index("Place a hold")]
    assert "already released" in holds_card  # said where the holds are, not under the new-hold form

    # A run's report, per data class.
    await web.server.retention.run()
    shown = (await privacy.get(PAGE)).text
    assert "Latest retention run" in shown and "closed organizations" in shown and "No run yet" not in shown
    async with web.services.sessions() as session:
        actors = (await session.execute(select(AuditEvent.action, AuditEvent.actor_user_id).where(
            AuditEvent.action.startswith("legal_hold.")).order_by(AuditEvent.seq))).all()
    assert actors == [("legal_hold.place", privacy_member.user.id), ("legal_hold.release", privacy_member.user.id)]
