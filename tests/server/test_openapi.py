"""Every JSON endpoint under /api/v1 is in the OpenAPI document, with its schemas."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web_urldispatcher import DynamicResource, PlainResource

from server.app import create_app
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
