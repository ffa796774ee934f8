"""Ringwell's media relay alone in one asyncio process, driven by bench/media.py.

    python -m bench.media_server --host 127.0.0.1 --ports LOW-HIGH --control PORT [--record-dir DIR]

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

With ``--record-dir`` every session is also recorded as ``ringwell serve`` records a call: a
``CallRecorder`` on the session's tap (G.711 decoded, placed by timestamp, stereo), its PCM
encoded to Ogg/Opus as it comes (``OggOpusWriter``) and sealed into an encrypted blob
(``RecordingService.begin`` on a ``BlobStore`` in DIR, SQLite beside it); ``close`` finishes every
recording (row and file) before it answers. The server's ``Housekeeping`` (collector freezing,
decision 0009) runs too, as in ``ringwell serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ringwell.blobs import BlobStore, KeyRing, MasterKey
from ringwell.features.accounts.service import AccountsService
from ringwell.features.recordings.models import Trigger
from ringwell.features.recordings.service import RecordingService, Upload
from ringwell.media import MediaError, MediaRelay, MediaSession, PortPool
from ringwell.media.apps import CallRecorder
from ringwell.media.oggopus import CONTENT_TYPE, OggOpusWriter
from ringwell.server import Housekeeping
from ringwell.storage.engine import create_engine, migrate, session_factory

log = logging.getLogger("bench.media_server")

COUNTERS = (
    "packets_received",
    "packets_forwarded",
    "foreign_dropped",
    "invalid_dropped",
    "unrouted_dropped",
    "send_errors",
)


class Recorder:
    """Records every session into encrypted Ogg/Opus blobs of one bench organization."""

    def __init__(self, service: RecordingService, org_id: str) -> None:
        self.service = service
        self.org_id = org_id
        self.takes: list[tuple[CallRecorder, OggOpusWriter, Upload]] = []

    @classmethod
    async def open(cls, directory: Path) -> Recorder:
        directory.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite+aiosqlite:///{directory / 'bench.db'}")
        await migrate(engine)
        sessions = session_factory(engine)
        org = await AccountsService(sessions, "bench").create_org("Bench")
        store = BlobStore(sessions, KeyRing(sessions, MasterKey.generate("bench")), directory / "blobs")
        return cls(RecordingService(sessions, store), org.id)

    async def start(self, session: MediaSession) -> None:
        upload = await self.service.begin(self.org_id, CONTENT_TYPE)
        writer = OggOpusWriter(upload.feed)
        recorder = CallRecorder(session, sink=writer.write)
        recorder.start()
        self.takes.append((recorder, writer, upload))

    async def finish(self) -> dict[str, Any]:
        takes, self.takes = self.takes, []
        stored = size = 0
        for recorder, writer, upload in takes:
            recorder.stop()
            writer.close()
            row = await self.service.finish(upload, org_id=self.org_id, call_record_id="bench", caller_user_id=None,
                                            callee_user_id=None, trigger=Trigger.POLICY, started_at=datetime.now(UTC),
                                            duration_s=recorder.seconds, paused_s=0.0, content_type=CONTENT_TYPE)
            if row is not None:
                stored += 1
                size += row.size
        return {"recordings": stored, "recorded_bytes": size}


class Bench:
    def __init__(self, relay: MediaRelay, recorder: Recorder | None = None) -> None:
        self.relay = relay
        self.recorder = recorder
        self.sessions: list[MediaSession] = []
        self.done = asyncio.Event()

    async def create(self, n: int, a: Sequence[Any], b: Sequence[Any]) -> dict[str, Any]:
        ports: list[list[int]] = []
        for _ in range(n):
            session = self.relay.create(f"bench-{len(self.sessions)}")
            self.sessions.append(session)
            session.a.set_remote(str(a[0]), int(a[1]), int(a[1]) + 1)
            session.b.set_remote(str(b[0]), int(b[1]), int(b[1]) + 1)
            ports.append([session.a.local_port, session.b.local_port])
            if self.recorder is not None:
                await self.recorder.start(session)
        return {"ports": ports}

    async def close(self) -> dict[str, Any]:
        counters = dict.fromkeys(COUNTERS, 0)
        recorded = await self.recorder.finish() if self.recorder is not None else {}
        for session in self.sessions:
            for side in (session.a, session.b):
                for name in COUNTERS:
                    counters[name] += getattr(side, name)
            session.close()
        closed, self.sessions = len(self.sessions), []
        return {"closed": closed, "counters": counters, **recorded}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "create":
            return await self.create(int(request["n"]), request["a"], request["b"])
        if op == "close":
            return await self.close()
        if op == "quit":
            await self.close()
            self.done.set()
            return {"bye": True}
        return {"error": f"unknown op {op!r}"}

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    answer = await self.handle(json.loads(line))
                except (ValueError, KeyError, TypeError, MediaError) as exc:
                    answer = {"error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()


async def serve(host: str, low: int, high: int, control: int, record_dir: Path | None = None) -> None:
    relay = MediaRelay(PortPool(low, high), host, timeout=3600.0)
    relay.start()
    bench = Bench(relay, await Recorder.open(record_dir) if record_dir is not None else None)
    housekeeping = None
    if record_dir is not None:
        # Recording allocates (frames, packets, pages) as ``ringwell serve`` does, and like it
        # keeps the collector's pauses short (decision 0009).
        housekeeping = Housekeeping()
        housekeeping.start()
    server = await asyncio.start_server(bench.client, "127.0.0.1", control)
    try:
        await bench.done.wait()
    finally:
        server.close()
        if housekeeping is not None:
            await housekeeping.stop()
        await relay.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", required=True, help="LOW-HIGH relay port range")
    parser.add_argument("--control", type=int, required=True, help="TCP control port on 127.0.0.1")
    parser.add_argument("--record-dir", type=Path, help="record every session (encrypted Ogg/Opus) here")
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
        runner(serve(args.host, int(low), int(high), args.control, args.record_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
