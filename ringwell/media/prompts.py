"""Prompts: spoken text rendered offline with espeak-ng, and uploaded greetings and hold music.

Everything here ends as 16-bit little-endian 8 kHz mono PCM, what ``MediaEndpoint.play()``
sends.

* ``PromptCache.render(text)`` runs Debian's ``espeak-ng`` (text on standard input, so a text
  starting with ``-`` is never read as an option), resamples its 22.05 kHz output to 8 kHz and
  keeps the result in ``<data_dir>/prompts/<sha256>.wav``, the hash taken over the voice, a NUL
  and the text: each prompt is synthesised once per install, never per call.
* ``convert_upload(data)`` decodes an uploaded WAV (any rate, channel count and sample format
  FFmpeg reads) or MP3 with PyAV, downmixes and resamples it. Other containers, undecodable data
  and audio longer than ``max_seconds`` raise ``UploadError``.

Decoding and synthesis are blocking work: they run in a thread (``asyncio.to_thread``) or a
subprocess, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import secrets
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from ringwell.media.errors import MediaError

__all__ = [
    "MAX_PROMPT_CHARS",
    "Prompt",
    "PromptCache",
    "PromptError",
    "UploadError",
    "convert_upload",
    "read_wav",
    "write_wav",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
MAX_PROMPT_CHARS = 2000
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
UPLOAD_FORMATS = ("wav", "mp3")  # PyAV's demuxer names
_ESPEAK_TIMEOUT = 60.0


class PromptError(MediaError):
    """A prompt cannot be rendered: espeak-ng missing or failing, or the text is not acceptable."""


class UploadError(MediaError):
    """An uploaded greeting or hold music is not WAV/MP3 audio that can be decoded, or too long."""


def write_wav(path: Path, pcm: bytes, *, rate: int = SAMPLE_RATE, channels: int = 1) -> Path:
    """Write 16-bit PCM as a WAV file, atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with wave.open(str(tmp), "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(pcm)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_wav(path: Path) -> bytes:
    """The frames of a 16-bit 8 kHz mono WAV file (as written by ``write_wav``)."""
    with wave.open(str(path), "rb") as src:
        if (src.getsampwidth(), src.getframerate(), src.getnchannels()) != (2, SAMPLE_RATE, 1):
            raise ValueError(f"{path} is not 16-bit 8 kHz mono PCM")
        return src.readframes(src.getnframes())


def _decode(data: bytes, allowed: tuple[str, ...], max_seconds: float) -> bytes:
    """Any audio PyAV reads from ``data`` (in one of the ``allowed`` containers) → 8 kHz mono PCM."""
    limit = round(max_seconds * SAMPLE_RATE) * 2
    out = bytearray()
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            names = set(container.format.name.split(","))
            if not names & set(allowed):
                raise UploadError(f"unsupported audio format {container.format.name!r}: upload WAV or MP3")
            if not container.streams.audio:
                raise UploadError("the file holds no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for converted in resampler.resample(frame):
                    out += bytes(converted.planes[0])[: converted.samples * 2]
                if len(out) > limit:
                    raise UploadError(f"the audio is longer than the limit of {max_seconds:g} seconds")
            for converted in resampler.resample(None):
                out += bytes(converted.planes[0])[: converted.samples * 2]
    except av.error.FFmpegError as exc:
        raise UploadError(f"the file cannot be decoded as WAV or MP3 audio: {exc}") from exc
    if len(out) > limit:
        raise UploadError(f"the audio is longer than the limit of {max_seconds:g} seconds")
    if not out:
        raise UploadError("the file holds no audio")
    return bytes(out)


async def convert_upload(data: bytes, *, max_seconds: float = 600.0) -> bytes:
    """An uploaded WAV or MP3 as 16-bit 8 kHz mono PCM; ``UploadError`` if not decodable or too long."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
    if not data:
        raise UploadError("the file is empty")
    return await asyncio.to_thread(_decode, data, UPLOAD_FORMATS, max_seconds)


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    voice: str
    path: Path
    pcm: bytes
    cached: bool
    """True when the prompt came from the cache, False when it was synthesised now."""


class PromptCache:
    """Text prompts rendered by espeak-ng once, kept under ``<data_dir>/prompts/``."""

    def __init__(self, data_dir: Path, *, voice: str = "en-us", espeak: str = "espeak-ng") -> None:
        self.directory = data_dir / "prompts"
        self.voice = voice
        self.espeak = espeak
        self._locks: dict[str, asyncio.Lock] = {}

    @staticmethod
    def key(voice: str, text: str) -> str:
        return hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()

    def path_for(self, text: str, voice: str | None = None) -> Path:
        return self.directory / f"{self.key(voice or self.voice, text)}.wav"

    async def render(self, text: str, voice: str | None = None) -> Prompt:
        """``text`` spoken in ``voice`` as 8 kHz PCM, from the cache or synthesised and cached now."""
        voice = voice or self.voice
        text = text.strip()
        if not text:
            raise PromptError("a prompt needs some text")
        if len(text) > MAX_PROMPT_CHARS:
            raise PromptError(f"a prompt is at most {MAX_PROMPT_CHARS} characters, got {len(text)}")
        if not voice.replace("-", "").replace("+", "").isalnum():
            raise PromptError(f"not an espeak-ng voice name: {voice!r}")
        key = self.key(voice, text)
        path = self.directory / f"{key}.wav"
        async with self._locks.setdefault(key, asyncio.Lock()):
            try:
                if path.exists():
                    return Prompt(text, voice, path, await asyncio.to_thread(read_wav, path), True)
                pcm = await self._synthesise(text, voice)
                await asyncio.to_thread(write_wav, path, pcm)
                log.info("prompt %s rendered (%d ms)", key[:12], len(pcm) // 16)
                return Prompt(text, voice, path, pcm, False)
            finally:
                self._locks.pop(key, None)

    async def _synthesise(self, text: str, voice: str) -> bytes:
        program = shutil.which(self.espeak)
        if program is None:
            raise PromptError(
                f"{self.espeak} is not installed: prompts are spoken by Debian's espeak-ng "
                "(apt-get install espeak-ng)"
            )
        proc = await asyncio.create_subprocess_exec(
            program, "-v", voice, "--stdin", "--stdout",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            wav, err = await asyncio.wait_for(proc.communicate(text.encode()), _ESPEAK_TIMEOUT)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise PromptError(f"espeak-ng took longer than {_ESPEAK_TIMEOUT:g} s") from exc
        if proc.returncode != 0 or not wav:
            message = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
            raise PromptError(f"espeak-ng failed for voice {voice!r}: {message}")
        try:
            return await asyncio.to_thread(_decode, _fix_stream_wav(wav), ("wav",), 3600.0)
        except UploadError as exc:
            raise PromptError(f"espeak-ng's output is not readable audio: {exc}") from exc


def _fix_stream_wav(wav: bytes) -> bytes:
    """espeak-ng writing to a pipe cannot seek back to fill in the RIFF and data sizes; set them."""
    if len(wav) < 44 or wav[:4] != b"RIFF" or wav[36:40] != b"data":
        return wav
    return wav[:4] + (len(wav) - 8).to_bytes(4, "little") + wav[8:40] + (len(wav) - 44).to_bytes(4, "little") + wav[44:]
