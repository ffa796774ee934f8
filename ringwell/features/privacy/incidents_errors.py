"""Errors of the breach register (each with a stable ``error_id``)."""

from __future__ import annotations

from ringwell.errors import Conflict, Invalid, NotFound

__all__ = ["IncidentClosed", "IncidentNotFound", "InvalidIncident", "NoticeAlreadySent", "NoticesPending"]


class IncidentNotFound(NotFound):
    error_id = "incident_not_found"


class InvalidIncident(Invalid):
    error_id = "invalid_incident"


class IncidentClosed(Conflict):
    """A closed incident is a record: it is not changed any more (a note may still be added)."""

    error_id = "incident_closed"


class NoticesPending(Conflict):
    """Closing while a notice the law requires has not been sent."""

    error_id = "incident_notices_pending"


class NoticeAlreadySent(Conflict):
    """A notice is recorded once (the date it went is evidence; a second one is a note)."""

    error_id = "incident_notice_already_sent"
