"""Golden SIP messages captured from real peers (tests/data/sip/golden/*.sip)."""

from __future__ import annotations

from pathlib import Path

GOLDEN = Path(__file__).parent / "data" / "sip" / "golden"


def golden_messages() -> list[tuple[str, bytes]]:
    return [(p.stem, p.read_bytes()) for p in sorted(GOLDEN.glob("*.sip"))]
