"""The browsable API reference at /api/v1/docs: rendered on the server from the OpenAPI document."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser
from typing import Annotated

import pytest
from fastapi import Depends, Query
from pydantic import BaseModel, Field

from ringwell.web.deps import Scope, org_scope
from ringwell.web.docs import DOCS_PATH, build_page, schema_anchor, type_of
from ringwell.web.errors import ERROR_RESPONSES

METHODS = ("get", "post", "put", "patch", "delete")


class _Page(HTMLParser):
    """Ids, links, and what a strict CSP would refuse (inline scripts and styles)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.fragments: list[str] = []
        self.inline: list[str] = []
        self.stylesheets: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and (values.get("href") or "").startswith("#"):
            self.fragments.append(values["href"][1:])
        if "style" in values or tag == "style" or any(name.startswith("on") for name in values):
            self.inline.append(f"<{tag} {values}>")
        if tag == "script" and not values.get("src"):
            self.inline.append("<script> without src")
        if tag == "link" and values.get("rel") == "stylesheet":
            self.stylesheets.append(values.get("href") or "")


def rows(section: str) -> list[tuple[str, ...]]:
    """The table rows of a piece of the page, as the text of their cells."""
    out = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", section, re.S):
        cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
        out.append(tuple(" ".join(unescape(re.sub(r"<[^>]+>", "", c)).split()) for c in cells))
    return out


def section(html: str, anchor: str) -> str:
    start = html.index(f'id="{anchor}"')
    return html[start:html.index("</article>", start)]


class NewThing(BaseModel):
    name: str = Field(min_length=1, max_length=40, description="What to call it")
    size: int = Field(ge=1, le=9)


class ThingOut(BaseModel):
    id: str
    name: str
    tags: list[str]


def _add_probe_routes(web) -> None:
    """Two routes of known shape (the slices' routes are tested with the real spec below)."""

    async def create_thing(body: NewThing, scope: Annotated[Scope, Depends(org_scope("users.write"))],
                           dry_run: Annotated[bool, Query(description="Only check the body")] = False) -> ThingOut:
        return ThingOut(id="1", name=body.name, tags=[])

    async def list_things(scope: Annotated[Scope, Depends(org_scope("calls.read"))]) -> list[ThingOut]:
        return []

    web.app.add_api_route("/api/v1/orgs/{org_id}/things", create_thing, methods=["POST"], tags=["things"],
                          responses=ERROR_RESPONSES, summary="Create a thing", operation_id="create_thing",
                          status_code=201,
                          description="Makes a `thing`.\n\nSecond paragraph.")
    web.app.add_api_route("/api/v1/orgs/{org_id}/things", list_things, methods=["GET"], tags=["things"],
                          summary="List things", operation_id="list_things")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_docs_page_lists_every_operation_of_the_spec(web):
    _add_probe_routes(web)
    client = web.client()
    spec = (await client.get("/api/v1/openapi.json")).json()
    assert DOCS_PATH in spec["info"]["description"]  # linked from the API's own description
    response = await client.get(DOCS_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    html = response.text
    page = _Page()
    page.feed(html)
    assert page.inline == []  # nothing the CSP would block
    assert "/static/api-docs.css" in page.stylesheets
    assert (await client.get("/static/api-docs.css")).status_code == 200
    # Every operation of the spec has its section, and the table of contents links to it.
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()
                  if method in METHODS]
    assert len(operations) >= 2
    for path, method, op in operations:
        anchor = "op-" + re.sub(r"[^a-z0-9]+", "-", op["operationId"].lower()).strip("-")
        assert anchor in page.ids, f"{method.upper()} {path} has no section"
        assert anchor in page.fragments, f"{method.upper()} {path} is not in the table of contents"
        section = html[html.index(f'id="{anchor}"'):]
        section = section[:section.index("</article>")]
        assert f">{method.upper()}</span>" in section and path in section
        if op.get("summary"):
            assert op["summary"] in unescape(section)
        for status in op["responses"]:
            assert f"<code>{status}</code>" in section
    # Every in-page link lands somewhere (schemas included).
    assert set(page.fragments) <= page.ids
    for name in spec["components"]["schemas"]:
        assert schema_anchor(name) in page.ids
    assert "<code>Authorization: Bearer rwk_…</code>" in html


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_docs_show_parameters_body_permission_and_errors(web):
    _add_probe_routes(web)
    html = (await web.client().get(DOCS_PATH)).text
    create = section(html, "op-create-thing")
    table = rows(create)
    # The permission comes from the route's own org_scope, with the roles that hold it.
    assert "Permission: <code>users.write</code>" in create
    assert "held by owner, admin;" in create
    assert ("org_id", "path", "string", "yes", "") in table
    assert ("dry_run", "query", "boolean", "no", "Only check the body (default False)") in table
    # The body's fields with their constraints; the description's Markdown code spans and paragraphs.
    assert ("name", "string", "yes", "What to call it (min length 1; max length 40)") in table
    assert ("size", "integer", "yes", "(≥ 1; ≤ 9)") in table
    assert "Makes a <code>thing</code>." in create and "<p>Second paragraph.</p>" in create
    # Responses: the created model and the shared error body, linked to their schema sections.
    assert ("201", "Successful Response", "ThingOut") in table
    assert ("404", "Not found (also: belongs to another organization)", "ErrorBody") in table
    assert f'<a href="#{schema_anchor("ErrorBody")}">ErrorBody</a>' in create
    listing = section(html, "op-list-things")
    assert "Permission: <code>calls.read</code>" in listing
    assert f'array of <a href="#{schema_anchor("ThingOut")}">ThingOut</a>' in listing


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_every_org_and_operator_operation_names_its_permission(web):
    """Read from the routes themselves (their org_scope / operator_scope), so it cannot go stale."""
    client = web.client()
    spec = (await client.get("/api/v1/openapi.json")).json()
    html = (await client.get(DOCS_PATH)).text
    scoped = [(path, op["operationId"]) for path, item in spec["paths"].items() for method, op in item.items()
              if method in METHODS and path.startswith(("/api/v1/orgs/", "/api/v1/operator/"))]
    assert scoped
    missing = [path for path, op_id in scoped
               if "Permission: <code>" not in section(html, "op-" + re.sub(r"[^a-z0-9]+", "-", op_id.lower()))]
    assert not missing


def test_type_text_of_common_schemas():
    assert str(type_of({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]})) == \
        "string (date-time) | null"
    assert unescape(type_of({"type": "string", "enum": ["inbound", "outbound"]})) == 'one of "inbound", "outbound"'
    assert str(type_of({"type": "object", "additionalProperties": {"type": "integer"}})) == \
        "object (string → integer)"
    # Text from the spec is escaped, never markup.
    assert "<b>" not in str(type_of({"type": "string", "enum": ["<b>"]}))


def test_permission_falls_back_to_the_description():
    spec = {"info": {"title": "T", "version": "1"}, "paths": {"/api/v1/x": {"get": {
        "operationId": "x", "tags": ["t"], "description": "Needs `numbers.write`; not.a.permission.",
        "responses": {"200": {"description": "OK"}}}}}}
    page = build_page(spec)
    (op,) = page.tags[0].operations
    assert op.permission == "numbers.write" and op.roles[:2] == ["owner", "admin"]
