"""The scale-out configuration (PostgreSQL + Redis) answers like the embedded one."""

from __future__ import annotations

from typing import Any

import pytest

from server.app import create_app
from server.settings import Settings


@pytest.mark.postgres
@pytest.mark.redis
async def test_ready_with_postgres_and_redis(
    aiohttp_client: Any, scaleout_settings: Settings
) -> None:
    client = await aiohttp_client(create_app(scaleout_settings))
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.postgres
@pytest.mark.redis
async def test_rate_limits_are_shared_through_redis(
    aiohttp_client: Any, scaleout_settings: Settings
) -> None:
    # Two app instances = two workers; the second sees the first one's count.
    first = await aiohttp_client(create_app(scaleout_settings))
    second = await aiohttp_client(create_app(scaleout_settings))
    assert (await first.post("/api/v1/auth/otp", json={"mobile": "13800138001"})).status == 202
    assert (await second.post("/api/v1/auth/otp", json={"mobile": "13800138001"})).status == 429


async def test_not_ready_when_redis_is_down(aiohttp_client: Any, sqlite_settings: Settings) -> None:
    import dataclasses

    settings = dataclasses.replace(sqlite_settings, redis_url="redis://127.0.0.1:1/0")
    client = await aiohttp_client(create_app(settings))
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["redis"].startswith("error")
