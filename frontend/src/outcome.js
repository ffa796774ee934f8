// How a call ended, in words a user understands (pure: no DOM, no JsSIP objects beyond plain fields).
//
// `outcome({originator, cause, status, reason, answered, seconds})` → `{end, text, error}`:
//   end    a stable machine name, shown on the page root as data-end-reason:
//          hangup | cancelled | declined | busy | not-found | unreachable | no-credit | forbidden |
//          invalid-number | microphone | no-microphone | failed
//   text   the status line
//   error  true when the user should notice (red status)

import { formatDuration } from "./format.js";

// JsSIP's cause strings (JsSIP.C.causes), compared as text to keep this module free of JsSIP.
const CAUSE = {
  BYE: "Terminated",
  CANCELED: "Canceled",
  NO_ANSWER: "No Answer",
  USER_DENIED_MEDIA_ACCESS: "User Denied Media Access",
  CONNECTION_ERROR: "Connection Error",
  REQUEST_TIMEOUT: "Request Timeout",
  RTP_TIMEOUT: "RTP Timeout",
};

function phrase(status, reason) {
  return reason ? `${status} ${reason}` : String(status);
}

/** The outcome of a call that failed with the SIP final response `status` (`reason`: its phrase). */
export function sipFailure(status, reason) {
  switch (status) {
    case 402:
      return { end: "no-credit", text: "Insufficient credit: top up your organization's credit to make this call.",
        error: true };
    case 403:
      return { end: "forbidden", text: `Not allowed: ${phrase(status, reason)}`, error: true };
    case 404:
    case 604:
      return { end: "not-found", text: "No such number/extension.", error: true };
    case 408:
    case 410:
    case 480:
      return { end: "unreachable", text: "Not reachable: nobody answered on that number/extension now.",
        error: true };
    case 484:
      return { end: "invalid-number",
        text: "Number invalid: dial an extension, or a number with its country code (+14155550123).",
        error: true };
    case 486:
    case 600:
      return { end: "busy", text: "Busy.", error: true };
    case 487:
      return { end: "cancelled", text: "Call cancelled.", error: false };
    case 603:
      return { end: "declined", text: "Declined.", error: true };
    default:
      return { end: "failed", text: `Call failed: ${phrase(status, reason)}`, error: true };
  }
}

/** The outcome of a JsSIP session's 'ended' or 'failed' event. */
export function outcome({ originator, cause, status, reason, answered, seconds }) {
  if (cause === CAUSE.USER_DENIED_MEDIA_ACCESS) {
    return microphoneBlocked();
  }
  if (answered) {
    const length = seconds != null ? ` (${formatDuration(seconds)})` : "";
    if (cause === CAUSE.BYE) {
      const who = originator === "local" ? "You hung up" : "The other party hung up";
      return { end: "hangup", text: `${who}${length}.`, error: false };
    }
    if (cause === CAUSE.RTP_TIMEOUT) {
      return { end: "failed", text: `Call lost${length}: the audio connection failed.`, error: true };
    }
    if (cause === CAUSE.CONNECTION_ERROR || cause === CAUSE.REQUEST_TIMEOUT) {
      return { end: "failed", text: `Call lost${length}: no connection to the server.`, error: true };
    }
    return { end: "hangup", text: `Call ended${length}.`, error: false };
  }
  if (originator === "remote" && status >= 300) {
    return sipFailure(status, reason);
  }
  if (cause === CAUSE.CANCELED) {
    return originator === "remote"
      ? { end: "cancelled", text: "Missed call: the caller hung up.", error: false }
      : { end: "cancelled", text: "Call cancelled.", error: false };
  }
  if (cause === CAUSE.NO_ANSWER) {
    return { end: "unreachable", text: "Not reachable: no answer.", error: true };
  }
  if (cause === CAUSE.CONNECTION_ERROR || cause === CAUSE.REQUEST_TIMEOUT) {
    return { end: "failed", text: "Call failed: no connection to the server.", error: true };
  }
  return { end: "failed", text: `Call failed: ${cause || "unknown error"}.`, error: true };
}

/** getUserMedia's error → the outcome shown (microphone blocked, or none found). */
export function mediaError(error) {
  const name = error && error.name;
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
    return { end: "no-microphone", text: "No microphone found: connect one, then reload this page.", error: true };
  }
  if (name === "NotReadableError") {
    return { end: "no-microphone",
      text: "The microphone is in use by another program or cannot be opened: free it, then reload this page.",
      error: true };
  }
  return microphoneBlocked();
}

function microphoneBlocked() {
  return { end: "microphone",
    text: "Microphone blocked: allow this site to use the microphone (the icon in the address bar), "
      + "then reload this page.",
    error: true };
}
