"""Dependencies that go away: a private redis-server killed and started again under a live
SSE stream, requests while Redis or the database is unreachable (503 + Retry-After and a
stable code, never 500), and /readyz naming what is down."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings
from tests.booking.support import person, seed_app
from tests.conftest import PG_URL
from tests.private_redis import PrivateRedis
from tests.support import create_staff, pg_admin_url

Client = TestClient[Any, Any]


async def _events(stream: Any, want: int, seconds: float = 20) -> list[tuple[str, dict[str, Any]]]:
    """The next ``want`` events as (id, data)."""
    out: list[tuple[str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(seconds):
        while len(out) < want:
            text = (await stream.content.readline()).decode().rstrip("\n")
            if text:
                name, _, value = text.partition(": ")
                fields[name] = value
            elif "data" in fields:
                out.append((fields.get("id", ""), json.loads(fields["data"])))
                fields = {}
    return out


async def _login(client: Client, username: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": "correct-horse-1"}
    )
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def test_ticket_stream_gets_the_next_move_after_redis_restarts(
    aiohttp_client: Any, sqlite_settings: Settings, private_redis: PrivateRedis
) -> None:
    settings = dataclasses.replace(sqlite_settings, redis_url=private_redis.url)
    client: Client = await aiohttp_client(create_app(settings), cookie_jar=DummyCookieJar())
    cat = await seed_app(client.app, staff_ids=(await create_staff(client, "clerk"),))
    headers = await _login(client, "clerk")
    tickets = []
    for i in range(3):
        r = await client.post(
            "/api/v1/queue", json={"matter_id": cat.queue_matter_id, "applicant": person(i)}
        )
        assert r.status == 201
        tickets.append(await r.json())
    stream = await client.get(f"/api/v1/queue/{tickets[2]['ticket']}/events")
    [(first_id, first)] = await _events(stream, 1)
    assert first["position"] == 3 and first_id == "1"

    private_redis.kill()
    down = await client.post("/api/v1/queue/next", headers=headers)
    # Serving needs no Redis (publishing is best effort); the stream cannot hear of it.
    assert down.status == 200, await down.text()
    private_redis.start()
    # Once resubscribed the stream re-reads the ticket (RESYNC): position 2 arrives
    # although the announcement was published while Redis was down.
    [(resync_id, resynced)] = await _events(stream, 1)
    assert resynced["position"] == 2 and resync_id == "2"
    assert (await client.post("/api/v1/queue/next", headers=headers)).status == 200
    # (another re-read of position 2 may come first: redis-py's retry and the pump can both
    # report the reconnect)
    while (moved := (await _events(stream, 1))[0][1])["position"] == 2:
        pass
    assert moved["position"] == 1  # published through the restarted Redis
    stream.close()

    # A browser coming back says where it was; the first event is the ticket as it is now,
    # and ids go on from there.
    again = await client.get(
        f"/api/v1/queue/{tickets[2]['ticket']}/events", headers={"Last-Event-ID": "7"}
    )
    [(resumed_id, now)] = await _events(again, 1)
    assert resumed_id == "8" and now["position"] == 1
    again.close()


async def test_staff_day_stream_tells_the_page_to_reload_after_a_gap(
    aiohttp_client: Any, sqlite_settings: Settings, private_redis: PrivateRedis
) -> None:
    settings = dataclasses.replace(sqlite_settings, redis_url=private_redis.url)
    client: Client = await aiohttp_client(create_app(settings), cookie_jar=DummyCookieJar())
    await create_staff(client, "clerk")
    headers = await _login(client, "clerk")
    stream = await client.get("/staff/day/events", headers=headers)
    assert stream.status == 200
    assert (await _events(stream, 1))[0][1] == {"type": "hello"}
    private_redis.restart()
    assert (await _events(stream, 1))[0][1] == {"type": "bus.resync"}
    stream.close()
    resumed = await client.get("/staff/day/events", headers={**headers, "Last-Event-ID": "3"})
    assert (await _events(resumed, 1))[0] == ("4", {"type": "resync"})
    resumed.close()


async def test_while_redis_is_down_logins_and_codes_answer_503(
    aiohttp_client: Any, sqlite_settings: Settings, private_redis: PrivateRedis
) -> None:
    settings = dataclasses.replace(sqlite_settings, redis_url=private_redis.url)
    client: Client = await aiohttp_client(create_app(settings), cookie_jar=DummyCookieJar())
    await create_staff(client, "clerk")
    assert (await client.get("/readyz")).status == 200
    private_redis.kill()
    login = {"username": "clerk", "password": "correct-horse-1"}
    for path, body in (
        ("/api/v1/auth/login", login),
        ("/api/v1/auth/otp", {"mobile": "13800138000"}),
        ("/api/v1/auth/otp/verify", {"mobile": "13800138000", "code": "123456"}),
    ):
        response = await client.post(path, json=body)
        assert response.status == 503, (path, await response.text())
        assert response.headers["Retry-After"] == "5"
        assert (await response.json())["error"]["code"] == "redis_unavailable"
    page = await client.get("/login")  # a page form: the CSRF cookie first
    csrf = page.cookies["yk_csrf"].value
    form = await client.post(
        "/login/staff", data={**login, "csrf_token": csrf}, cookies={"yk_csrf": csrf}
    )
    assert form.status == 503 and "redis_unavailable" in await form.text()
    ready = await client.get("/readyz")
    assert ready.status == 503
    checks = (await ready.json())["checks"]
    assert checks["database"] == "ok" and checks["redis"].startswith("error")
    metrics = await (await client.get("/metrics")).text()
    assert 'yunkan_dependency_unavailable_total{code="redis_unavailable"} 4.0' in metrics

    private_redis.start()
    assert (await client.post("/api/v1/auth/login", json=login)).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_while_the_database_is_unreachable_requests_answer_503(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    data = tmp_path / "var"
    data.mkdir()
    # Nothing listens on port 1: the driver's connect is refused, as when PostgreSQL is down.
    settings = Settings.for_tests(data, database_url="postgresql+asyncpg://yk@127.0.0.1:1/yk")
    client: Client = await aiohttp_client(create_app(settings), cookie_jar=DummyCookieJar())
    for method, path, body in (
        ("POST", "/api/v1/auth/login", {"username": "clerk", "password": "correct-horse-1"}),
        ("POST", "/api/v1/auth/otp", {"mobile": "13800138000"}),
        ("GET", "/api/v1/matters", None),
    ):
        response = await client.request(method, path, json=body)
        assert response.status == 503, (path, await response.text())
        assert response.headers["Retry-After"] == "5"
        assert (await response.json())["error"]["code"] == "database_unavailable"
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["database"].startswith("error")


@pytest.mark.postgres
async def test_terminated_and_dropped_postgres_answers_503_not_500(
    aiohttp_client: Any, tmp_path: Path, pg_database: str
) -> None:
    data = tmp_path / "var"
    data.mkdir()
    client: Client = await aiohttp_client(
        create_app(Settings.for_tests(data, database_url=pg_database)),
        cookie_jar=DummyCookieJar(),
    )
    assert (await client.get("/api/v1/matters")).status == 200  # a pooled connection
    name = pg_database.rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg_admin_url(PG_URL))
    try:
        # An administrator ends every session of the app's database (a failover, a restart).
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        first = await client.get("/api/v1/matters")
        assert first.status in (200, 503), await first.text()  # never 500
        if first.status == 503:
            assert (await first.json())["error"]["code"] == "database_unavailable"
        assert (await client.get("/api/v1/matters")).status == 200  # and it comes back
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        gone = await client.get("/api/v1/matters")
        assert gone.status == 503, await gone.text()
        assert gone.headers["Retry-After"] == "5"
        assert (await gone.json())["error"]["code"] == "database_unavailable"
        ready = await client.get("/readyz")
        assert ready.status == 503
    finally:
        await admin.close()
