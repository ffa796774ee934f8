"""Offline transcription of voicemail: the real Whisper tiny.en model from its package, real espeak-ng
speech sent through G.711 μ-law as a phone call delivers it.

The model is loaded once for the module (≈ 0.3 s); each transcription takes well under a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import time
import wave

import pytest

from ringwell.media import g711
from ringwell.transcribe import (
    TINY_EN,
    ModelChecksumMismatch,
    ModelMissing,
    ModelSpec,
    Transcriber,
    Transcript,
    verify_model,
)
from ringwell.transcribe.engine import file_sha256
from ringwell.transcribe.score import digits, normalize, wer

pytestmark = pytest.mark.timeout(120)

# A caller leaving a message: name, company, callback number read digit by digit.
VOICEMAIL = "Hello, this is Robert Brown from Northwind Logistics. Call me back at 3 1 2, 7 0 4, 8 2 6 1."


def _phone_speech(tmp_path, text: str, *, voice: str = "en-us", words_per_minute: int = 175) -> bytes:
    """``text`` by espeak-ng at 8 kHz, through μ-law and back: 16-bit PCM as a PCMU call delivers it."""
    raw, wav = tmp_path / "espeak.wav", tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text], check=True,
                   timeout=60)  # fmt: skip
    subprocess.run(["sox", "-D", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(wav)], check=True, timeout=60)
    with wave.open(str(wav), "rb") as w:
        pcm = w.readframes(w.getnframes())
    return g711.decode("PCMU", g711.encode("PCMU", pcm))


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber()


@pytest.mark.parametrize("words_per_minute", [175, 150])
async def test_voicemail_transcript_has_name_company_and_callback_digits(transcriber, tmp_path, words_per_minute):
    pcm = _phone_speech(tmp_path, VOICEMAIL, words_per_minute=words_per_minute)

    transcript = await transcriber.transcribe(pcm, 8000)

    assert isinstance(transcript, Transcript)
    words = normalize(transcript.text)
    joined = "".join(words)
    assert "robert" in words, transcript.text
    assert "brown" in words, transcript.text
    assert "northwindlogistics" in joined, transcript.text  # "Northwind" or "North Wind"
    assert "3127048261" in digits(transcript.text), transcript.text
    assert transcript.language == "en"
    assert transcript.duration_s == pytest.approx(len(pcm) / 2 / 8000)
    # How fast is measured by `make bench-transcribe` (bench/RESULTS.md), not asserted here: on a
    # shared machine a test's wall clock says more about its neighbours than about the engine.


async def test_transcription_runs_off_the_event_loop(transcriber, tmp_path):
    pcm = _phone_speech(tmp_path, VOICEMAIL)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    transcript = await transcriber.transcribe(pcm)
    elapsed = time.monotonic() - started
    done.set()
    await task

    assert "3127048261" in digits(transcript.text)
    # The loop kept running: at least a third of the 10 ms ticks that fit in the decoding time happened.
    assert ticks >= elapsed / 0.01 / 3, (ticks, elapsed)


async def test_silence_gives_an_empty_transcript(transcriber):
    transcript = await transcriber.transcribe(b"\x00\x00" * 8000 * 3, 8000)

    assert transcript.text == ""
    assert transcript.duration_s == pytest.approx(3.0)


def test_a_model_file_that_does_not_match_the_pinned_checksum_is_refused(tmp_path):
    source = TINY_EN.directory()
    tampered = tmp_path / "model"
    tampered.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(source / name, tampered / name)
    data = bytearray((source / "model.bin").read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    (tampered / "model.bin").write_bytes(bytes(data))

    with pytest.raises(ModelChecksumMismatch, match="refusing to load") as caught:
        Transcriber(model_dir=tampered)
    assert caught.value.expected == TINY_EN.sha256
    assert caught.value.actual == file_sha256(tampered / "model.bin")


def test_a_tampered_tokenizer_is_refused_too(tmp_path):
    source = TINY_EN.directory()
    tampered = tmp_path / "model"
    shutil.copytree(source, tampered)
    tokenizer = tampered / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace('"hello"', '"goodbye"', 1) + " ")

    with pytest.raises(ModelChecksumMismatch, match=r"tokenizer\.json"):
        Transcriber(model_dir=tampered)


def test_a_pin_that_does_not_match_the_installed_model_is_refused():
    wrong = dataclasses.replace(TINY_EN, sha256="0" * 64)

    with pytest.raises(ModelChecksumMismatch):
        Transcriber(wrong)


def test_the_installed_model_matches_its_pin_and_the_hub_is_off(transcriber):
    assert verify_model(TINY_EN.directory(), TINY_EN.sha256, TINY_EN.other_files) == TINY_EN.directory()
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set before faster_whisper/huggingface_hub were imported


def test_a_missing_model_is_a_clear_error_not_a_download(tmp_path):
    with pytest.raises(ModelMissing, match="not installed"):
        Transcriber(ModelSpec(name="nothing", package="no_such_model_package", subdir="model", sha256="0" * 64))
    with pytest.raises(ModelMissing, match=r"model\.bin"):
        Transcriber(model_dir=tmp_path)


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("Call me on five five five, oh one four two.", "call me on 555-0142", 0.0),
        ("It costs forty-two dollars", "It costs 42 dollars.", 0.0),
        ("Mister Brown at nine o'clock", "Mr. Brown at 9 o'clock", 0.0),
        ("the cat sat on the mat", "the cat sat on mat", 1 / 6),
        ("one two", "one two three four", 1.0),
    ],
)
def test_word_error_rate_compares_numbers_as_digits(reference, hypothesis, expected):
    assert wer(reference, hypothesis) == pytest.approx(expected)


def test_digits_of_a_callback_number_read_in_words_or_figures():
    assert digits("Call me at 3-1-2, 704 82 61") == "3127048261"
    assert digits("three one two, seven oh four, double eight two six one") == "31270488261"
    assert normalize("Oh, hello!") == ["oh", "hello"]  # "oh" alone is a word, beside digits a zero
