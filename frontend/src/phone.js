// Ringwell's /phone page: a SIP phone in the browser (JsSIP over WebSocket, media by WebRTC).
//
// The page (templates/phone/index.html) is server-rendered; this script finds its elements by id
// and keeps the page root (#phone) telling what is going on, for people and for tests alike:
//
//   data-state         idle | registering | registered | calling | ringing | incall | ended | error
//   data-registration  unregistered | registering | registered | failed
//   data-error         microphone | no-microphone | session | registration | login   (when state is error)
//   data-call-id       the SIP Call-ID of the current (or last) call
//   data-end-reason    how the last call ended (see outcome.js), data-sip-status its SIP code
//   data-dtmf          rfc4733 | info: how the last keypad digit was sent
//   data-ringtone      off | playing | blocked | unsupported
//   data-quality-report  sent | failed-<http status> | failed: the last call quality report
//   data-service-worker  registered | failed | unsupported
//   #status            the status line (what a user reads)
//
// The SIP credential is short-lived and minted by the server for the logged-in user
// (POST /api/v1/webphone/session); the page renews it before it expires.

import JsSIP from "jssip";

import {
  applySpeaker, canChooseSpeaker, chooseMicrophone, chooseSpeaker, listDevices, microphoneConstraint,
} from "./devices.js";
import { dialable, formatDuration, shortTime } from "./format.js";
import { mediaError, outcome } from "./outcome.js";
import { Ringtone } from "./ringtone.js";
import { summarize } from "./stats.js";

const ENDED_SHOWN_MS = 3000; // the "ended" state (and its reason in #status) before the phone is ready again
const STATS_EVERY_MS = 1000; // the quality snapshot: JsSIP closes the peer connection before 'ended'
const RETRY_DELAYS_S = [2, 5, 10, 20, 30];
const ICE_LAN_WAIT_MS = 200; // no STUN/TURN: host candidates are all there is, and come at once
const ICE_SERVERS_WAIT_MS = 3000; // with STUN/TURN: an unreachable server must not hold a call up
const HANGUP_STATS_WAIT_MS = 300;

const root = document.getElementById("phone");

function element(id) {
  const found = document.getElementById(id);
  if (!found) {
    throw new Error(`the phone page has no #${id}`);
  }
  return found;
}

const ui = root && {
  status: element("status"),
  registration: element("registration"),
  retry: element("retry-button"),
  login: element("login-link"),
  dialForm: element("dial-form"),
  dialInput: element("dial-input"),
  dialError: element("dial-error"),
  callButton: element("call-button"),
  backspace: element("backspace-button"),
  dialpad: element("dialpad"),
  incoming: element("incoming"),
  incomingName: element("incoming-name"),
  incomingNumber: element("incoming-number"),
  answer: element("answer-button"),
  decline: element("decline-button"),
  incall: element("incall"),
  peerName: element("peer-name"),
  peerNumber: element("peer-number"),
  timer: element("call-timer"),
  quality: element("call-quality"),
  mute: element("mute-button"),
  hold: element("hold-button"),
  keypadToggle: element("keypad-button"),
  dtmfPad: element("dtmf-pad"),
  dtmfDigits: element("dtmf-digits"),
  hangup: element("hangup-button"),
  audio: element("remote-audio"),
  microphone: element("microphone-select"),
  speaker: element("speaker-select"),
  speakerField: element("speaker-field"),
  recentList: element("recent-list"),
  recentEmpty: element("recent-empty"),
  recentError: element("recent-error"),
};

const config = root && {
  csrf: root.dataset.csrf || "",
  sessionUrl: root.dataset.sessionUrl,
  qualityUrl: root.dataset.qualityUrl,
  callsUrl: root.dataset.callsUrl,
  userId: root.dataset.userId || "",
  swUrl: root.dataset.swUrl,
  swScope: root.dataset.swScope,
};

const ringtone = new Ringtone();

// --- state -------------------------------------------------------------------------------------

const phone = {
  ua: null,
  credential: null, // the session API's answer in use
  pendingCredential: null, // a renewed one with another identity, swapped in once no call is up
  registration: "unregistered",
  registrationText: "Starting the phone…",
  registrationError: null, // session | registration | login
  retries: 0,
  retryTimer: null,
  refreshTimer: null,
  media: null, // a microphone problem: {end, text}
  call: null,
  lastEnd: null, // {result, until}
  endedTimer: null,
  restartAfterCall: false,
};

