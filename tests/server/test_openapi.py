"""Every JSON endpoint under /api/v1 is in the OpenAPI document, with its schemas."""

from __future__ import annotations

import inspect
import re
from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web_urldispatcher import DynamicResource, PlainResource

from server.app import create_app
from server.appkeys import API_SPEC
from server.errors import YunkanError
from server.settings import Settings

UNDOCUMENTED_OK = {"/api/v1/openapi.json"}


async def test_every_api_route_is_documented(
    aiohttp_client: Any, sqlite_settings: Settings
) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(sqlite_settings))
    spec = await (await client.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    missing = []
    for route in client.app.router.routes():
        resource = route.resource
        if not isinstance(resource, PlainResource | DynamicResource):
            continue
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", resource.canonical)
        if not path.startswith("/api/v1") or path in UNDOCUMENTED_OK or route.method == "HEAD":
            continue
        if (path, route.method.lower()) not in documented:
            missing.append(f"{route.method} {path}")
    assert not missing, f"undocumented API routes: {missing}"
    login = spec["paths"]["/api/v1/auth/login"]["post"]
    assert login["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "username",
        "password",
    ]
    assert "401" in login["responses"]


def _api_handlers(app: Any) -> list[tuple[str, str, Any]]:
    out = []
    for route in app.router.routes():
        resource = route.resource
        if not isinstance(resource, PlainResource | DynamicResource):
            continue
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", resource.canonical)
        if not path.startswith("/api/v1") or path in UNDOCUMENTED_OK or route.method == "HEAD":
            continue
        out.append((route.method, path, route.handler))
    return out


def _raised_statuses(handler: Any) -> dict[str, int]:
    """``raise SomeError(...)`` in the handler's own source, resolved to the status it has."""
    source = inspect.getsource(handler)
    names = set(re.findall(r"raise\s+([A-Z]\w*)\s*\(", source))
    module = inspect.getmodule(handler)
    statuses: dict[str, int] = {}
    for name in names:
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, YunkanError):
            statuses[name] = cls.status
    return statuses


def test_every_status_a_handler_raises_is_documented(sqlite_settings: Settings) -> None:
    app = create_app(sqlite_settings)
    spec = app[API_SPEC].document()
    missing = []
    for method, path, handler in _api_handlers(app):
        documented = spec["paths"][path][method.lower()]["responses"]
        for name, status in _raised_statuses(handler).items():
            if str(status) not in documented:
                missing.append(f"{method} {path}: {name} ({status})")
    assert not missing, "raised but not documented:\n" + "\n".join(sorted(missing))


def test_every_query_parameter_a_handler_reads_is_documented(sqlite_settings: Settings) -> None:
    app = create_app(sqlite_settings)
    spec = app[API_SPEC].document()
    missing = []
    for method, path, handler in _api_handlers(app):
        source = inspect.getsource(handler)
        read = set(re.findall(r"request\.query\.get\(\s*\"(\w+)\"", source))
        params = spec["paths"][path][method.lower()].get("parameters", [])
        names = {p["name"] for p in params if p["in"] == "query"}
        missing += [f"{method} {path}: ?{name}" for name in sorted(read - names)]
        if "Idempotency-Key" in source:
            headers = {p["name"] for p in params if p["in"] == "header"}
            if "Idempotency-Key" not in headers:
                missing.append(f"{method} {path}: Idempotency-Key header")
    assert not missing, "read but not documented:\n" + "\n".join(missing)


def test_the_document_lists_503_and_the_implied_statuses(sqlite_settings: Settings) -> None:
    spec = create_app(sqlite_settings)[API_SPEC].document()
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            assert {"400", "422", "503"} <= set(op["responses"]), (method, path)
            if op["x-auth"] != "none":
                assert {"401", "403"} <= set(op["responses"]), (method, path)
            if "{" in path:
                assert "404" in op["responses"], (method, path)
    me = spec["paths"]["/api/v1/auth/me"]["get"]["responses"]["200"]
    schema = me["content"]["application/json"]["schema"]
    assert schema["required"] == sorted(schema["properties"])
