"""``ringwell admin keys rotate --org NAME [--reencrypt]``: rotate an organization's data keys.

Without ``--reencrypt`` every owner (the org, each person with a key) gets a new key for new
files and old files stay under the old keys (still readable). With it, every old file is
re-encrypted under the new keys, one by one with a progress bar on stderr, and the old keys are
then destroyed. The server keeps running throughout: files are replaced atomically and readers
retry. Master key rotation is ``ringwell admin keys rewrap --out FILE`` (docs/encryption.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import IO, Any

__all__ = ["ProgressBar", "add_commands", "cmd_keys_rotate"]


class ProgressBar:
    """``[#####.....]  n/total`` rewritten in place, at most every ``interval`` seconds (and at the end)."""

    def __init__(self, stream: IO[str], *, width: int = 30, interval: float = 0.1) -> None:
        self._stream, self._width, self._interval = stream, width, interval
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < self._interval:
            return
        self._last = now
        filled = self._width if total == 0 else self._width * done // total
        self._stream.write(f"\rre-encrypting [{'#' * filled}{'.' * (self._width - filled)}] {done}/{total}")
        if done >= total:
            self._stream.write("\n")
        self._stream.flush()


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from ringwell.blobs import blob_store  # noqa: PLC0415 - keeps other admin commands light
    from ringwell.blobs.rotation import RotationReport, rotate_org  # noqa: PLC0415
    from ringwell.cli import _Admin, _run, _settings  # noqa: PLC0415 - the CLI module imports this one

    settings = _settings(args)

    async def action(accounts: Any, sessions: Any) -> RotationReport:
        org = await accounts.org(args.org)
        store = blob_store(settings, sessions)
        return await rotate_org(store, org.id, reencrypt=args.reencrypt,
                                progress=ProgressBar(sys.stderr) if args.reencrypt else None)

    report = _run(_Admin(settings)(action))
    print(f"{args.org}: {report.keys_created} new data key(s); {report.blobs_reencrypted} file(s) re-encrypted; "
          f"{report.keys_retired} old key(s) destroyed")
    if not args.reencrypt:
        print("old files stay under the old keys (still readable); --reencrypt moves them and destroys the old keys")
    return 0


def cmd_keys_rewrap(args: argparse.Namespace) -> int:
    from ringwell.blobs.keys import KeyRing, MasterKey, load_master_key  # noqa: PLC0415
    from ringwell.cli import _Admin, _run, _settings  # noqa: PLC0415
    from ringwell.errors import Conflict  # noqa: PLC0415

    settings = _settings(args)
    new_master = MasterKey.generate(args.out)
    try:  # the new key is written before anything is re-wrapped under it, readable by the owner only
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"{args.out} exists: not overwritten", {"out": args.out}) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(new_master.encoded() + "\n")
        handle.flush()
        os.fsync(handle.fileno())

    async def action(_accounts: Any, sessions: Any) -> int:
        return await KeyRing(sessions, load_master_key(settings)).rewrap(new_master)

    count = _run(_Admin(settings)(action))
    print(f"re-wrapped {count} data key(s) under the new master key {new_master.key_id}, written to {args.out}.")
    print("Install it now (as the master key file, or RINGWELL_MASTER_KEY) and restart: the old one no longer works.")
    return 0


def add_commands(admin: Any, common: argparse.ArgumentParser) -> None:
    keys = admin.add_parser("keys", parents=[common], help="data keys: rotate an organization's, rewrap the master key"
                            ).add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("rotate", parents=[common], help="new data keys for an organization (and its people)")
    p.add_argument("--org", required=True)
    p.add_argument("--reencrypt", action="store_true",
                   help="re-encrypt every old file under the new keys, then destroy the old keys")
    p.set_defaults(func=cmd_keys_rotate)
    p = keys.add_parser("rewrap", parents=[common],
                        help="wrap every data key under a new master key, written to a new file")
    p.add_argument("--out", required=True, help="where to write the new master key (must not exist; mode 0600)")
    p.set_defaults(func=cmd_keys_rewrap)
