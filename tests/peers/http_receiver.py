"""A real HTTP server on loopback that receives webhooks: it records every request and answers
each with the next status of a script (then 200), like a customer's receiver would.

It runs the standard library's ``ThreadingHTTPServer`` in a thread, so it works the same for
an in-process Ringwell (the test's event loop) and for ``ringwell serve`` in a subprocess.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.peers.ports import LOOPBACK, free_port

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() when it arrived
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    answered: int

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """``with Receiver([500, 500]) as r:`` — ``r.url``, ``r.requests``, ``r.wait(n)`` / ``await r.arrived(n)``."""

    def __init__(self, script: Iterable[int] = (), *, default: int = 200) -> None:
        self.script = list(script)
        self.default = default
        self.requests: list[Received] = []
        self._lock = threading.Condition()
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}/hooks"
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    status = receiver.script.pop(0) if receiver.script else receiver.default
                    receiver.requests.append(Received(time.monotonic(), self.path,
                                                      {k.lower(): v for k, v in self.headers.items()}, body, status))
                    receiver._lock.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="webhook-receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def wait(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Block until ``count`` requests arrived (AssertionError after ``timeout`` s); returns them all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the receiver got {len(self.requests)} requests, not {count}, "
                                         f"in {timeout} s: {[r.headers.get('ringwell-event') for r in self.requests]}")
                self._lock.wait(left)
            return list(self.requests)

    async def arrived(self, count: int, timeout: float = 15.0) -> list[Received]:
        """``wait`` for a test running on an event loop (which must keep running meanwhile)."""
        return await asyncio.to_thread(self.wait, count, timeout)
