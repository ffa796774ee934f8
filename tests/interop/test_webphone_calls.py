"""The web phone, end to end: headless Chromium on /phone ⇄ Ringwell ⇄ baresip, on loopback.

Chromium's fake microphone plays an espeak-ng sentence; baresip plays another and records what it
hears. The browser logs in to the portal, its page mints a short-lived SIP credential, registers
over SIP-over-WebSocket and calls (or is called); Ringwell terminates the browser's ICE and
DTLS-SRTP (aiortc) and relays to baresip's plain RTP.

- browser → baresip: baresip's recording correlates ≥ 0.9 with the browser's sentence; a digit
  typed on the page's keypad arrives at baresip (RFC 4733); the page hangs up.
- baresip → browser: the page rings, the test answers; the browser hears audio (``getStats()``
  ``totalAudioEnergy`` rises), the relay counts packets both ways; baresip hangs up; the call
  record holds both legs' quality summary (the server's and the browser's report).
- a browser offering only Opus still gets a working call (transcoded to G.711).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.audio import similarity, speech_wav
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.ports import LOOPBACK, free_port
from tests.peers.server import RingwellServer

pytestmark = [pytest.mark.peers, pytest.mark.timeout(240)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
                 "--autoplay-policy=no-user-gesture-required"]

# Test-side instrumentation only: keep a handle on the page's peer connections for getStats().
KEEP_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__connections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__connections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Native);
})();
"""

# Chromium's voice processing (echo cancellation, noise suppression, gain control) reshapes the
# fake microphone's waveform; without it the browser sends the file as it is, and what baresip
# hears measures Ringwell's path alone.
RAW_MICROPHONE = """
(() => {
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) => {
    if (constraints && constraints.audio) {
      const audio = typeof constraints.audio === "object" ? constraints.audio : {};
      constraints = { ...constraints, audio: { ...audio, echoCancellation: false, noiseSuppression: false,
                                               autoGainControl: false } };
    }
    return getUserMedia(constraints);
  };
})();
"""

# A browser that offers Opus only (SDP munging of the offer, before setLocalDescription).
OPUS_ONLY = """
(() => {
  const setLocal = RTCPeerConnection.prototype.setLocalDescription;
  RTCPeerConnection.prototype.setLocalDescription = function (description) {
    if (description && description.type === "offer" && description.sdp) {
      const lines = description.sdp.split("\\r\\n");
      const keep = new Set();
      for (const line of lines) {
        const m = /^a=rtpmap:(\\d+) (opus|telephone-event)\\/48000/i.exec(line);
        if (m) keep.add(m[1]);
      }
      const out = [];
      for (const line of lines) {
        if (line.startsWith("m=audio")) {
          const parts = line.split(" ");
          out.push(parts.slice(0, 3).concat(parts.slice(3).filter((pt) => keep.has(pt))).join(" "));
          continue;
        }
        const f = /^a=(rtpmap|fmtp|rtcp-fb):(\\d+)/.exec(line);
        if (f && !keep.has(f[2])) continue;
        out.push(line);
      }
      description = { type: description.type, sdp: out.join("\\r\\n") };
    }
    return setLocal.call(this, description);
  };
})();
"""

INBOUND_ENERGY = """
async () => {
  let energy = 0, packets = 0;
  for (const pc of window.__connections) {
    if (pc.connectionState === "closed") continue;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        energy += s.totalAudioEnergy || 0;
        packets += s.packetsReceived || 0;
      }
    });
  }
  return { energy, packets };
}
"""


