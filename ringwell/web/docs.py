"""Browsable API documentation at ``/api/v1/docs``, rendered on the server from the OpenAPI document.

Swagger UI and ReDoc need a script bundle from elsewhere (the CSP forbids it) and the bundles
on PyPI cannot read OpenAPI 3.1, so the page is plain HTML made with Jinja2 from
``app.openapi()``: operations grouped by tag with a table of contents, each with its method,
path, summary, description, parameters, request body, responses (the error body included),
the permission it needs and which roles hold it; then every schema the operations refer to.

The permission is read from the route itself (the ``org_scope`` / ``operator_scope``
dependency it declares), falling back to a permission name quoted in the description, so the
page cannot disagree with what the server enforces.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from markupsafe import Markup, escape
from starlette.routing import BaseRoute

from ringwell.features.auth.permissions import (
    OPERATOR_PERMISSIONS,
    ORG_PERMISSIONS,
    Role,
    is_staff,
    permissions_of,
)

__all__ = ["DOCS_PATH", "DocsPage", "Operation", "build_page", "router"]

DOCS_PATH = "/api/v1/docs"
_METHODS = ("get", "post", "put", "patch", "delete")
_REF = "#/components/schemas/"
_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\((/[^)\s\"'<>]*)\)")  # Markdown links to this server's own pages only
_PERMISSION_IN_TEXT = re.compile(r"\b(?:[a-z]+\.)+[a-z]+\b")
_ALL_PERMISSIONS = ORG_PERMISSIONS | OPERATOR_PERMISSIONS

router = APIRouter()


# --- the page's model ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """A parameter or a property of a schema."""

    name: str
    location: str  # path, query, header, cookie; "" for a schema property
    required: bool
    type: Markup
    description: str


@dataclass(frozen=True, slots=True)
class Body:
    content_type: str
    required: bool
    type: Markup
    fields: list[Field]


@dataclass(frozen=True, slots=True)
class ResponseDoc:
    status: str
    description: str
    type: Markup | None


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    anchor: str
    summary: str
    description: str
    deprecated: bool
    permission: str | None
    roles: list[str]
    parameters: list[Field]
    body: Body | None
    responses: list[ResponseDoc]


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    anchor: str
    description: str
    operations: list[Operation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SchemaDoc:
    name: str
    anchor: str
    description: str
    type: Markup
    fields: list[Field]


@dataclass(frozen=True, slots=True)
class DocsPage:
    title: str
    version: str
    description: str
    openapi_url: str
    tags: list[Tag]
    schemas: list[SchemaDoc]

    @property
    def operation_count(self) -> int:
        return sum(len(tag.operations) for tag in self.tags)


# --- schemas as text -------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def schema_anchor(name: str) -> str:
    return "schema-" + _slug(name)


def inline_code(text: str | None) -> Markup:
    """``text`` escaped, with `backticked` spans as ``<code>`` and ``[text](/path)`` as links
    (the subset of Markdown the descriptions use)."""
    escaped = _CODE.sub(r"<code>\1</code>", str(escape(text or "")))
    return Markup(_LINK.sub(r'<a href="\2">\1</a>', escaped))  # noqa: S704 - escaped just above


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _constraints(schema: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key, label in (("minLength", "min length"), ("maxLength", "max length"), ("minItems", "min items"),
                       ("maxItems", "max items")):
        if key in schema:
            out.append(f"{label} {schema[key]}")
    for key, op in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in schema and not isinstance(schema[key], bool):
            out.append(f"{op} {_number(schema[key])}")
    if "pattern" in schema:
        out.append(f"pattern {schema['pattern']}")
    if "default" in schema and schema["default"] is not None:
        out.append(f"default {schema['default']!r}")
    return out


def type_of(schema: Mapping[str, Any] | None, *, depth: int = 0) -> Markup:
    """A short, readable type: ``string (uuid)``, ``array of CallOut``, ``integer | null``,
    ``one of "inbound", "outbound"``; references link to the schema's section."""
    if not schema:
        return Markup("any")
    if depth > 6:
        return Markup("…")
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF):
        name = ref[len(_REF):]
        return Markup('<a href="#{}">{}</a>').format(schema_anchor(name), name)
    for key in ("anyOf", "oneOf", "allOf"):
        variants = schema.get(key)
        if isinstance(variants, list) and variants:
            joiner = Markup(" & ") if key == "allOf" else Markup(" | ")
            return joiner.join(type_of(v, depth=depth + 1) for v in variants)
    if "enum" in schema:
        values = ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in schema["enum"])
        return Markup("one of {}").format(values)
    if "const" in schema:
        return Markup("{!r}").format(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return Markup(" | ").join(type_of({**schema, "type": k}, depth=depth + 1) for k in kind)
    if kind == "array":
        return Markup("array of ") + type_of(schema.get("items"), depth=depth + 1)
    if kind == "object" and "additionalProperties" in schema and not schema.get("properties"):
        extra = schema["additionalProperties"]
        value = type_of(extra if isinstance(extra, dict) else None, depth=depth + 1)
        return Markup("object (string → ") + value + Markup(")")
    text = str(kind or "object")
    if "format" in schema:
        text += f" ({schema['format']})"
    return Markup("{}").format(text)


def _described(schema: Mapping[str, Any], *, described: str = "") -> str:
    """The schema's description (unless it repeats ``described``, e.g. a parameter's) and constraints."""
    own = str(schema.get("description") or "")
    parts = [described, own if own != described else ""]
    constraints = _constraints(schema)
    for variant in schema.get("anyOf") or ():  # Optional[...] keeps its constraints inside anyOf
        if isinstance(variant, dict):
            constraints += _constraints(variant)
    if constraints:
        parts.append("(" + "; ".join(constraints) + ")")
    return " ".join(p for p in parts if p)


def properties_of(schema: Mapping[str, Any]) -> list[Field]:
    required = set(schema.get("required") or ())
    return [Field(name, "", name in required, type_of(prop), _described(prop))
            for name, prop in (schema.get("properties") or {}).items() if isinstance(prop, dict)]


def _resolve(spec: Mapping[str, Any], schema: Mapping[str, Any] | None) -> Mapping[str, Any]:
    ref = (schema or {}).get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF):
        found = spec.get("components", {}).get("schemas", {}).get(ref[len(_REF):])
        return found if isinstance(found, dict) else {}
    return schema or {}


