"""The web phone in Firefox: a stock headless Firefox ESR on /phone ⇄ Ringwell ⇄ baresip, on loopback.

Playwright cannot drive a stock Firefox and Debian has no geckodriver, but Firefox speaks WebDriver
BiDi itself: ``firefox_phone.mjs`` drives it with ``puppeteer-core`` (a devDependency of
``frontend/``, installed from its lockfile; no browser download). It logs in on the portal, opens
/phone, waits until the page is registered, calls or answers, samples the page's ``getStats()``,
hangs up (or waits for baresip to) and prints what it saw as one JSON line.

Firefox's fake microphone is a sine tone (``media.navigator.audio.fake_frequency``), not a file, so
the speech correlation of ``tests.audio.similarity`` does not apply: what baresip hears is checked
for the tone instead, by its loudness and its dominant frequency (a 700 Hz tone, not Firefox's
default 1 kHz, so the pitch proves the prefs reached the page's microphone and nothing else played).

- Firefox → baresip: baresip hears seconds of the tone; the page hangs up; the call record holds the
  WebRTC leg (pass-through of the G.711 codec Firefox offers) and the page's quality report.
- baresip → Firefox: the page rings, the driver answers; Firefox hears baresip (``packetsReceived``
  and ``totalAudioEnergy`` rise) and baresip hears the tone; baresip hangs up and the page sees it.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest

from tests.audio import read_wav, speech_wav
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.ports import LOOPBACK
from tests.peers.server import RingwellServer

pytestmark = [pytest.mark.peers, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "frontend"
DRIVER = Path(__file__).with_name("firefox_phone.mjs")
FIREFOX = "/usr/bin/firefox-esr"
TONE_HZ = 700.0


@dataclass
class Demo:
    server: RingwellServer
    base: str
    login: str
    password: str
    bob_password: str
    bob_wav: Path


@pytest.fixture(scope="module")
def node() -> str:
    """Node with puppeteer-core from frontend/'s lockfile (``npm ci`` when it is not installed yet)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed to drive Firefox (Debian: apt-get install npm)")
    if not Path(FIREFOX).exists():
        pytest.fail(f"{FIREFOX} is missing: make peers (scripts/install-peers.sh) installs firefox-esr")
    if not (FRONTEND / "node_modules" / "puppeteer-core" / "package.json").exists():
        done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=FRONTEND,
                              capture_output=True, text=True, timeout=240, check=False, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return node


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("webphone-firefox")
    # baresip ends a call when its file ends: long enough for every test's call
    bob_wav = speech_wav(tmp / "bob.wav", " ".join(["Good morning, you have reached Bob at the plumbing workshop "
                                                    "downtown, how can I help you today?"] * 5))
    server = RingwellServer(tmp, extra_env={"RINGWELL_WEBRTC_ICE_ADDRESSES": LOOPBACK})
    with server:
        logins = server.setup_demo()
        yield Demo(server, f"http://{LOOPBACK}:{server.http_port}", logins.email, logins.password,
                   logins.sip_passwords["102"], bob_wav)


@pytest.fixture
def bob(demo: Demo, tmp_path: Path) -> Iterator[Baresip]:
    phone = Baresip(tmp_path / "bob", BaresipAccount(
        "demo102", demo.bob_password, demo.server.sip_port,
        extra=("mwi=no", "pubint=0", "audio_codecs=pcmu", "answermode=auto")), audio_source=demo.bob_wav, seconds=120)
    phone.start()
    try:
        phone.wait_registered(15)
        yield phone
    finally:
        phone.stop()


class Firefox:
    """``firefox_phone.mjs`` running: its progress steps as they come, its JSON result at the end."""

    def __init__(self, node: str, demo: Demo, *args: str, timeout: float = 100.0) -> None:
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [node, str(DRIVER), "--base", demo.base, "--email", demo.login, "--password", demo.password,
             "--tone", str(int(TONE_HZ)), "--timeout", str(int(timeout)), "--firefox", FIREFOX, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True)  # its own process group: Firefox and its children go with it
        self.steps: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.log.append(line.rstrip())
            if line.startswith("step "):
                self.steps.put(line[5:].strip())

    def wait_step(self, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self.steps.get(timeout=left) == name:
                    return
            except queue.Empty:
                break
        raise AssertionError(f"Firefox never reached {name!r}: {self.log[-30:]}")

    def result(self) -> dict[str, Any]:
        try:
            out, _ = self.proc.communicate(timeout=self.timeout + 20)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._reader.join(5)
        lines = out.strip().splitlines()
        assert lines, f"the Firefox driver printed nothing (exit {self.proc.returncode}): {self.log[-30:]}"
        result: dict[str, Any] = json.loads(lines[-1])
        result["exit"] = self.proc.returncode
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _tone_seconds(recording: Path) -> tuple[int, list[float]]:
    """Seconds of ``recording`` that are audible and whose dominant frequency is TONE_HZ (±15 Hz),
    and every audible second's dominant frequency."""
    samples, rate = read_wav(recording)
    peaks = []
    for start in range(0, len(samples) - rate + 1, rate):
        chunk = samples[start:start + rate]
        if np.sqrt(np.mean(chunk**2)) < 0.01:
            continue  # before the answer, after the hang-up
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk))))
        spectrum[0] = 0.0
        peaks.append(float(np.fft.rfftfreq(len(chunk), 1 / rate)[int(np.argmax(spectrum))]))
    return sum(1 for hz in peaks if abs(hz - TONE_HZ) <= 15), peaks


