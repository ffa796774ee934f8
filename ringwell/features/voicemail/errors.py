"""Errors of the voicemail slice (stable ``error_id`` values)."""

from __future__ import annotations

from ringwell.errors import Invalid, NotFound

__all__ = ["InvalidVoicemail", "TranscriptNotReady", "VoicemailNotFound"]


class VoicemailNotFound(NotFound):
    """No such message in the organization (also: another org's message, or one already deleted)."""

    error_id = "voicemail_not_found"


class TranscriptNotReady(NotFound):
    """The message exists but has no transcript (still pending, or transcription failed)."""

    error_id = "transcript_not_available"


class InvalidVoicemail(Invalid):
    error_id = "invalid_voicemail"
