"""Capture golden SIP messages from real peers registering with Ringwell (run by hand).

    .venv/bin/python -m tests.peers.capture_golden

Starts ``ringwell serve`` on loopback, captures its UDP port with tshark while SIPp, baresip
and linphonec register and unregister, and writes every SIP message of the capture to
``tests/data/sip/golden/<peer>-<n>-<first line>.sip`` (requests and responses alike, exactly as
they were on the wire). The parser tests read them, whole, truncated and corrupted.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.linphone import Linphone
from tests.peers.ports import LOOPBACK
from tests.peers.server import RingwellServer
from tests.peers.sipp import run_sipp, write_options_scenario, write_register_scenario, write_users_csv

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "sip" / "golden"
PASSWORD = "golden-Secret9"


def capture(port: int, pcap: Path, seconds: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["timeout", str(seconds + 5), "tshark", "-i", "lo", "-F", "pcap", "-w", str(pcap), "-a",
         f"duration:{seconds}", "-f", f"udp port {port}", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def payloads(pcap: Path, port: int) -> list[bytes]:
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-T", "fields", "-e", "udp.payload", "-Y", f"udp.port == {port}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return [bytes.fromhex(line.strip().replace(":", "")) for line in out.splitlines() if line.strip()]


def slug(message: bytes) -> str:
    first = message.split(b"\r\n", 1)[0].decode(errors="replace")
    return re.sub(r"[^A-Za-z0-9]+", "-", " ".join(first.split()[:2]))[:40].strip("-").lower()


def peer_session(server: RingwellServer, work: Path, peer: str) -> None:
    user = f"golden-{peer}"
    work.mkdir(parents=True, exist_ok=True)
    if peer == "sipp":
        users = write_users_csv(work / "u.csv", [(user, PASSWORD)])
        run_sipp(server.sip_port, write_register_scenario(work), work / "reg", users_csv=users)
        run_sipp(server.sip_port, write_options_scenario(work), work / "opt")
    elif peer == "baresip":
        phone = Baresip(work / "baresip", BaresipAccount(user, PASSWORD, server.sip_port), seconds=30)
        phone.start()
        phone.wait_registered(10)
        phone.unregister()
        phone.stop()
    else:
        phone = Linphone(work / "linphone", user, transport="udp", seconds=30)
        phone.start()
        phone.register(user, PASSWORD, LOOPBACK, server.sip_port)
        phone.wait_registered(15)
        phone.unregister()
        phone.stop()


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with RingwellServer(work) as server:
            server.admin("create-org", "--name", "Golden")
            for i, peer in enumerate(("sipp", "baresip", "linphone")):
                server.admin("create-user", "--org", "Golden", "--email", f"{peer}@example.com", "--extension",
                             f"{300 + i}", "--sip-username", f"golden-{peer}", "--sip-password", PASSWORD)
            for peer in ("sipp", "baresip", "linphone"):
                pcap = work / f"{peer}.pcap"
                tshark = capture(server.sip_port, pcap, 25)
                time.sleep(2)
                peer_session(server, work / peer, peer)
                time.sleep(1)
                tshark.terminate()
                tshark.wait(10)
                for n, message in enumerate(payloads(pcap, server.sip_port)):
                    if len(message) > 4:
                        (GOLDEN / f"{peer}-{n:02d}-{slug(message)}.sip").write_bytes(message)
    print("\n".join(sorted(p.name for p in GOLDEN.glob("*.sip"))))


if __name__ == "__main__":
    main()
