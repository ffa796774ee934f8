"""bench/RESULTS.md: one ``## `name` `` section per benchmark, its runs in order inside it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["append_run"]


def append_run(path: Path, heading: str, intro: str, run: str, *, header: str = "# Benchmark results\n") -> None:
    """Add ``run`` at the end of the section that starts with the line ``heading``.

    A missing file starts with ``header``; a missing section (``heading`` + ``intro``) is
    added at the end of the file. Runs go before the next ``## `` heading, so every
    benchmark's runs stay together whichever ran last.
    """
    text = path.read_text() if path.exists() else header
    lines = text.split("\n")
    try:
        start = lines.index(heading)
    except ValueError:
        section = heading + "\n\n" + (intro.strip("\n") + "\n\n" if intro.strip() else "")
        path.write_text(text.rstrip("\n") + "\n\n" + section + run.strip("\n") + "\n")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    before = "\n".join(lines[:end]).rstrip("\n")
    after = "\n".join(lines[end:])
    out = before + "\n\n" + run.strip("\n") + "\n"
    if after.strip():
        out += "\n" + after.lstrip("\n")
    path.write_text(out)
