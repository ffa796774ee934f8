"""A browser stand-in built on aiortc: plays 8 kHz PCM into a WebRTC call and records what it hears.

Used where a real browser would only slow a test down (the leg's own unit tests, bench-webrtc);
the web phone's acceptance tests use Chromium. Its ICE host candidates are pinned (loopback by
default) the same way the server pins its own, because aioice leaves 127.0.0.1 out.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender

__all__ = ["BrowserLike", "PcmTrack"]


class PcmTrack(MediaStreamTrack):
    """Plays ``pcm`` (16-bit little-endian, 8 kHz mono) in real time, 20 ms per frame, then silence."""

    kind = "audio"

    def __init__(self, pcm: bytes) -> None:
        super().__init__()
        self._pcm = pcm
        self._offset = 0
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / 8000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = self._pcm[self._offset: self._offset + 320]
        self._offset += 320
        chunk = chunk.ljust(320, b"\x00")
        frame = av.AudioFrame(format="s16", layout="mono", samples=160)
        frame.planes[0].update(chunk)
        frame.sample_rate = 8000
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 8000)
        self._pts += 160
        return frame


class BrowserLike:
    """One aiortc peer connection that offers or answers like a browser would."""

    def __init__(self, pcm: bytes, *, codecs: tuple[str, ...] = ("opus", "PCMU", "PCMA"),
                 address: str = "127.0.0.1") -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = PcmTrack(pcm)
        self.codecs = codecs
        self.address = address
        self.heard = bytearray()  # what arrived, as 8 kHz 16-bit mono PCM
        self.frames = 0
        self._task: asyncio.Task[None] | None = None
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)

        @self.pc.on("track")  # before any description: an answerer sees the track in setRemoteDescription
        def on_track(track: MediaStreamTrack) -> None:
            self._task = asyncio.ensure_future(self._listen(track))

    def _prepare(self, transceiver: RTCRtpTransceiver) -> None:
        caps = RTCRtpSender.getCapabilities("audio").codecs
        transceiver.setCodecPreferences(
            [c for name in self.codecs for c in caps if c.mimeType.lower() == f"audio/{name.lower()}"])
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        gather = connection.get_component_candidates
        address = self.address

        async def pinned(component: int, addresses: list[str], **options: Any) -> Any:
            return await gather(component=component, addresses=[address], **options)

        connection.get_component_candidates = pinned

    async def offer(self) -> str:
        transceiver = self.pc.addTransceiver(self.track, direction="sendrecv")
        self._prepare(transceiver)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        transceiver = next(t for t in self.pc.getTransceivers() if t.kind == "audio")
        self.pc.addTrack(self.track)
        self._prepare(transceiver)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def _listen(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames += 1
                for out in self._resampler.resample(frame):
                    self.heard += bytes(out.planes[0])[: out.samples * 2]
        except (MediaStreamError, asyncio.CancelledError):
            return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.pc.close()
