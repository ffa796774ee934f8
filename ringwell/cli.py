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
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ringwell import __version__
from ringwell.errors import ConfigError, DomainError
from ringwell.features.accounts.models import User
from ringwell.features.accounts.service import AccountsService, UserSpec
from ringwell.features.audit import cli as audit_cli
from ringwell.features.auth.passwords import hash_password
from ringwell.features.auth.permissions import Role
from ringwell.features.cdr import service as cdr
from ringwell.features.registrations import repository as registrations
from ringwell.features.trunks.service import TrunkSpec, TrunksService
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

    async def action(accounts: AccountsService, sessions: Any) -> tuple[list[tuple[str, str, str | None]],
                                                                         str | None]:
        existing = {org.name for org in await accounts.orgs()}
        if DEMO_ORG in existing:
            return [(user.extension, username, None) for user, username in await accounts.users(DEMO_ORG)], None
        await accounts.create_org(DEMO_ORG)
        created = await accounts.create_users(
            DEMO_ORG, [UserSpec(email, ext, f"demo{ext}") for ext, email in DEMO_USERS]
        )
        # The first demo user owns the org and can log in to the portal with a generated password.
        login_password = secrets.token_urlsafe(12)
        async with sessions() as session, session.begin():
            owner = await session.get(User, created[0].user.id)
            assert owner is not None
            owner.role = Role.OWNER.value
            owner.login_email = owner.email
            owner.password_hash = hash_password(login_password)
            owner.email_verified_at = datetime.now(UTC)
        return [(new.user.extension, new.sip_username, new.sip_password) for new in created], login_password

    users, login_password = _run(_Admin(settings)(action))
    host = settings.advertised_host
    print(f"Ringwell {__version__} — data in {settings.data_dir}")
    print(f"SIP server: {host} port {settings.sip_port} (UDP/TCP), TLS port {settings.tls_port}; "
          f"realm {settings.sip_realm}")
    print(f"Portal: {settings.portal_url}/  (sign up a new organization at {settings.portal_url}/signup)")
    print(f"Web phone: {settings.portal_url}/phone  (log in, allow the microphone, call an extension)")
    print(f"API: {settings.portal_url}/api/v1/docs  health: {settings.portal_url}/healthz")
    print(f"Demo organization {DEMO_ORG!r}:")
    if login_password:
        print(f"  portal login {DEMO_USERS[0][1]}  password {login_password}  (owner; shown once)")
    else:
        print(f"  portal login {DEMO_USERS[0][1]}  (password set at first run; forgot it? use "
              f"{settings.portal_url}/password/forgot — emails go to {settings.data_dir / 'outbox'})")
    for extension, username, password in users:
        shown = password if password else "(set at first run; new one: ringwell admin set-sip-password "
        if not password:
            shown += f"--sip-username {username})"
        print(f"  extension {extension}: SIP username {username}  password {shown}")
    return 0


def cmd_create_org(args: argparse.Namespace) -> int:
    async def action(accounts: AccountsService, _sessions: Any) -> str:
        return (await accounts.create_org(args.name, args.country, args.currency)).id

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


def cmd_create_staff(args: argparse.Namespace) -> int:
    """An operator staff login (the operator organization is created on first use); prints a set-password link."""
    from ringwell.features.audit.service import AuditLog  # noqa: PLC0415 - keeps other commands light
    from ringwell.features.auth.service import AuthService  # noqa: PLC0415
    from ringwell.features.auth.tokens import SessionStore  # noqa: PLC0415
    from ringwell.mail import mailer_from  # noqa: PLC0415

    settings = _settings(args)

    async def action(accounts: AccountsService, sessions: Any) -> Any:
        auth = AuthService(sessions, accounts=accounts, web_sessions=SessionStore(sessions), audit=AuditLog(sessions),
                           mailer=mailer_from(settings), settings=settings)
        return await auth.create_staff(args.email, args.role, args.name, args.org_name)

    staff = _run(_Admin(settings)(action))
    print(f"staff user {staff.user_id} ({staff.email}, role {staff.role}) in the operator organization {staff.org_id}")
    print(f"set-password link (shown once, valid 72 hours): {staff.link}")
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
        _minor_text(call.charge_minor, call.currency),
        _minor_text(call.cost_minor, call.currency),
    ]
    return [call.org_name, *line] if with_org else line


