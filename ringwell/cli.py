"""The ``ringwell`` command: ``serve``, ``setup-demo`` and the operator's ``admin`` commands.

Every command takes ``--data-dir`` (or ``RINGWELL_DATA_DIR``). Errors a user can act on are
printed as ``error: ...`` with exit status 1; configuration errors exit with 2.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ringwell import __version__
from ringwell.errors import ConfigError, DomainError
from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.cdr import service as cdr
from ringwell.features.registrations import repository as registrations
from ringwell.settings import Settings, ensure_config, load_settings
from ringwell.storage.engine import create_engine, migrate, session_factory

__all__ = ["main"]

T = TypeVar("T")
DEMO_ORG = "Demo"
DEMO_USERS = (("101", "alice@demo.example"), ("102", "bob@demo.example"))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


class _Admin:
    """Opens the database (migrated) for one admin command."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, action: Callable[[AccountsService, Any], Awaitable[T]]) -> T:
        engine = create_engine(self.settings.effective_database_url)
        try:
            await migrate(engine)
            sessions = session_factory(engine)
            return await action(AccountsService(sessions, self.settings.sip_realm), sessions)
        finally:
            await engine.dispose()


def _settings(args: argparse.Namespace) -> Settings:
    data_dir = getattr(args, "data_dir", None)
    ensure_config(data_dir)
    return load_settings(data_dir)


def cmd_serve(args: argparse.Namespace) -> int:
    from ringwell.server import serve  # noqa: PLC0415 - keeps admin commands light

    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.Formatter.converter = time.gmtime
    _run(serve(settings))
    return 0


def cmd_setup_demo(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(accounts: AccountsService, _sessions: Any) -> list[tuple[str, str, str | None]]:
        existing = {org.name for org in await accounts.orgs()}
        if DEMO_ORG in existing:
            return [(user.extension, username, None) for user, username in await accounts.users(DEMO_ORG)]
        await accounts.create_org(DEMO_ORG)
        created = await accounts.create_users(
            DEMO_ORG, [UserSpec(email, ext, f"demo{ext}") for ext, email in DEMO_USERS]
        )
        return [(new.user.extension, new.sip_username, new.sip_password) for new in created]

    users = _run(_Admin(settings)(action))
    host = settings.advertised_host
    print(f"Ringwell {__version__} — data in {settings.data_dir}")
    print(f"SIP server: {host} port {settings.sip_port} (UDP/TCP), TLS port {settings.tls_port}; "
          f"realm {settings.sip_realm}")
    print(f"HTTP: http://{host}:{settings.http_port}/healthz")
    print(f"Demo organization {DEMO_ORG!r}:")
    for extension, username, password in users:
        shown = password if password else "(set at first run; new one: ringwell admin set-sip-password "
        if not password:
            shown += f"--sip-username {username})"
        print(f"  extension {extension}: SIP username {username}  password {shown}")
    return 0


def cmd_create_org(args: argparse.Namespace) -> int:
    async def action(accounts: AccountsService, _sessions: Any) -> str:
        return (await accounts.create_org(args.name)).id

    print(_run(_Admin(_settings(args))(action)))
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    spec = UserSpec(args.email, args.extension, args.sip_username, args.sip_password)

    async def action(accounts: AccountsService, _sessions: Any) -> Any:
        return await accounts.create_user(args.org, spec)

    new = _run(_Admin(_settings(args))(action))
    print(f"user {new.user.id} extension {new.user.extension} SIP username {new.sip_username}")
    if new.sip_password:
        print(f"SIP password (shown once): {new.sip_password}")
    return 0


def cmd_bulk_users(args: argparse.Namespace) -> int:
    with Path(args.csv).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    specs = [
        UserSpec(row["email"], row["extension"], row.get("sip_username") or None, row.get("sip_password") or None)
        for row in rows
    ]

    async def action(accounts: AccountsService, _sessions: Any) -> int:
        return len(await accounts.create_users(args.org, specs))

    print(f"created {_run(_Admin(_settings(args))(action))} users")
    return 0


def cmd_set_sip_password(args: argparse.Namespace) -> int:
    async def action(accounts: AccountsService, _sessions: Any) -> str | None:
        return await accounts.set_sip_password(args.sip_username, args.sip_password)

    password = _run(_Admin(_settings(args))(action))
    print(f"SIP password of {args.sip_username} changed")
    if password:
        print(f"new SIP password (shown once): {password}")
    return 0


def cmd_set_ring_timeout(args: argparse.Namespace) -> int:
    async def action(accounts: AccountsService, _sessions: Any) -> None:
        await accounts.set_ring_timeout(args.org, args.extension, args.seconds)

    _run(_Admin(_settings(args))(action))
    print(f"extension {args.extension} rings for {args.seconds} s")
    return 0


def cmd_registrations(args: argparse.Namespace) -> int:
    async def action(accounts: AccountsService, sessions: Any) -> list[dict[str, Any]]:
        org_id = (await accounts.org(args.org)).id if args.org else None
        now = datetime.now(UTC)
        async with sessions() as session:
            rows = await registrations.listing(session, now, org_id)
        return [
            {
                "org": org,
                "username": username,
                "contact": row.contact,
                "expires_at": row.expires_at.isoformat(),
                "expires_in": max(0, int((row.expires_at - now).total_seconds())),
                "q": row.q / 1000,
                "transport": row.transport,
                "source": f"{row.source_host}:{row.source_port}",
                "user_agent": row.user_agent,
            }
            for row, username, org in rows
        ]

    rows = _run(_Admin(_settings(args))(action))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no registrations")
        return 0
    for row in rows:
        print(f"{row['org']:<16} {row['username']:<20} {row['transport']:<4} {row['contact']:<50} "
              f"expires in {row['expires_in']:>5}s  {row['user_agent']}")
    return 0


def _call_json(call: cdr.CallView) -> dict[str, Any]:
    row = dataclasses.asdict(call)
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in row.items()}


