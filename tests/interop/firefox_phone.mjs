// Drives the /phone page in a stock headless Firefox (Debian's firefox-esr) for
// tests/interop/test_webphone_firefox.py: puppeteer-core speaks WebDriver BiDi to it, so neither
// geckodriver nor a downloaded browser is needed.
//
//   node tests/interop/firefox_phone.mjs --base URL --email E --password P --mode call --dial 102
//   node tests/interop/firefox_phone.mjs --base URL --email E --password P --mode answer --hangup remote
//
// It logs in on the portal, opens /phone, waits until the page is registered, then calls --dial
// (mode call) or waits for the page to ring and clicks answer (mode answer). In the call it samples
// the page's peer connections' getStats() (inbound audio: packetsReceived, totalAudioEnergy) once a
// second for --seconds, then clicks hang up (--hangup local) or waits for the other side to hang up
// (--hangup remote), and waits for the page's call quality report.
//
// Progress goes to stderr, one line per step ("step registered", ...), so a caller can act on it
// (dial the page once it is registered). The last line on stdout is one JSON object: what it saw.
// Exit status 0 when every step happened, 1 when one failed, 3 on the hard timeout (--timeout).
//
// Firefox's fake microphone (media.navigator.streams.fake) is a sine tone of --tone Hz.

import { createRequire } from "node:module";
import { parseArgs } from "node:util";

const require = createRequire(new URL("../../frontend/package.json", import.meta.url));
const puppeteer = require("puppeteer-core");

const { values: opts } = parseArgs({
  options: {
    base: { type: "string" },
    email: { type: "string" },
    password: { type: "string" },
    mode: { type: "string", default: "call" },
    dial: { type: "string", default: "" },
    seconds: { type: "string", default: "8" },
    hangup: { type: "string", default: "local" },
    tone: { type: "string", default: "1000" },
    timeout: { type: "string", default: "100" },
    firefox: { type: "string", default: "/usr/bin/firefox-esr" },
  },
});
if (!opts.base || !opts.email || !opts.password || !["call", "answer"].includes(opts.mode)
    || !["local", "remote"].includes(opts.hangup) || (opts.mode === "call" && !opts.dial)) {
  console.error("usage: firefox_phone.mjs --base URL --email E --password P --mode call|answer"
    + " [--dial EXT] [--seconds N] [--hangup local|remote] [--tone HZ] [--timeout S] [--firefox PATH]");
  process.exit(2);
}
const STEP_MS = 20_000;
const seconds = Number(opts.seconds);

const PREFS = {
  // A fake microphone (a sine tone) and no permission prompt.
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
  "media.navigator.audio.fake_frequency": Number(opts.tone),
  // ICE on loopback: Firefox leaves 127.0.0.1 out of its host candidates unless told, and hides
  // host addresses behind mDNS names (which the server cannot resolve).
  "media.peerconnection.ice.loopback": true,
  "media.peerconnection.ice.obfuscate_host_addresses": false,
  // The remote audio element plays without a click.
  "media.autoplay.default": 0,
  "media.autoplay.blocking_policy": 0,
  // Two shared cores: one content process is enough.
  "dom.ipc.processCount": 1,
  "fission.autostart": false,
};

// Test-side instrumentation: keep the page's peer connections for getStats(), and log the page
// root's data-state transitions.
const INSTRUMENT = `(() => {
  const Native = window.RTCPeerConnection;
  window.__connections = [];
  window.__states = [];
  if (Native) {
    window.RTCPeerConnection = function (...args) {
      const pc = new Native(...args);
      window.__connections.push(pc);
      return pc;
    };
    window.RTCPeerConnection.prototype = Native.prototype;
    Object.setPrototypeOf(window.RTCPeerConnection, Native);
  }
  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("phone");
    if (!root) return;
    const note = () => {
      const state = root.dataset.state;
      if (state && window.__states[window.__states.length - 1] !== state) window.__states.push(state);
    };
    note();
    new MutationObserver(note).observe(root, { attributes: true, attributeFilter: ["data-state"] });
  });
})();`;