@dataclass
class Demo:
    server: RingwellServer
    base: str
    login: str
    password: str
    bob_password: str
    alice_wav: Path
    bob_wav: Path
    tmp: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("webphone")
    alice_wav = speech_wav(tmp / "alice.wav", "Hello Bob, this is Alice calling from the browser about the invoice.")
    # baresip ends a call when its file ends: long enough for every test's call
    bob_wav = speech_wav(tmp / "bob.wav", " ".join(["Good morning, you have reached Bob at the plumbing workshop "
                                                    "downtown, how can I help you today?"] * 5))
    # No mailboxes: a declined call must reach the caller as 486 (with voicemail on, the box would
    # answer it instead: tests/interop/test_voicemail_dnd.py).
    server = RingwellServer(tmp, extra_env={"RINGWELL_WEBRTC_ICE_ADDRESSES": LOOPBACK,
                                            "RINGWELL_VOICEMAIL_ENABLED": "false"})
    with server:
        base = f"http://{LOOPBACK}:{server.http_port}"
        logins = server.setup_demo()
        # Calls to the phone network are rated and need credit: a deck, a trunk, and no credit at all.
        deck = tmp / "sell.csv"
        deck.write_text("prefix,description,price_per_minute,connection_fee,increments,effective_date\n"
                        "1,North America,0.10,0,60/60,2020-01-01\n")
        server.admin("import-rates", "--deck", "sell", str(deck))
        server.admin("assign-deck", "--org", "Demo", "--deck", "sell")
        server.admin("add-trunk", "--name", "carrier", "--host", LOOPBACK, "--port", str(free_port()),
                     "--buy-deck", "sell")
        yield Demo(server, base, logins.email, logins.password, logins.sip_passwords["102"], alice_wav, bob_wav, tmp)


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


def _chromium(playwright: Any, wav: Path) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM,
                                      args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"])


def _open_phone(browser: Browser, demo: Demo, *scripts: str) -> Page:
    return open_phone(browser.new_context(), demo.base, demo.login, demo.password, *scripts)


def open_phone(context: BrowserContext, base: str, email: str, password: str, *scripts: str) -> Page:
    """Log in on the portal and open /phone, registered (with the test's instrumentation scripts)."""
    for script in (KEEP_CONNECTIONS, RAW_MICROPHONE, *scripts):
        context.add_init_script(script)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base}/login")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(re.compile(r".*/$|.*/\?.*"))
    page.goto(f"{base}/phone")
    expect(page.locator("#phone")).to_have_attribute("data-state", "registered")
    return page


