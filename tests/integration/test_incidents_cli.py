"""``ringwell admin incidents`` as an operator runs it: open incidents with their clocks, exit 1 when late."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ringwell.features.audit.service import Actor, AuditLog
from ringwell.features.privacy.incidents_service import IncidentSpec, IncidentsService
from ringwell.settings import load_settings
from ringwell.storage.engine import create_engine, session_factory
from tests.cli import run


async def _record(data_dir, *specs):
    engine = create_engine(load_settings(data_dir).effective_database_url)
    sessions = session_factory(engine)
    service = IncidentsService(sessions, AuditLog(sessions))
    try:
        return [(await service.create(spec, actor=Actor(user_agent="test"))).incident.id for spec in specs]
    finally:
        await engine.dispose()


async def test_open_incidents_with_their_clocks(tmp_path):
    assert run(tmp_path, "admin", "incidents").stdout.strip() == "no open incidents"
    now = datetime.now(UTC)
    late, fresh = await _record(
        tmp_path,
        IncidentSpec("Backup disk lost", now - timedelta(hours=75), personal_data=True, cpni=False),
        IncidentSpec("CDR export leaked", now - timedelta(hours=1), personal_data=False, cpni=True),
    )
    result = run(tmp_path, "admin", "incidents", ok=False)
    assert result.returncode == 1  # a notice is overdue: a monitoring check fails
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{late}  OVERDUE  Backup disk lost  (medium, personal data; aware ")
    assert lines[1].startswith("  authority        OVERDUE   overdue by 3 h ")
    assert lines[2].startswith(f"{fresh}  open     CDR export leaked  (medium, CPNI; aware ")
    assert lines[3].startswith("  law enforcement  PENDING   ") and " left (due " in lines[3]
    assert lines[4].startswith("  customers        PENDING   ")
    assert len(lines) == 5  # clocks that do not apply are not listed
    listed = json.loads(run(tmp_path, "admin", "incidents", "--json", ok=False).stdout)
    assert [i["id"] for i in listed] == [late, fresh] and listed[0]["overdue"] is True
