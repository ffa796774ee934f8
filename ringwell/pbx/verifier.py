"""The caller-ID verification caller: places the calls users asked for to prove a number.

A user starts a verification (``ringwell admin verify-caller-id``; later the API) and is shown
a 6-digit code; this task notices the new verification within ``poll`` seconds, calls the
number through the trunks and hands the digits keyed in to ``confirm_verification``. Each
verification is called once by this server (a restart calls the ones younger than a minute
again, at most once more).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ringwell.features.numbers.service import PendingVerification
from ringwell.features.outbound.service import TrunkChoice
from ringwell.pbx.originate import DigitCall, TrunkLeg
from ringwell.tasks import Periodic

__all__ = ["CallerIdVerifier"]

log = logging.getLogger(__name__)


class Numbers(Protocol):
    async def verifications_to_call(self, since: datetime, now: datetime) -> list[PendingVerification]: ...

    async def confirm_verification(self, org_id: str, user_id: str, e164: str, digits: str, now: datetime) -> bool: ...

    async def caller_id_for(self, org_id: str, user_id: str | None, requested: str | None) -> str | None: ...


class Trunks(Protocol):
    async def trunks_for(self, e164: str, now: datetime) -> list[TrunkChoice]: ...

    async def verification_refusal(self, org_id: str, e164: str, now: datetime) -> str | None: ...


class CallerIdVerifier:
    def __init__(self, numbers: Numbers, trunks: Trunks, make_call: Callable[[], DigitCall],
                 poll: float = 2.0) -> None:
        self._numbers = numbers
        self._trunks = trunks
        self._make_call = make_call
        self._handled: set[str] = set()
        self._since = datetime.now(UTC)
        self._poller = Periodic("caller-id-verifier", self._poll, every=poll)
        self._calls: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._since = datetime.now(UTC) - timedelta(minutes=1)
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()
        calls = list(self._calls)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)

    async def _poll(self) -> None:
        for pending in await self._numbers.verifications_to_call(self._since, datetime.now(UTC)):
            if pending.id in self._handled:
                continue
            self._handled.add(pending.id)
            call = asyncio.create_task(self._verify(pending))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _verify(self, pending: PendingVerification) -> None:
        try:
            now = datetime.now(UTC)
            refusal = await self._trunks.verification_refusal(pending.org_id, pending.e164, now)
            if refusal is not None:
                log.warning("caller-ID verification of %s not called: %s", pending.e164, refusal)
                return
            choices = await self._trunks.trunks_for(pending.e164, now)
            if not choices:
                log.warning("caller-ID verification of %s: no trunk reaches it", pending.e164)
                return
            shown = await self._numbers.caller_id_for(pending.org_id, pending.user_id, None)
            legs = [
                TrunkLeg(c.trunk.name, c.trunk.flow, f"sip:{c.dial}@{c.trunk.uri_host()}", c.dial,
                         c.trunk.caller_id(shown) or "anonymous", c.trunk.username, c.trunk.password)
                for c in choices
            ]
            result = await self._make_call().run(legs)
            verified = False
            if result.answered and result.digits:
                verified = await self._numbers.confirm_verification(
                    pending.org_id, pending.user_id, pending.e164, result.digits, datetime.now(UTC))
            log.info("caller-ID verification call to %s: %s (%s)", pending.e164,
                     "verified" if verified else "not verified",
                     f"{len(result.digits)} digits" if result.answered else f"{result.status} {result.reason}")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("caller-ID verification call to %s failed", pending.e164)