def _call_line(call: cdr.CallView, with_org: bool) -> list[str]:
    to = call.callee_number
    if call.callee_extension and call.callee_extension != call.callee_number:
        to += f" ({call.callee_extension})"
    cause = " ".join(str(part) for part in (call.sip_status, call.sip_reason) if part is not None)
    line = [
        call.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        call.caller_extension or call.caller_number or "-",
        to,
        call.disposition or "in progress",
        "-" if call.ring_seconds is None else f"{call.ring_seconds:.1f}",
        "-" if call.talk_seconds is None else f"{call.talk_seconds:.1f}",
        call.hangup_by or "-",
        cause or "-",
        call.codec or "-",
    ]
    return [call.org_name, *line] if with_org else line


def cmd_calls(args: argparse.Namespace) -> int:
    async def action(accounts: AccountsService, sessions: Any) -> list[cdr.CallView]:
        org_id = (await accounts.org(args.org)).id if args.org else None
        return await cdr.list_calls(sessions, org_id, args.limit)

    calls = _run(_Admin(_settings(args))(action))
    if args.json:
        print(json.dumps([_call_json(call) for call in calls], indent=2))
        return 0
    if not calls:
        print("no calls")
        return 0
    with_org = not args.org
    header = ["started (UTC)", "from", "to", "disposition", "ring s", "talk s", "hangup by", "cause", "codec"]
    rows = [["org", *header] if with_org else header, *(_call_line(call, with_org) for call in calls)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    numeric = {len(rows[0]) - 5, len(rows[0]) - 4}  # ring s, talk s
    for row in rows:
        cells = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    return 0


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS, help="data directory (RINGWELL_DATA_DIR)")
    parser = argparse.ArgumentParser(prog="ringwell", description="Ringwell phone system", parents=[common])
    parser.add_argument("--version", action="version", version=f"ringwell {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", parents=[common], help="run the SIP and HTTP server").set_defaults(func=cmd_serve)
    sub.add_parser("setup-demo", parents=[common], help="create the demo organization and users if missing"
                   ).set_defaults(func=cmd_setup_demo)

    admin = sub.add_parser("admin", parents=[common], help="operator commands").add_subparsers(
        dest="admin_command", required=True)
    p = admin.add_parser("create-org", parents=[common], help="create an organization; prints its id")
    p.add_argument("--name", required=True)
    p.set_defaults(func=cmd_create_org)
    p = admin.add_parser("create-user", parents=[common], help="create a user with an extension and SIP account")
    p.add_argument("--org", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--extension", required=True)
    p.add_argument("--sip-username")
    p.add_argument("--sip-password", help="omit to generate a strong one (printed once)")
    p.set_defaults(func=cmd_create_user)
    p = admin.add_parser("bulk-users", parents=[common],
                         help="create users from a CSV (email,extension,sip_username,sip_password); all or none")
    p.add_argument("--org", required=True)
    p.add_argument("--csv", required=True)
    p.set_defaults(func=cmd_bulk_users)
    p = admin.add_parser("set-sip-password", parents=[common], help="replace a SIP password")
    p.add_argument("--sip-username", required=True)
    p.add_argument("--sip-password", help="omit to generate a strong one (printed once)")
    p.set_defaults(func=cmd_set_sip_password)
    p = admin.add_parser("set-ring-timeout", parents=[common],
                         help="seconds a call rings a user before it is not answered (480)")
    p.add_argument("--org", required=True)
    p.add_argument("--extension", required=True)
    p.add_argument("--seconds", type=int, required=True)
    p.set_defaults(func=cmd_set_ring_timeout)
    p = admin.add_parser("registrations", parents=[common], help="list current registrations")
    p.add_argument("--org")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_registrations)
    p = admin.add_parser("calls", parents=[common], help="list call detail records, newest first")
    p.add_argument("--org")
    p.add_argument("--json", action="store_true", help="every field, times in ISO 8601 (UTC)")
    p.add_argument("--limit", type=int, default=100, help="at most this many calls (default 100)")
    p.set_defaults(func=cmd_calls)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
