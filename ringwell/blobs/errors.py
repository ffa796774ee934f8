"""Errors of encrypted blob storage.

```
RingwellError
├── BlobError
│   ├── BlobCorrupt     the file is missing, altered, truncated, reordered or not this blob's
│   └── WrongMasterKey  an org's data key does not unwrap under the configured master key
└── DomainError
    ├── NotFound → BlobNotFound      no such blob in this org (another org's blob is "not found")
    └── KeyDestroyed (410)           the org's data key was destroyed (crypto-shredded)
```
``ConfigError("master_key" | "master_key_file", ...)`` covers an unusable master key.
"""

from __future__ import annotations

from ringwell.errors import DomainError, NotFound, RingwellError

__all__ = ["BlobCorrupt", "BlobError", "BlobNotFound", "KeyDestroyed", "WrongMasterKey"]


class BlobError(RingwellError):
    """Stored ciphertext or keys that cannot be used; never the caller's fault."""


class BlobCorrupt(BlobError):
    """Authentication failed or the file is not a Ringwell blob: nothing of it is returned."""


class WrongMasterKey(BlobError):
    """The master key in use is not the one the org's data key was wrapped under."""


class BlobNotFound(NotFound):
    error_id = "blob_not_found"


class KeyDestroyed(DomainError):
    """The blob exists but its org's data key was destroyed: it can never be read again."""

    error_id = "blob_shredded"
    status = 410