def _record(demo: Demo, sip_call_id: str, *, wait_for: str | None = None, timeout: float = 15.0) -> dict[str, Any]:
    """The call record of the browser's leg (its SIP Call-ID is the caller's when it called)."""
    deadline = time.monotonic() + timeout
    while True:
        calls = json.loads(demo.server.admin("calls", "--json"))
        found = [c for c in calls if c["state"] == "closed" and (
            c["sip_call_id"] == sip_call_id or any(isinstance(side, dict) and side.get("webrtc")
                                                   for side in (c.get("media") or {}).values()))]
        found.sort(key=lambda c: c["started_at"])
        if found and (wait_for is None or wait_for in json.dumps(found[-1].get("media"))):
            return found[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no closed record with {wait_for!r} for {sip_call_id}: {calls[-1:] if calls else []}")
        time.sleep(0.5)


def _wait_for_reinvite(phone: Baresip, attribute: str, *, after: int, timeout: float = 10.0) -> None:
    """Wait until ``phone`` has received more than ``after`` re-INVITEs, the last carrying ``attribute``."""
    deadline = time.monotonic() + timeout
    while True:
        received = [e for e in phone.sip_trace() if e.destination.endswith(f":{phone.sip_port}")]
        invites = [e for e in received if e.method == "INVITE"]
        if len(invites) > after and attribute in invites[-1].text:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no re-INVITE with {attribute}: {[i.text[-200:] for i in invites]}")
        time.sleep(0.2)


def test_the_browser_calls_baresip_which_hears_it_and_gets_its_digits(demo: Demo, bob: Baresip) -> None:
    with sync_playwright() as playwright:
        browser = _chromium(playwright, demo.alice_wav)
        try:
            page = _open_phone(browser, demo)
            page.locator("#dial-input").fill("102")
            page.locator("#call-button").click()
            bob.wait_event("CALL_ESTABLISHED", timeout=15)
            expect(page.locator("#phone")).to_have_attribute("data-state", "incall")
            time.sleep(3.0)
            page.locator("#keypad-button").click()
            page.locator("#dtmf-pad [data-tone='5']").click()
            event = bob.wait_event("CALL_DTMF_START", timeout=10)
            assert event.get("param") == "5", event
            time.sleep(5.0)
            sip_call_id = page.locator("#phone").get_attribute("data-call-id")
            page.locator("#hangup-button").click()
            bob.wait_event("CALL_CLOSED", timeout=10)
            expect(page.locator("#phone")).to_have_attribute("data-quality-report", "sent")
        finally:
            browser.close()
    heard, _ = bob.recordings()
    score = similarity(demo.alice_wav, heard, loops=4)  # Chromium loops its fake microphone file
    assert score >= 0.9, f"baresip heard the browser with similarity {score:.3f}"
    assert similarity(demo.bob_wav, heard, loops=4) < 0.5  # its own sentence is not what it heard
    assert sip_call_id
    record = _record(demo, sip_call_id, wait_for="browser")
    assert record["disposition"] == "answered" and record["hangup_by"] == "caller"
    webrtc = record["media"]["a"]["webrtc"]
    assert webrtc["mode"] == "passthrough" and webrtc["browser_codec"] in ("PCMU/8000", "PCMA/8000"), webrtc
    assert webrtc["to_plain"] > 300 and webrtc["to_browser"] > 300, webrtc
    assert webrtc["events_from_browser"] >= 3, webrtc
    assert record["media"]["a"]["browser"]["packets_received"] > 300, record["media"]["a"]


def test_baresip_calls_the_browser_which_answers_and_hears_it(demo: Demo, bob: Baresip) -> None:
    with sync_playwright() as playwright:
        browser = _chromium(playwright, demo.alice_wav)
        try:
            page = _open_phone(browser, demo)
            bob.dial(f"sip:101@{LOOPBACK}:{demo.server.sip_port}")
            expect(page.locator("#phone")).to_have_attribute("data-state", "ringing")
            expect(page.locator("#incoming")).to_be_visible()
            page.locator("#answer-button").click()
            bob.wait_event("CALL_ESTABLISHED", timeout=15)
            expect(page.locator("#phone")).to_have_attribute("data-state", "incall")
            time.sleep(2.0)
            first = page.evaluate(INBOUND_ENERGY)
            time.sleep(3.0)
            second = page.evaluate(INBOUND_ENERGY)
            assert second["packets"] > first["packets"] > 50, (first, second)
            assert second["energy"] > first["energy"] + 0.01, (first, second)  # it hears sound, not silence
            # The browser holds and resumes: re-INVITEs reach baresip as plain offers, sendonly then sendrecv.
            page.locator("#hold-button").click()
            expect(page.locator("#hold-button")).to_have_attribute("aria-pressed", "true")
            _wait_for_reinvite(bob, "a=sendonly", after=0)
            page.locator("#hold-button").click()
            expect(page.locator("#hold-button")).to_have_attribute("aria-pressed", "false")
            _wait_for_reinvite(bob, "a=sendrecv", after=1)
            # baresip holds and resumes: Ringwell answers for the browser, whose media keeps flowing.
            bob.command("hold")
            time.sleep(1.0)
            bob.command("resume")
            time.sleep(2.0)
            expect(page.locator("#phone")).to_have_attribute("data-state", "incall")
            third = page.evaluate(INBOUND_ENERGY)
            time.sleep(2.0)
            fourth = page.evaluate(INBOUND_ENERGY)
            assert fourth["energy"] > third["energy"] + 0.005, (third, fourth)  # sound again after both holds
            bob.command("sndcode", "7")  # RFC 4733 from baresip, relayed to the browser
            sip_call_id = page.locator("#phone").get_attribute("data-call-id")
            time.sleep(1.0)
            bob.command("hangup")
            bob.wait_event("CALL_CLOSED", timeout=10)
            expect(page.locator("#phone")).not_to_have_attribute("data-state", "incall")
            expect(page.locator("#phone")).to_have_attribute("data-quality-report", "sent")
        finally:
            browser.close()
    assert sip_call_id
    record = _record(demo, sip_call_id, wait_for="browser")
    assert record["disposition"] == "answered" and record["hangup_by"] == "caller"  # baresip called and hung up
    media = record["media"]
    # the relay carried packets both ways; each leg has its quality summary
    assert media["a"]["packets_received"] > 150 and media["b"]["packets_received"] > 150, media
    assert media["a"]["jitter_ms"] is not None and media["b"]["jitter_ms"] is not None
    webrtc = media["b"]["webrtc"]
    assert webrtc["mode"] == "passthrough" and webrtc["to_browser"] > 150, webrtc
    assert webrtc["events_to_browser"] >= 3, webrtc  # the digit's event packets went on to the browser
    report = media["b"]["browser"]
    assert report["packets_received"] > 150 and report["total_audio_energy"] > 0, report
    assert report["rtt_ms"] is not None and report["rtt_ms"] < 1000, report


def test_a_browser_offering_only_opus_is_transcoded(demo: Demo, bob: Baresip) -> None:
    with sync_playwright() as playwright:
        browser = _chromium(playwright, demo.alice_wav)
        try:
            page = _open_phone(browser, demo, OPUS_ONLY)
            page.locator("#dial-input").fill("102")
            page.locator("#call-button").click()
            bob.wait_event("CALL_ESTABLISHED", timeout=15)
            time.sleep(8.0)
            sip_call_id = page.locator("#phone").get_attribute("data-call-id")
            energy = page.evaluate(INBOUND_ENERGY)
            page.locator("#hangup-button").click()
            bob.wait_event("CALL_CLOSED", timeout=10)
        finally:
            browser.close()
    assert energy["packets"] > 200 and energy["energy"] > 0.01, energy
    heard, _ = bob.recordings()
    score = similarity(demo.alice_wav, heard, loops=4)
    assert score >= 0.8, f"baresip heard the Opus browser with similarity {score:.3f}"
    assert sip_call_id
    record = _record(demo, sip_call_id)
    webrtc = record["media"]["a"]["webrtc"]
    assert webrtc["mode"] == "opus" and webrtc["browser_codec"] == "opus/48000", webrtc


def test_failed_calls_are_explained_on_the_page(demo: Demo) -> None:
    with sync_playwright() as playwright:
        browser = _chromium(playwright, demo.alice_wav)
        try:
            page = _open_phone(browser, demo)
            phone = page.locator("#phone")
            page.locator("#dial-input").fill("555")  # no such extension (999 would be an emergency call)
            page.locator("#call-button").click()
            expect(phone).to_have_attribute("data-end-reason", "not-found")
            expect(page.locator("#status")).to_contain_text("No such number")
            expect(phone).to_have_attribute("data-state", "registered", timeout=10_000)
            page.locator("#dial-input").fill("+14155550100")
            page.locator("#call-button").click()
            expect(phone).to_have_attribute("data-end-reason", "no-credit")
            expect(phone).to_have_attribute("data-sip-status", "402")
            expect(page.locator("#status")).to_contain_text("Insufficient credit")
        finally:
            browser.close()


def test_the_browser_declines_a_call_that_rings_it(demo: Demo, bob: Baresip) -> None:
    with sync_playwright() as playwright:
        browser = _chromium(playwright, demo.alice_wav)
        try:
            page = _open_phone(browser, demo)
            bob.dial(f"sip:101@{LOOPBACK}:{demo.server.sip_port}")
            expect(page.locator("#phone")).to_have_attribute("data-state", "ringing")
            expect(page.locator("#phone")).to_have_attribute("data-ringtone", "playing")
            expect(page.locator("#incoming")).to_contain_text("102")  # who calls (no display name: the number)
            page.locator("#decline-button").click()
            closed = bob.wait_event("CALL_CLOSED", timeout=10)
            expect(page.locator("#phone")).to_have_attribute("data-ringtone", "off")
            expect(page.locator("#phone")).to_have_attribute("data-state", "registered", timeout=10_000)
        finally:
            browser.close()
    assert "486" in json.dumps(closed), closed  # Busy Here, as a declined call should be