async function inboundAudio() {
  let energy = 0;
  let packets = 0;
  let codec = null;
  for (const pc of window.__connections) {
    if (pc.signalingState === "closed") continue;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        energy += s.totalAudioEnergy || 0;
        packets += s.packetsReceived || 0;
        const c = stats.get(s.codecId);
        if (c) codec = c.mimeType;
      }
    });
  }
  return { energy, packets, codec, connections: window.__connections.length };
}

const result = {
  ok: false, mode: opts.mode, steps: [], states: [], samples: [], call_id: null, end_reason: null,
  quality_report: null, page_text: null, browser: null, errors: [],
};
let browser = null;
let page = null;

function step(name) {
  result.steps.push(name);
  console.error(`step ${name}`);
}

function finish(code) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(code);
}

const hardTimeout = setTimeout(() => {
  result.errors.push(`hard timeout after ${opts.timeout} s`);
  const child = browser && browser.process();
  if (child && child.pid) {
    try {
      process.kill(child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  finish(3);
}, Number(opts.timeout) * 1000);

async function attr(page, name) {
  return page.$eval("#phone", (root, key) => root.getAttribute(key), name);
}

async function waitState(page, state, timeout = STEP_MS) {
  await page.waitForSelector(`#phone[data-state="${state}"]`, { timeout });
  step(state);
}

async function run() {
  browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: opts.firefox,
    headless: true,
    extraPrefsFirefox: PREFS,
    protocolTimeout: STEP_MS,
  });
  result.browser = await browser.version();
  page = await browser.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (error) => result.errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") result.errors.push(`console: ${message.text()}`);
  });
  await page.evaluateOnNewDocument(INSTRUMENT);

  await page.goto(`${opts.base}/login`);
  await page.type('[data-testid="login-email"]', opts.email);
  await page.type('[data-testid="login-password"]', opts.password);
  await Promise.all([page.waitForNavigation(), page.click('[data-testid="login-submit"]')]);
  if (new URL(page.url()).pathname.startsWith("/login")) {
    throw new Error(`login refused: still on ${page.url()}`);
  }
  step("logged-in");
  await page.goto(`${opts.base}/phone`);
  await waitState(page, "registered");

  if (opts.mode === "call") {
    await page.type("#dial-input", opts.dial);
    await page.click("#call-button");
    step("dialled");
  } else {
    await waitState(page, "ringing", 60_000);
    await page.waitForSelector("#incoming", { visible: true });
    await page.click("#answer-button");
    step("answered");
  }
  await waitState(page, "incall");
  result.call_id = await attr(page, "data-call-id");

  const started = Date.now();
  while (Date.now() - started < seconds * 1000) {
    if ((await attr(page, "data-state")) !== "incall") break;
    const sample = await page.evaluate(inboundAudio);
    result.samples.push({ t: Math.round((Date.now() - started) / 100) / 10, ...sample });
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  if (opts.hangup === "local") {
    await page.click("#hangup-button");
    step("hung-up");
  }
  await page.waitForFunction(() => document.getElementById("phone").dataset.state !== "incall",
    { timeout: 60_000 });
  step("call-ended");
  await page.waitForSelector("#phone[data-quality-report]");
  result.quality_report = await attr(page, "data-quality-report");
  result.end_reason = await attr(page, "data-end-reason");
  result.page_text = await page.$eval("#status", (status) => status.textContent.trim());
  result.states = await page.evaluate(() => window.__states);
  result.ok = result.quality_report === "sent";
  step("quality-report");
}

let code = 1;
try {
  await run();
  code = result.ok ? 0 : 1;
} catch (error) {
  result.errors.push(`${error.name}: ${error.message}`);
  if (page) {
    // Where the page was when it went wrong.
    await Promise.race([
      page.evaluate(() => ({ states: window.__states || [], status: document.getElementById("status")?.textContent,
        attrs: Object.fromEntries(["state", "registration", "error", "callId", "endReason", "sipStatus",
          "qualityReport"].map((key) => [key, document.getElementById("phone")?.dataset[key]])) }))
        .then((where) => Object.assign(result, { states: where.states, page_text: where.status, page: where.attrs })),
      new Promise((resolve) => setTimeout(resolve, 3000)),
    ]).catch(() => {});
  }
} finally {
  clearTimeout(hardTimeout);
  if (browser) {
    await Promise.race([browser.close().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 10_000))]);
    const child = browser.process();
    if (child && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}
finish(code);
