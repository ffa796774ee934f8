"""``ringwell admin export-person EMAIL [--org NAME] [--out FILE]``: a person's export zip, written by the operator.

The zip is the one a person downloads from the portal (``export.PersonExport``). The person is
the verified login with EMAIL and, with ``--org``, that organization's user with that user email
(``requests_service.find_subjects``: an unverified user email is matched only where the operator
says). The file is created exclusively and readable by its owner only (0600: it holds a person's
data and audio; an existing file is never overwritten) and removed when the export fails half-way;
a progress line on stderr counts rows and bytes; the export is an audit event.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from ringwell.errors import Conflict, NotFound

__all__ = ["ProgressLine", "add_commands", "cmd_export_person"]


class ProgressLine:
    """A one-line progress report (``\\r``-rewritten), at most every ``interval`` seconds."""

    def __init__(self, stream: IO[str], *, interval: float = 0.2) -> None:
        self._stream = stream
        self._interval = interval
        self._last = 0.0
        self.rows = 0
        self.size = 0

    def __call__(self, rows: int, size: int) -> None:
        self.rows, self.size = rows, size
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        self._stream.write(f"\rexport: {self.rows:,} rows, {self.size / 1e6:,.1f} MB")
        self._stream.flush()

    def done(self) -> None:
        self._draw()
        self._stream.write("\n")
        self._stream.flush()


def cmd_export_person(args: argparse.Namespace) -> int:
    from ringwell.blobs import blob_store  # noqa: PLC0415 - keeps other admin commands light
    from ringwell.cli import _Admin, _run, _settings  # noqa: PLC0415 - the CLI module imports this one
    from ringwell.features.audit.service import Actor, AuditLog  # noqa: PLC0415
    from ringwell.features.privacy.catalog import REGISTER  # noqa: PLC0415
    from ringwell.features.privacy.export import ExportSummary, PersonExport  # noqa: PLC0415
    from ringwell.features.privacy.requests_service import find_subjects  # noqa: PLC0415

    email = args.email.strip().lower()
    out = Path(args.out) if args.out else Path(f"export-{email.replace('@', '_at_')}.zip")
    if out.exists():
        raise Conflict(f"{out} exists: not overwritten", {"out": str(out)})
    settings = _settings(args)
    progress = ProgressLine(sys.stderr)

    async def action(_accounts: Any, sessions: Any) -> ExportSummary:
        async with sessions() as session:
            subjects = [match.subject for match in await find_subjects(session, email, org=args.org)]
        if not subjects:
            hint = "" if args.org else " (no verified login; name the organization with --org)"
            raise NotFound(f"nobody with the address {email}{hint}", {"email": email})
        summary = ExportSummary()
        exporter = PersonExport(sessions, blob_store(settings, sessions), REGISTER)
        try:  # O_EXCL: never overwrite (nor follow a planted link); 0600 whatever the umask
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise Conflict(f"{out} exists: not overwritten", {"out": str(out)}) from None
        try:
            with os.fdopen(fd, "wb") as sink:
                async for piece in exporter.chunks(subjects, progress=progress, summary=summary):
                    sink.write(piece)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        progress.done()
        actor = Actor(user_agent="ringwell admin export-person")
        for subject in subjects:
            await AuditLog(sessions).record("privacy.export", actor, org_id=subject.org_id, target_type="user",
                                            target_id=subject.user_id,
                                            details={"via": "cli", "rows": summary.rows,
                                                     "media_files": summary.media_files,
                                                     "zip_bytes": summary.zip_bytes})
        return summary

    summary = _run(_Admin(settings)(action))
    print(f"{out}: {sum(summary.rows.values())} rows, {summary.media_files} media files, "
          f"{summary.zip_bytes} bytes")
    return 0


def add_commands(admin: Any, common: argparse.ArgumentParser) -> None:
    p = admin.add_parser("export-person", parents=[common],
                         help="write a person's data export (zip: JSON and CSV per category, their audio decrypted)")
    p.add_argument("email", help="the person's login email (or, with --org, their user email there)")
    p.add_argument("--org", help="the organization's name: also the user with this email there")
    p.add_argument("--out", help="the zip to write (default export-<email>.zip); never overwritten")
    p.set_defaults(func=cmd_export_person)
