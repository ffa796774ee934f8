"""schemathesis against the OpenAPI document: no 5xx and no response that breaks the schema.

Every operation of ``/api/v1/openapi.json`` gets generated requests (schemathesis strategies,
hypothesis underneath, derandomized so CI sees the same requests every run), sent to the real
app in-process with an owner's API key (for ``/operator/...`` an operator owner's session: API
keys never act as staff; for ``/webphone/...`` the owner's session: keys mint no SIP secrets) so
they reach the handlers rather than stopping at 401:

- valid requests aimed at real data (``org_id`` the owner's org; user, number, call, key,
  webhook and delivery ids of that org), and valid requests with generated ids;
- invalid requests (schemathesis' negative mode), which must be refused with a 4xx.

Checks on every response: not a server error (an exception in the app counts, with its
traceback), status code documented, content type and headers as declared, body valid against
the response schema; for invalid requests also that they were refused. Failures are collected
over all operations and reported together. SQLite only: the point is the HTTP contract, which
the PostgreSQL walk in ``test_tenant_isolation`` and the slices' own tests cover for storage.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import traceback
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select, update

from ringwell.features.accounts.models import OrgKind, User
from ringwell.features.auth.models import ApiKey
from ringwell.server import RingwellServer
from ringwell.settings import Settings
from ringwell.storage.engine import create_engine, migrate
from tests.web.conftest import BASE_URL, WebEnv
from tests.web.test_tenant_isolation import PATH_VALUES, Victim, _seed_victim

T = TypeVar("T")

MAX_EXAMPLES = 30  # per operation and kind of request: ~50 operations x 3 kinds stay within about a minute
POSITIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_headers_conformance, response_schema_conformance]
NEGATIVE_CHECKS = [*POSITIVE_CHECKS, negative_data_rejection]
REQUEST_TIMEOUT = 30.0
# Query parameters that must make sense, not just fit the schema, for a request to find something.
REAL_QUERY: dict[str, dict[str, str]] = {"/api/v1/orgs/{org_id}/rates": {"number": "+14155550123"}}
# Operations aimed at an org of their own: closing the org the requests come from would end the run.
SPARE_ORG = {"/api/v1/operator/orgs/{org_id}/close", "/api/v1/operator/orgs/{org_id}/reopen"}


class LoopThread:
    """An event loop of its own in a thread: hypothesis drives synchronous tests, the app is async."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="schemathesis-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = REQUEST_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Fuzz:
    loop: LoopThread
    env: WebEnv
    victim: Victim
    org_client: httpx.AsyncClient  # the customer org's owner key: every org permission
    operator_client: httpx.AsyncClient  # an operator owner's session (API keys never act as staff)
    path_values: dict[str, str]
    spec: dict[str, Any] = field(default_factory=dict)

    def send(self, case: schemathesis.Case[Any]) -> httpx.Response:
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        path = case.operation.path
        if path.startswith("/api/v1/operator/"):
            client = self.operator_client
        elif path.startswith(("/api/v1/webphone/", "/api/v1/me/")):
            # the web phone and a person's own choices and requests are for a logged-in session: keys get 403
            client = self.victim.tenant.client
        else:
            client = self.org_client
        headers = {k: v for k, v in (kwargs.get("headers") or {}).items()
                   if k.lower() not in ("authorization", "cookie")}
        request: dict[str, Any] = {"params": kwargs.get("params") or None, "headers": headers}
        if "json" in kwargs:
            request["json"] = kwargs["json"]
        elif isinstance(kwargs.get("data"), bytes | str):
            request["content"] = kwargs["data"]
        elif kwargs.get("data") is not None:
            request["data"] = kwargs["data"]
        return self.loop.run(client.request(kwargs["method"], kwargs["url"], **request))


async def _setup(tmp_path) -> tuple[WebEnv, Victim, httpx.AsyncClient]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    settings_ = Settings(data_dir=tmp_path / "data", secret_key=secrets.token_urlsafe(32), database_url=url,
                         bind="127.0.0.1", http_port=8080, webhook_allow_private=True)
    settings_.data_dir.mkdir()
    env = WebEnv(RingwellServer(settings_))
    victim = await _seed_victim(env)  # an org with data in every slice (users, numbers, calls, keys, webhooks)
    async with env.services.sessions() as session, session.begin():  # a person's privacy requests need MFA on
        await session.execute(update(User).where(User.id == victim.tenant.owner.user.id).values(
            mfa_enabled_at=datetime.now(UTC)))
    await env.services.rating.import_deck("fuzz-deck", [
        "prefix,description,price_per_minute,connection_fee,increments,effective_date\n", "1,US,0.010,,60/60,\n"])
    await env.services.rating.assign_deck(victim.ids["org_id"], "fuzz-deck")
    operator = await env.org(f"Operator {secrets.token_hex(3)}", kind=OrgKind.OPERATOR)
    operator_client = await env.logged_in(await env.member(operator, "owner"))
    return env, victim, operator_client


async def _spare_key_id(env: WebEnv, victim: Victim, in_use: str) -> str:
    """A key id of the org other than the one the requests use (revoking that one ends the run)."""
    async with env.services.sessions() as session:
        rows = (await session.execute(select(ApiKey).where(ApiKey.org_id == victim.ids["org_id"]))).scalars()
        return next(row.id for row in rows if row.prefix not in in_use)


