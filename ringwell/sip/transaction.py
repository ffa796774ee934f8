"""SIP transactions (RFC 3261 §17, with the RFC 6026 Accepted state).

Theory of operation: a transaction is a small state machine fed with messages and timer
expiries, each call carrying ``now``; it answers with a list of actions for its driver:

* ``Send(message)`` — put this message on the wire (to the transaction's peer);
* ``StartTimer(timer, delay)`` / ``CancelTimer(timer)`` — arm or disarm an RFC 3261 timer;
* ``Deliver(message)`` — hand a response up to the transaction user (client side);
* ``Timeout()`` — Timer B, F or H fired (the TU answers 408 or gives up);
* ``Terminated()`` — forget this transaction.

Retransmission timers run only over unreliable transports; on reliable ones the wait timers
(D, I, J, K) are zero, as §17 says. Nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ringwell.sip.message import MAGIC_COOKIE, Headers, Request, Response

__all__ = [
    "Action",
    "CancelTimer",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "Deliver",
    "Send",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "StartTimer",
    "State",
    "Terminated",
    "Timeout",
    "Timer",
    "TimerValues",
    "make_ack",
    "make_cancel",
    "server_key",
]


class Timer(enum.Enum):
    """RFC 3261 Table 4 timers, plus RFC 6026's L and M."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


@dataclass(frozen=True, slots=True)
class TimerValues:
    """T1, T2 and T4 of RFC 3261 §17.1.1.1 (seconds)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_c: float = 180.0


@dataclass(frozen=True, slots=True)
class Send:
    message: Request | Response


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer: Timer
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Deliver:
    message: Response


@dataclass(frozen=True, slots=True)
class Timeout:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Terminated:
    pass


Action = Send | StartTimer | CancelTimer | Deliver | Timeout | Terminated

DEFAULT_TIMERS = TimerValues()


def server_key(request: Request) -> tuple[str, ...]:
    """The key that matches a request to its server transaction (§17.2.3).

    With an RFC 3261 branch: branch, sent-by and method (ACK matches its INVITE). For an
    RFC 2543 peer: Call-ID, From tag, CSeq number, top Via and method, without the To tag so
    that an ACK finds the INVITE it acknowledges.
    """
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE):
        return (branch, via.sent_by, method)
    return (
        "2543",
        request.call_id,
        request.from_.tag or "",
        str(request.cseq.number),
        str(via),
        method,
    )


def _in_invite_transaction(invite: Request, method: str, to: str, extra: tuple[tuple[str, str], ...] = ()) -> Request:
    """A request that belongs to ``invite``'s own transaction: its top Via (same branch),
    Route, From, Call-ID and CSeq number, and the given To."""
    headers = Headers()
    headers.add("Via", invite.headers.get_all("via")[0])
    for route in invite.headers.get_all("route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("from") or "")
    headers.add("To", to)
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.number} {method}")
    for name, value in extra:
        headers.add(name, value)
    return Request(method, invite.uri_text, headers)


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (§17.1.1.3): same branch, To from the response."""
    return _in_invite_transaction(invite, "ACK", response.headers.get("to") or "")


def make_cancel(invite: Request, extra: tuple[tuple[str, str], ...] = ()) -> Request:
    """The CANCEL for a pending ``invite`` (§9.1): its Request-URI, top Via, To and CSeq number."""
    return _in_invite_transaction(invite, "CANCEL", invite.headers.get("to") or "", extra)


class _Transaction:
    __slots__ = ("reliable", "request", "state", "timers")

    def __init__(self, request: Request, reliable: bool, timers: TimerValues) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = State.TERMINATED

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED


