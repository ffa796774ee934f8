"""``ringwell admin audit verify | export | access-review``: the audit trail for operators and auditors.

``verify`` exits 0 with ``audit trail intact: N events, head <hash prefix>``, or 1 naming the
first event that is not as written. ``export`` writes JSON Lines (every field, ``seq``,
``prev_hash``, ``hash``) that ``docs/privacy-audit.md`` shows how to re-verify independently.
``access-review`` lists every staff user and records that the review was run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from ringwell.features.audit.review import access_review
from ringwell.features.audit.service import Actor, AuditLog, VerifyResult
from ringwell.settings import ensure_config, load_settings
from ringwell.storage.engine import create_engine, migrate, session_factory

__all__ = ["add_commands", "verify_message"]

T = TypeVar("T")
CLI_ACTOR = Actor(user_agent="ringwell admin audit")


def _with_log(args: argparse.Namespace, action: Callable[[AuditLog], Awaitable[T]]) -> T:
    data_dir = getattr(args, "data_dir", None)
    ensure_config(data_dir)
    settings = load_settings(data_dir)

    async def run() -> T:
        engine = create_engine(settings.effective_database_url)
        try:
            await migrate(engine)
            return await action(AuditLog(session_factory(engine)))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def verify_message(result: VerifyResult) -> str:
    """The one line ``audit verify`` prints (and the operator console shows)."""
    if result.broken is None:
        start = f", starting after purged seq {result.head.anchor_seq}" if result.head.anchor_seq else ""
        return f"audit trail intact: {result.count} events, head {result.head.hash[:16]}{start}"
    broken = result.broken
    where = f"event {broken.event_id} (seq {broken.seq})" if broken.event_id else f"the end (seq {broken.seq})"
    return f"audit trail BROKEN at {where}: {broken.problem.value}: {broken.explanation}"


def cmd_verify(args: argparse.Namespace) -> int:
    result = _with_log(args, lambda log: log.verify())
    print(verify_message(result), file=sys.stdout if result.intact else sys.stderr)
    return 0 if result.intact else 1


def _since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def _write_export(log: AuditLog, since: datetime | None, out: TextIO) -> int:
    count = 0
    async for item in log.export(since):
        out.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count


def cmd_export(args: argparse.Namespace) -> int:
    if args.out is None:
        count = _with_log(args, lambda log: _write_export(log, args.since, sys.stdout))
    else:
        path = Path(args.out)
        with path.open("w", encoding="utf-8") as out:
            count = _with_log(args, lambda log: _write_export(log, args.since, out))
        print(f"{count} audit events written to {path}", file=sys.stderr)
    return 0


def cmd_access_review(args: argparse.Namespace) -> int:
    staff = _with_log(args, lambda log: access_review(log, CLI_ACTOR))
    if args.json:
        print(json.dumps([{
            "user_id": s.user_id, "email": s.email, "name": s.name, "org": s.org_name, "role": s.role, "mfa": s.mfa,
            "disabled": s.disabled, "last_sign_in": s.last_sign_in.isoformat() if s.last_sign_in else None,
            "created_at": s.created_at.isoformat()} for s in staff], indent=2))
        return 0
    print(f"{'EMAIL':<36} {'ROLE':<8} {'MFA':<4} {'LAST SIGN-IN':<17} {'CREATED':<10} ORG")
    for s in staff:
        last = s.last_sign_in.strftime("%Y-%m-%d %H:%M") if s.last_sign_in else "never"
        flags = " (disabled)" if s.disabled else ""
        print(f"{s.email:<36} {s.role:<8} {'on' if s.mfa else 'OFF':<4} {last:<17} "
              f"{s.created_at.date().isoformat():<10} {s.org_name}{flags}")
    without = sum(1 for s in staff if not s.mfa and not s.disabled)
    print(f"{len(staff)} staff users, {without} active without MFA; review recorded in the audit trail")
    return 0


def add_commands(admin: Any, common: argparse.ArgumentParser) -> None:
    """Add ``audit`` and its subcommands to the ``admin`` subparsers."""
    audit = admin.add_parser("audit", parents=[common], help="the audit trail: verify, export, access review")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    p = sub.add_parser("verify", parents=[common], help="check that no audit event was edited, removed or moved")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("export", parents=[common],
                       help="every audit event as JSON Lines, with its hashes (for auditors; re-verifiable)")
    p.add_argument("--since", type=_since, help="only events at or after this ISO date/time (UTC)")
    p.add_argument("--out", help="write to this file instead of standard output")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("access-review", parents=[common],
                       help="every staff user, role, MFA and last sign-in (recorded as a review)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_access_review)
