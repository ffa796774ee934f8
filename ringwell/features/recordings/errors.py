"""Errors of the recordings slice (stable ``error_id`` values)."""

from __future__ import annotations

from ringwell.errors import Conflict, Invalid, NotFound

__all__ = ["CallNotLive", "InvalidRecordingPolicy", "RecordingNotAllowed", "RecordingNotFound", "RecordingState"]


class RecordingNotFound(NotFound):
    """No such recording in the organization (also: another org's, or one already deleted)."""

    error_id = "recording_not_found"


class CallNotLive(NotFound):
    """The call is not in progress on this server (ended, not answered yet, or another node's)."""

    error_id = "call_not_live"


class RecordingNotAllowed(Conflict):
    """The recording policy of the call's parties is off: it cannot be recorded, even on demand."""

    error_id = "recording_not_allowed"


class RecordingState(Conflict):
    """The action does not fit the call's recording state (stop when not recording, …)."""

    error_id = "recording_state"


class InvalidRecordingPolicy(Invalid):
    error_id = "invalid_recording_policy"