class ClientInviteTransaction(_Transaction):
    """§17.1.1 INVITE client transaction; ``use_timer_c`` adds the proxy Timer C (§16.6)."""

    __slots__ = ("_a_interval", "ack", "use_timer_c")

    def __init__(
        self,
        request: Request,
        reliable: bool,
        timers: TimerValues = DEFAULT_TIMERS,
        use_timer_c: bool = False,
    ) -> None:
        super().__init__(request, reliable, timers)
        self._a_interval = timers.t1
        self.ack: Request | None = None
        self.use_timer_c = use_timer_c

    def start(self, now: float) -> list[Action]:
        self.state = State.CALLING
        actions: list[Action] = [Send(self.request)]
        if not self.reliable:
            actions.append(StartTimer(Timer.A, self._a_interval))
        actions.append(StartTimer(Timer.B, 64 * self.timers.t1))
        if self.use_timer_c:
            actions.append(StartTimer(Timer.C, self.timers.timer_c))
        return actions

    def receive(self, response: Response, now: float) -> list[Action]:
        state = self.state
        status = response.status
        if state in (State.CALLING, State.PROCEEDING):
            if status < 200:
                actions: list[Action] = []
                if state is State.CALLING:
                    self.state = State.PROCEEDING
                    actions += [CancelTimer(Timer.A), CancelTimer(Timer.B)]
                if self.use_timer_c:
                    actions.append(StartTimer(Timer.C, self.timers.timer_c))
                actions.append(Deliver(response))
                return actions
            actions = [CancelTimer(Timer.A), CancelTimer(Timer.B)]
            if self.use_timer_c:
                actions.append(CancelTimer(Timer.C))
            if status < 300:
                self.state = State.ACCEPTED
                return [*actions, Deliver(response), StartTimer(Timer.M, 64 * self.timers.t1)]
            self.state = State.COMPLETED
            self.ack = make_ack(self.request, response)
            delay = 0.0 if self.reliable else 32.0
            # The ACK leaves before the TU reacts: a new INVITE answering a 407 must follow it.
            return [*actions, Send(self.ack), Deliver(response), StartTimer(Timer.D, delay)]
        if state is State.ACCEPTED and 200 <= status < 300:
            return [Deliver(response)]  # 2xx retransmissions go to the TU, which ACKs them
        if state is State.COMPLETED and status >= 300 and self.ack is not None:
            return [Send(self.ack)]
        return []

    def timer_fired(self, timer: Timer, now: float) -> list[Action]:
        state = self.state
        if timer is Timer.A and state is State.CALLING:
            self._a_interval *= 2
            return [Send(self.request), StartTimer(Timer.A, self._a_interval)]
        if timer is Timer.B and state is State.CALLING:
            self.state = State.TERMINATED
            return [CancelTimer(Timer.A), CancelTimer(Timer.C), Timeout(Timer.B), Terminated()]
        if timer is Timer.C and state in (State.CALLING, State.PROCEEDING):
            # The proxy core CANCELs the branch; the transaction waits for the 487.
            return [Timeout(Timer.C)]
        if (timer is Timer.D and state is State.COMPLETED) or (timer is Timer.M and state is State.ACCEPTED):
            self.state = State.TERMINATED
            return [Terminated()]
        return []

    def transport_error(self, now: float) -> list[Action]:
        if self.state is State.TERMINATED:
            return []
        self.state = State.TERMINATED
        return [Timeout(Timer.B), Terminated()]


class ClientNonInviteTransaction(_Transaction):
    """§17.1.2 non-INVITE client transaction."""

    __slots__ = ("_e_interval",)

    def __init__(self, request: Request, reliable: bool, timers: TimerValues = DEFAULT_TIMERS) -> None:
        super().__init__(request, reliable, timers)
        self._e_interval = timers.t1

    def start(self, now: float) -> list[Action]:
        self.state = State.TRYING
        actions: list[Action] = [Send(self.request)]
        if not self.reliable:
            actions.append(StartTimer(Timer.E, self._e_interval))
        actions.append(StartTimer(Timer.F, 64 * self.timers.t1))
        return actions

    def receive(self, response: Response, now: float) -> list[Action]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        if response.status < 200:
            self.state = State.PROCEEDING
            return [Deliver(response)]
        self.state = State.COMPLETED
        delay = 0.0 if self.reliable else self.timers.t4
        return [CancelTimer(Timer.E), CancelTimer(Timer.F), Deliver(response), StartTimer(Timer.K, delay)]

    def timer_fired(self, timer: Timer, now: float) -> list[Action]:
        state = self.state
        if timer is Timer.E and state in (State.TRYING, State.PROCEEDING):
            if state is State.TRYING:
                self._e_interval = min(2 * self._e_interval, self.timers.t2)
            else:
                self._e_interval = self.timers.t2
            return [Send(self.request), StartTimer(Timer.E, self._e_interval)]
        if timer is Timer.F and state in (State.TRYING, State.PROCEEDING):
            self.state = State.TERMINATED
            return [CancelTimer(Timer.E), Timeout(Timer.F), Terminated()]
        if timer is Timer.K and state is State.COMPLETED:
            self.state = State.TERMINATED
            return [Terminated()]
        return []

    def transport_error(self, now: float) -> list[Action]:
        if self.state is State.TERMINATED:
            return []
        self.state = State.TERMINATED
        return [Timeout(Timer.F), Terminated()]