# --- permissions ----------------------------------------------------------------------------


def _dependency_permission(dependant: Dependant) -> str | None:
    """The permission an ``org_scope(...)`` / ``operator_scope(...)`` dependency was made with."""
    for sub in dependant.dependencies:
        call = sub.call
        if call is not None and inspect.isfunction(call):
            permission = inspect.getclosurevars(call).nonlocals.get("permission")
            if isinstance(permission, str) and permission in _ALL_PERMISSIONS:
                return permission
        found = _dependency_permission(sub)
        if found:
            return found
    return None


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every ``APIRoute``, also inside included routers (FastAPI ≥ 0.16x keeps an included router
    as one route that holds the original router, where older versions copied its routes)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _api_routes(nested.routes)


def route_permissions(app: FastAPI) -> dict[str, str]:
    """operationId → the permission the route's scope dependency checks."""
    out: dict[str, str] = {}
    for route in _api_routes(app.routes):
        permission = _dependency_permission(route.dependant) if route.include_in_schema else None
        if permission:
            out[route.operation_id or route.unique_id] = permission
    return out


def roles_holding(permission: str) -> list[str]:
    """Who holds ``permission``: the org roles, then operator staff (who act in any org, audited)."""
    roles = [f"{role.value} (staff)" if is_staff(role.value) else role.value
             for role in Role if permission in permissions_of(role.value)]
    if permission in OPERATOR_PERMISSIONS:
        roles = [*roles, *(f"{r} (operator org)" for r in ("owner", "admin") if r not in roles)]
    return roles


def _permission_in(text: str) -> str | None:
    return next((m for m in _PERMISSION_IN_TEXT.findall(text) if m in _ALL_PERMISSIONS), None)


# --- the page ---------------------------------------------------------------------------------


