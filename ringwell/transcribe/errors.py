"""Transcription errors (STYLE.md §4).

```
RingwellError
└── transcribe.TranscribeError → ModelMissing | ModelChecksumMismatch
```
"""

from __future__ import annotations

from ringwell.errors import RingwellError

__all__ = ["ModelChecksumMismatch", "ModelMissing", "TranscribeError"]


class TranscribeError(RingwellError):
    """Base of the speech-to-text errors."""


class ModelMissing(TranscribeError):
    """The model directory or one of its files is not there (the model package is not installed)."""


class ModelChecksumMismatch(TranscribeError):
    """The model file's SHA-256 is not the one pinned in the repository: it is refused, never loaded."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(f"{path}: SHA-256 {actual} does not match the pinned {expected}; refusing to load this model")
        self.path = path
        self.expected = expected
        self.actual = actual
