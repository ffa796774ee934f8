"""SIP errors. A ``ProtocolError`` carries the status a server answers with."""

from __future__ import annotations

from ringwell.errors import RingwellError

__all__ = [
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "SipError",
    "TransactionTimeout",
]


class SipError(RingwellError):
    """Base of all SIP-layer errors."""


class ProtocolError(SipError):
    """A message breaks the protocol.

    ``status_hint`` is the response a server sends for it (400 unless said otherwise);
    ``str(error)`` is short enough to be that response's reason phrase.
    """

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something invalid."""


class TransactionTimeout(SipError):
    """A client transaction got no final response in time (Timer B or F): 408."""
