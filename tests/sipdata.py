"""The SIP test vectors under tests/data/sip and how Ringwell is expected to react to them."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ringwell.pbx.endpoint import screen_request
from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import MalformedRequest, Request, parse_message

DATA = Path(__file__).parent / "data" / "sip"
#: Statuses that mean "this request is broken", as opposed to a normal answer such as 401 or 405.
REFUSALS = {400, 406, 415, 416, 420, 505, 513}


@dataclass(frozen=True)
class Vector:
    suite: str
    name: str
    data: bytes
    kind: str
    expect: int | str
    also: tuple[int | str, ...]
    syntax: str

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"


def vectors() -> list[Vector]:
    manifest = tomllib.loads((DATA / "manifest.toml").read_text())
    out = []
    for suite, entries in manifest.items():
        for name, entry in entries.items():
            out.append(
                Vector(suite, name, (DATA / suite / f"{name}.sip").read_bytes(), entry["kind"], entry["expect"],
                       tuple(entry.get("also_acceptable", ())), entry.get("syntax", "valid"))
            )
    return out


def reaction(data: bytes) -> int | str:
    """What Ringwell does with a message before any state: 'drop', a refusal status, or 'valid'."""
    try:
        message = parse_message(data)
    except MalformedRequest as exc:
        return exc.status_hint
    except RemoteProtocolError:
        return "drop"
    if not isinstance(message, Request):
        return "valid"  # a response that parses; one matching no transaction is then dropped
    rejection = screen_request(message)
    if rejection is None or rejection.status not in REFUSALS:
        return "valid" if rejection is None or rejection.status not in (501,) else 501
    return rejection.status
