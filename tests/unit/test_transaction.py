"""RFC 3261 §17 transactions on a fake clock: every timer, retransmission and state."""

from __future__ import annotations

from ringwell.sip.transaction import (
    CancelTimer,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Send,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    StartTimer,
    State,
    Terminated,
    Timeout,
    Timer,
    TimerValues,
    server_key,
)
from tests.factories import parsed_request, response_to

T1, T2, T4 = 0.5, 4.0, 5.0


class Clock:
    """Runs a transaction's timers in virtual time."""

    def __init__(self, txn):
        self.txn = txn
        self.now = 0.0
        self.timers: dict[Timer, float] = {}
        self.sent: list[tuple[float, object]] = []
        self.events: list[object] = []

    def at(self, when, method, *args):
        """Move the clock to ``when`` (firing due timers) and call ``method(*args, when)``."""
        self.advance(when)
        return self.apply(method(*args, when))

    def apply(self, actions):
        for action in actions:
            if isinstance(action, StartTimer):
                self.timers[action.timer] = self.now + action.delay
            elif isinstance(action, CancelTimer):
                self.timers.pop(action.timer, None)
            elif isinstance(action, Send):
                self.sent.append((self.now, action.message))
            else:
                self.events.append(action)
        return actions

    def advance(self, until: float):
        while True:
            due = [(t, timer) for timer, t in self.timers.items() if t <= until]
            if not due:
                break
            at, timer = min(due, key=lambda d: d[0])
            self.now = at
            del self.timers[timer]
            self.apply(self.txn.timer_fired(timer, at))
        self.now = until


def send_times(clock):
    return [round(t, 3) for t, _ in clock.sent]


def test_client_invite_timer_a_doubles_and_timer_b_times_out():
    txn = ClientInviteTransaction(parsed_request("INVITE"), reliable=False)
    clock = Clock(txn)
    clock.apply(txn.start(0.0))
    clock.advance(40.0)
    # INVITE at 0, then retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 (A doubles, no cap)
    assert send_times(clock) == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert Timeout(Timer.B) in clock.events and Terminated() in clock.events
    assert txn.state is State.TERMINATED


def test_client_invite_reliable_has_no_timer_a():
    txn = ClientInviteTransaction(parsed_request("INVITE", transport="TCP"), reliable=True)
    clock = Clock(txn)
    clock.apply(txn.start(0.0))
    assert Timer.A not in clock.timers and clock.timers[Timer.B] == 64 * T1


def test_client_invite_provisional_stops_retransmissions_then_non2xx_acks_and_timer_d():
    invite = parsed_request("INVITE")
    txn = ClientInviteTransaction(invite, reliable=False)
    clock = Clock(txn)
    clock.apply(txn.start(0.0))
    clock.advance(0.6)
    clock.at(0.6, txn.receive, response_to(invite, 180))
    assert txn.state is State.PROCEEDING
    clock.advance(20.0)
    assert len(clock.sent) == 2  # no retransmission while proceeding
    final = response_to(invite, 486, "Busy Here")
    clock.at(20.0, txn.receive, final)
    ack = clock.sent[-1][1]
    assert ack.method == "ACK" and ack.cseq.method == "ACK" and ack.top_via.branch == invite.top_via.branch
    assert ack.to.tag == "tt"
    # A retransmitted 486 is answered with the same ACK and not delivered again.
    delivered = sum(1 for e in clock.events if isinstance(e, Deliver))
    clock.at(21.0, txn.receive, final)
    assert clock.sent[-1][1] is ack
    assert sum(1 for e in clock.events if isinstance(e, Deliver)) == delivered
    assert clock.timers[Timer.D] == 20.0 + 32.0
    clock.advance(60.0)
    assert txn.state is State.TERMINATED


def test_client_invite_2xx_goes_to_accepted_and_timer_m():
    invite = parsed_request("INVITE")
    txn = ClientInviteTransaction(invite, reliable=False)
    clock = Clock(txn)
    clock.apply(txn.start(0.0))
    ok = response_to(invite, 200, "OK")
    clock.at(0.1, txn.receive, ok)
    assert txn.state is State.ACCEPTED
    clock.at(0.2, txn.receive, ok)
    assert sum(1 for e in clock.events if isinstance(e, Deliver)) == 2  # retransmitted 2xx reaches the TU
    clock.advance(0.1 + 64 * T1)
    assert txn.state is State.TERMINATED


def test_client_invite_timer_c_for_proxies():
    invite = parsed_request("INVITE")
    txn = ClientInviteTransaction(invite, reliable=True, timers=TimerValues(timer_c=181.0), use_timer_c=True)
    clock = Clock(txn)
    clock.apply(txn.start(0.0))
    clock.at(1.0, txn.receive, response_to(invite, 180))
    assert clock.timers[Timer.C] == 182.0  # restarted by the provisional
    clock.advance(182.0)
    assert Timeout(Timer.C) in clock.events


