"""Check the peer drivers against Kamailio as a stand-in registrar (run by hand).

    .venv/bin/python -m tests.peers.selfcheck_kamailio [--keep]

Not a pytest module. What it checks, all on 127.0.0.1:

* SIPp reg.xml over UDP and TCP registers (rc 0, ``kamcmd ul.lookup`` shows the
  contact), a wrong password gives rc 1 with the 401 in the errors log, expires 0
  from the same local port removes the binding, options.xml gets 200;
* baresip and linphonec register over UDP and TCP and unregister (binding gone
  from kamailio, and a tshark capture shows the REGISTER with expires 0 on the wire);
  baresip's ``quit`` unregisters too;
* TLS: Debian's kamailio 5.6.3 tls module fails every handshake with OpenSSL 3
  ("no suitable signature algorithm"), so baresip and linphonec are checked against
  a minimal TLS stub here, which answers 200 to everything and logs the plaintext:
  it shows the TLS config of each peer works and that the un-REGISTER goes out.

Exit code 0 when every check passed; a summary line per check is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.certs import ServerCert, make_self_signed
from tests.peers.kamailio import Kamailio
from tests.peers.linphone import Linphone
from tests.peers.ports import LOOPBACK, free_port
from tests.peers.proc import BoundedProcess
from tests.peers.scratch import scratch_dir
from tests.peers.sipp import (
    run_sipp,
    write_options_scenario,
    write_register_scenario,
    write_users_csv,
)

PASSWORD = "s3cret-pw"

PlainTransport = Literal["udp", "tcp"]
PLAIN_TRANSPORTS: tuple[PlainTransport, ...] = ("udp", "tcp")


class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append((name, ok, detail))
        print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def run(self, name: str, fn: Callable[[], None]) -> None:
        """Run a group; an exception fails it instead of ending the self-check."""
        try:
            fn()
        except Exception as exc:  # report and go on with the next group
            self.check(name, False, f"{type(exc).__name__}: {exc}")

    @property
    def failed(self) -> int:
        return sum(1 for _, ok, _ in self.results if not ok)


def contacts(kam: Kamailio, user: str) -> list[str]:
    return re.findall(r"Address: (\S+)", kam.contacts(user))


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# --- wire capture ---------------------------------------------------------------------


class Capture:
    """tshark on lo, SIP on the registrar port (UDP and TCP)."""

    def __init__(self, workdir: Path, port: int, seconds: float = 300.0) -> None:
        self.pcap = workdir / "sip.pcap"
        self.port = port
        self.proc = BoundedProcess(
            ["tshark", "-i", "lo", "-F", "pcap", "-w", str(self.pcap), "-q",
             "-f", f"port {port}"],
            seconds=seconds,
            log_path=workdir / "tshark.log",
        )  # fmt: skip
        wait_for(lambda: "Capturing on" in self.proc.log_text(), 10.0)

    def stop(self) -> None:
        time.sleep(0.5)  # let the last packets reach the file
        self.proc.terminate()

    def registers(self) -> list[tuple[str, str, str]]:
        """(From user, Expires header, Contact header) of every REGISTER captured."""
        out = subprocess.run(
            ["timeout", "60", "tshark", "-r", str(self.pcap),
             "-d", f"udp.port=={self.port},sip", "-d", f"tcp.port=={self.port},sip",
             "-Y", 'sip.Method == "REGISTER"', "-T", "fields", "-E", "separator=|",
             "-e", "sip.from.user", "-e", "sip.Expires", "-e", "sip.Contact"],
            capture_output=True, text=True, check=True, timeout=70,
        ).stdout  # fmt: skip
        rows = []
        for line in out.splitlines():
            user, expires, contact = [*line.split("|"), "", ""][:3]
            rows.append((user, expires, contact))
        return rows


def unregister_on_wire(rows: list[tuple[str, str, str]], user: str) -> bool:
    return any(u == user and (e.strip() == "0" or re.search(r";\s*expires=0\b", c, re.I)) for u, e, c in rows)


# --- TLS stub registrar ---------------------------------------------------------------


class TlsStubRegistrar:
    """Accepts SIP over TLS, answers every request but ACK with 200, keeps the requests.

    Only here to check the peers' TLS set-up: Debian's kamailio TLS does not work.
    """

    def __init__(self, cert: ServerCert) -> None:
        self.port = free_port()
        self.requests: list[str] = []
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(cert.cert, cert.key)
        self._sock = socket.create_server((LOOPBACK, self.port))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, raw: socket.socket) -> None:
        raw.settimeout(1.0)
        try:
            conn = self._ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.requests.append(f"TLS-HANDSHAKE-FAILED {exc}")
            raw.close()
            return
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except (ssl.SSLError, OSError):
                    return
                if not chunk:
                    return
                buf += chunk
                while True:
                    buf = buf.lstrip(b"\r\n")  # keep-alive CRLFs
                    head, sep, rest = buf.partition(b"\r\n\r\n")
                    if not sep:
                        break
                    m = re.search(rb"^(?:Content-Length|l)\s*:\s*(\d+)", head, re.M | re.I)
                    size = int(m.group(1)) if m else 0
                    if len(rest) < size:
                        break
                    buf = rest[size:]
                    text = head.decode(errors="replace")
                    self.requests.append(text)
                    if not text.startswith("ACK "):
                        conn.sendall(self._answer(text))

    @staticmethod
    def _answer(request: str) -> bytes:
        lines = request.split("\r\n")
        keep = [
            ln for ln in lines[1:]
            if re.match(r"(Via|v|From|f|To|t|Call-ID|i|CSeq)\s*:", ln, re.I)
        ]  # fmt: skip
        expires = re.search(r";\s*expires=(\d+)", request, re.I) or re.search(
            r"^Expires\s*:\s*(\d+)", request, re.M | re.I
        )
        contact = re.search(r"^(?:Contact|m)\s*:\s*(<[^>]*>)", request, re.M | re.I)
        out = ["SIP/2.0 200 OK", *keep]
        if request.startswith("REGISTER ") and contact and (not expires or expires.group(1) != "0"):
            out.append(f"Contact: {contact.group(1)};expires={expires.group(1) if expires else 3600}")
        out += ["Server: tls-stub", "Content-Length: 0", "", ""]
        return "\r\n".join(out).encode()

    def unregistered(self, user: str) -> bool:
        return any(
            r.startswith("REGISTER ")
            and re.search(rf"^(From|f)\s*:.*sip:{user}@", r, re.M | re.I)
            and re.search(r";\s*expires=0\b|^Expires\s*:\s*0\s*$", r, re.M | re.I)
            for r in self.requests
        )


# --- the checks -----------------------------------------------------------------------


def check_sipp(c: Checks, kam: Kamailio, work: Path) -> None:
    kam.add_user("alice", PASSWORD)
    scenario = write_register_scenario(work)
    good = write_users_csv(work / "alice.csv", [("alice", PASSWORD)])
    bad = write_users_csv(work / "alice-bad.csv", [("alice", "wrong")])
    for transport in ("udp", "tcp"):
        port = free_port()
        r = run_sipp(kam.sip_port, scenario, work / f"sipp-{transport}", users_csv=good,
                     transport=transport, local_port=port)  # fmt: skip
        c.check(f"sipp {transport} REGISTER rc 0", r.returncode == 0, r.stderr[-300:])
        bound = [a for a in contacts(kam, "alice") if f":{port};" in a]
        c.check(f"sipp {transport} binding in ul.lookup", bool(bound), str(bound))
        r = run_sipp(kam.sip_port, scenario, work / f"sipp-{transport}-unreg", users_csv=good,
                     transport=transport, local_port=port, expires=0)  # fmt: skip
        gone = not [a for a in contacts(kam, "alice") if f":{port};" in a]
        c.check(f"sipp {transport} expires 0 removes it", r.returncode == 0 and gone)
        c.check(f"sipp {transport} sent Expires: 0", "Expires: 0" in r.messages)
    r = run_sipp(kam.sip_port, scenario, work / "sipp-bad", users_csv=bad)
    c.check("sipp wrong password rc 1", r.returncode == 1, f"rc={r.returncode}")
    c.check("sipp wrong password: 401 in errors log", "401 Unauthorized" in r.errors)
    r = run_sipp(kam.sip_port, write_options_scenario(work), work / "sipp-options")
    c.check("sipp OPTIONS rc 0", r.returncode == 0, r.stderr[-300:])


def check_baresip(c: Checks, kam: Kamailio, work: Path, transport: PlainTransport) -> None:
    user = f"bare{transport}"
    kam.add_user(user, PASSWORD)
    acc = BaresipAccount(user, PASSWORD, kam.sip_port, transport)
    b = Baresip(work / f"baresip-{transport}", acc, seconds=60)
    b.start()
    try:
        info = b.wait_registered(10)
        c.check(f"baresip {transport} registered", True, info.strip().splitlines()[-1])
        bound = contacts(kam, user)
        c.check(f"baresip {transport} binding in ul.lookup", bool(bound), str(bound))
        unreg = b.unregister()
        c.check(f"baresip {transport} uadel sent un-REGISTER", True, unreg.start_line)
        c.check(f"baresip {transport} binding removed", wait_for(lambda: not contacts(kam, user)))
    finally:
        b.stop()


def check_baresip_quit(c: Checks, kam: Kamailio, work: Path) -> None:
    user = "barequit"
    kam.add_user(user, PASSWORD)
    b = Baresip(work / "baresip-quit", BaresipAccount(user, PASSWORD, kam.sip_port), seconds=60)
    b.start()
    try:
        b.wait_registered(10)
        c.check("baresip quit: registered first", bool(contacts(kam, user)))
    finally:
        rc = b.stop()
    c.check("baresip quit unregisters", not contacts(kam, user), f"rc={rc}")


def check_linphone(c: Checks, kam: Kamailio, work: Path, transport: PlainTransport) -> None:
    user = f"lin{transport}"
    kam.add_user(user, PASSWORD)
    lp = Linphone(work / f"linphone-{transport}", user, transport=transport, seconds=60)
    lp.start()
    try:
        lp.register(user, PASSWORD, LOOPBACK, kam.sip_port)
        c.check(f"linphonec {transport} registered", True, lp.wait_registered(10))
        bound = contacts(kam, user)
        ok = any(f"transport={transport}" in a.lower() for a in bound)
        c.check(f"linphonec {transport} binding in ul.lookup", ok, str(bound))
        c.check(f"linphonec {transport} unregister", True, lp.unregister())
        c.check(f"linphonec {transport} binding removed", wait_for(lambda: not contacts(kam, user)))
    finally:
        lp.stop()


def check_tls(c: Checks, work: Path) -> None:
    cert = make_self_signed(work / "certs")
    stub = TlsStubRegistrar(cert)
    try:
        # baresip 1.0 / libre 1.1.0 does not verify the server certificate: no
        # setting needed, and an unrelated CA in sip_cafile does not stop it either
        other = make_self_signed(work / "certs", name="unrelated")
        for label, ca in (("no sip_cafile", None), ("server cert as sip_cafile", cert.cert),
                          ("unrelated sip_cafile", other.cert)):  # fmt: skip
            user = "baretls" + str(len(label))
            acc = BaresipAccount(user, PASSWORD, stub.port, "tls")
            b = Baresip(work / f"baresip-tls-{user}", acc, ca_file=ca, seconds=40)
            b.start()
            try:
                c.check(f"baresip tls, {label}: registered", True, b.wait_registered(6).strip())
                b.unregister()
                c.check(f"baresip tls, {label}: un-REGISTER seen", stub.unregistered(user))
            finally:
                b.stop()
        # linphonec: verification off, or the chain checked against root_ca
        for label, root_ca in (("verify off", None), ("root_ca", cert.cert)):
            user = "lintls" + ("ca" if root_ca else "noverify")
            lp = Linphone(work / f"linphone-tls-{user}", user, transport="tls", root_ca=root_ca,
                          seconds=40)  # fmt: skip
            lp.start()
            try:
                lp.register(user, PASSWORD, LOOPBACK, stub.port)
                c.check(f"linphonec tls {label}: registered", True, lp.wait_registered(10))
                lp.unregister()
                c.check(f"linphonec tls {label}: un-REGISTER seen", stub.unregistered(user))
            finally:
                lp.stop()
    finally:
        stub.close()


def workdir(keep: bool) -> contextlib.AbstractContextManager[Path]:
    return scratch_dir("ringwell-selfcheck-", keep)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    c = Checks()
    with workdir(args.keep) as work:
        kam = Kamailio(work / "kamailio", seconds=300)
        kam.start()
        cap = Capture(work, kam.sip_port)
        try:
            c.run("sipp", lambda: check_sipp(c, kam, work))
            for t in PLAIN_TRANSPORTS:
                c.run(f"baresip {t}", functools.partial(check_baresip, c, kam, work, t))
                c.run(f"linphonec {t}", functools.partial(check_linphone, c, kam, work, t))
            c.run("baresip quit", lambda: check_baresip_quit(c, kam, work))
        finally:
            cap.stop()
            kam.stop()
        rows = cap.registers()
        for user in ("bareudp", "baretcp", "barequit", "linudp", "lintcp"):
            c.check(f"wire: {user} sent REGISTER with expires 0", unregister_on_wire(rows, user))
        c.run("tls", lambda: check_tls(c, work))
    print(f"{len(c.results) - c.failed}/{len(c.results)} checks passed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
