// Ringwell phone's service worker (served at /phone/sw.js, scope /phone): lets the installed phone
// start without a network. It keeps the static shell and a generic offline page, fetches everything
// from the network first (so a release is never hidden behind a stale copy), and leaves the API and
// the SIP WebSocket alone: nothing under /api or /ws is ever cached or answered from a cache.
"use strict";

const CACHE = "{{ cache_name }}";
const SHELL = {{ shell }};
const OFFLINE = "/phone/offline";

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys().then((names) => Promise.all(
    names.filter((name) => name.startsWith("ringwell-phone-") && name !== CACHE).map((name) => caches.delete(name)),
  )).then(() => self.clients.claim()));
});

function networkFirst(request, fallback) {
  return fetch(request).then((response) => {
    if (response.ok && response.type === "basic" && fallback === request) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(request, copy));
    }
    return response;
  }).catch(() => caches.match(fallback).then((cached) => cached || Response.error()));
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") {
    return;
  }
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith("/api/") || url.pathname === "/ws") {
    return;
  }
  if (request.mode === "navigate") {
    // The phone page itself is personal (never cached): offline, the generic page stands in.
    event.respondWith(networkFirst(request, OFFLINE));
  } else if (SHELL.includes(url.pathname)) {
    event.respondWith(networkFirst(request, request));
  }
});
