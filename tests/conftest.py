"""Shared fixtures: settings per test on real SQLite and PostgreSQL, real Redis, the app.

PostgreSQL and Redis tests skip on a laptop without them (set YUNKAN_TEST_POSTGRES /
YUNKAN_TEST_REDIS to point elsewhere); under CI=true they fail instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.db.migrate import upgrade_sync
from server.settings import Settings
from tests.private_redis import REDIS_SERVER, PrivateRedis
from tests.support import pg_admin_url, pg_async_url, pg_reachable, redis_reachable

PG_URL = os.environ.get("YUNKAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("YUNKAN_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(what: str, how: str) -> None:
    message = f"{what} is not reachable; {how}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: the scale-out tests must run)")
    pytest.skip(message)


# ---- SQLite ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once per run; each test gets a copy (Alembic per test would be slow)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "yunkan.db"
    upgrade_sync(f"sqlite+aiosqlite:///{path}")
    return path


# ---- PostgreSQL --------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not pg_reachable(PG_URL):
        _unavailable("PostgreSQL", f"start it or set YUNKAN_TEST_POSTGRES (tried {PG_URL})")
    name = f"yk_tpl_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_exec(PG_URL, f'CREATE DATABASE "{name}"'))
    upgrade_sync(pg_async_url(PG_URL, name))
    yield name
    asyncio.run(_pg_exec(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_exec(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_admin_url(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_database(pg_template: str) -> Iterator[str]:
    """A fresh database cloned from the migrated template; its async SQLAlchemy URL."""
    name = f"yk_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_exec(PG_URL, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield pg_async_url(PG_URL, name)
    asyncio.run(_pg_exec(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# ---- Redis -------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    if not redis_reachable(REDIS_URL):
        _unavailable("Redis", f"start it or set YUNKAN_TEST_REDIS (tried {REDIS_URL})")
    yield REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"yktest:{uuid.uuid4().hex[:10]}:"
    yield prefix

    async def clean() -> None:
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url)
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    asyncio.run(clean())


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, which it may kill and start again."""
    if REDIS_SERVER is None:
        _unavailable("redis-server", "install Debian's redis-server")
    data = tmp_path / "redis"
    data.mkdir()
    server = PrivateRedis(data)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---- Settings and app --------------------------------------------------------------


def _sqlite_settings(tmp_path: Path, template: Path, **overrides: Any) -> Settings:
    data = tmp_path / "var"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, data / "yunkan.db")
    return Settings.for_tests(data, **overrides)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Settings:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return _sqlite_settings(tmp_path, sqlite_template)
    url = request.getfixturevalue("pg_database")
    data = tmp_path / "var"
    data.mkdir()
    return Settings.for_tests(data, database_url=url)


@pytest.fixture
def sqlite_settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    """SQLite only: for tests whose subject is not the database."""
    return _sqlite_settings(tmp_path, sqlite_template)


@pytest.fixture
def scaleout_settings(
    tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> Settings:
    """The scale-out configuration: PostgreSQL and Redis."""
    data = tmp_path / "var"
    data.mkdir()
    return Settings.for_tests(
        data, database_url=pg_database, redis_url=redis_url, redis_prefix=redis_prefix
    )


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> AsyncIterator[TestClient[Any, Any]]:
    """An API client (a script or app): keeps no cookies, authenticates with bearer tokens."""
    yield await aiohttp_client(app, cookie_jar=DummyCookieJar())


@pytest.fixture
async def browser(aiohttp_client: Any, app: web.Application) -> AsyncIterator[TestClient[Any, Any]]:
    """A browser-like client: keeps cookies, so it must send CSRF tokens."""
    yield await aiohttp_client(app)
