"""Routes that document themselves: every JSON endpoint declares its schemas once, and the
same schema validates the request body (jsonschema) and feeds ``/api/v1/openapi.json``.

The document is the contract Schemathesis holds the app to (tests/server/test_fuzz.py):
besides what each route declares, :meth:`ApiSpec.document` adds the statuses any route
can answer through the middlewares (400 for unreadable input, 422 ``invalid_text``, 401
and 403 where a login is needed, 404 where the path names something, 413 where a body is
taken, 503 while the database or Redis is unreachable), and the query parameters and
headers of routes that other packages own are listed in :data:`PARAMETERS`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from server.errors import BadRequestError, ValidationError
from server.parsing import load_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = Mapping[str, Any]

ERROR_SCHEMA: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                "details": {"type": "object"},
            },
        }
    },
}


@dataclass(slots=True)
class Operation:
    method: str
    path: str
    summary: str
    request: Schema | None
    responses: Mapping[int, Schema | str | None]
    tags: tuple[str, ...]
    auth: str  # "none", "applicant", "staff", "any", or a role list like "admin"
    content_type: str = "application/json"
    query: Mapping[str, Schema] = field(default_factory=dict)
    headers: Mapping[str, Schema] = field(default_factory=dict)


class ApiRoutes(web.RouteTableDef):
    """A ``RouteTableDef`` that also records what each API route takes and returns."""

    def __init__(self, tag: str = "") -> None:
        super().__init__()
        self.operations: list[Operation] = []
        self._tag = tag

    def api(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        request: Schema | None = None,
        responses: Mapping[int, Schema | str | None] | None = None,
        auth: str = "any",
        content_type: str = "application/json",
        tags: tuple[str, ...] = (),
        query: Mapping[str, Schema] | None = None,
        headers: Mapping[str, Schema] | None = None,
    ) -> Callable[[Handler], Handler]:
        self.operations.append(
            Operation(
                method.upper(),
                path,
                summary,
                request,
                responses or {200: None},
                tags or ((self._tag,) if self._tag else ()),
                auth,
                content_type,
                dict(query or {}),
                dict(headers or {}),
            )
        )
        return self.route(method, path)

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:  # type: ignore[override]
        return self.api("GET", path, **kw) if "summary" in kw else super().get(path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:  # type: ignore[override]
        return self.api("POST", path, **kw) if "summary" in kw else super().post(path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:  # type: ignore[override]
        return self.api("PUT", path, **kw) if "summary" in kw else super().put(path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:  # type: ignore[override]
        return self.api("PATCH", path, **kw) if "summary" in kw else super().patch(path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:  # type: ignore[override]
        return self.api("DELETE", path, **kw) if "summary" in kw else super().delete(path, **kw)


@dataclass(slots=True)
class ApiSpec:
    title: str = "Yunkan API"
    version: str = "1"
    operations: list[Operation] = field(default_factory=list)

    def include(self, routes: ApiRoutes) -> None:
        self.operations.extend(routes.operations)

    def document(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            entry: dict[str, Any] = {
                "summary": op.summary,
                "tags": list(op.tags),
                "x-auth": op.auth,
                "responses": {},
            }
            path = "/".join(p.split(":")[0] + ("}" if ":" in p else "") for p in op.path.split("/"))
            params = [p.strip("{}") for p in op.path.split("/") if p.startswith("{")]
            extra = PARAMETERS.get((op.method, path), {})
            parameters = [
                {
                    "name": p.split(":")[0],
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
                for p in params
            ]
            for where, declared in (("query", op.query), ("header", op.headers)):
                for name, param in {**declared, **extra.get(where, {})}.items():
                    parameters.append(
                        {"name": name, "in": where, "required": False, "schema": dict(param)}
                    )
            if parameters:
                entry["parameters"] = parameters
            if op.auth != "none":
                entry["security"] = [{"bearer": []}, {"cookie": []}]
            if op.request is not None:
                entry["requestBody"] = {
                    "required": True,
                    "content": {op.content_type: {"schema": dict(op.request)}},
                }
            for status, schema in {**_implied(op, bool(params)), **op.responses}.items():
                if schema == "error" or (schema is None and status >= 400):
                    body: dict[str, Any] = {
                        "content": {"application/json": {"schema": ERROR_SCHEMA}}
                    }
                elif isinstance(schema, str):
                    body = {"content": {schema: {}}}
                elif schema is None:
                    body = {}
                else:
                    body = {"content": {"application/json": {"schema": _answered(schema)}}}
                entry["responses"][str(status)] = {"description": _REASONS.get(status, ""), **body}
            paths.setdefault(path, {})[op.method.lower()] = entry
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "cookie": {"type": "apiKey", "in": "cookie", "name": "yk_session"},
                },
                "schemas": {"Error": ERROR_SCHEMA},
            },
        }


def _answered(schema: Schema) -> dict[str, Any]:
    """A response schema with ``required`` filled in: every property a schema names is
    in each answer unless the schema says otherwise (its own ``required``). Schemathesis
    holds the app to it (an answer missing a field fails the fuzz test)."""
    out: dict[str, Any] = dict(schema)
    properties = out.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {k: _answered(v) for k, v in properties.items()}
        out.setdefault("required", sorted(properties))
    items = out.get("items")
    if isinstance(items, Mapping):
        out["items"] = _answered(items)
    return out


def _implied(op: Operation, has_path_params: bool) -> dict[int, Schema | str | None]:
    """Statuses the middlewares and the shared helpers can answer for ``op``."""
    # 400: aiohttp and ``server.parsing`` refuse unreadable input on any route.
    implied: dict[int, Schema | str | None] = {400: "error", 422: "error", 503: "error"}
    if op.request is not None:
        implied[413] = "error"
    if op.auth != "none":
        implied[401] = "error"
        implied[403] = "error"
    if has_path_params:
        implied[404] = "error"
    return implied


_STRING = {"type": "string", "maxLength": 200}
_DATE = {"type": "string", "format": "date", "examples": ["2026-12-01"]}
PARAMETERS: dict[tuple[str, str], dict[str, dict[str, Schema]]] = {
    ("GET", "/api/v1/matters"): {"query": {"zone": {"enum": ["citizen", "enterprise"]}}},
    ("GET", "/api/v1/matters/{id}/slots"): {"query": {"date": _DATE}},
    ("GET", "/api/v1/appointments"): {"query": {"date": _DATE}},
    ("POST", "/api/v1/appointments"): {"header": {"Idempotency-Key": _STRING}},
    ("GET", "/api/v1/appointments/{id}"): {"query": {"token": _STRING}},
    ("GET", "/api/v1/appointments/{id}/calendar.ics"): {"query": {"token": _STRING}},
    ("GET", "/api/v1/appointments/{id}/qr.svg"): {"query": {"token": _STRING}},
    ("GET", "/api/v1/outbox"): {
        "query": {
            "mobile": {"type": "string", "maxLength": 32},
            "limit": {"type": "string", "pattern": "^[0-9]{1,6}$"},
        }
    },
}
"""Query parameters and headers of routes declared in other packages, by (method, path);
tests/server/test_openapi.py checks that every ``request.query`` name a handler reads is
documented here or in the route's own ``query=``."""


