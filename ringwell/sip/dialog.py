"""SIP dialogs (RFC 3261 §12): the state two user agents share, and requests built inside one.

A dialog is identified by Call-ID, local tag and remote tag. ``Dialog.uas()`` builds one from
an INVITE this side answers (§12.1.1), ``Dialog.uac()`` from the response to an INVITE this
side sent (§12.1.2). ``request()`` builds the next in-dialog request (§12.2.1.1): local CSeq
incremented, Request-URI the remote target, Route from the route set. Nothing here does I/O.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from ringwell.sip.message import MAGIC_COOKIE, Headers, Request, Response
from ringwell.sip.uri import parse_name_addr

__all__ = ["Dialog", "ViaSpec", "new_branch", "new_call_id"]


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_call_id() -> str:
    return secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class ViaSpec:
    """How this side writes its Via: transport name and sent-by."""

    transport: str
    host: str
    port: int

    def header(self, branch: str) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"SIP/2.0/{self.transport.upper()} {host}:{self.port};branch={branch};rport"


def _contact_uri(message: Request | Response) -> str | None:
    value = message.headers.get("contact")
    if not value:
        return None
    try:
        return str(parse_name_addr(value.split(",")[0]).uri)
    except ValueError:
        return None


def _without_tag(value: str) -> str:
    """A From/To value with its tag removed (the tag is kept separately)."""
    addr = parse_name_addr(value)
    params = tuple((k, v) for k, v in addr.params if k.lower() != "tag")
    return str(type(addr)(addr.uri, addr.display, params))


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_addr: str  # From (UAC) or To (UAS) value without the tag
    remote_addr: str
    local_seq: int
    remote_seq: int | None
    remote_target: str
    route_set: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        """How an incoming in-dialog request finds this dialog: its Call-ID and our tag."""
        return (self.call_id, self.local_tag)

    @classmethod
    def uas(cls, invite: Request, local_tag: str) -> Dialog:
        """§12.1.1: the dialog a UAS creates when it answers ``invite`` with a 1xx/2xx."""
        routes = invite.headers.values("record-route")
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_.tag or "",
            local_addr=_without_tag(invite.headers.get("to") or ""),
            remote_addr=_without_tag(invite.headers.get("from") or ""),
            local_seq=0,
            remote_seq=invite.cseq.number,
            remote_target=_contact_uri(invite) or str(invite.from_.uri),
            route_set=routes,
        )

    @classmethod
    def uac(cls, invite: Request, response: Response) -> Dialog:
        """§12.1.2: the dialog a UAC creates from a 1xx (with a To tag) or 2xx to ``invite``."""
        routes = list(reversed(response.headers.values("record-route")))
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_addr=_without_tag(invite.headers.get("from") or ""),
            remote_addr=_without_tag(response.headers.get("to") or ""),
            local_seq=invite.cseq.number,
            remote_seq=None,
            remote_target=_contact_uri(response) or invite.uri_text,
            route_set=routes,
        )

    def refresh_target(self, message: Request | Response) -> None:
        """A target refresh (re-INVITE, UPDATE, or their 2xx) may change the remote target (§12.2)."""
        target = _contact_uri(message)
        if target:
            self.remote_target = target

    def accept_remote_seq(self, request: Request) -> bool:
        """§12.2.2: an in-dialog request with a CSeq lower than the last one is out of order (500).

        An equal CSeq is not out of order: it is a retransmission that outlived its server
        transaction (a BYE resent after Timer J, or over a new connection) and must be answered
        again, not refused.
        """
        number = request.cseq.number
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and number < self.remote_seq:
            return False
        self.remote_seq = number
        return True

    def _headers(self, via: ViaSpec, branch: str, method: str, cseq: int) -> Headers:
        headers = Headers()
        headers.add("Via", via.header(branch))
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", f"{self.local_addr};tag={self.local_tag}")
        headers.add("To", f"{self.remote_addr};tag={self.remote_tag}" if self.remote_tag else self.remote_addr)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        return headers

    def request(
        self,
        method: str,
        via: ViaSpec,
        *,
        contact: str | None = None,
        extra: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str = "application/sdp",
    ) -> Request:
        """The next in-dialog request (not ACK or CANCEL): CSeq is incremented."""
        self.local_seq += 1
        headers = self._headers(via, new_branch(), method, self.local_seq)
        if contact is not None:
            headers.add("Contact", contact)
        for name, value in extra:
            headers.add(name, value)
        if body:
            headers.add("Content-Type", content_type)
        return Request(method, self.remote_target, headers, body)

    def ack(self, cseq: int, via: ViaSpec, body: bytes = b"") -> Request:
        """The ACK for a 2xx to the INVITE with CSeq ``cseq`` (§13.2.2.4): a new branch, same CSeq."""
        headers = self._headers(via, new_branch(), "ACK", cseq)
        if body:
            headers.add("Content-Type", "application/sdp")
        return Request("ACK", self.remote_target, headers, body)

