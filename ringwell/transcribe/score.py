"""Text normalisation and word error rate, for scoring transcripts against what was said.

Whisper writes "call me back on 555 0142." where a script says "call me back on five five five
zero one four two"; both must score as the same words. :func:`normalize` lower-cases, drops
punctuation, spells every digit as its own token and turns number words into digits, so that
"forty-two", "42" and "four two" all become ``["4", "2"]``. :func:`digits` keeps only the digits
of a text (the callback number of a voicemail). Pure functions, standard library only.
"""

from __future__ import annotations

import re

__all__ = ["digits", "normalize", "wer", "word_errors"]

_UNITS = {
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_REPEAT = {"double": 2, "triple": 3}
# "o" and "oh" count as zero only beside other digits ("five oh two"), never on their own.
_ZERO_WORDS = {"o", "oh"}
# Abbreviations a transcriber writes for words a speaker says.
_SPOKEN = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "street", "ok": "okay", "o'clock": "oclock"}
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+")


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("’", "'")
    text = re.sub(r"(?<=\d)[,.](?=\d)", "", text)  # 1,000 and 555.0142 are one number
    text = text.replace("-", " ")
    return [_SPOKEN.get(word, word) for word in _TOKEN.findall(text)]


def _number_value(word: str) -> int | None:
    for table in (_UNITS, _TEENS, _TENS):
        if word in table:
            return table[word]
    return None


def normalize(text: str) -> list[str]:
    """Words of ``text`` for scoring: lower case, no punctuation, numbers as single digits.

    >>> normalize("Call me on 555-0142, thanks!")
    ['call', 'me', 'on', '5', '5', '5', '0', '1', '4', '2', 'thanks']
    >>> normalize("five five five, oh one forty two")
    ['5', '5', '5', '0', '1', '4', '2']
    """
    words = _tokens(text)
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.isdigit():
            out.extend(word)
            i += 1
            continue
        if word in _REPEAT and i + 1 < len(words) and _number_value(words[i + 1]) is not None:
            value = _number_value(words[i + 1])
            if value is not None and value < 10:
                out.extend([str(value)] * _REPEAT[word])
                i += 2
                continue
        if word in _ZERO_WORDS:
            beside_digit = any(
                0 <= j < len(words) and (words[j].isdigit() or (words[j] in _UNITS and words[j] not in _ZERO_WORDS))
                for j in (i - 1, i + 1)
            )
            if not beside_digit:
                out.append(word)
                i += 1
                continue
        value = _number_value(word)
        if value is None:
            if word == "hundred" and out and out[-1].isdigit():
                out.extend(["0", "0"])
            else:
                out.append(word)
            i += 1
            continue
        if word in _TENS and i + 1 < len(words) and words[i + 1] in _UNITS and _UNITS[words[i + 1]] > 0:
            value += _UNITS[words[i + 1]]
            i += 1
        out.extend(str(value))
        i += 1
    return out


def digits(text: str) -> str:
    """Only the digits of ``text`` after :func:`normalize` ("five five five 0142" → "5550142")."""
    return "".join(word for word in normalize(text) if word.isdigit())


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Substitutions + deletions + insertions (Levenshtein over normalised words), and reference length."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1], len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` (0.0 is perfect; can exceed 1.0)."""
    errors, length = word_errors(reference, hypothesis)
    return errors / length if length else float(errors > 0)