def _minor_text(amount: int | None, currency: str | None) -> str:
    if amount is None or currency is None:
        return "-"
    from ringwell.features.billing.money import format_minor  # noqa: PLC0415

    return format_minor(amount, currency)


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
    header = ["started (UTC)", "from", "to", "disposition", "ring s", "talk s", "hangup by", "cause", "codec",
              "charge", "carrier cost"]
    rows = [["org", *header] if with_org else header, *(_call_line(call, with_org) for call in calls)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    numeric = {len(rows[0]) - 7, len(rows[0]) - 6, len(rows[0]) - 2, len(rows[0]) - 1}  # seconds and money
    for row in rows:
        cells = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    return 0


# -- trunks (lead) ----------------------------------------------------------------------------
def cmd_add_trunk(args: argparse.Namespace) -> int:
    spec = TrunkSpec(
        name=args.name, host=args.host, port=args.port, transport=args.transport, username=args.username,
        password=args.password, register=args.register, register_expires=args.register_expires,
        inbound=tuple(e for e in (args.inbound or "").split(",") if e.strip()), number_format=args.number_format,
        tech_prefix=args.tech_prefix, priority=args.priority, buy_deck=args.buy_deck, max_channels=args.max_channels,
    )
    settings = _settings(args)

    async def action(_accounts: AccountsService, sessions: Any) -> Any:
        return await TrunksService(sessions, settings.secret_key).add(spec)

    trunk = _run(_Admin(settings)(action))
    print(f"trunk {trunk.name} ({trunk.id}): sip:{trunk.host}:{trunk.port};transport={trunk.transport}, "
          f"priority {trunk.priority}, numbers as {trunk.number_format}"
          + (f", registers as {trunk.username}" if trunk.register else ""))
    return 0


def cmd_trunks(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(_accounts: AccountsService, sessions: Any) -> list[Any]:
        return await TrunksService(sessions, settings.secret_key).all()

    trunks = _run(_Admin(settings)(action))
    rows = [
        {
            "id": t.id, "name": t.name, "host": t.host, "port": t.port, "transport": t.transport,
            "username": t.username,
            "register": t.register, "inbound": t.inbound_addresses, "number_format": t.number_format,
            "tech_prefix": t.tech_prefix, "priority": t.priority, "buy_deck": t.buy_deck,
            "max_channels": t.max_channels, "enabled": t.enabled,
        }
        for t in trunks
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no trunks")
        return 0
    for row in rows:
        print(f"{row['name']:<16} {row['host']}:{row['port']}/{row['transport']}  priority {row['priority']}  "
              f"{row['number_format']}{'  prefix ' + row['tech_prefix'] if row['tech_prefix'] else ''}  "
              f"buy deck {row['buy_deck'] or '-'}  channels {row['max_channels'] or 'unlimited'}"
              f"{'  registers' if row['register'] else ''}{'' if row['enabled'] else '  DISABLED'}")
    return 0


def cmd_remove_trunk(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(_accounts: AccountsService, sessions: Any) -> None:
        await TrunksService(sessions, settings.secret_key).remove(args.name)

    _run(_Admin(settings)(action))
    print(f"trunk {args.name} removed")
    return 0


def _user_of(accounts: AccountsService, org: str, extension: str) -> Any:
    async def find() -> Any:
        from ringwell.features.accounts import repository as accounts_repo  # noqa: PLC0415
        from ringwell.features.accounts.errors import UserNotFound  # noqa: PLC0415

        found = await accounts.org(org)
        async with accounts.sessions() as session:
            user = await accounts_repo.user_by_extension(session, found.id, extension)
        if user is None:
            raise UserNotFound(f"no extension {extension} in {org}", {"extension": extension})
        return found, user

    return find()


def cmd_verify_caller_id(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(accounts: AccountsService, sessions: Any) -> tuple[str, str]:
        org, user = await _user_of(accounts, args.org, args.extension)
        numbers = _numbers_service(settings, sessions)
        code = await numbers.start_verification(org.id, user.id, args.number, datetime.now(UTC))
        from ringwell.features.numbers.e164 import normalize  # noqa: PLC0415

        return code, normalize(args.number, org.country)

    code, number = _run(_Admin(settings)(action))
    print(f"verification code: {code}")
    print(f"Ringwell calls {number} within a few seconds (the server must be running); answer and type the code "
          "on the keypad. It is valid for 10 minutes.")
    return 0


def cmd_caller_ids(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(accounts: AccountsService, sessions: Any) -> tuple[list[str], str | None]:
        org, user = await _user_of(accounts, args.org, args.extension)
        numbers = _numbers_service(settings, sessions)
        return await numbers.verified_numbers(org.id, user.id), await numbers.caller_id_for(org.id, user.id, None)

    verified, default = _run(_Admin(settings)(action))
    if args.json:
        print(json.dumps({"verified": verified, "default": default}, indent=2))
        return 0
    print(f"default caller ID: {default or 'none (rent a number)'}")
    print("verified numbers: " + (", ".join(verified) if verified else "none"))
    return 0


# -- numbers (Numbers helper) -----------------------------------------------------------------
def _numbers_service(settings: Settings, sessions: Any) -> Any:
    from ringwell.features.billing.service import LedgerService  # noqa: PLC0415 - keeps other commands light
    from ringwell.features.numbers.service import NumbersService  # noqa: PLC0415

    return NumbersService(sessions, LedgerService(sessions), quarantine_days=settings.number_quarantine_days,
                          warn_days=settings.number_warn_days)


def _money(amount_minor: int, currency: str) -> str:
    from ringwell.features.billing.money import format_minor  # noqa: PLC0415

    return f"{format_minor(amount_minor, currency)} {currency}"


def _day(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _number_json(number: Any, extension: str | None = None, with_rental: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "number": number.e164, "country": number.country, "type": number.type, "currency": number.currency,
        "monthly_price_minor": number.monthly_price_minor, "setup_price_minor": number.setup_price_minor,
        "monthly_price": _money(number.monthly_price_minor, number.currency).split()[0],
        "setup_price": _money(number.setup_price_minor, number.currency).split()[0],
    }
    if with_rental:
        row.update({
            "rented_at": number.rented_at.isoformat() if number.rented_at else None,
            "paid_until": number.paid_until.isoformat() if number.paid_until else None,
            "extension": extension,
        })
    return row


def cmd_import_numbers(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with Path(args.file).open(newline="", encoding="utf-8-sig") as handle:
        lines = handle.readlines()

    async def action(_accounts: AccountsService, sessions: Any) -> int:
        return int(await _numbers_service(settings, sessions).import_numbers(lines))

    count = _run(_Admin(settings)(action))
    print(f"imported {count} number{'' if count == 1 else 's'}")
    return 0


def cmd_search_numbers(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(_accounts: AccountsService, sessions: Any) -> list[Any]:
        return list(await _numbers_service(settings, sessions).search(
            country=args.country, area=args.area, type=args.type, limit=args.limit))

    found = _run(_Admin(settings)(action))
    if args.json:
        print(json.dumps([_number_json(number) for number in found], indent=2))
        return 0
    if not found:
        print("no available numbers found")
        return 0
    for number in found:
        print(f"{number.e164:<16} {number.country}  {number.type:<15} "
              f"{_money(number.monthly_price_minor, number.currency):>12}/month  "
              f"setup {_money(number.setup_price_minor, number.currency)}")
    return 0


def cmd_rent_number(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(accounts: AccountsService, sessions: Any) -> tuple[Any, Any]:
        org = await accounts.org(args.org)
        service = _numbers_service(settings, sessions)
        number = await service.rent(org.id, args.number, datetime.now(UTC))
        from ringwell.features.billing.service import LedgerService  # noqa: PLC0415

        return number, await LedgerService(sessions).balance(org.id)

    number, balance = _run(_Admin(settings)(action))
    setup, month, currency = number.setup_price_minor, number.monthly_price_minor, number.currency
    print(f"rented {number.e164} to {args.org}: charged {_money(setup + month, currency)} "
          f"(setup {_money(setup, currency)} + first month {_money(month, currency)}); "
          f"paid until {_day(number.paid_until)}")
    print(f"available credit: {_money(balance.available_minor, balance.currency)}")
    return 0


def cmd_release_number(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(accounts: AccountsService, sessions: Any) -> Any:
        org = await accounts.org(args.org)
        return await _numbers_service(settings, sessions).release(org.id, args.number, datetime.now(UTC))

    number = _run(_Admin(settings)(action))
    print(f"released {number.e164} from {args.org}; in quarantine until {_day(number.quarantine_until)}")
    return 0


def cmd_route_number(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(_accounts: AccountsService, sessions: Any) -> Any:
        return await _numbers_service(settings, sessions).route(args.number, args.extension)

    number = _run(_Admin(settings)(action))
    print(f"{number.e164} rings extension {args.extension}")
    return 0


def cmd_numbers(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(accounts: AccountsService, sessions: Any) -> list[Any]:
        org = await accounts.org(args.org)
        return list(await _numbers_service(settings, sessions).numbers(org.id))

    views = _run(_Admin(settings)(action))
    if args.json:
        print(json.dumps([_number_json(view, view.extension, with_rental=True) for view in views], indent=2))
        return 0
    if not views:
        print(f"{args.org} rents no numbers")
        return 0
    for view in views:
        print(f"{view.e164:<16} {view.country}  {view.type:<15} "
              f"{_money(view.monthly_price_minor, view.currency):>12}/month  paid until {_day(view.paid_until)}  "
              f"rings {view.extension or 'nobody (route it: route-number)'}")
    return 0


def cmd_renew_numbers(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(accounts: AccountsService, sessions: Any) -> tuple[Any, dict[str, str]]:
        report = await _numbers_service(settings, sessions).renew_due(datetime.now(UTC))
        return report, {org.id: org.name for org in await accounts.orgs()}

    report, names = _run(_Admin(settings)(action))
    for line in report.warned:
        note = "the credit covers it" if line.covered else "the credit does NOT cover it"
        print(f"warned   {line.e164:<16} {names.get(line.org_id, line.org_id)}: "
              f"{_money(line.amount_minor, line.currency)} due {_day(line.paid_until)} ({note})")
    for line in report.renewed:
        print(f"renewed  {line.e164:<16} {names.get(line.org_id, line.org_id)}: "
              f"charged {_money(line.amount_minor, line.currency)}, paid until {_day(line.paid_until)}")
    for line in report.released:
        print(f"released {line.e164:<16} {names.get(line.org_id, line.org_id)}: "
              f"the credit did not pay {_money(line.amount_minor, line.currency)}")
    print(f"{len(report.warned)} warned, {len(report.renewed)} renewed, {len(report.released)} released")
    return 0


def _numbers_commands(admin: Any, common: argparse.ArgumentParser) -> None:
    p = admin.add_parser("import-numbers", parents=[common],
                         help="add numbers to the inventory from a CSV (number,country,type,monthly_price,"
                              "setup_price,trunk[,currency]); all or none")
    p.add_argument("file")
    p.set_defaults(func=cmd_import_numbers)
    p = admin.add_parser("search-numbers", parents=[common], help="list numbers available to rent")
    p.add_argument("--country", help="ISO 3166 code, e.g. US")
    p.add_argument("--area", help="leading digits of the national number, e.g. 415")
    p.add_argument("--type", help="fixed, mobile, fixed-or-mobile, toll-free, ...")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search_numbers)
    p = admin.add_parser("rent-number", parents=[common],
                         help="rent a number to an organization (setup + first month charged from its credit)")
    p.add_argument("--org", required=True)
    p.add_argument("number")
    p.set_defaults(func=cmd_rent_number)
    p = admin.add_parser("release-number", parents=[common],
                         help="give a rented number back (quarantined before anyone can rent it again)")
    p.add_argument("--org", required=True)
    p.add_argument("number")
    p.set_defaults(func=cmd_release_number)
    p = admin.add_parser("route-number", parents=[common],
                         help="make calls to a rented number ring an extension of the organization renting it")
    p.add_argument("number")
    p.add_argument("--extension", required=True)
    p.set_defaults(func=cmd_route_number)
    p = admin.add_parser("numbers", parents=[common], help="list the numbers an organization rents")
    p.add_argument("--org", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_numbers)
    p = admin.add_parser("renew-numbers", parents=[common],
                         help="run the number renewal job now (warn, charge the next month, release unpaid)")
    p.set_defaults(func=cmd_renew_numbers)


# -- rating (Rating helper) -------------------------------------------------------------------
def cmd_import_rates(args: argparse.Namespace) -> int:
    from ringwell.features.rating.service import RatingService  # noqa: PLC0415 - keeps other commands light

    path = Path(args.file)
    settings = _settings(args)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    async def action(_accounts: AccountsService, sessions: Any) -> int:
        return await RatingService(sessions).import_deck(args.deck, handle, args.currency)

    with handle:
        try:
            count = _run(_Admin(settings)(action))
        except UnicodeDecodeError:
            print(f"error: {path} is not UTF-8 text", file=sys.stderr)
            return 1
    print(f"imported {count} rates into deck {args.deck.strip()}")
    return 0


def cmd_assign_deck(args: argparse.Namespace) -> int:
    from ringwell.features.rating.service import RatingService  # noqa: PLC0415

    async def action(accounts: AccountsService, sessions: Any) -> str:
        org = await accounts.org(args.org)
        await RatingService(sessions).assign_deck(org.id, args.deck)
        return org.currency

    currency = _run(_Admin(_settings(args))(action))
    print(f"organization {args.org} pays by deck {args.deck} ({currency})")
    return 0


def cmd_rate(args: argparse.Namespace) -> int:
    from ringwell.features.rating.errors import InvalidRatingData, NoRate, RateDeckNotFound  # noqa: PLC0415
    from ringwell.features.rating.rates import format_micros  # noqa: PLC0415
    from ringwell.features.rating.service import RatingService  # noqa: PLC0415

    number = "".join(char for char in args.number if char not in " -.()")
    digits = number.removeprefix("+")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 15:
        raise InvalidRatingData(f"not a phone number: {args.number!r} (E.164, e.g. +14155550100)")
    on = args.on or datetime.now(UTC).date()

    async def action(_accounts: AccountsService, sessions: Any) -> Any:
        deck = await RatingService(sessions).table(args.deck)
        if deck is None:
            raise RateDeckNotFound(f"no rate deck named {args.deck!r}")
        rate = deck.table.lookup(digits, on)
        if rate is None:
            raise NoRate(f"no rate for +{digits} in deck {deck.name} on {on}")
        return deck, rate

    deck, rate = _run(_Admin(_settings(args))(action))
    currency = deck.currency
    print(f"deck        {deck.name} ({currency})")
    print(f"number      +{digits}")
    print(f"prefix      {rate.prefix}")
    print(f"description {rate.description}")
    print(f"price       {format_micros(rate.price_micros, currency)} {currency} per minute")
    print(f"fee         {format_micros(rate.connection_fee_micros, currency)} {currency} per answered call")
    print(f"increments  {rate.increments}")
    print(f"effective   from {rate.effective_from}")
    return 0


def _rating_commands(admin: Any, common: argparse.ArgumentParser) -> None:
    p = admin.add_parser("import-rates", parents=[common],
                         help="create or replace a rate deck from a CSV (prefix,description,price_per_minute"
                              "[,connection_fee,increments,effective_date]); all or none")
    p.add_argument("--deck", required=True, help="the deck's name (a sell deck for organizations, or a trunk's "
                   "buy deck)")
    p.add_argument("--currency", default="USD", help="ISO 4217 code of the deck's prices (default USD)")
    p.add_argument("file")
    p.set_defaults(func=cmd_import_rates)
    p = admin.add_parser("assign-deck", parents=[common], help="charge an organization's calls by a rate deck")
    p.add_argument("--org", required=True)
    p.add_argument("--deck", required=True)
    p.set_defaults(func=cmd_assign_deck)
    p = admin.add_parser("rate", parents=[common], help="show the rate a deck applies to a number")
    p.add_argument("--deck", required=True)
    p.add_argument("--on", type=_iso_date, help="the call's date, YYYY-MM-DD (default: today, UTC)")
    p.add_argument("number", help="E.164, e.g. +14155550100")
    p.set_defaults(func=cmd_rate)


def _iso_date(text: str) -> Any:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).date()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date like 2026-01-31: {text!r}") from exc


# -- fraud (Fraud helper): destination permissions and caps --------------------------------------
_FRAUD_RISKS = ("international", "premium", "high-risk")
_RISK_WORDS = {"international": "international calls", "premium": "premium-rate numbers",
               "high-risk": "high-risk numbers"}
_CAP_LABELS = (("max_concurrent", "concurrent calls"), ("max_calls_per_minute", "new calls per minute"),
               ("daily_spend_cap_minor", "daily spend"), ("max_price_per_minute_micros", "price per minute"))


def _rule_words(region: str | None, risk: str | None) -> str:
    if risk is None:
        return f"calls to {region}"
    return _RISK_WORDS[risk] + (f" in {region}" if region else "")


def _set_destination(args: argparse.Namespace, allow: bool) -> int:
    from ringwell.features.fraud.errors import InvalidFraudSetting  # noqa: PLC0415 - keeps other commands light
    from ringwell.features.fraud.service import FraudService  # noqa: PLC0415

    if args.country is None and args.risk is None:
        raise InvalidFraudSetting("give --country, --risk or both")

    async def action(accounts: AccountsService, sessions: Any) -> Any:
        org = await accounts.org(args.org)
        fraud = FraudService(sessions)
        if allow:
            return await fraud.allow_destination(org.id, region=args.country, risk=args.risk)
        return await fraud.deny_destination(org.id, region=args.country, risk=args.risk)

    rule = _run(_Admin(_settings(args))(action))
    risk = None if rule.risk is None else rule.risk.value
    print(f"{args.org}: {'allowed' if allow else 'denied'} {_rule_words(rule.region, risk)}")
    return 0


def cmd_allow_destination(args: argparse.Namespace) -> int:
    return _set_destination(args, allow=True)


def cmd_deny_destination(args: argparse.Namespace) -> int:
    return _set_destination(args, allow=False)


def _fraud_view(args: argparse.Namespace) -> Any:
    from ringwell.features.fraud.service import FraudService  # noqa: PLC0415

    async def action(accounts: AccountsService, sessions: Any) -> Any:
        org = await accounts.org(args.org)
        return await FraudService(sessions).view(org.id, datetime.now(UTC))

    return _run(_Admin(_settings(args))(action))


def _cap_text(name: str, value: int | None, currency: str) -> str:
    from ringwell.features.fraud.policy import micros_to_major, minor_to_major  # noqa: PLC0415

    if value is None:
        return "none"
    if name == "daily_spend_cap_minor":
        return f"{minor_to_major(value, currency)} {currency}"
    if name == "max_price_per_minute_micros":
        return f"{micros_to_major(value)} {currency}"
    return str(value)


def _print_fraud_policy(org_name: str, view: Any, as_json: bool) -> None:
    policy = view.policy
    rules = [{"country": rule.region, "risk": None if rule.risk is None else rule.risk.value, "allow": rule.allow,
              "source": "default" if rule.default else "org"} for rule in policy.rules]
    caps = {name: {"value": getattr(policy, name), "text": _cap_text(name, getattr(policy, name), policy.currency),
                   "source": "org" if name in view.overridden else "default"} for name, _ in _CAP_LABELS}
    until = None if view.new_org_until is None else view.new_org_until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if as_json:
        print(json.dumps({"org": org_name, "org_id": view.org_id, "country": policy.home_region,
                          "currency": policy.currency, "new_org_until": until, "destinations": rules, "caps": caps},
                         indent=2))
        return
    print(f"fraud policy of {org_name} ({policy.home_region}, {policy.currency})")
    if until is not None:
        print(f"new organization: stricter default caps until {until}")
    print("destinations:")
    for rule in rules:
        what = _rule_words(rule["country"], rule["risk"])
        if rule["country"] == policy.home_region and rule["risk"] is None:
            what += " (home country)"
        print(f"  {'allow' if rule['allow'] else 'deny':<6} {what:<36} {rule['source']}")
    print("caps:")
    for name, label in _CAP_LABELS:
        print(f"  {label:<22} {caps[name]['text']:<14} {caps[name]['source']}")


def cmd_fraud_policy(args: argparse.Namespace) -> int:
    _print_fraud_policy(args.org, _fraud_view(args), args.json)
    return 0


def _cap_count(text: str | None, option: str) -> Any:
    """A count option of set-fraud-caps: KEEP when not given, None for 'default'."""
    from ringwell.features.fraud.errors import InvalidFraudSetting  # noqa: PLC0415
    from ringwell.features.fraud.service import KEEP  # noqa: PLC0415

    if text is None:
        return KEEP
    if text.strip().lower() == "default":
        return None
    if not text.strip().isascii() or not text.strip().isdigit():
        raise InvalidFraudSetting(f"{option} must be a whole number or 'default': {text!r}")
    return int(text)


def _cap_amount(text: str | None, option: str) -> Any:
    """An amount in major units ("50.00"), exactly, as a Decimal; 'default'; or not given."""
    import re  # noqa: PLC0415
    from decimal import Decimal  # noqa: PLC0415

    from ringwell.features.fraud.errors import InvalidFraudSetting  # noqa: PLC0415
    from ringwell.features.fraud.service import KEEP  # noqa: PLC0415

    if text is None:
        return KEEP
    if text.strip().lower() == "default":
        return None
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", text.strip()):
        raise InvalidFraudSetting(f"{option} must be an amount such as 50.00, or 'default': {text!r}")
    return Decimal(text.strip())


def cmd_set_fraud_caps(args: argparse.Namespace) -> int:
    from ringwell.features.fraud.errors import InvalidFraudSetting  # noqa: PLC0415
    from ringwell.features.fraud.policy import major_to_micros, major_to_minor  # noqa: PLC0415
    from ringwell.features.fraud.service import KEEP, FraudService  # noqa: PLC0415

    concurrent = _cap_count(args.max_concurrent, "--max-concurrent")
    per_minute = _cap_count(args.calls_per_minute, "--calls-per-minute")
    daily = _cap_amount(args.daily_spend, "--daily-spend")
    price = _cap_amount(args.max_price, "--max-price")
    if all(value is KEEP for value in (concurrent, per_minute, daily, price)):
        raise InvalidFraudSetting("give at least one of --max-concurrent, --calls-per-minute, --daily-spend, "
                                  "--max-price")

    async def action(accounts: AccountsService, sessions: Any) -> Any:
        org = await accounts.org(args.org)
        fraud = FraudService(sessions)
        await fraud.set_caps(
            org.id,
            max_concurrent=concurrent,
            max_calls_per_minute=per_minute,
            daily_spend_cap_minor=daily if daily is KEEP or daily is None else major_to_minor(daily, org.currency),
            max_price_per_minute_micros=price if price is KEEP or price is None else major_to_micros(price),
        )
        return await fraud.view(org.id, datetime.now(UTC))

    view = _run(_Admin(_settings(args))(action))
    print(f"fraud caps of {args.org}:")
    for name, label in _CAP_LABELS:
        source = "org" if name in view.overridden else "default"
        print(f"  {label:<22} {_cap_text(name, getattr(view.policy, name), view.policy.currency):<14} {source}")
    return 0


def _fraud_commands(admin: Any, common: argparse.ArgumentParser) -> None:
    for name, func, verb in (("allow-destination", cmd_allow_destination, "allow"),
                             ("deny-destination", cmd_deny_destination, "deny")):
        p = admin.add_parser(name, parents=[common],
                             help=f"{verb} calls to a country, a risk class, or a risk class in one country")
        p.add_argument("--org", required=True)
        p.add_argument("--country", help="ISO 3166 code, e.g. GB")
        p.add_argument("--risk", choices=_FRAUD_RISKS,
                       help="international (every country), premium (premium-rate, shared-cost, personal numbers) "
                            "or high-risk (satellite and known fraud destinations)")
        p.set_defaults(func=func)
    p = admin.add_parser("fraud-policy", parents=[common],
                         help="show an organization's effective fraud policy (destinations and caps)")
    p.add_argument("--org", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fraud_policy)
    p = admin.add_parser("set-fraud-caps", parents=[common],
                         help="set an organization's call caps ('default' goes back to the default)")
    p.add_argument("--org", required=True)
    p.add_argument("--max-concurrent", metavar="N", help="calls up at once (0 suspends outbound calls)")
    p.add_argument("--calls-per-minute", metavar="N", help="new calls in any 60 seconds")
    p.add_argument("--daily-spend", metavar="AMOUNT", help="per UTC day, in the org's currency, e.g. 50.00")
    p.add_argument("--max-price", metavar="AMOUNT", help="highest price per minute a call may cost, e.g. 1.00")
    p.set_defaults(func=cmd_set_fraud_caps)


# -- billing (Billing helper): credit, balance, ledger, refund, top-up ----------------------------
def _operator(given: str | None) -> str:
    """Who is acting: --operator, else the login name (recorded with every manual entry)."""
    import getpass  # noqa: PLC0415

    from ringwell.features.billing.errors import InvalidBillingData  # noqa: PLC0415

    if given and given.strip():
        return given.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise InvalidBillingData("cannot tell who you are: give --operator NAME", {"field": "operator"}) from None


async def _org_and_ledger(accounts: AccountsService, sessions: Any, org_name: str) -> tuple[Any, Any]:
    from ringwell.features.billing.service import LedgerService  # noqa: PLC0415 - keeps other commands light

    return await accounts.org(org_name), LedgerService(sessions)


def _balance_line(org_name: str, balance: Any) -> str:
    return (f"{org_name}: balance {_money(balance.balance_minor, balance.currency)}, reserved "
            f"{_money(balance.reserved_minor, balance.currency)}, available "
            f"{_money(balance.available_minor, balance.currency)}")


def _manual_entry(args: argparse.Namespace, refund: bool) -> int:
    from ringwell.features.billing.money import parse_amount  # noqa: PLC0415

    operator = _operator(args.operator)

    async def action(accounts: AccountsService, sessions: Any) -> tuple[int, str, Any]:
        org, ledger = await _org_and_ledger(accounts, sessions, args.org)
        amount = parse_amount(args.amount, org.currency)
        if refund:
            txn = await ledger.refund(org.id, amount, args.reason, operator, args.reference)
        else:
            txn = await ledger.adjust(org.id, amount, args.reason, operator)
        return amount, txn, await ledger.balance(org.id)

    amount, txn, balance = _run(_Admin(_settings(args))(action))
    verb = "refunded" if refund else ("credited" if amount > 0 else "debited")
    print(f"{verb} {_money(abs(amount), balance.currency)} {'from' if amount < 0 else 'to'} {args.org} "
          f"by {operator} (transaction {txn})")
    print(_balance_line(args.org, balance))
    return 0


def cmd_credit(args: argparse.Namespace) -> int:
    return _manual_entry(args, refund=False)


def cmd_refund(args: argparse.Namespace) -> int:
    return _manual_entry(args, refund=True)


def cmd_balance(args: argparse.Namespace) -> int:
    from ringwell.features.billing.money import format_minor  # noqa: PLC0415

    async def action(accounts: AccountsService, sessions: Any) -> tuple[Any, Any, Any]:
        org, ledger = await _org_and_ledger(accounts, sessions, args.org)
        return org, await ledger.balance(org.id), await ledger.verify(org.id) if args.verify else None

    org, balance, verification = _run(_Admin(_settings(args))(action))
    checked: dict[str, Any] = {}
    if verification is not None:
        checked = {"verified": verification.ok, "postings_sum_minor": verification.postings_sum,
                   "reservations_sum_minor": verification.reservations_sum}
    if args.json:
        cur = balance.currency
        print(json.dumps({
            "org": org.name, "org_id": org.id, "currency": cur,
            "balance_minor": balance.balance_minor, "reserved_minor": balance.reserved_minor,
            "available_minor": balance.available_minor, "balance": format_minor(balance.balance_minor, cur),
            "reserved": format_minor(balance.reserved_minor, cur),
            "available": format_minor(balance.available_minor, cur), **checked,
        }, indent=2))
        return 1 if checked and not checked["verified"] else 0
    print(_balance_line(org.name, balance))
    if checked:
        print("ledger verified: balance = sum of its entries, reserved = open reservations" if checked["verified"]
              else f"LEDGER MISMATCH: entries sum to {checked['postings_sum_minor']}, reservations to "
                   f"{checked['reservations_sum_minor']} (minor units)")
        return 0 if checked["verified"] else 1
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    from ringwell.features.billing.money import format_minor  # noqa: PLC0415

    async def action(accounts: AccountsService, sessions: Any) -> list[Any]:
        org, ledger = await _org_and_ledger(accounts, sessions, args.org)
        return list(await ledger.entries(org.id, args.limit))

    entries = _run(_Admin(_settings(args))(action))
    if args.json:
        print(json.dumps([{
            "id": e.id, "seq": e.seq, "time": e.time.astimezone(UTC).isoformat(), "kind": e.kind,
            "currency": e.currency, "amount_minor": e.amount_minor, "amount": format_minor(e.amount_minor, e.currency),
            "balance_after_minor": e.balance_after_minor,
            "balance_after": format_minor(e.balance_after_minor, e.currency), "description": e.description,
            "reference": e.reference, "reason": e.reason, "operator": e.operator,
        } for e in entries], indent=2))
        return 0
    if not entries:
        print(f"{args.org} has no ledger entries")
        return 0
    header = ["time (UTC)", "kind", "amount", "balance", "description", "reason", "operator"]
    rows = [header] + [[
        e.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), e.kind,
        ("+" if e.amount_minor > 0 else "") + format_minor(e.amount_minor, e.currency),
        format_minor(e.balance_after_minor, e.currency), e.description, e.reason or "-", e.operator or "-",
    ] for e in entries]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    print(f"ledger of {args.org} ({entries[0].currency}), newest first")
    for row in rows:
        cells = [cell.rjust(width) if i in (2, 3) else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())
    return 0


def cmd_top_up(args: argparse.Namespace) -> int:
    from ringwell.features.billing.errors import PaymentsNotConfigured  # noqa: PLC0415
    from ringwell.features.billing.money import parse_amount  # noqa: PLC0415
    from ringwell.features.billing.payments import stripe_provider  # noqa: PLC0415

    settings = _settings(args)

    async def action(accounts: AccountsService, sessions: Any) -> tuple[Any, int, Any]:
        org, ledger = await _org_and_ledger(accounts, sessions, args.org)
        provider = stripe_provider(settings, sessions, ledger)
        if provider is None:
            raise PaymentsNotConfigured(
                "Stripe is not configured: set stripe_secret_key and stripe_webhook_secret "
                "(ringwell.toml, or RINGWELL_STRIPE_SECRET_KEY and RINGWELL_STRIPE_WEBHOOK_SECRET)")
        amount = parse_amount(args.amount, org.currency)
        return org, amount, await provider.create_top_up(org.id, amount, org.currency)

    org, amount, intent = _run(_Admin(settings)(action))
    print(f"PaymentIntent {intent.id} for {_money(amount, org.currency)} to {org.name} ({intent.status})")
    print(f"client secret: {intent.client_secret}")
    print("the credit arrives when Stripe reports the payment (POST /webhooks/stripe)")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    """Run the retention engine now (``--dry-run``: count only) and print its report."""
    from ringwell.blobs import blob_store  # noqa: PLC0415 - keeps other admin commands light
    from ringwell.features.audit.service import AuditLog  # noqa: PLC0415
    from ringwell.features.privacy.erasure import ErasureService  # noqa: PLC0415
    from ringwell.features.privacy.retention import policy_from_settings  # noqa: PLC0415
    from ringwell.features.privacy.retention_service import RetentionService  # noqa: PLC0415

    settings = _settings(args)

    async def action(accounts: AccountsService, sessions: Any) -> Any:
        blobs = blob_store(settings, sessions)
        policy = policy_from_settings(settings)
        # A closed account is erased as the server erases it: rows, files, keys, anonymised records.
        accounts.erase = ErasureService(sessions, blobs, audit=AuditLog(sessions), policy=policy).erase_hook()
        service = RetentionService(sessions, policy=policy, blobs=blobs, accounts=accounts, audit=AuditLog(sessions))
        return await service.run(datetime.now(UTC), dry_run=args.dry_run)

    report = _run(_Admin(settings)(action))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    print(f"retention {'dry run (nothing deleted)' if report.dry_run else 'run'} at "
          f"{report.started_at.isoformat(timespec='seconds')}")
    print(f"{'data class':<22} {'purged':>10} {'held':>10}")
    for name, count in report.counts.items():
        print(f"{name:<22} {count.purged:>10} {count.held:>10}")
    print(f"{'total':<22} {report.purged:>10} {report.held:>10}")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def _billing_commands(admin: Any, common: argparse.ArgumentParser) -> None:
    p = admin.add_parser("credit", parents=[common],
                         help="manual credit (or debit, with a negative amount) by an operator, with a reason")
    p.add_argument("--org", required=True)
    p.add_argument("--amount", required=True, help="in the org's currency, e.g. 10.00 (negative: a debit)")
    p.add_argument("--reason", required=True)
    p.add_argument("--operator", help="who does it (default: your login name)")
    p.set_defaults(func=cmd_credit)
    p = admin.add_parser("refund", parents=[common], help="give credit back to an organization, with a reason")
    p.add_argument("--org", required=True)
    p.add_argument("--amount", required=True, help="in the org's currency, e.g. 2.50")
    p.add_argument("--reason", required=True)
    p.add_argument("--reference", help="what is refunded, e.g. a call id")
    p.add_argument("--operator", help="who does it (default: your login name)")
    p.set_defaults(func=cmd_refund)
    p = admin.add_parser("balance", parents=[common], help="an organization's balance, reserved and available credit")
    p.add_argument("--org", required=True)
    p.add_argument("--json", action="store_true", help="amounts as integers of the minor unit and as text")
    p.add_argument("--verify", action="store_true", help="also check that the balance equals the sum of the "
                   "ledger entries and the reserved credit the open reservations (exit 1 if not)")
    p.set_defaults(func=cmd_balance)
    p = admin.add_parser("ledger", parents=[common], help="an organization's ledger entries, newest first")
    p.add_argument("--org", required=True)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=100, help="at most this many entries (default 100)")
    p.set_defaults(func=cmd_ledger)
    p = admin.add_parser("top-up", parents=[common],
                         help="start a Stripe payment for an organization; prints the PaymentIntent's client secret")
    p.add_argument("--org", required=True)
    p.add_argument("--amount", required=True, help="in the org's currency, e.g. 10.00")
    p.set_defaults(func=cmd_top_up)


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
    p.add_argument("--country", default="US", help="ISO 3166 code: numbers dialled without + are of this country")
    p.add_argument("--currency", default="USD", help="ISO 4217 code the organization pays in")
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
    p = admin.add_parser("create-staff", parents=[common], help="give someone a login to the operator console "
                         "(creates the operator organization on first use); prints a set-password link")
    p.add_argument("--email", required=True)
    p.add_argument("--role", required=True, choices=("owner", "admin", "support", "billing", "privacy", "auditor"))
    p.add_argument("--name", help="the person's name")
    p.add_argument("--org-name", default="Operator", help="name of the operator organization, if it is created")
    p.set_defaults(func=cmd_create_staff)
    p = admin.add_parser("registrations", parents=[common], help="list current registrations")
    p.add_argument("--org")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_registrations)
    p = admin.add_parser("calls", parents=[common], help="list call detail records, newest first")
    p.add_argument("--org")
    p.add_argument("--json", action="store_true", help="every field, times in ISO 8601 (UTC)")
    p.add_argument("--limit", type=int, default=100, help="at most this many calls (default 100)")
    p.set_defaults(func=cmd_calls)
    p = admin.add_parser("add-trunk", parents=[common], help="add a carrier trunk (gateway) for calls to and from "
                         "the phone network")
    p.add_argument("--name", required=True)
    p.add_argument("--host", required=True, help="the carrier's SIP address (an IP address)")
    p.add_argument("--port", type=int, default=5060)
    p.add_argument("--transport", default="udp", choices=("udp", "tcp"),
                   help="tcp: Ringwell keeps a connection open to the carrier (TLS to carriers: not yet)")
    p.add_argument("--username", help="to answer the carrier's digest challenges, or to register")
    p.add_argument("--password", help="stored encrypted, never shown again")
    p.add_argument("--register", action="store_true", help="register to the carrier and keep it registered")
    p.add_argument("--register-expires", type=int, default=3600)
    p.add_argument("--inbound", help="comma-separated sources the carrier calls from: IP, network or IP:port "
                   "(default: host:port)")
    p.add_argument("--number-format", default="e164", choices=("e164", "e164-noplus", "national"))
    p.add_argument("--tech-prefix", default="", help="digits put before every number sent to this trunk")
    p.add_argument("--priority", type=int, default=10, help="lower is tried first among trunks of equal cost")
    p.add_argument("--buy-deck", help="rate deck with what this carrier costs (least-cost routing, margin)")
    p.add_argument("--max-channels", type=int, default=0, help="concurrent calls on this trunk (0: no limit)")
    p.set_defaults(func=cmd_add_trunk)
    p = admin.add_parser("trunks", parents=[common], help="list carrier trunks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_trunks)
    p = admin.add_parser("remove-trunk", parents=[common], help="remove a carrier trunk")
    p.add_argument("--name", required=True)
    p.set_defaults(func=cmd_remove_trunk)
    p = admin.add_parser("verify-caller-id", parents=[common], help="prove a user answers a number (to send it as "
                         "caller ID): prints a code; the server calls the number and the user keys the code in")
    p.add_argument("--org", required=True)
    p.add_argument("--extension", required=True)
    p.add_argument("number")
    p.set_defaults(func=cmd_verify_caller_id)
    p = admin.add_parser("caller-ids", parents=[common], help="a user's default and verified caller IDs")
    p.add_argument("--org", required=True)
    p.add_argument("--extension", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_caller_ids)
    _numbers_commands(admin, common)
    _fraud_commands(admin, common)
    _rating_commands(admin, common)
    _billing_commands(admin, common)
    audit_cli.add_commands(admin, common)
    p = admin.add_parser("retention", parents=[common], help="delete data past its retention period now (what a "
                         "legal hold covers is kept); prints the report")
    p.add_argument("--dry-run", action="store_true", help="count what would be deleted; change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retention)
    from ringwell.features.privacy import export_cli  # noqa: PLC0415 - privacy requests (issue 8)
    export_cli.add_commands(admin, common)
    from ringwell.blobs import keys_cli  # noqa: PLC0415 - data key rotation (issue 8)
    keys_cli.add_commands(admin, common)
    from ringwell.features.privacy import closure_cli  # noqa: PLC0415 - closing an organization (issue 8)
    closure_cli.add_commands(admin, common)
    from ringwell.features.privacy import incidents_cli  # noqa: PLC0415 - the breach register (issue 8)
    incidents_cli.add_commands(admin, common)
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
