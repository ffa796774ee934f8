"""Data register declarations of the tables the incidents part owns (see register.py).

The breach register is the operator's own record (GDPR art. 33(5): "document any personal data
breaches, comprising the facts relating to the personal data breach, its effects and the remedial
action taken"). The only personal data in it are the staff members who wrote it; they are kept
when a staff member is erased, because the record must show who acted.
"""

from __future__ import annotations

from ringwell.features.privacy.register import Basis, Category, Column, Erasure, Retention, Table

__all__ = ["EXTRA_COLUMNS", "TABLES"]

_RECORD = "the breach register (GDPR art. 33(5), 47 CFR § 64.2011(d))"
_KEPT = ("who recorded or acted on a breach stays in the breach register: the operator must be able "
         "to prove what was done (GDPR art. 33(5); 47 CFR § 64.2011(d) asks for at least two years): kept for "
         "the privacy-records period after the incident is closed")


def _fact(name: str, purpose: str) -> Column:
    """A fact about the incident, not about a person."""
    return Column(name, Category.NOT_PERSONAL, purpose, Basis.LEGAL_OBLIGATION, Retention.PRIVACY_RECORDS,
                  exported=False, erasure=Erasure.NONE)


def _staff(name: str, purpose: str) -> Column:
    """The staff member who acted (a user id)."""
    return Column(name, Category.ACCOUNT, purpose, Basis.LEGAL_OBLIGATION, Retention.PRIVACY_RECORDS,
                  exported=False, erasure=Erasure.KEEP, exception=_KEPT)


TABLES: tuple[Table, ...] = (
    Table(
        name="incidents",
        description="Security incidents and personal data breaches, with the notices sent and when",
        subject="the operator's staff member who recorded or closed it",
        columns=(
            _fact("id", "identifies the incident"),
            _fact("title", f"{_RECORD}: what happened, in a line"),
            _fact("description", f"{_RECORD}: the facts, effects and remedial action"),
            _fact("severity", "decides whether the people affected must be told (GDPR art. 34)"),
            _fact("personal_data", "whether GDPR arts. 33-34 apply"),
            _fact("cpni", "whether 47 CFR § 64.2011 applies"),
            _fact("detected_at", "starts the 72-hour clock of GDPR art. 33"),
            _fact("determined_at", "starts the 7-business-day clock of 47 CFR § 64.2011(b)"),
            _fact("org_ids", "which organizations were affected"),
            _fact("people_affected", "approximate number of people affected (art. 33(3)(a))"),
            _staff("created_by", "who recorded the incident"),
            _fact("created_at", "when it was recorded"),
            _fact("authority_notified_at", "when the supervisory authority was notified"),
            _fact("authority_reference", "the authority's case number"),
            _fact("law_enforcement_notified_at", "when USSS and FBI were notified through the FCC facility"),
            _fact("law_enforcement_reference", "the reporting facility's receipt"),
            _fact("law_enforcement_delay_until", "law enforcement asked to hold customer notice until then"),
            _fact("customers_notified_at", "when the people affected were notified"),
            _staff("checklist", "the response steps done: when, and which staff user id ticked them"),
            _fact("closed_at", "when the incident was closed"),
            _staff("closed_by", "who closed the incident"),
        ),
    ),
    Table(
        name="incident_notes",
        description="The timeline of an incident: what was found or done, by whom, when",
        subject="the operator's staff member who wrote it",
        columns=(
            _fact("id", "identifies the note"),
            _fact("incident_id", "the incident it belongs to"),
            _fact("at", "when it was written"),
            _staff("by", "who wrote it"),
            _fact("text", f"{_RECORD}: what was found or done"),
        ),
    ),
)

# Columns this part adds to tables declared elsewhere: table name -> columns.
EXTRA_COLUMNS: dict[str, tuple[Column, ...]] = {}
