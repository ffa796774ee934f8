"""G.711 μ-law and A-law (ITU-T G.711) by lookup table: pure, no I/O, no ``audioop``.

``audioop`` is deprecated and gone in Python 3.13; these tables give the same bytes (a test
compares all 65 536 samples with it while it exists). Linear PCM is signed 16-bit little-endian,
8000 samples per second, as RTP's PCMU/PCMA carry it (RFC 3551 §4.5.14).
"""

from __future__ import annotations

import struct
import sys
from array import array

__all__ = ["decode", "encode", "law_of"]

_ULAW_BIAS = 0x84
# Segment end points of the 14-bit (μ-law) and 13-bit (A-law) magnitudes (G.711 tables 1a, 2a).
_ULAW_SEGMENTS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ALAW_SEGMENTS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _segment(value: int, ends: tuple[int, ...]) -> int:
    return next((i for i, end in enumerate(ends) if value <= end), len(ends))


def _ulaw_byte(sample: int) -> int:
    value = sample >> 2  # G.711 μ-law works on 14 bits
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, 8159) + (_ULAW_BIAS >> 2)
    segment = _segment(value, _ULAW_SEGMENTS)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def _ulaw_sample(byte: int) -> int:
    byte = ~byte & 0xFF
    value = (((byte & 0x0F) << 3) + _ULAW_BIAS) << ((byte & 0x70) >> 4)
    return _ULAW_BIAS - value if byte & 0x80 else value - _ULAW_BIAS


def _alaw_byte(sample: int) -> int:
    value = sample >> 3  # G.711 A-law works on 13 bits
    if value >= 0:
        mask = 0xD5  # the sign bit set for positive values, the even bits inverted (0x55)
    else:
        mask, value = 0x55, -value - 1
    segment = _segment(value, _ALAW_SEGMENTS)
    if segment >= 8:
        return 0x7F ^ mask
    mantissa = (value >> 1) if segment < 2 else (value >> segment)
    return ((segment << 4) | (mantissa & 0x0F)) ^ mask


def _alaw_sample(byte: int) -> int:
    byte ^= 0x55
    value = (byte & 0x0F) << 4
    segment = (byte & 0x70) >> 4
    if segment == 0:
        value += 8
    elif segment == 1:
        value += 0x108
    else:
        value = (value + 0x108) << (segment - 1)
    return value if byte & 0x80 else -value


def _tables(to_byte: object, to_sample: object) -> tuple[bytes, list[bytes]]:
    assert callable(to_byte) and callable(to_sample)
    # Indexed by the 16-bit sample read as unsigned, so an array('H') view indexes it directly.
    encode_table = bytes(to_byte(n - 65536 if n >= 32768 else n) for n in range(65536))
    decode_table = [struct.pack("<h", to_sample(b)) for b in range(256)]
    return encode_table, decode_table


_TABLES = {"PCMU": _tables(_ulaw_byte, _ulaw_sample), "PCMA": _tables(_alaw_byte, _alaw_sample)}


def law_of(codec: str) -> str:
    """``PCMU`` or ``PCMA`` for an RTP encoding name (case-insensitive); ``ValueError`` otherwise."""
    name = codec.upper()
    if name not in _TABLES:
        raise ValueError(f"not a G.711 encoding: {codec!r}")
    return name


def decode(codec: str, payload: bytes) -> bytes:
    """G.711 bytes → 16-bit little-endian linear PCM (two bytes per input byte)."""
    table = _TABLES[law_of(codec)][1]
    return b"".join(map(table.__getitem__, payload))


def encode(codec: str, pcm: bytes) -> bytes:
    """16-bit little-endian linear PCM → G.711 bytes (one per sample); ``ValueError`` on an odd length."""
    if len(pcm) % 2:
        raise ValueError(f"16-bit PCM must have an even length, got {len(pcm)} bytes")
    samples = array("H", pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    return bytes(map(_TABLES[law_of(codec)][0].__getitem__, samples))
