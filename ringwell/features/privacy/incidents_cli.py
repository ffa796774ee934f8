"""``ringwell admin incidents``: the breach register's open incidents with their notification clocks.

One line per incident (most urgent first), then one per clock that applies:
``  authority        OVERDUE   overdue by 3 h 0 min (due 2026-03-05 09:00 UTC)``. ``--all`` adds the
closed ones, ``--json`` prints the same as the API. Exit status 1 when a notice is overdue, so a
cron job or a monitoring check can page someone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ringwell.features.audit.service import AuditLog
from ringwell.features.privacy.incidents import ClockState, time_left
from ringwell.features.privacy.incidents_schemas import incident_out
from ringwell.features.privacy.incidents_service import IncidentsService, IncidentView
from ringwell.settings import ensure_config, load_settings
from ringwell.storage.base import utcnow
from ringwell.storage.engine import create_engine, migrate, session_factory

__all__ = ["add_commands", "cmd_incidents", "incident_lines"]

_LABEL = {"authority": "authority", "law_enforcement": "law enforcement", "customers": "customers"}


def incident_lines(views: Sequence[IncidentView], now: datetime) -> list[str]:
    """The text ``ringwell admin incidents`` prints."""
    if not views:
        return ["no open incidents"]
    lines = []
    for view in views:
        incident = view.incident
        state = "OVERDUE" if view.open and view.clocks.overdue else "open" if view.open else "closed"
        facts = [incident.severity] + (["personal data"] if incident.personal_data else []) + \
            (["CPNI"] if incident.cpni else [])
        lines.append(f"{incident.id}  {state:<7}  {incident.title}  ({', '.join(facts)}; "
                     f"aware {incident.detected_at:%Y-%m-%d %H:%M} UTC)")
        for clock in view.clocks:
            if clock.state is ClockState.NOT_APPLICABLE:
                continue
            due = f" (due {clock.due_at:%Y-%m-%d %H:%M} UTC)" if clock.due_at and clock.state is not ClockState.DONE \
                else ""
            lines.append(f"  {_LABEL[clock.kind.value]:<16} {clock.state.value.upper():<9} "
                         f"{time_left(clock, now)}{due}")
    return lines


def cmd_incidents(args: argparse.Namespace) -> int:
    data_dir = getattr(args, "data_dir", None)
    ensure_config(data_dir)
    settings = load_settings(data_dir)
    now = utcnow()

    async def run() -> list[IncidentView]:
        engine = create_engine(settings.effective_database_url)
        try:
            await migrate(engine)
            sessions = session_factory(engine)
            return await IncidentsService(sessions, AuditLog(sessions)).listing(include_closed=args.all, now=now)
        finally:
            await engine.dispose()

    views = asyncio.run(run())
    if args.json:
        print(json.dumps([incident_out(v, now).model_dump(mode="json") for v in views], indent=2))
    else:
        print("\n".join(incident_lines(views, now)))
    return 1 if any(v.open and v.clocks.overdue for v in views) else 0


def add_commands(admin: Any, common: argparse.ArgumentParser) -> None:
    """Add ``incidents`` to the ``admin`` subparsers."""
    p = admin.add_parser("incidents", parents=[common],
                         help="the breach register's open incidents and their notification clocks "
                              "(exit 1 when a notice is overdue)")
    p.add_argument("--all", action="store_true", help="closed incidents too")
    p.add_argument("--json", action="store_true", help="JSON, as the API returns it")
    p.set_defaults(func=cmd_incidents)
