"""G.711 by table (``ringwell.media.g711``): the same bytes as the reference.

The reference is CPython's ``audioop`` (Sun's g711.c), gone in Python 3.13: the SHA-256 of its
output over every 16-bit sample and every code byte was taken once on 3.11 and is pinned here.
"""

from __future__ import annotations

import hashlib
import struct

import pytest

from ringwell.media import g711

ALL_SAMPLES = b"".join(struct.pack("<h", n) for n in range(-32768, 32768))
ENCODED = {"PCMU": "81d633c9e6972a18c74a58720b96cb8ca0bdd096d4060b646dd708c3b846019a",
           "PCMA": "38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b"}
DECODED = {"PCMU": "3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827",
           "PCMA": "e04788d110e58ff8c70c93b8480190d973e3b67876b6119abbaec766cc75c174"}


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_every_sample_encodes_and_every_byte_decodes_as_the_reference(law: str) -> None:
    assert hashlib.sha256(g711.encode(law, ALL_SAMPLES)).hexdigest() == ENCODED[law]
    assert hashlib.sha256(g711.decode(law, bytes(range(256)))).hexdigest() == DECODED[law]


@pytest.mark.parametrize(("law", "codes"), [("PCMU", [0xFF, 0x7E, 0xCE, 0x4E, 0x80, 0x00]),
                                            ("pcma", [0xD5, 0x55, 0xFA, 0x7A, 0xAA, 0x2A])])
def test_known_codes(law: str, codes: list[int]) -> None:
    samples = b"".join(struct.pack("<h", v) for v in (0, -1, 1000, -1000, 32767, -32768))
    assert list(g711.encode(law, samples)) == codes


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_a_round_trip_keeps_the_signal_within_a_quantisation_step(law: str) -> None:
    samples = [int(12000 * ((n % 80) / 40 - 1)) for n in range(800)]  # a sawtooth
    pcm = b"".join(struct.pack("<h", v) for v in samples)
    back = struct.unpack(f"<{len(samples)}h", g711.decode(law, g711.encode(law, pcm)))
    assert all(abs(a - b) <= max(16, abs(a) // 16) for a, b in zip(samples, back, strict=True))


def test_bad_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="even length"):
        g711.encode("PCMU", b"\x00\x01\x02")
    with pytest.raises(ValueError, match=r"not a G\.711 encoding"):
        g711.decode("G722", b"\x00")