_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad request",
    401: "Not logged in",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    422: "Invalid fields",
    429: "Too many requests",
    503: "A dependency is unavailable; retry after Retry-After seconds",
}

_MESSAGES = {
    "required": "This field is required",
    "type": "This value has the wrong type",
    "maxLength": "This value is too long",
    "minLength": "This value is too short",
    "pattern": "This value does not have the expected format",
    "format": "This value does not have the expected format",
    "enum": "This value is not one of the allowed choices",
    "const": "This value is not one of the allowed choices",
    "minimum": "This value is too small",
    "maximum": "This value is too large",
    "additionalProperties": "Unknown field",
    "maxItems": "Too many items",
    "minItems": "Too few items",
}


def validate(data: Any, schema: Schema) -> None:
    """Raise :class:`ValidationError` with one message per offending field."""
    fields: dict[str, str] = {}
    for error in Draft202012Validator(schema).iter_errors(data):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path = f"{path}.{missing}" if path else missing
        elif error.validator == "additionalProperties":
            extra = error.message.split("'")[1] if "'" in error.message else ""
            path = f"{path}.{extra}" if path else extra
        fields.setdefault(
            path or "body", _MESSAGES.get(str(error.validator), "This value is not valid")
        )
    if fields:
        raise ValidationError(fields=fields)


async def read_json(request: web.Request, schema: Schema | None = None) -> Any:
    """The request's JSON body, validated against ``schema``."""
    if request.content_type != "application/json":
        raise BadRequestError("Send the request body as application/json")
    data = load_json(await request.read())  # client_max_size already bounds the size
    if schema is not None:
        validate(data, schema)
    return data
