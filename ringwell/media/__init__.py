"""Anchored media: the RTP/RTCP relay between the two legs of a call.

``rtp`` is the sans-IO core (packet parsing, reception statistics); ``ports`` hands out local
port pairs; ``relay`` is the asyncio shell that moves datagrams between the legs.
"""

from ringwell.media.errors import CodecError, MediaError, PortExhausted
from ringwell.media.ports import PortPool
from ringwell.media.relay import MediaRelay, MediaSession, MediaSide
from ringwell.media.rtp import RtcpReport, RtpHeader, StreamStats, parse_rtcp, parse_rtp

__all__ = [
    "CodecError",
    "MediaError",
    "MediaRelay",
    "MediaSession",
    "MediaSide",
    "PortExhausted",
    "PortPool",
    "RtcpReport",
    "RtpHeader",
    "StreamStats",
    "parse_rtcp",
    "parse_rtp",
]