function setRegistration(state, text, error = null) {
  phone.registration = state;
  phone.registrationText = text;
  phone.registrationError = error;
  render();
}

// --- rendering ---------------------------------------------------------------------------------

function peerText(peer) {
  return peer.name && peer.name !== peer.number ? `${peer.name} (${peer.number})` : peer.number;
}

function currentStatus() {
  const call = phone.call;
  if (call) {
    const who = peerText(call.peer);
    if (call.phase === "ringing") {
      return { state: "ringing", text: `Incoming call from ${who}`, tone: "info" };
    }
    if (call.phase === "calling") {
      return { state: "calling", text: call.progress ? `Ringing ${who}…` : `Calling ${who}…`, tone: "info" };
    }
    const notes = [];
    if (call.held) {
      notes.push("on hold");
    } else if (call.remoteHeld) {
      notes.push("held by the other party");
    }
    if (call.muted) {
      notes.push("muted");
    }
    return { state: "incall", text: `In call with ${who}${notes.length ? ` · ${notes.join(" · ")}` : ""}`,
      tone: "ok" };
  }
  if (phone.lastEnd && Date.now() < phone.lastEnd.until) {
    return { state: "ended", text: phone.lastEnd.result.text, tone: phone.lastEnd.result.error ? "error" : "" };
  }
  if (phone.media) {
    return { state: "error", error: phone.media.end, text: phone.media.text, tone: "error" };
  }
  if (phone.registration === "registered") {
    return { state: "registered", text: phone.registrationText, tone: "ok" };
  }
  if (phone.registration === "registering") {
    return { state: "registering", text: phone.registrationText, tone: "" };
  }
  if (phone.registration === "failed") {
    return { state: "error", error: phone.registrationError || "registration", text: phone.registrationText,
      tone: "error" };
  }
  return { state: "idle", text: phone.registrationText, tone: "" };
}

function render() {
  const status = currentStatus();
  const call = phone.call;
  root.dataset.state = status.state;
  root.dataset.registration = phone.registration;
  if (status.error) {
    root.dataset.error = status.error;
  } else {
    delete root.dataset.error;
  }
  if (ui.status.textContent !== status.text) {
    ui.status.textContent = status.text;
  }
  ui.status.dataset.tone = status.tone;

  const extension = phone.credential ? phone.credential.extension : "";
  ui.registration.textContent = phone.registration === "registered" ? `Ext. ${extension}` : "Not registered";
  ui.registration.className = `badge ${phone.registration === "registered" ? "ok"
    : phone.registration === "registering" ? "info" : "error"}`;
  ui.retry.hidden = phone.registration !== "failed" || phone.registrationError === "login";
  ui.login.hidden = phone.registrationError !== "login";

  ui.dialForm.hidden = Boolean(call);
  // Not disabled when unregistered: Enter would then do nothing; placeCall says why instead.
  ui.callButton.setAttribute("aria-disabled", String(phone.registration !== "registered"));
  ui.incoming.hidden = !call || call.phase !== "ringing";
  ui.incall.hidden = !call || call.phase === "ringing";
  if (call) {
    const peer = call.phase === "ringing" ? [ui.incomingName, ui.incomingNumber] : [ui.peerName, ui.peerNumber];
    peer[0].textContent = call.peer.name || call.peer.number;
    peer[1].textContent = call.peer.name && call.peer.name !== call.peer.number ? call.peer.number : "";
    const inCall = call.phase === "incall";
    ui.mute.disabled = !inCall;
    ui.hold.disabled = !inCall || call.holdPending;
    ui.keypadToggle.disabled = !inCall;
    ui.mute.setAttribute("aria-pressed", String(call.muted));
    ui.mute.textContent = call.muted ? "Unmute" : "Mute";
    ui.hold.setAttribute("aria-pressed", String(call.held));
    ui.hold.textContent = call.held ? "Resume" : "Hold";
    ui.hangup.textContent = call.phase === "calling" ? "Cancel" : "Hang up";
    if (!inCall) {
      ui.timer.textContent = call.phase === "calling" ? (call.progress ? "Ringing…" : "Calling…") : "";
    }
  }
  root.dataset.ringtone = ringtone.state;
  document.title = call && call.phase === "ringing" ? "Incoming call · Ringwell" : "Phone · Ringwell";
}

