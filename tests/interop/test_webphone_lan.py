"""The web phone from another host of the LAN: Chromium in a network namespace of its own.

The test makes a namespace joined to this host by a veth pair (a /30 of 10.199.x.0), runs Ringwell
bound to the host end with HTTPS on (so the SIP WebSocket is ``wss``; a secure page is what a
browser on another host needs for the microphone), and Chromium inside the namespace (an
``ip netns exec`` wrapper as its executable). ICE then has only the veth addresses to work with:
the call to baresip connects over them, baresip hears the browser, and the browser's selected
candidate pair is the server's LAN address.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.audio import similarity, speech_wav
from tests.interop.test_webphone_calls import CHROMIUM, CHROMIUM_ARGS, open_phone
from tests.peers.baresip import Baresip, BaresipAccount
from tests.peers.server import RingwellServer

pytestmark = [pytest.mark.peers, pytest.mark.timeout(180)]

SELECTED_PAIR = """
async () => {
  for (const pc of window.__connections) {
    if (pc.connectionState === "closed") continue;
    const stats = await pc.getStats();
    const all = new Map();
    stats.forEach((s) => all.set(s.id, s));
    for (const s of all.values()) {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
        return { local: all.get(s.localCandidateId).address, remote: all.get(s.remoteCandidateId).address };
      }
    }
  }
  return null;
}
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=10, capture_output=True)


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """(host address, browser address, a chromium that runs in the browser's namespace)."""
    tag = f"{os.getpid() % 1000}{random.randrange(100)}"
    net = random.randrange(1, 250)
    ns, host_if, ns_if = f"rwlan{tag}", f"rwh{tag}", f"rwn{tag}"
    host_ip, ns_ip = f"10.199.{net}.1", f"10.199.{net}.2"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _ip("-n", ns, "link", "set", ns_if, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        wrapper = tmp_path / "chromium-in-namespace"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        yield host_ip, ns_ip, wrapper
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=10, capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], check=False, timeout=10, capture_output=True)


def test_a_browser_on_another_host_calls_over_the_lan(lan: tuple[str, str, Path], tmp_path: Path) -> None:
    host_ip, ns_ip, chromium = lan
    alice_wav = speech_wav(tmp_path / "alice.wav", "Hello from the other side of the office, can you hear me now?")
    bob_wav = speech_wav(tmp_path / "bob.wav", " ".join(["This is the workshop phone answering your call."] * 4))
    server = RingwellServer(tmp_path, host=host_ip, https=True,
                            extra_env={"RINGWELL_WEBRTC_ICE_ADDRESSES": host_ip})
    with server:
        logins = server.setup_demo()
        bob = Baresip(tmp_path / "bob", BaresipAccount(
            "demo102", logins.sip_passwords["102"], server.sip_port, host=host_ip,
            extra=("mwi=no", "pubint=0", "audio_codecs=pcmu", "answermode=auto")), audio_source=bob_wav, seconds=90)
        bob.start()
        try:
            bob.wait_registered(15)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(chromium),
                    args=[*CHROMIUM_ARGS, "--ignore-certificate-errors",
                          f"--use-file-for-fake-audio-capture={alice_wav}"])
                try:
                    page = open_phone(browser.new_context(ignore_https_errors=True), server.base_url,
                                      logins.email, logins.password)
                    page.locator("#dial-input").fill("102")
                    page.locator("#call-button").click()
                    bob.wait_event("CALL_ESTABLISHED", timeout=15)
                    expect(page.locator("#phone")).to_have_attribute("data-state", "incall")
                    time.sleep(1.0)
                    pair = page.evaluate(SELECTED_PAIR)
                    time.sleep(6.0)
                    page.locator("#hangup-button").click()
                    bob.wait_event("CALL_CLOSED", timeout=10)
                finally:
                    browser.close()
        finally:
            bob.stop()
        registrations = json.loads(server.admin("registrations", "--json"))
    assert pair == {"local": ns_ip, "remote": host_ip}, pair  # the media crossed the LAN, not loopback
    assert not any(r["transport"] in ("ws", "wss") for r in registrations)  # the page's binding went with its socket
    heard, _ = bob.recordings()
    score = similarity(alice_wav, heard, loops=4)
    assert score >= 0.9, f"baresip heard the browser across the LAN with similarity {score:.3f}"
