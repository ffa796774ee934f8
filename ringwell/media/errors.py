"""Media errors (STYLE.md §4).

```
RingwellError
└── media.MediaError → CodecError | PortExhausted
```
"""

from __future__ import annotations

from ringwell.errors import RingwellError

__all__ = ["CodecError", "MediaError", "PortExhausted"]


class MediaError(RingwellError):
    """Base of all media-layer errors (RTP ports, relaying, codecs)."""


class PortExhausted(MediaError):
    """No RTP/RTCP port pair of the configured range could be bound: the call cannot get media."""


class CodecError(MediaError):
    """A payload cannot be handled: unknown codec or no common codec between the legs."""