function showDialError(text) {
  ui.dialError.textContent = text;
  ui.dialError.hidden = !text;
}

// --- the SIP credential and registration -------------------------------------------------------

class SessionError extends Error {
  constructor(message, kind = "session") {
    super(message);
    this.kind = kind;
  }
}

async function fetchCredential() {
  let response;
  try {
    response = await fetch(config.sessionUrl, {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "X-CSRF-Token": config.csrf, Accept: "application/json" },
    });
  } catch {
    throw new SessionError("no connection to the server");
  }
  if (response.status === 401) {
    throw new SessionError("your login has expired: log in again", "login");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const why = body && typeof body.message === "string" ? `: ${body.message}` : "";
    throw new SessionError(`the phone service answered HTTP ${response.status}${why}`);
  }
  const needed = ["sip_uri", "username", "password", "ws_url", "extension"];
  if (!body || needed.some((key) => typeof body[key] !== "string" || !body[key])) {
    throw new SessionError("the phone service sent an incomplete answer");
  }
  return body;
}

function scheduleRetry(why, kind) {
  window.clearTimeout(phone.retryTimer);
  if (kind === "login") {
    setRegistration("failed", `Not registered: ${why}.`, "login");
    return;
  }
  const delay = RETRY_DELAYS_S[Math.min(phone.retries, RETRY_DELAYS_S.length - 1)];
  phone.retries += 1;
  setRegistration("failed", `Not registered: ${why}. Retrying in ${delay} s.`, kind);
  phone.retryTimer = window.setTimeout(restart, delay * 1000);
}

function scheduleRenewal(credential) {
  window.clearTimeout(phone.refreshTimer);
  const expires = Date.parse(credential.expires_at);
  if (Number.isNaN(expires)) {
    return;
  }
  // Renew at three quarters of the credential's life, and not in a tight loop.
  const delay = Math.max(10_000, (expires - Date.now()) * 0.75);
  phone.refreshTimer = window.setTimeout(renew, delay);
}

function sameIdentity(a, b) {
  return a.sip_uri === b.sip_uri && a.username === b.username && a.ws_url === b.ws_url;
}

async function renew() {
  if (!phone.ua) {
    return; // not registered: the retry in progress fetches a fresh credential anyway
  }
  let credential;
  try {
    credential = await fetchCredential();
  } catch (error) {
    if (error.kind === "login") {
      scheduleRetry(error.message, "login");
    } else {
      phone.refreshTimer = window.setTimeout(renew, 15_000); // the old one still works for now
    }
    return;
  }
  if (phone.ua && phone.credential && sameIdentity(credential, phone.credential)) {
    phone.credential = credential;
    phone.ua.set("password", credential.password);
    if (credential.realm) {
      phone.ua.set("realm", credential.realm);
    }
    phone.ua.register();
    scheduleRenewal(credential);
  } else if (phone.call) {
    phone.pendingCredential = credential; // swapped in when the call ends
  } else {
    connect(credential);
  }
}

function stopUserAgent() {
  const ua = phone.ua;
  phone.ua = null;
  if (ua) {
    ua.stop(); // its late events are ignored: they are not from phone.ua
  }
}

/** Starts (again): a fresh credential, then a fresh user agent. Never while a call is up. */
async function restart() {
  window.clearTimeout(phone.retryTimer);
  if (phone.call) {
    phone.restartAfterCall = true;
    return;
  }
  phone.restartAfterCall = false;
  stopUserAgent();
  setRegistration("registering", "Connecting…");
  let credential;
  try {
    credential = await fetchCredential();
  } catch (error) {
    scheduleRetry(error.message, error.kind);
    return;
  }
  connect(credential);
}

