"""Real SQLite database and blob store for evidence tests (no app, no HTTP)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import recordings.models  # noqa: F401  (registers the evidence tables)
import server.db.models  # noqa: F401
from recordings.blobs import BlobStore
from server.accounts.principal import Principal
from server.cases.models import Case
from server.db.base import Base
from server.db.engine import create_engine, session_factory
from server.settings import Settings

INSPECTOR = Principal(kind="staff", id=7, role="inspector", name="王勘验")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(Settings.for_tests(tmp_path))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


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
