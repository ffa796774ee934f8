"""Searching transcripts without decrypting them: a blind index of keyed word hashes.

Theory of operation. A transcript is stored encrypted (a ``transcript`` blob), so the database
cannot search its text. When a transcript is stored, its words are normalised
(:func:`ringwell.transcribe.score.normalize`: lower case, no punctuation, numbers as digits) and
each distinct *term* is stored in ``voicemail_terms`` only as ``HMAC-SHA256(search key, term)``;
the search key is derived from the org's data key (:meth:`ringwell.blobs.BlobStore.search_key`).
A query is normalised the same way and its hashes are looked up: a message matches when it has
every one of them (AND). Nothing of a word is stored, hashes of one org mean nothing in another,
and crypto-shredding the org (destroying its data key) makes the index match nothing.

Terms:

- every word other than a number: ``w:<word>``;
- every run of consecutive digits ("call me at 312 704 8261" is the run ``3127048261``): each of
  its substrings up to :data:`MAX_DIGITS` long, ``d:<digits>``; so a query's digits ("312 704",
  "704-8261") match anywhere inside a number of the message, as a person expects.

What the index still reveals to someone reading the database without the key: how many distinct
terms a message has, and which messages of one org share a term — not what the term is. Pure
functions here, plus the two queries the service runs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ringwell.features.voicemail.models import VoicemailTerm
from ringwell.transcribe.score import normalize

__all__ = ["MAX_DIGITS", "MAX_QUERY_TERMS", "hashed", "matching", "query_terms", "replace_terms", "terms_of"]

MAX_DIGITS = 16  # longest digit string indexed (a number's substrings up to this length)
MAX_RUN = 32  # digits of one run considered (longer runs are cut: 32 × 16 terms at most)
MAX_TERMS = 5000  # per message: a 2-minute message has a few hundred
MAX_QUERY_TERMS = 20


def _runs(words: list[str]) -> tuple[list[str], list[str]]:
    """(non-number words, digit runs) of normalised ``words``."""
    plain: list[str] = []
    runs: list[str] = []
    current: list[str] = []
    for word in words:
        if word.isdigit():
            current.append(word)
            continue
        if current:
            runs.append("".join(current))
            current = []
        plain.append(word)
    if current:
        runs.append("".join(current))
    return plain, runs


def terms_of(text: str) -> set[str]:
    """The terms a transcript is found by (see the module docstring)."""
    plain, runs = _runs(normalize(text))
    terms = {f"w:{word}" for word in plain}
    for whole in runs:
        run = whole[:MAX_RUN]
        for start in range(len(run)):
            for end in range(start + 1, min(start + MAX_DIGITS, len(run)) + 1):
                terms.add(f"d:{run[start:end]}")
    return terms


def query_terms(query: str) -> set[str]:
    """The terms a message must all have to match ``query`` (empty: the query has no words).

    A digit run longer than :data:`MAX_DIGITS` is split into pieces that are each looked up."""
    plain, runs = _runs(normalize(query))
    terms = {f"w:{word}" for word in plain}
    for run in runs:
        terms.update(f"d:{run[i:i + MAX_DIGITS]}" for i in range(0, len(run), MAX_DIGITS))
    return terms


def hashed(key: bytes, terms: Iterable[str]) -> set[str]:
    """Hex HMAC-SHA256 of each term under the org's search key: what the table stores."""
    return {hmac.new(key, term.encode("utf-8"), hashlib.sha256).hexdigest() for term in terms}


async def replace_terms(session: AsyncSession, org_id: str, voicemail_id: str, hashes: Iterable[str]) -> None:
    """Make ``hashes`` the message's index (inside the caller's transaction)."""
    await session.execute(delete(VoicemailTerm).where(VoicemailTerm.voicemail_id == voicemail_id)
                          .execution_options(synchronize_session=False))
    session.add_all(VoicemailTerm(voicemail_id=voicemail_id, org_id=org_id, term=term)
                    for term in sorted(hashes)[:MAX_TERMS])


def matching(org_id: str, hashes: set[str]) -> Select[Any]:
    """Ids of the org's messages that have every one of ``hashes`` (AND)."""
    return (select(VoicemailTerm.voicemail_id)
            .where(VoicemailTerm.org_id == org_id, VoicemailTerm.term.in_(sorted(hashes)))
            .group_by(VoicemailTerm.voicemail_id)
            .having(func.count(VoicemailTerm.term) == len(hashes)))