function connect(credential) {
  stopUserAgent();
  phone.credential = credential;
  phone.pendingCredential = null;
  root.dataset.extension = credential.extension;
  scheduleRenewal(credential);
  let ua;
  try {
    const socket = new JsSIP.WebSocketInterface(new URL(credential.ws_url, window.location.href).href);
    ua = new JsSIP.UA({
      sockets: [socket],
      uri: credential.sip_uri,
      authorization_user: credential.username,
      password: credential.password,
      realm: credential.realm || null,
      display_name: credential.display_name || undefined,
      register: true,
      session_timers: false,
      user_agent: `Ringwell Phone (JsSIP ${JsSIP.version})`,
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 30,
    });
  } catch (error) {
    scheduleRetry(`the phone settings were refused (${error.message})`, "registration");
    return;
  }
  phone.ua = ua;
  const mine = (handler) => (event) => {
    if (phone.ua === ua) {
      handler(event);
    }
  };
  ua.on("connecting", mine(() => setRegistration("registering", "Connecting…")));
  ua.on("connected", mine(() => setRegistration("registering", "Registering…")));
  ua.on("disconnected", mine(() => {
    // JsSIP reconnects by itself (2 s, then longer); a call in progress is lost with the socket.
    setRegistration("failed", "Not registered: no connection to the server. Reconnecting…", "registration");
  }));
  ua.on("registered", mine(() => {
    phone.retries = 0;
    setRegistration("registered", `Registered as ${credential.extension}`);
  }));
  ua.on("unregistered", mine(() => setRegistration("failed", "Not registered.", "registration")));
  ua.on("registrationFailed", mine((event) => {
    const response = event.response;
    const why = response ? `the server refused the registration (${response.status_code} `
      + `${response.reason_phrase})` : `registration failed (${event.cause})`;
    // A refused credential is renewed by starting over.
    scheduleRetry(why, "registration");
  }));
  ua.on("newRTCSession", mine(onNewSession));
  setRegistration("registering", "Connecting…");
  ua.start();
}

// --- microphone --------------------------------------------------------------------------------

async function checkMicrophone() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    phone.media = { end: "no-microphone",
      text: "This browser allows no microphone here: open the portal over HTTPS." };
    render();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: microphoneConstraint(), video: false });
    stream.getTracks().forEach((track) => track.stop());
    phone.media = null;
  } catch (error) {
    phone.media = mediaError(error);
  }
  render();
  await refreshDevices();
}

async function refreshDevices() {
  try {
    await listDevices(ui.microphone, ui.speaker);
  } catch {
    // enumerateDevices failed: the selects keep "System default".
  }
  ui.speakerField.hidden = !canChooseSpeaker() || ui.speaker.options.length < 2;
}

async function switchMicrophone() {
  const call = phone.call;
  if (!call || !call.session.connection) {
    return;
  }
  const sender = call.session.connection.getSenders().find((s) => s.track && s.track.kind === "audio");
  if (!sender) {
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: microphoneConstraint(), video: false });
    const [track] = stream.getAudioTracks();
    track.enabled = !call.muted;
    const old = sender.track;
    await sender.replaceTrack(track);
    if (old) {
      old.stop();
    }
  } catch (error) {
    phone.media = mediaError(error);
    render();
  }
}

// --- calls -------------------------------------------------------------------------------------

function pcConfig() {
  const servers = phone.credential && Array.isArray(phone.credential.ice_servers)
    ? phone.credential.ice_servers : [];
  return { iceServers: servers }; // never a public STUN default
}

function mediaConstraints() {
  return { audio: microphoneConstraint(), video: false };
}

function peerOf(session) {
  const identity = session.remote_identity;
  const number = identity && identity.uri ? identity.uri.user || identity.uri.host : "unknown";
  const name = identity && identity.display_name ? String(identity.display_name) : "";
  return { name, number };
}