class ServerInviteTransaction(_Transaction):
    """§17.2.1 INVITE server transaction with RFC 6026's Accepted state."""

    __slots__ = ("_g_interval", "last_response")

    def __init__(self, request: Request, reliable: bool, timers: TimerValues = DEFAULT_TIMERS) -> None:
        super().__init__(request, reliable, timers)
        self.state = State.PROCEEDING
        self.last_response: Response | None = None
        self._g_interval = timers.t1

    def receive_request(self, request: Request, now: float) -> list[Action]:
        """A retransmitted INVITE or an ACK matched to this transaction."""
        state = self.state
        if request.method == "ACK":
            if state is State.COMPLETED:
                self.state = State.CONFIRMED
                delay = 0.0 if self.reliable else self.timers.t4
                return [CancelTimer(Timer.G), CancelTimer(Timer.H), StartTimer(Timer.I, delay)]
            return []
        if state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            return [Send(self.last_response)]
        return []  # Accepted: retransmitted INVITEs are absorbed (RFC 6026 §7.1)

    def respond(self, response: Response, now: float) -> list[Action]:
        """The TU sends a response through this transaction."""
        state = self.state
        if state is not State.PROCEEDING:
            return []
        self.last_response = response
        status = response.status
        if status < 200:
            return [Send(response)]
        if status < 300:
            self.state = State.ACCEPTED
            return [Send(response), StartTimer(Timer.L, 64 * self.timers.t1)]
        self.state = State.COMPLETED
        actions: list[Action] = [Send(response)]
        if not self.reliable:
            actions.append(StartTimer(Timer.G, self._g_interval))
        actions.append(StartTimer(Timer.H, 64 * self.timers.t1))
        return actions

    def timer_fired(self, timer: Timer, now: float) -> list[Action]:
        state = self.state
        if timer is Timer.G and state is State.COMPLETED and self.last_response is not None:
            self._g_interval = min(2 * self._g_interval, self.timers.t2)
            return [Send(self.last_response), StartTimer(Timer.G, self._g_interval)]
        if timer is Timer.H and state is State.COMPLETED:
            self.state = State.TERMINATED
            return [CancelTimer(Timer.G), Timeout(Timer.H), Terminated()]
        if (timer is Timer.I and state is State.CONFIRMED) or (timer is Timer.L and state is State.ACCEPTED):
            self.state = State.TERMINATED
            return [Terminated()]
        return []


class ServerNonInviteTransaction(_Transaction):
    """§17.2.2 non-INVITE server transaction."""

    __slots__ = ("last_response",)

    def __init__(self, request: Request, reliable: bool, timers: TimerValues = DEFAULT_TIMERS) -> None:
        super().__init__(request, reliable, timers)
        self.state = State.TRYING
        self.last_response: Response | None = None

    def receive_request(self, request: Request, now: float) -> list[Action]:
        """A retransmission of the request: answered with the last response, if any."""
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            return [Send(self.last_response)]
        return []

    def respond(self, response: Response, now: float) -> list[Action]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        self.last_response = response
        if response.status < 200:
            self.state = State.PROCEEDING
            return [Send(response)]
        self.state = State.COMPLETED
        delay = 0.0 if self.reliable else 64 * self.timers.t1
        return [Send(response), StartTimer(Timer.J, delay)]

    def timer_fired(self, timer: Timer, now: float) -> list[Action]:
        if timer is Timer.J and self.state is State.COMPLETED:
            self.state = State.TERMINATED
            return [Terminated()]
        return []
