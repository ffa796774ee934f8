"""Test audio: speech made with espeak-ng, and how closely a recording matches what was sent.

``similarity(sent, heard)`` is the question "is this recording the audio the far side sent?":
the recording is cut into windows of ``window`` seconds with speech in them; each window is
aligned with the sent audio on its own (softphones' adaptive jitter buffers shift the timing a
little during a call) and the normalised correlation at the best lag is taken; the result is
the median over the windows. A tone, silence or another sentence scores far below 0.5.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np

__all__ = ["read_wav", "similarity", "speech_wav"]


def speech_wav(path: Path, text: str, voice: str = "en-us", rate: int = 8000) -> Path:
    """``text`` spoken by espeak-ng, as mono 16-bit PCM at ``rate`` Hz."""
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True, timeout=60)
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)], check=True, timeout=60)
    raw.unlink()
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples as float in [-1, 1] (first channel) and the sample rate."""
    with wave.open(str(path), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        data = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit samples, expected 16")
    samples = np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0
    return samples[::channels], rate


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return x
    n = round(len(x) * target / rate)
    return np.interp(np.linspace(0, len(x) - 1, n), np.arange(len(x)), x)


def _best_correlation(window: np.ndarray, reference: np.ndarray) -> float:
    """Max over lags of the normalised correlation of ``window`` with a same-length slice of ``reference``."""
    n = len(window)
    if len(reference) < n:
        return 0.0
    size = 1 << int(np.ceil(np.log2(len(reference) + n)))
    spectrum = np.fft.rfft(reference, size) * np.conj(np.fft.rfft(window, size))
    cross = np.fft.irfft(spectrum, size)[: len(reference) - n + 1]
    energy = np.convolve(reference**2, np.ones(n), mode="valid")
    norm = np.sqrt(energy * float(np.dot(window, window)))
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(norm > 1e-9, cross / norm, 0.0)
    return float(scores.max())


def similarity(sent: Path, heard: Path, *, window: float = 0.5, rate: int = 8000, loops: int = 1) -> float:
    """Median best-lag correlation of the speech windows of ``heard`` against ``sent``.

    ``loops`` repeats the sent audio (a player that loops its file).
    """
    ref, ref_rate = read_wav(sent)
    rec, rec_rate = read_wav(heard)
    ref = np.tile(_resample(ref, ref_rate, rate), loops)
    rec = _resample(rec, rec_rate, rate)
    size = int(window * rate)
    loudness = np.sqrt(np.mean(ref**2)) if len(ref) else 0.0
    scores = []
    for start in range(0, len(rec) - size, size):
        chunk = rec[start : start + size]
        if np.sqrt(np.mean(chunk**2)) < 0.3 * loudness:
            continue  # silence between words (or before the call) says nothing
        scores.append(_best_correlation(chunk, ref))
    if len(scores) < 3:
        return 0.0
    return float(np.median(scores))