function placeCall(text) {
  showDialError("");
  const target = dialable(text);
  if (!target) {
    showDialError("Enter an extension (like 201) or a number with its country code (like +14155550123).");
    return;
  }
  if (phone.call) {
    return;
  }
  if (!phone.ua || phone.registration !== "registered") {
    showDialError("The phone is not registered yet: it cannot call until it is.");
    return;
  }
  ringtone.unlock();
  phone.lastEnd = null;
  const user = target.replace(/#/g, "%23");
  // The user's own SIP domain (the digest realm is a name, not always a host).
  const domain = phone.credential.sip_uri.split("@").pop().split(/[;>]/)[0] || phone.credential.realm;
  try {
    phone.ua.call(`sip:${user}@${domain}`, {
      mediaConstraints: mediaConstraints(),
      rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
      pcConfig: pcConfig(),
    });
  } catch (error) {
    showDialError(`The call could not start: ${error.message}`);
  }
}

// JsSIP waits for ICE gathering to finish before sending the SDP (the server does not trickle ICE).
// Without STUN/TURN only host candidates exist: go shortly after the first one. With servers, go
// soon after a server-reflexive (STUN only) or relay candidate, else after a bound: an unreachable
// server must not hold the call up. JsSIP's ready() is idempotent.
const gathering = new WeakMap(); // ready → {delay, timer}
function onIceCandidate(event) {
  const { ready, candidate } = event;
  const servers = pcConfig().iceServers;
  let delay = ICE_LAN_WAIT_MS;
  if (servers.length) {
    const urls = servers.flatMap((server) => [].concat(server.urls || []));
    const turn = urls.some((url) => /^turns?:/i.test(url));
    const type = candidate.type || (/ typ (\w+)/.exec(candidate.candidate || "") || [])[1];
    delay = type === "relay" || (type === "srflx" && !turn) ? 50 : ICE_SERVERS_WAIT_MS;
  }
  const pending = gathering.get(ready);
  if (pending && pending.delay <= delay) {
    return;
  }
  if (pending) {
    window.clearTimeout(pending.timer);
  }
  gathering.set(ready, { delay, timer: window.setTimeout(ready, delay) });
}

function watchConnection(call, connection) {
  if (call.pc === connection) {
    return;
  }
  call.pc = connection;
  connection.addEventListener("track", (event) => {
    if (event.track.kind !== "audio") {
      return;
    }
    const stream = event.streams[0] || new MediaStream([event.track]);
    if (ui.audio.srcObject !== stream) {
      ui.audio.srcObject = stream;
    }
    applySpeaker(ui.audio).finally(() => ui.audio.play().catch(() => {}));
  });
}

function onNewSession(event) {
  const session = event.session;
  if (phone.call) {
    if (event.originator === "remote") {
      session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
    }
    return;
  }
  const incoming = event.originator === "remote";
  const call = {
    session,
    incoming,
    phase: incoming ? "ringing" : "calling",
    callId: event.request.call_id,
    peer: peerOf(session),
    progress: false,
    answeredAt: null,
    muted: false,
    held: false,
    holdPending: false,
    remoteHeld: false,
    digits: "",
    pc: null,
    snapshot: null,
    statsTimer: null,
    clockTimer: null,
    mediaFailure: null,
    declined: false,
  };
  phone.call = call;
  root.dataset.callId = call.callId;
  delete root.dataset.endReason;
  delete root.dataset.sipStatus;
  delete root.dataset.qualityReport;
  ui.dtmfDigits.textContent = "";
  ui.dtmfPad.hidden = true;
  ui.keypadToggle.setAttribute("aria-expanded", "false");
  ui.quality.textContent = "";
  const current = (handler) => (data) => {
    if (phone.call === call) {
      handler(data);
    }
  };
  if (session.connection) {
    watchConnection(call, session.connection);
  }
  session.on("peerconnection", (data) => watchConnection(call, data.peerconnection));
  session.on("icecandidate", onIceCandidate);
  session.on("getusermediafailed", (error) => {
    call.mediaFailure = error;
  });
  session.on("progress", current(() => {
    call.progress = true;
    render();
  }));
  session.on("accepted", current(() => answered(call)));
  session.on("confirmed", current(() => answered(call)));
  session.on("ended", current((data) => finish(call, data)));
  session.on("failed", current((data) => finish(call, data)));
  session.on("muted", current(() => {
    call.muted = true;
    render();
  }));
  session.on("unmuted", current(() => {
    call.muted = false;
    render();
  }));
  session.on("hold", current((data) => {
    if (data.originator === "local") {
      call.held = true;
      call.holdPending = false;
    } else {
      call.remoteHeld = true;
    }
    render();
  }));
  session.on("unhold", current((data) => {
    if (data.originator === "local") {
      call.held = false;
      call.holdPending = false;
    } else {
      call.remoteHeld = false;
    }
    render();
  }));
  if (incoming) {
    ringtone.start();
    // The ringtone may wait for a user gesture; report when it actually plays.
    window.setTimeout(render, 500);
  }
  render();
}

function answered(call) {
  if (call.answeredAt !== null) {
    return;
  }
  ringtone.stop();
  call.phase = "incall";
  call.answeredAt = performance.now();
  const tick = () => {
    ui.timer.textContent = formatDuration((performance.now() - call.answeredAt) / 1000);
  };
  tick();
  call.clockTimer = window.setInterval(tick, 500);
  call.statsTimer = window.setInterval(() => snapshot(call), STATS_EVERY_MS);
  snapshot(call);
  render();
}

async function snapshot(call) {
  const connection = call.pc;
  if (!connection || connection.signalingState === "closed") {
    return;
  }
  try {
    const summary = summarize(await connection.getStats());
    if (connection.signalingState === "closed") {
      return;
    }
    call.snapshot = summary;
    showQuality(summary);
  } catch {
    // Closed under our feet: the previous snapshot stands.
  }
}

function showQuality(summary) {
  const parts = [];
  if (summary.codec) {
    parts.push(summary.codec.replace(/^audio\//, ""));
  }
  if (summary.rtt_ms != null) {
    parts.push(`RTT ${Math.round(summary.rtt_ms)} ms`);
  }
  if (summary.jitter_ms != null) {
    parts.push(`jitter ${Math.round(summary.jitter_ms)} ms`);
  }
  if (summary.packets_lost != null) {
    parts.push(`lost ${summary.packets_lost}`);
  }
  ui.quality.textContent = parts.join(" · ");
  ui.quality.dataset.packetsReceived = String(summary.packets_received ?? "");
  ui.quality.dataset.packetsSent = String(summary.packets_sent ?? "");
  ui.quality.dataset.audioEnergy = String(summary.total_audio_energy ?? "");
}

function finish(call, data) {
  window.clearInterval(call.clockTimer);
  window.clearInterval(call.statsTimer);
  ringtone.stop();
  const seconds = call.answeredAt === null ? null : (performance.now() - call.answeredAt) / 1000;
  const message = data.message;
  const status = message && typeof message.status_code === "number" ? message.status_code : null;
  let result;
  if (call.mediaFailure) {
    result = mediaError(call.mediaFailure);
    phone.media = result;
  } else if (call.declined) {
    result = { end: "declined", text: "You declined the call.", error: false };
  } else {
    result = outcome({ originator: data.originator, cause: data.cause, status,
      reason: message ? message.reason_phrase : "", answered: call.answeredAt !== null, seconds });
  }
  phone.call = null;
  phone.lastEnd = { result, until: Date.now() + ENDED_SHOWN_MS };
  root.dataset.endReason = result.end;
  if (status !== null && data.originator === "remote") {
    root.dataset.sipStatus = String(status);
  }
  ui.audio.srcObject = null;
  if (call.answeredAt !== null) {
    reportQuality(call, seconds);
  }
  window.clearTimeout(phone.endedTimer);
  phone.endedTimer = window.setTimeout(render, ENDED_SHOWN_MS + 50);
  // The call record is written just behind the call.
  window.setTimeout(refreshRecent, 1000);
  window.setTimeout(refreshRecent, 5000);
  if (phone.pendingCredential) {
    connect(phone.pendingCredential);
  } else if (phone.restartAfterCall || !phone.ua) {
    restart();
  }
  render();
}

function reportQuality(call, seconds) {
  const summary = call.snapshot || summarize(new Map());
  const body = { call_id: call.callId, ...summary, duration_s: seconds === null ? null : Math.round(seconds * 10) / 10 };
  fetch(config.qualityUrl, {
    method: "POST", credentials: "same-origin", keepalive: true,
    headers: { "Content-Type": "application/json", "X-CSRF-Token": config.csrf },
    body: JSON.stringify(body),
  }).then((response) => {
    root.dataset.qualityReport = response.ok ? "sent" : `failed-${response.status}`;
  }, () => {
    root.dataset.qualityReport = "failed";
  });
}

async function hangUp() {
  const call = phone.call;
  if (!call) {
    return;
  }
  if (call.phase === "incall") {
    // The last word on quality, before JsSIP closes the peer connection.
    await Promise.race([snapshot(call), new Promise((resolve) => window.setTimeout(resolve, HANGUP_STATS_WAIT_MS))]);
  }
  if (!call.session.isEnded()) {
    call.session.terminate();
  }
}

function answer() {
  const call = phone.call;
  if (!call || call.phase !== "ringing") {
    return;
  }
  ringtone.stop();
  call.session.answer({ mediaConstraints: mediaConstraints(), pcConfig: pcConfig() });
  render();
}

function decline() {
  const call = phone.call;
  if (!call || call.phase !== "ringing") {
    return;
  }
  ringtone.stop();
  call.declined = true;
  call.session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
}

function toggleMute() {
  const call = phone.call;
  if (!call || call.phase !== "incall") {
    return;
  }
  if (call.session.isMuted().audio) {
    call.session.unmute({ audio: true });
  } else {
    call.session.mute({ audio: true });
  }
}

function toggleHold() {
  const call = phone.call;
  if (!call || call.phase !== "incall" || call.holdPending) {
    return;
  }
  const done = () => {
    call.holdPending = false;
    render();
  };
  const options = { useUpdate: false };
  const started = call.session.isOnHold().local
    ? call.session.unhold(options, done) : call.session.hold(options, done);
  call.holdPending = Boolean(started);
  render();
}

function telephoneEventNegotiated(call) {
  const connection = call.session.connection;
  const sdp = connection && connection.remoteDescription ? connection.remoteDescription.sdp : "";
  if (!/^a=rtpmap:\d+ telephone-event\//im.test(sdp)) {
    return false;
  }
  const sender = connection.getSenders().find((s) => s.track && s.track.kind === "audio");
  return Boolean(sender && sender.dtmf && sender.dtmf.canInsertDTMF !== false);
}

function sendTone(tone) {
  const call = phone.call;
  if (!call || call.phase !== "incall") {
    return;
  }
  const transport = telephoneEventNegotiated(call) ? "RFC2833" : "INFO";
  try {
    call.session.sendDTMF(tone, { transportType: transport, duration: 160, interToneGap: 70 });
  } catch (error) {
    ui.quality.textContent = `The digit could not be sent: ${error.message}`;
    return;
  }
  root.dataset.dtmf = transport === "RFC2833" ? "rfc4733" : "info";
  call.digits += tone;
  ui.dtmfDigits.textContent = call.digits;
}

// --- recent calls ------------------------------------------------------------------------------

const ARROWS = { outbound: "↗", inbound: "↙", internal: "↔" };

function recentEntry(item) {
  const outgoing = config.userId && item.from_user_id === config.userId;
  const other = outgoing ? item.to : item.from || item.from_extension || "unknown";
  const arrow = outgoing ? "↗" : item.direction === "internal" ? "↙" : ARROWS[item.direction] || "";
  const result = item.disposition ? item.disposition.replace(/-/g, " ") : item.state === "open" ? "in progress" : "";
  const meta = [`${arrow} ${outgoing ? "out" : "in"}`, result, shortTime(item.started_at)];
  if (item.talk_seconds) {
    meta.push(formatDuration(item.talk_seconds));
  }
  const li = document.createElement("li");
  const target = dialable(other);
  const box = document.createElement(target ? "button" : "div");
  box.className = "recent-call";
  if (target) {
    box.type = "button";
    box.dataset.number = target;
    box.setAttribute("aria-label", `Call ${other}`);
  }
  const who = document.createElement("span");
  who.className = "recent-who";
  who.textContent = other;
  const info = document.createElement("span");
  info.className = "recent-meta";
  info.textContent = meta.filter(Boolean).join(" · ");
  box.append(who, info);
  li.append(box);
  return li;
}

async function refreshRecent() {
  if (!config.callsUrl) {
    return;
  }
  try {
    const response = await fetch(config.callsUrl, {
      credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    const body = await response.json();
    const items = Array.isArray(body.items) ? body.items : [];
    ui.recentList.replaceChildren(...items.map(recentEntry));
    ui.recentEmpty.hidden = items.length > 0;
    ui.recentError.hidden = true;
  } catch (error) {
    ui.recentError.textContent = `Recent calls could not be loaded (${error.message}).`;
    ui.recentError.hidden = false;
  }
}

// --- wiring ------------------------------------------------------------------------------------

function typeDigit(key) {
  const input = ui.dialInput;
  const start = input.selectionStart ?? input.value.length;
  const end = input.selectionEnd ?? input.value.length;
  if (document.activeElement === input) {
    input.setRangeText(key, start, end, "end");
  } else {
    input.value += key;
  }
  showDialError("");
}

function wireDialpad() {
  let longPress = null;
  let plusTyped = false;
  ui.dialpad.addEventListener("pointerdown", (event) => {
    const key = event.target.closest("[data-key]");
    plusTyped = false;
    if (key && key.dataset.key === "0") {
      // Hold 0 for "+", as on a phone.
      longPress = window.setTimeout(() => {
        typeDigit("+");
        plusTyped = true;
      }, 600);
    }
  });
  const cancel = () => window.clearTimeout(longPress);
  ui.dialpad.addEventListener("pointerup", cancel);
  ui.dialpad.addEventListener("pointerleave", cancel);
  ui.dialpad.addEventListener("click", (event) => {
    const key = event.target.closest("[data-key]");
    if (!key) {
      return;
    }
    if (!plusTyped) {
      typeDigit(key.dataset.key);
    }
    plusTyped = false;
  });
  ui.backspace.addEventListener("click", () => {
    ui.dialInput.value = ui.dialInput.value.slice(0, -1);
  });
  ui.dialForm.addEventListener("submit", (event) => {
    event.preventDefault();
    placeCall(ui.dialInput.value);
  });
  ui.dialInput.addEventListener("input", () => showDialError(""));
}

function wireCallControls() {
  ui.answer.addEventListener("click", answer);
  ui.decline.addEventListener("click", decline);
  ui.hangup.addEventListener("click", hangUp);
  ui.mute.addEventListener("click", toggleMute);
  ui.hold.addEventListener("click", toggleHold);
  ui.keypadToggle.addEventListener("click", () => {
    ui.dtmfPad.hidden = !ui.dtmfPad.hidden;
    ui.keypadToggle.setAttribute("aria-expanded", String(!ui.dtmfPad.hidden));
  });
  ui.dtmfPad.addEventListener("click", (event) => {
    const key = event.target.closest("[data-tone]");
    if (key) {
      sendTone(key.dataset.tone);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.target.closest("input, select, textarea")) {
      return;
    }
    if (/^[0-9*#]$/.test(event.key)) {
      if (phone.call && phone.call.phase === "incall") {
        sendTone(event.key);
      } else if (!phone.call) {
        typeDigit(event.key);
      }
    }
  });
}

function wireDevices() {
  ui.microphone.addEventListener("change", () => {
    chooseMicrophone(ui.microphone.value);
    switchMicrophone();
  });
  ui.speaker.addEventListener("change", () => {
    chooseSpeaker(ui.speaker.value);
    applySpeaker(ui.audio);
  });
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", refreshDevices);
  }
  if (navigator.permissions && navigator.permissions.query) {
    navigator.permissions.query({ name: "microphone" }).then((permission) => {
      permission.addEventListener("change", checkMicrophone);
    }, () => {});
  }
}

function registerServiceWorker() {
  if (!("serviceWorker" in navigator) || !config.swUrl) {
    root.dataset.serviceWorker = "unsupported";
    return;
  }
  navigator.serviceWorker.register(config.swUrl, { scope: config.swScope }).then(() => {
    root.dataset.serviceWorker = "registered";
  }, () => {
    root.dataset.serviceWorker = "failed";
  });
}

function main() {
  JsSIP.debug.disable();
  wireDialpad();
  wireCallControls();
  wireDevices();
  ui.retry.addEventListener("click", () => {
    phone.retries = 0;
    restart();
  });
  // Browsers let audio start only after a user gesture: the first one unlocks the ringtone.
  const unlock = () => ringtone.unlock();
  document.addEventListener("pointerdown", unlock, { once: true });
  document.addEventListener("keydown", unlock, { once: true });
  window.addEventListener("beforeunload", (event) => {
    if (phone.call) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  window.addEventListener("pagehide", (event) => {
    if (!event.persisted) {
      stopUserAgent(); // unregisters: calls stop ringing a closed tab
    }
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      restart();
    }
  });
  render();
  checkMicrophone();
  restart();
  refreshRecent();
  registerServiceWorker();
  ui.recentList.addEventListener("click", (event) => {
    const entry = event.target.closest("[data-number]");
    if (entry) {
      ui.dialInput.value = entry.dataset.number;
      placeCall(entry.dataset.number);
    }
  });
}

if (root) {
  main();
}
