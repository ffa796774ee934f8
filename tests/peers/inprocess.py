"""A Ringwell server in the test's own event loop (its services reachable from the test), on
loopback ports of its own, for the tests that drive real phones against it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from ringwell.server import RingwellServer
from ringwell.settings import ensure_config, load_settings
from tests.peers.ports import LOOPBACK, free_port

__all__ = ["inprocess_server"]


@contextlib.asynccontextmanager
async def inprocess_server(data_dir: Path, env: dict[str, str] | None = None) -> AsyncIterator[RingwellServer]:
    """Started on ``data_dir`` with free SIP, TLS, HTTP and 40 RTP ports (``env`` adds settings); stopped after."""
    ensure_config(data_dir)
    rtp = free_port(40)
    settings = load_settings(data_dir, {
        "RINGWELL_BIND": LOOPBACK, "RINGWELL_SIP_PORT": str(free_port()), "RINGWELL_TLS_PORT": str(free_port()),
        "RINGWELL_HTTP_PORT": str(free_port()), "RINGWELL_RTP_PORTS": f"{rtp}-{rtp + 39}", **(env or {}),
    })
    server = RingwellServer(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
