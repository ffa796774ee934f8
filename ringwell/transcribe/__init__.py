"""Offline speech-to-text (issue 7 item 3): :class:`Transcriber` and scoring helpers."""

from ringwell.transcribe.engine import TINY_EN, ModelSpec, Transcriber, Transcript, verify_model
from ringwell.transcribe.errors import ModelChecksumMismatch, ModelMissing, TranscribeError

__all__ = [
    "TINY_EN",
    "ModelChecksumMismatch",
    "ModelMissing",
    "ModelSpec",
    "TranscribeError",
    "Transcriber",
    "Transcript",
    "verify_model",
]