async def _seed_incident(env: WebEnv) -> str:
    """An entry of the breach register, for the operator's incident routes on a real id."""
    from datetime import UTC, datetime

    from ringwell.features.audit.service import Actor
    from ringwell.features.privacy.incidents_service import IncidentSpec, IncidentsService

    spec = IncidentSpec("Fuzzed incident", datetime.now(UTC), personal_data=True, cpni=True)
    view = await IncidentsService(env.services.sessions, env.services.audit).create(spec, actor=Actor())
    return view.incident.id


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory) -> Iterator[Fuzz]:
    loop = LoopThread()
    env: WebEnv | None = None
    try:
        env, victim, operator_client = loop.run(_setup(tmp_path_factory.mktemp("fuzz")), 120)
        values = {name: victim.ids[source] for name, (source, _) in PATH_VALUES.items()}
        values["key_id"] = loop.run(_spare_key_id(env, victim, victim.tenant.api_key))
        values["org_id"] = victim.ids["org_id"]
        values["incident_id"] = loop.run(_seed_incident(env))
        values["spare_org_id"] = loop.run(env.org(f"Spare {secrets.token_hex(3)}")).id
        fuzz = Fuzz(loop, env, victim, victim.tenant.api, operator_client, values)
        client = env.client()
        fuzz.spec = loop.run(client.get("/api/v1/openapi.json")).json()
        yield fuzz
    finally:
        if env is not None:
            loop.run(env.close())
            loop.run(env.server.engine.dispose())
        loop.close()


def _strategies(fuzz: Fuzz, operation: Any) -> list[tuple[str, st.SearchStrategy[Any], list[Any]]]:
    """Valid requests on real ids, valid requests with generated ids (org fixed), invalid requests."""
    names = [p.name for p in operation.path_parameters]
    real = {name: fuzz.path_values[name] for name in names if name in fuzz.path_values}
    org = {"org_id": fuzz.path_values["org_id"]} if "org_id" in names else {}
    if operation.path in SPARE_ORG:
        real = org = {"org_id": fuzz.path_values["spare_org_id"]}
    query = dict(REAL_QUERY.get(operation.path, {}))
    out = [("valid, real ids", operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real or None,
                                                     query=query or None), POSITIVE_CHECKS)]
    if set(real) != set(org):
        out.append(("valid, generated ids", operation.as_strategy(GenerationMode.POSITIVE,
                                                                  path_parameters=org or None), POSITIVE_CHECKS))
    out.append(("invalid", operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=org or None),
                NEGATIVE_CHECKS))
    return out


def _run(fuzz: Fuzz, strategy: st.SearchStrategy[Any], checks: list[Any], statuses: list[int]) -> None:
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False,
              suppress_health_check=list(HealthCheck), phases=(Phase.explicit, Phase.generate, Phase.shrink))
    @given(case=strategy)
    def check(case: schemathesis.Case[Any]) -> None:
        try:
            response = fuzz.send(case)
        except Exception as exc:  # the app raised (a 500 for a real client): say how to reproduce it
            exc.add_note(f"Reproduce with:\n    {case.as_curl_command()}")
            raise
        statuses.append(response.status_code)
        case.validate_response(response, checks=checks)

    check()


def test_every_operation_answers_within_its_schema(fuzz):
    schema = schemathesis.openapi.from_dict(fuzz.spec)
    failures: list[str] = []
    reached: dict[str, set[int]] = {}  # operation → statuses of its valid requests on real ids
    # Reading first, deleting last: a DELETE on a real id must not leave later operations only 404s.
    order = {"get": 0, "post": 1, "put": 1, "patch": 1, "delete": 2}
    results = list(schema.get_all_operations())
    failures += [f"== the OpenAPI document: {result.err()}" for result in results if isinstance(result, Err)]
    for operation in sorted((result.ok() for result in results if isinstance(result, Ok)),
                            key=lambda op: order.get(op.method.lower(), 1)):
        label = f"{operation.method.upper()} {operation.path}"
        for what, strategy, checks in _strategies(fuzz, operation):
            statuses: list[int] = []
            try:
                _run(fuzz, strategy, checks, statuses)
            except Unsatisfiable:
                if what != "invalid":
                    failures.append(f"== {label} ({what}): no valid request could be generated")
                # else: nothing in the request can be made invalid (e.g. only fixed path parameters)
            except (Exception, BaseExceptionGroup) as exc:  # a check failed or the app raised: report it with the rest
                detail = str(exc) if isinstance(exc, FailureGroup) else "".join(traceback.format_exception(exc))
                failures.append(f"== {label} ({what}):\n{detail[-4000:]}")
            if what == "valid, real ids":
                reached[label] = set(statuses)
    assert len(reached) >= 40
    # The requests reached the handlers (not only the authentication in front of them): every
    # operation answered something other than 401/403, and reading operations succeeded.
    failures += [f"== {label}: valid requests on real ids were all refused ({sorted(statuses)})"
                 for label, statuses in sorted(reached.items()) if statuses <= {401, 403}]
    failures += [f"== {label}: never succeeded on real ids ({sorted(statuses)})"
                 for label, statuses in sorted(reached.items())
                 if label.startswith("GET ") and not any(200 <= s < 300 for s in statuses)]
    assert not failures, f"{len(failures)} failure(s):\n\n" + "\n\n".join(failures)
