"""HTTP routes of a person's own consent choices: ``GET/PUT /api/v1/me/consents`` (thin: parse → service →
serialise). Only a logged-in person has choices; an API key is an org's, not a person's (403)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ringwell.features.auth.errors import PermissionDenied
from ringwell.features.auth.tokens import Identity
from ringwell.features.privacy.consent import CHOOSABLE, TEXTS, ConsentService, Subject
from ringwell.features.privacy.consent_schemas import ConsentChoiceOut, ConsentRecordOut, ConsentsOut, ConsentUpdate
from ringwell.features.privacy.models_consent import Purpose, Source
from ringwell.web.deps import require_identity, services

__all__ = ["consents_of", "router"]

router = APIRouter(tags=["privacy"])


def _person(identity: Identity) -> Subject:
    if identity.user_id is None:
        raise PermissionDenied("consent choices belong to a person: log in (an API key is not one)",
                               {"reason": "not_a_person"})
    return Subject.person(identity.org_id, identity.user_id)


async def consents_of(consent: ConsentService, subject: Subject) -> ConsentsOut:
    """Every purpose's current state and the subject's records (also what the portal page shows)."""
    state = await consent.state(subject)
    history = await consent.history(subject)
    return ConsentsOut(
        choices=[ConsentChoiceOut(purpose=p.value, granted=c.granted, default=c.is_default, source=c.source,
                                  since=c.since, text=TEXTS[p].text if p in TEXTS else None,
                                  text_version=TEXTS[p].version if p in TEXTS else None)
                 for p, c in state.items()],
        history=[ConsentRecordOut(purpose=r.purpose, granted=r.granted, source=r.source, text_shown=r.text_shown,
                                  text_version=r.text_version, at=r.at, superseded_at=r.superseded_at)
                 for r in history])


@router.get("/me/consents", response_model=ConsentsOut, operation_id="get_my_consents",
            summary="The caller's consent choices (CPNI marketing, marketing email, ...) and their history")
async def get_consents(request: Request) -> ConsentsOut:
    subject = _person(await require_identity(request))
    return await consents_of(ConsentService(services(request).sessions), subject)


@router.put("/me/consents", response_model=ConsentsOut, operation_id="put_my_consents",
            summary="Opt in to or out of CPNI use for marketing and marketing email")
async def put_consents(request: Request, body: ConsentUpdate) -> ConsentsOut:
    subject = _person(await require_identity(request))
    consent = ConsentService(services(request).sessions)
    for purpose in CHOOSABLE:
        granted = getattr(body, purpose.value)
        if granted is not None:
            await consent.choose(subject, Purpose(purpose), granted, Source.API)
    return await consents_of(consent, subject)