def _record(demo: Demo, *, timeout: float = 15.0) -> dict[str, Any]:
    """The newest closed call record with a WebRTC leg, once the page's quality report is in it."""
    deadline = time.monotonic() + timeout
    while True:
        calls = json.loads(demo.server.admin("calls", "--json"))
        found = sorted((c for c in calls if c["state"] == "closed" and any(
            isinstance(side, dict) and side.get("webrtc") for side in (c.get("media") or {}).values())),
            key=lambda c: c["started_at"])
        if found and "browser" in json.dumps(found[-1].get("media")):
            return found[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no closed WebRTC call record with the browser's report: {calls[-1:]}")
        time.sleep(0.5)


def test_firefox_calls_baresip_which_hears_its_tone(node: str, demo: Demo, bob: Baresip) -> None:
    firefox = Firefox(node, demo, "--mode", "call", "--dial", "102", "--seconds", "8", "--hangup", "local")
    try:
        bob.wait_event("CALL_ESTABLISHED", timeout=40)
        bob.wait_event("CALL_CLOSED", timeout=40)
        seen = firefox.result()
    finally:
        firefox.kill()
    assert seen["exit"] == 0 and seen["ok"], seen
    assert seen["steps"] == ["logged-in", "registered", "dialled", "incall", "hung-up", "call-ended",
                             "quality-report"], seen
    assert "calling" in seen["states"] and "incall" in seen["states"], seen["states"]
    assert seen["end_reason"] and seen["errors"] == [], seen
    heard, _ = bob.recordings()
    tone, peaks = _tone_seconds(heard)
    assert tone >= 5, f"baresip heard {tone} s of Firefox's {TONE_HZ:.0f} Hz tone; loud seconds peaked at {peaks}"
    record = _record(demo)
    assert record["sip_call_id"] == seen["call_id"], (record["sip_call_id"], seen["call_id"])
    assert record["disposition"] == "answered" and record["hangup_by"] == "caller", record
    webrtc = record["media"]["a"]["webrtc"]
    # Firefox offers Opus, G722, PCMU and PCMA: the server takes the G.711 one, passed through
    assert webrtc["mode"] == "passthrough" and webrtc["browser_codec"] in ("PCMU/8000", "PCMA/8000"), webrtc
    assert webrtc["to_plain"] > 300 and webrtc["to_browser"] > 300, webrtc
    report = record["media"]["a"]["browser"]
    assert report["packets_received"] > 300 and report["codec"] in ("audio/PCMU", "audio/PCMA"), report


def test_baresip_calls_firefox_which_answers_and_hears_it(node: str, demo: Demo, bob: Baresip) -> None:
    firefox = Firefox(node, demo, "--mode", "answer", "--seconds", "6", "--hangup", "remote")
    try:
        firefox.wait_step("registered", timeout=60)
        bob.dial(f"sip:101@{LOOPBACK}:{demo.server.sip_port}")
        firefox.wait_step("ringing")
        bob.wait_event("CALL_ESTABLISHED", timeout=20)
        firefox.wait_step("incall")
        time.sleep(8.0)  # the driver samples getStats() for 6 s
        bob.command("hangup")
        bob.wait_event("CALL_CLOSED", timeout=10)
        seen = firefox.result()
    finally:
        firefox.kill()
    assert seen["exit"] == 0 and seen["ok"], seen
    assert seen["steps"] == ["logged-in", "registered", "ringing", "answered", "incall", "call-ended",
                             "quality-report"], seen
    assert seen["errors"] == [], seen
    samples = seen["samples"]
    assert len(samples) >= 4, samples
    first, last = samples[0], samples[-1]
    assert last["packets"] > first["packets"] + 150, samples  # 50 packets a second
    assert last["energy"] > first["energy"] + 0.01, samples  # it hears sound, not silence
    heard, _ = bob.recordings()
    tone, peaks = _tone_seconds(heard)
    assert tone >= 4, f"baresip heard {tone} s of Firefox's {TONE_HZ:.0f} Hz tone; loud seconds peaked at {peaks}"
    record = _record(demo)
    assert record["disposition"] == "answered" and record["hangup_by"] == "caller", record  # baresip's hang-up
    media = record["media"]
    assert media["a"]["packets_received"] > 150 and media["b"]["packets_received"] > 150, media
    webrtc = media["b"]["webrtc"]
    assert webrtc["mode"] == "passthrough" and webrtc["to_browser"] > 150, webrtc
    report = media["b"]["browser"]
    assert report["packets_received"] > 150 and report["total_audio_energy"] > 0, report
    # Firefox has no currentRoundTripTime on its candidate pair: the page takes RTCP's round trip
    assert report["rtt_ms"] is not None and report["rtt_ms"] < 1000, report