def test_client_non_invite_timer_e_caps_at_t2_and_f_times_out():
    txn = ClientNonInviteTransaction(parsed_request("OPTIONS"), reliable=False)
    clock = Clock(txn)
    clock.apply(txn.start(0.0))
    clock.advance(33.0)
    assert send_times(clock) == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert Timeout(Timer.F) in clock.events and txn.state is State.TERMINATED


def test_client_non_invite_proceeding_retransmits_every_t2_and_timer_k():
    options = parsed_request("OPTIONS")
    txn = ClientNonInviteTransaction(options, reliable=False)
    clock = Clock(txn)
    clock.apply(txn.start(0.0))
    clock.at(0.1, txn.receive, response_to(options, 100, "Trying"))
    clock.advance(10.0)
    assert send_times(clock) == [0.0, 0.5, 4.5, 8.5]
    clock.at(10.0, txn.receive, response_to(options, 200, "OK"))
    assert clock.timers == {Timer.K: 10.0 + T4}
    clock.advance(16.0)
    assert txn.state is State.TERMINATED


def test_server_non_invite_absorbs_retransmissions_and_timer_j():
    register = parsed_request("REGISTER")
    txn = ServerNonInviteTransaction(register, reliable=False)
    clock = Clock(txn)
    assert txn.receive_request(register, 0.0) == []  # Trying: nothing to resend yet
    ok = response_to(register, 200, "OK")
    clock.at(0.1, txn.respond, ok)
    clock.at(0.2, txn.receive_request, register)
    clock.at(0.3, txn.receive_request, register)
    assert [m for _, m in clock.sent] == [ok, ok, ok]
    assert clock.timers[Timer.J] == 0.1 + 64 * T1
    clock.advance(40.0)
    assert txn.state is State.TERMINATED


def test_server_non_invite_reliable_timer_j_is_zero():
    register = parsed_request("REGISTER", transport="TCP")
    txn = ServerNonInviteTransaction(register, reliable=True)
    actions = txn.respond(response_to(register, 200, "OK"), 0.0)
    assert StartTimer(Timer.J, 0.0) in actions


def test_server_invite_timer_g_h_for_unacknowledged_failure():
    invite = parsed_request("INVITE")
    txn = ServerInviteTransaction(invite, reliable=False)
    clock = Clock(txn)
    trying = response_to(invite, 100, "Trying")
    clock.at(0.0, txn.respond, trying)
    clock.at(0.2, txn.receive_request, invite)  # retransmitted INVITE → last provisional again
    assert clock.sent[-1][1] is trying
    clock.at(1.0, txn.respond, response_to(invite, 480))
    clock.advance(1.0 + 64 * T1)
    # 480 at 1.0, G retransmissions at 1.5, 2.5, 4.5, 8.5, 12.5, ... capped at T2
    assert send_times(clock)[2:8] == [1.0, 1.5, 2.5, 4.5, 8.5, 12.5]
    assert Timeout(Timer.H) in clock.events and txn.state is State.TERMINATED


def test_server_invite_ack_confirms_and_timer_i():
    invite = parsed_request("INVITE")
    txn = ServerInviteTransaction(invite, reliable=False)
    clock = Clock(txn)
    clock.at(0.0, txn.respond, response_to(invite, 486))
    ack = parsed_request("ACK", branch=invite.top_via.branch)
    assert server_key(ack) == server_key(invite)
    clock.at(0.3, txn.receive_request, ack)
    assert txn.state is State.CONFIRMED
    assert Timer.G not in clock.timers and clock.timers[Timer.I] == 0.3 + T4
    clock.advance(10.0)
    assert txn.state is State.TERMINATED and len(clock.sent) == 1


def test_server_invite_2xx_accepted_absorbs_retransmissions_then_timer_l():
    invite = parsed_request("INVITE")
    txn = ServerInviteTransaction(invite, reliable=False)
    clock = Clock(txn)
    clock.at(0.0, txn.respond, response_to(invite, 200, "OK"))
    assert txn.state is State.ACCEPTED
    assert txn.receive_request(invite, 0.5) == []
    clock.advance(64 * T1)
    assert txn.state is State.TERMINATED


def test_server_key_rfc2543_fallback_matches_ack_to_invite():
    invite = parsed_request("INVITE", branch="oldstyle1")
    ack = parsed_request("ACK", branch="oldstyle1", to_tag="abc")
    assert server_key(invite)[0] == "2543"
    assert server_key(ack) == server_key(invite)
    other = parsed_request("INVITE", branch="oldstyle1", cseq=2)
    assert server_key(other) != server_key(invite)
