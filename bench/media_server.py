"""Ringwell's media relay alone in one asyncio process, driven by bench/media.py.

    python -m bench.media_server --host 127.0.0.1 --ports LOW-HIGH --control PORT

The same ``ringwell.media`` ``PortPool`` + ``MediaRelay`` that ``ringwell serve`` runs,
on uvloop when installed, without SIP: the benchmark creates sessions through a line
protocol (one JSON object per line, one answer per request) on a TCP control port on
127.0.0.1, the way it drives rtpengine through NG offer/answer. Requests:

    {"op": "create", "n": N, "a": [host, port], "b": [host, port]}
        N sessions; side a of each sends to a (RTCP port + 1), side b to b.
        -> {"ports": [[a_local_port, b_local_port], ...]}
    {"op": "close"}  close every session -> {"closed": n, "counters": {...}}
    {"op": "quit"}   stop the relay and exit -> {"bye": true}

Errors answer {"error": "..."}; the process goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ringwell.media import MediaError, MediaRelay, MediaSession, PortPool

log = logging.getLogger("bench.media_server")

COUNTERS = (
    "packets_received",
    "packets_forwarded",
    "foreign_dropped",
    "invalid_dropped",
    "unrouted_dropped",
    "send_errors",
)


class Bench:
    def __init__(self, relay: MediaRelay) -> None:
        self.relay = relay
        self.sessions: list[MediaSession] = []
        self.done = asyncio.Event()

    def create(self, n: int, a: Sequence[Any], b: Sequence[Any]) -> dict[str, Any]:
        ports: list[list[int]] = []
        for _ in range(n):
            session = self.relay.create(f"bench-{len(self.sessions)}")
            self.sessions.append(session)
            session.a.set_remote(str(a[0]), int(a[1]), int(a[1]) + 1)
            session.b.set_remote(str(b[0]), int(b[1]), int(b[1]) + 1)
            ports.append([session.a.local_port, session.b.local_port])
        return {"ports": ports}

    def close(self) -> dict[str, Any]:
        counters = dict.fromkeys(COUNTERS, 0)
        for session in self.sessions:
            for side in (session.a, session.b):
                for name in COUNTERS:
                    counters[name] += getattr(side, name)
            session.close()
        closed, self.sessions = len(self.sessions), []
        return {"closed": closed, "counters": counters}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "create":
            return self.create(int(request["n"]), request["a"], request["b"])
        if op == "close":
            return self.close()
        if op == "quit":
            self.close()
            self.done.set()
            return {"bye": True}
        return {"error": f"unknown op {op!r}"}

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    answer = self.handle(json.loads(line))
                except (ValueError, KeyError, TypeError, MediaError) as exc:
                    answer = {"error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()


async def serve(host: str, low: int, high: int, control: int) -> None:
    relay = MediaRelay(PortPool(low, high), host, timeout=3600.0)
    relay.start()
    bench = Bench(relay)
    server = await asyncio.start_server(bench.client, "127.0.0.1", control)
    try:
        await bench.done.wait()
    finally:
        server.close()
        await relay.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", required=True, help="LOW-HIGH relay port range")
    parser.add_argument("--control", type=int, required=True, help="TCP control port on 127.0.0.1")
    args = parser.parse_args(argv)
    low, _, high = args.ports.partition("-")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        import uvloop  # noqa: PLC0415 - optional, as in ringwell serve
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve(args.host, int(low), int(high), args.control))
    return 0


if __name__ == "__main__":
    sys.exit(main())
