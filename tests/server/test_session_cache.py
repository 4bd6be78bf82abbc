"""The session cache: a known token costs no statement, and a logout or a deactivated
account ends at once on this process and, through Redis, on the others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import event, select, update

from server.accounts.models import User
from server.accounts.session_cache import SESSION_CACHE
from server.app import create_app
from server.appkeys import DB, ENGINE
from server.settings import Settings
from tests.support import create_staff, staff_headers

Client = TestClient[Any, Any]


async def _statements_of(client: Client, path: str, headers: dict[str, str]) -> tuple[int, int]:
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = client.app[ENGINE].sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        response = await client.get(path, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return response.status, len(statements)


async def test_a_known_session_costs_no_statement_and_logout_ends_it(client: Client) -> None:
    headers = await staff_headers(client)
    assert (await _statements_of(client, "/api/v1/auth/me", headers))[0] == 200
    assert await _statements_of(client, "/api/v1/auth/me", headers) == (200, 0)
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status == 204
    assert (await client.get("/api/v1/auth/me", headers=headers)).status == 401


async def test_a_deactivated_account_ends_at_once_and_sql_behind_its_back_by_ttl(
    client: Client,
) -> None:
    headers = await staff_headers(client)
    cache = client.app[SESSION_CACHE]
    now = [0.0]
    cache.clock = lambda: now[0]
    assert (await client.get("/api/v1/auth/me", headers=headers)).status == 200
    async with client.app[DB].begin() as session:  # the ORM, as the admin pages do
        user = await session.scalar(select(User).where(User.username == "inspector"))
        assert user is not None
        user.active = False
    assert (await client.get("/api/v1/auth/me", headers=headers)).status == 401
    other = await staff_headers(client, "second")
    assert (await client.get("/api/v1/auth/me", headers=other)).status == 200
    async with client.app[DB].begin() as session:  # Core SQL: the cache cannot see it
        await session.execute(update(User).where(User.username == "second").values(active=False))
    assert (await client.get("/api/v1/auth/me", headers=other)).status == 200
    now[0] += cache.ttl
    assert (await client.get("/api/v1/auth/me", headers=other)).status == 401


@pytest.mark.postgres
@pytest.mark.redis
async def test_logout_on_one_node_ends_the_session_on_the_other(
    aiohttp_client: Any, scaleout_settings: Settings
) -> None:
    first = await aiohttp_client(create_app(scaleout_settings))
    second = await aiohttp_client(create_app(scaleout_settings))
    await create_staff(first, "clerk")
    login = await first.post(
        "/api/v1/auth/login", json={"username": "clerk", "password": "correct-horse-1"}
    )
    headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
    cache = second.app[SESSION_CACHE]
    cache.ttl = 3600.0  # only the bus can end it within this test
    assert (await second.get("/api/v1/auth/me", headers=headers)).status == 200
    assert len(cache) == 1
    assert (await first.post("/api/v1/auth/logout", headers=headers)).status == 204
    for _ in range(100):
        if not len(cache):
            break
        await asyncio.sleep(0.02)
    assert (await second.get("/api/v1/auth/me", headers=headers)).status == 401