def _parameters(spec: Mapping[str, Any], raw: Iterable[Any]) -> list[Field]:
    out: list[Field] = []
    for entry in raw:
        param = _resolve(spec, entry) if isinstance(entry, dict) and "$ref" in entry else entry
        if not isinstance(param, dict):
            continue
        schema = param.get("schema") or {}
        description = _described(schema, described=str(param.get("description") or ""))
        out.append(Field(str(param.get("name")), str(param.get("in")), bool(param.get("required")),
                         type_of(schema), description))
    return out


def _body(spec: Mapping[str, Any], raw: Mapping[str, Any] | None) -> Body | None:
    if not raw:
        return None
    raw = _resolve(spec, raw) if "$ref" in raw else raw
    content = raw.get("content") or {}
    if not content:
        return None
    content_type, media = next(iter(content.items()))
    schema = media.get("schema") if isinstance(media, dict) else None
    return Body(str(content_type), bool(raw.get("required")), type_of(schema), properties_of(_resolve(spec, schema)))


def _responses(raw: Mapping[str, Any]) -> list[ResponseDoc]:
    out: list[ResponseDoc] = []
    for status in sorted(raw, key=str):
        response = raw[status]
        content = response.get("content") or {}
        schema = None
        for media in content.values():
            if isinstance(media, dict) and media.get("schema"):
                schema = type_of(media["schema"])
                break
        out.append(ResponseDoc(str(status), str(response.get("description") or ""), schema))
    return out


def build_page(spec: Mapping[str, Any], permissions: Mapping[str, str] | None = None, *,
               openapi_url: str = "") -> DocsPage:
    """The page's model from an OpenAPI document (and the permission each operation id checks)."""
    permissions = permissions or {}
    info = spec.get("info") or {}
    declared = {str(t.get("name")): str(t.get("description") or "") for t in spec.get("tags") or ()
                if isinstance(t, dict)}
    tags: dict[str, Tag] = {}
    for path, item in (spec.get("paths") or {}).items():
        for method in _METHODS:
            op = item.get(method) if isinstance(item, dict) else None
            if not isinstance(op, dict):
                continue
            description = str(op.get("description") or "")
            permission = permissions.get(str(op.get("operationId"))) or _permission_in(description)
            operation = Operation(
                method=method.upper(), path=str(path),
                anchor="op-" + _slug(str(op.get("operationId") or f"{method}-{path}")),
                summary=str(op.get("summary") or ""), description=description,
                deprecated=bool(op.get("deprecated")), permission=permission,
                roles=roles_holding(permission) if permission else [],
                parameters=_parameters(spec, [*(item.get("parameters") or ()), *(op.get("parameters") or ())]),
                body=_body(spec, op.get("requestBody")),
                responses=_responses(op.get("responses") or {}),
            )
            for name in op.get("tags") or ["other"]:
                tag = tags.setdefault(str(name), Tag(str(name), "tag-" + _slug(str(name)), declared.get(str(name), "")))
                tag.operations.append(operation)
    order = list(declared)
    ordered = sorted(tags.values(), key=lambda t: (order.index(t.name) if t.name in order else len(order), t.name))
    schemas = [SchemaDoc(name, schema_anchor(name), str(schema.get("description") or ""), type_of(schema),
                         properties_of(schema))
               for name, schema in sorted((spec.get("components") or {}).get("schemas", {}).items())
               if isinstance(schema, dict)]
    return DocsPage(title=str(info.get("title") or "API"), version=str(info.get("version") or ""),
                    description=str(info.get("description") or ""), openapi_url=openapi_url, tags=ordered,
                    schemas=schemas)


@router.get(DOCS_PATH, include_in_schema=False, response_class=HTMLResponse)
async def api_docs(request: Request) -> HTMLResponse:
    """The documentation page (public, like the OpenAPI document it is made from)."""
    app: FastAPI = request.app
    page = build_page(app.openapi(), route_permissions(app), openapi_url=app.openapi_url or "")
    templates = app.state.templates
    response: HTMLResponse = templates.TemplateResponse(
        request, "api_docs.html", {"page": page, "inline_code": inline_code, "schema_anchor": schema_anchor})
    return response
