// Small text formatters shared by the page's modules.

/** 65.4 → "1:05"; 3725 → "1:02:05" (the call timer, mm:ss). */
export function formatDuration(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

/** A dial string as typed → what to call: "+1 (415) 555-0123" → "+14155550123"; null if not dialable. */
export function dialable(text) {
  const target = String(text || "").replace(/[\s().\-/]/g, "");
  return /^\+?[0-9*#]{1,32}$/.test(target) && target !== "+" ? target : null;
}

/** An ISO 8601 instant → "14:05" today, else "3 Mar 14:05" (the browser's time zone). */
export function shortTime(iso, now = new Date()) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) {
    return "";
  }
  const time = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (when.toDateString() === now.toDateString()) {
    return time;
  }
  return `${when.toLocaleDateString([], { day: "numeric", month: "short" })} ${time}`;
}
