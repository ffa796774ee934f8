"""Registration to carriers: a REGISTER client per trunk that asks for it (RFC 3261 §10.2).

Each trunk with ``register`` keeps one binding at its carrier: REGISTER with our Contact,
answer the 401/407 with the trunk's credentials (§22.2), refresh at half the granted expiry,
and after a failure try again with a growing back-off (30 s doubling to 5 min). The state of
each registration is shown in ``/healthz``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ringwell.features.trunks.service import TrunkRoute
from ringwell.sip.dialog import ViaSpec, new_branch, new_call_id
from ringwell.sip.digest import answer_challenge
from ringwell.sip.errors import RemoteProtocolError
from ringwell.sip.message import Headers, Request, Response, parse_contacts
from ringwell.sip.uas import new_tag
from ringwell.tasks import Periodic
from ringwell.transport.source import Source

__all__ = ["TrunkRegistrations"]

log = logging.getLogger(__name__)
RETRY_FIRST = 30.0
RETRY_MAX = 300.0


class Sender(Protocol):
    def send_request(self, request: Request, flow: Source, on_response: Callable[[Response], None],
                     on_failure: Callable[[], None]) -> None: ...


@dataclass(slots=True)
class _Registration:
    trunk: TrunkRoute
    call_id: str = field(default_factory=new_call_id)
    tag: str = field(default_factory=new_tag)
    cseq: int = 0
    state: str = "new"  # new | registering | registered | failed
    expires_at: float = 0.0
    last_error: str = ""
    retry: float = RETRY_FIRST
    answered_nonce: str | None = None
    timer: asyncio.TimerHandle | None = None
    expires: int = 0  # what we ask for (the trunk's, or the carrier's Min-Expires after a 423)
    challenges_answered: int = 0  # in this round: a refused answer must not loop REGISTER/401 forever
    intervals_raised: int = 0


class TrunkRegistrations:
    def __init__(self, sip: Sender, via_for: Callable[[Source], ViaSpec], contact_host: str, contact_port: int,
                 trunks: Callable[[], list[TrunkRoute]]) -> None:
        self._sip = sip
        self._via_for = via_for
        self._contact_host = contact_host
        self._contact_port = contact_port
        self._trunks = trunks
        self._regs: dict[str, _Registration] = {}
        self._watch = Periodic("trunk-registrations", self._follow, every=5.0)

    def start(self) -> None:
        self._watch.start()

    async def stop(self) -> None:
        await self._watch.stop()
        for reg in self._regs.values():
            if reg.timer is not None:
                reg.timer.cancel()
        self._regs.clear()

    def status(self) -> dict[str, dict[str, object]]:
        now = time.time()
        return {
            reg.trunk.name: {"state": reg.state, "expires_in": max(0, round(reg.expires_at - now)),
                             "error": reg.last_error}
            for reg in self._regs.values()
        }

    async def _follow(self) -> None:
        """Follow the trunk list: start registering new trunks, stop for removed or changed ones."""
        wanted = {t.id: t for t in self._trunks() if t.register and t.username and t.password}
        for trunk_id in list(self._regs):
            if trunk_id not in wanted or wanted[trunk_id] != self._regs[trunk_id].trunk:
                reg = self._regs.pop(trunk_id)
                if reg.timer is not None:
                    reg.timer.cancel()
        for trunk_id, trunk in wanted.items():
            if trunk_id not in self._regs:
                reg = _Registration(trunk)
                self._regs[trunk_id] = reg
                self._send(reg, None)

    def _send(self, reg: _Registration, authorization: tuple[str, str] | None) -> None:
        trunk = reg.trunk
        reg.cseq += 1
        reg.state = "registering" if reg.state != "registered" else reg.state
        host = trunk.uri_host()
        aor = f"sip:{trunk.username}@{trunk.host}"
        contact_host = f"[{self._contact_host}]" if ":" in self._contact_host else self._contact_host
        headers = Headers()
        headers.add("Via", self._via_for(trunk.flow).header(new_branch()))
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{aor}>;tag={reg.tag}")
        headers.add("To", f"<{aor}>")
        headers.add("Call-ID", reg.call_id)
        headers.add("CSeq", f"{reg.cseq} REGISTER")
        contact = f"sip:{trunk.username}@{contact_host}:{self._contact_port};transport={trunk.transport}"
        headers.add("Contact", f"<{contact}>")
        headers.add("Expires", str(reg.expires or trunk.register_expires))
        if authorization is not None:
            headers.add(*authorization)
        request = Request("REGISTER", f"sip:{host}", headers)
        self._sip.send_request(request, trunk.flow, lambda r: self._response(reg, request, r),
                               lambda: self._failed(reg, "no answer"))

    def _response(self, reg: _Registration, request: Request, response: Response) -> None:
        if self._regs.get(reg.trunk.id) is not reg or response.status < 200:
            return
        trunk = reg.trunk
        status = response.status
        if status in (401, 407):
            assert trunk.username is not None and trunk.password is not None
            answer = answer_challenge(response, "REGISTER", request.uri_text, trunk.username, trunk.password)
            # A refused answer comes back as the same nonce, or (many registrars) a fresh one each time.
            if answer is not None and reg.challenges_answered < 2 and (
                    answer[2].nonce != reg.answered_nonce or answer[2].stale):
                reg.answered_nonce = answer[2].nonce
                reg.challenges_answered += 1
                self._send(reg, answer[:2])
                return
            self._failed(reg, f"{status} {response.reason} (credentials refused)")
            return
        if 200 <= status < 300:
            expires = _granted(response, reg.expires or trunk.register_expires)
            reg.state = "registered"
            reg.expires_at = time.time() + expires
            reg.last_error = ""
            reg.retry = RETRY_FIRST
            log.info("registered to trunk %s for %d s", trunk.name, expires)
            self._schedule(reg, max(5.0, expires / 2))
            return
        if status == 423 and reg.intervals_raised < 1:  # Interval Too Brief: take the carrier's Min-Expires
            min_expires = response.headers.get("min-expires")
            reg.intervals_raised += 1
            if min_expires and min_expires.strip().isdigit():
                reg.expires = int(min_expires.strip())
                self._send(reg, None)
                return
        self._failed(reg, f"{status} {response.reason}")

    def _failed(self, reg: _Registration, why: str) -> None:
        if self._regs.get(reg.trunk.id) is not reg:
            return
        reg.state = "failed"
        reg.last_error = why
        log.warning("registration to trunk %s failed: %s; retrying in %.0f s", reg.trunk.name, why, reg.retry)
        self._schedule(reg, reg.retry)
        reg.retry = min(RETRY_MAX, reg.retry * 2)

    def _schedule(self, reg: _Registration, delay: float) -> None:
        if reg.timer is not None:
            reg.timer.cancel()
        reg.answered_nonce = None
        reg.challenges_answered = 0
        reg.intervals_raised = 0
        reg.timer = asyncio.get_running_loop().call_later(delay, self._send, reg, None)


def _granted(response: Response, asked: int) -> int:
    """The expiry the registrar granted: our Contact's expires=, else Expires, else what we asked."""
    try:
        for contact in parse_contacts(response.headers.get_all("contact")) or []:
            value = contact.param("expires")
            if value and value.isdigit():
                return int(value)
    except RemoteProtocolError:  # a carrier's odd Contact must not stop the registration
        log.debug("unreadable Contact in a REGISTER answer")
    header = response.headers.get("expires")
    if header and header.strip().isdigit():
        return int(header.strip())
    return asked

