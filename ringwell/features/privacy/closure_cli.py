"""``ringwell admin close-org ORG --reason R`` and ``reopen-org``: an organization's closure.

Closing prints what was done and the date its data is deleted (the retention run's
``closed_organizations`` class). On a running server prefer the operator API
(``POST /api/v1/operator/orgs/{id}/close``): it also drops the org's phones' registrations from
the server's memory at once, where this command leaves them to expire.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from ringwell.blobs import blob_store
from ringwell.features.accounts.service import AccountsService
from ringwell.features.audit.service import Actor
from ringwell.features.privacy.closure import Closure, ClosureService
from ringwell.settings import ensure_config, load_settings
from ringwell.storage.engine import create_engine, migrate, session_factory

__all__ = ["add_commands", "closure_lines"]


def closure_lines(org_name: str, closure: Closure, *, reopened: bool = False) -> list[str]:
    """The text the commands print."""
    if reopened:
        return [f"{org_name} is open again: {closure.users_enabled} users can sign in",
                "numbers, API keys and SIP passwords are not restored: rent, create and set new ones"]
    if closure.closed_at is None:  # pragma: no cover - close() always returns a closed org
        return [f"{org_name} is open"]
    lines = [f"{org_name} closed at {closure.closed_at.isoformat(timespec='seconds')}"]
    if closure.users_disabled or closure.numbers_released or closure.credentials_deleted or closure.api_keys_revoked:
        lines += [f"  users disabled       {closure.users_disabled}",
                  f"  sessions ended       {closure.sessions_ended}",
                  f"  SIP logins deleted   {closure.credentials_deleted}",
                  f"  API keys revoked     {closure.api_keys_revoked}",
                  f"  numbers released     {len(closure.numbers_released)}"
                  + (f" ({', '.join(closure.numbers_released)})" if closure.numbers_released else "")]
    if closure.purge_after is not None:
        lines.append(f"its data is deleted after {closure.purge_after.isoformat(timespec='seconds')} "
                     "unless a legal hold keeps it; `ringwell admin reopen-org` undoes the closure before then")
    return lines


async def _act(args: argparse.Namespace, reopen: bool) -> tuple[str, Closure]:
    settings = load_settings(args.data_dir)
    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        org = await AccountsService(sessions, settings.sip_realm).org(args.org)
        service = ClosureService.from_settings(settings, sessions, blob_store(settings, sessions))
        actor = Actor(user_agent=f"ringwell admin {'reopen-org' if reopen else 'close-org'}")
        if reopen:
            return org.name, await service.reopen(org.id, actor=actor, reason=args.reason)
        return org.name, await service.close(org.id, actor=actor, reason=args.reason)
    finally:
        await engine.dispose()


def _command(reopen: bool) -> Any:
    def run(args: argparse.Namespace) -> int:
        ensure_config(args.data_dir)
        name, closure = asyncio.run(_act(args, reopen))
        if args.json:
            print(json.dumps(closure.as_dict(), indent=2))
        else:
            print("\n".join(closure_lines(name, closure, reopened=reopen)))
        return 0

    return run


def add_commands(admin: Any, common: argparse.ArgumentParser) -> None:
    """Add ``close-org`` and ``reopen-org`` to the ``admin`` subparsers."""
    p = admin.add_parser("close-org", parents=[common],
                         help="close an organization: users disabled, numbers released, API keys revoked; its data "
                              "is deleted closed_account_retention_days later")
    p.add_argument("org", help="the organization's name")
    p.add_argument("--reason", required=True, help="why (goes to the audit trail)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command(False))
    p = admin.add_parser("reopen-org", parents=[common],
                         help="reopen a closed organization before its data is deleted")
    p.add_argument("org", help="the organization's name")
    p.add_argument("--reason", required=True, help="why (goes to the audit trail)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command(True))
