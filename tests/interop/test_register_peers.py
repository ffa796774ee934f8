"""Real peers against ``ringwell serve``: SIPp, baresip and linphonec register with digest over
UDP, TCP and TLS, show up in ``ringwell admin registrations``, unregister, expire, and their
registrations survive a restart (clean and kill -9)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.linphone import Linphone
from tests.peers.ports import LOOPBACK
from tests.peers.server import RingwellServer
from tests.peers.sipp import run_sipp, write_register_scenario, write_users_csv

pytestmark = pytest.mark.peers

USERS = [
    "sipp-udp", "sipp-tcp", "sipp-bad", "sipp-lost", "sipp-exp", "sipp-restart",
    "bs-udp", "bs-tcp", "bs-tls", "lp-udp", "lp-tcp", "lp-tls",
]


def password(user: str) -> str:
    return f"{user}-Secret9"


@pytest.fixture(scope="module")
def ringwell(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ringwell")
    server = RingwellServer(tmp, extra_env={"RINGWELL_MIN_EXPIRES": "1"})
    server.start()
    try:
        server.add_users("Acme", {u: str(200 + i) for i, u in enumerate(USERS)}, password)
        yield server
    finally:
        server.stop()


def registrations(server: RingwellServer, user: str) -> list[dict]:
    return [r for r in json.loads(server.admin("registrations", "--json")) if r["username"] == user]


def wait_for(check: Callable[[], object], timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def sipp_register(server, tmp_path, user, *, pw=None, transport="udp", expires=600, extra=(), local_port=None,
                  name="sipp", seconds=10.0):
    scenario = write_register_scenario(tmp_path)
    users = write_users_csv(tmp_path / f"{user}.csv", [(user, pw or password(user))])
    return run_sipp(server.sip_port, scenario, tmp_path / name, users_csv=users, transport=transport,
                    expires=expires, extra_args=extra, local_port=local_port, sipp_timeout=seconds)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_registers_with_digest_and_unregisters(ringwell, tmp_path, transport):
    user = f"sipp-{transport}"
    from tests.peers.ports import free_port

    port = free_port()
    result = sipp_register(ringwell, tmp_path, user, transport=transport, local_port=port)
    assert result.ok, result.errors
    assert "401 Unauthorized" in result.messages and "200 OK" in result.messages
    (row,) = wait_for(lambda: registrations(ringwell, user))
    assert row["transport"] == transport and row["user_agent"] == "SIPp" and row["org"] == "Acme"
    assert f":{port}" in row["contact"]
    result = sipp_register(ringwell, tmp_path, user, transport=transport, expires=0, local_port=port, name="unreg")
    assert result.ok, result.errors
    assert wait_for(lambda: not registrations(ringwell, user))


def test_sipp_wrong_password_gets_401_and_no_binding(ringwell, tmp_path):
    result = sipp_register(ringwell, tmp_path, "sipp-bad", pw="wrong-password")
    assert result.returncode == 1
    assert "401 Unauthorized" in result.errors
    time.sleep(0.5)
    assert registrations(ringwell, "sipp-bad") == []


def test_sipp_retransmissions_are_absorbed(ringwell, tmp_path):
    """SIPp drops 30 % of what it sends and receives, so it retransmits; every REGISTER still
    completes and the server answers retransmissions from its transactions."""
    result = sipp_register(ringwell, tmp_path, "sipp-lost", extra=["-lost", "20", "-m", "10"], seconds=45)
    assert result.ok, result.errors[-2000:]
    # More REGISTERs went out than the 20 a loss-free run sends: SIPp retransmitted.
    assert result.messages.count("REGISTER sip:") > 20
    assert wait_for(lambda: registrations(ringwell, "sipp-lost"))


def test_expired_registration_disappears(ringwell, tmp_path):
    result = sipp_register(ringwell, tmp_path, "sipp-exp", expires=2)
    assert result.ok, result.errors
    (row,) = wait_for(lambda: registrations(ringwell, "sipp-exp"))
    assert row["expires_in"] <= 2
    time.sleep(2.5)
    assert wait_for(lambda: not registrations(ringwell, "sipp-exp"), timeout=3)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_baresip_registers_and_unregisters(ringwell, tmp_path, transport):
    user = f"bs-{transport}"
    port = ringwell.tls_port if transport == "tls" else ringwell.sip_port
    phone = Baresip(tmp_path / "baresip", BaresipAccount(user, password(user), port, transport), seconds=60)
    phone.start()
    try:
        phone.wait_registered(10)
        (row,) = wait_for(lambda: registrations(ringwell, user))
        assert row["transport"] == transport and "baresip" in row["user_agent"].lower()
        phone.unregister()
        assert wait_for(lambda: not registrations(ringwell, user))
    finally:
        phone.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_linphone_registers_and_unregisters(ringwell, tmp_path, transport):
    user = f"lp-{transport}"
    port = ringwell.tls_port if transport == "tls" else ringwell.sip_port
    phone = Linphone(tmp_path / "linphone", user, transport=transport, seconds=60)
    phone.start()
    try:
        phone.register(user, password(user), LOOPBACK, port)
        assert phone.wait_registered(15)
        (row,) = wait_for(lambda: registrations(ringwell, user))
        assert row["transport"] == transport and "linphone" in row["user_agent"].lower()
        assert phone.unregister()
        assert wait_for(lambda: not registrations(ringwell, user))
    finally:
        phone.stop()


def test_linphone_registers_with_sha256_digest(tmp_path):
    """RFC 8760: with SHA-256 the only algorithm offered, a real phone still registers."""
    server = RingwellServer(tmp_path / "sha", extra_env={"RINGWELL_DIGEST_ALGORITHMS": "SHA-256"})
    with server:
        server.admin("create-org", "--name", "Strong")
        server.admin("create-user", "--org", "Strong", "--email", "s@example.com", "--extension", "101",
                     "--sip-username", "lp-sha", "--sip-password", password("lp-sha"))
        phone = Linphone(tmp_path / "linphone", "lp-sha", transport="udp", seconds=60)
        phone.start()
        try:
            phone.register("lp-sha", password("lp-sha"), LOOPBACK, server.sip_port)
            assert phone.wait_registered(15)
            assert wait_for(lambda: registrations(server, "lp-sha"))
        finally:
            phone.stop()
        log = phone.debug_log_path.read_text(errors="replace")
        answers = [line for line in log.splitlines() if line.startswith("Authorization:")]
        assert answers and all("algorithm=SHA-256" in line for line in answers)


def test_registrations_survive_restart_and_kill(ringwell, tmp_path):
    result = sipp_register(ringwell, tmp_path, "sipp-restart", expires=3600)
    assert result.ok, result.errors
    (before,) = wait_for(lambda: registrations(ringwell, "sipp-restart"))
    ringwell.restart()
    (after,) = registrations(ringwell, "sipp-restart")
    assert after["contact"] == before["contact"] and after["expires_at"] == before["expires_at"]
    time.sleep(0.6)  # the write-behind interval is 0.2 s
    ringwell.restart(crash=True)
    (crashed,) = registrations(ringwell, "sipp-restart")
    assert crashed["contact"] == before["contact"]
