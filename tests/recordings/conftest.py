"""Real SQLite and PostgreSQL databases and a blob store for evidence tests (no app, no HTTP)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import recordings.models  # noqa: F401  (registers the evidence tables)
import server.db.models  # noqa: F401
from recordings.blobs import BlobStore
from recordings.checkpoints import SIGNER
from server.accounts.principal import Principal
from server.cases.models import Case
from server.db.base import Base
from server.db.engine import create_engine, session_factory
from server.settings import Settings
from tests.conftest import PG_URL, _pg_exec, _unavailable
from tests.pki_services import dev_signer
from tests.support import pg_async_url, pg_reachable

INSPECTOR = Principal(kind="staff", id=7, role="inspector", name="王勘验")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Tables from the models; on PostgreSQL an empty database per test (``DATABASE_URL``
    is set too, so settings loaded by the code under test, e.g. the CLI, find it)."""
    pg_name = None
    if request.param == "postgres":
        if not pg_reachable(PG_URL):
            _unavailable("PostgreSQL", f"start it or set YUNKAN_TEST_POSTGRES (tried {PG_URL})")
        pg_name = f"yk_ev_{uuid.uuid4().hex[:12]}"
        await _pg_exec(PG_URL, f'CREATE DATABASE "{pg_name}"')
        url = pg_async_url(PG_URL, pg_name)
        monkeypatch.setenv("DATABASE_URL", url)
        settings = Settings.for_tests(tmp_path, database_url=url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
        settings = Settings.for_tests(tmp_path)
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    factory = session_factory(engine)
    # As the app does (server/letters/web.py): the agency key signs checkpoints.
    factory.configure(info={SIGNER: dev_signer()})
    try:
        yield factory
    finally:
        await engine.dispose()
        if pg_name is not None:
            await _pg_exec(PG_URL, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


async def new_case(
    db: async_sessionmaker[AsyncSession], number: str = "YK-20261122-0001", **kw: object
) -> int:
    async with db() as session, session.begin():
        case = Case(number=number, title="种子公司许可变更", **kw)
        session.add(case)
        await session.flush()
        return case.id


def ago(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
