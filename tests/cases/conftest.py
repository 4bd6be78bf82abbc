"""The app with the evidence domain, on a real SQLite database.

Each test runs on SQLite and on PostgreSQL. The tables are created from the models rather
than by Alembic: the migration chain
(0002–0004 from other branches before our 0005) is only complete once everything is merged,
and these tests are about the evidence API, not about migrations.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

import recordings.models  # noqa: F401
import server.db.models  # noqa: F401
from server.accounts.models import Applicant, User
from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.cases.models import CaseParty
from server.cases.numbers import open_case
from server.db.base import Base
from server.db.engine import create_engine
from server.evidence.live import VIDEO_RESOLVER, SessionVideo
from server.settings import Settings
from tests.conftest import PG_URL, _pg_exec, _unavailable
from tests.support import pg_async_url, pg_reachable

Client = TestClient[Any, Any]


@dataclass
class EncodedSession:
    """A session whose participant publishes a fixed list of real VP8 packets."""

    case_id: int
    packets: dict[str, list[av.Packet[Any]]] = field(default_factory=dict)

    def default_participant(self) -> str | None:
        return next(iter(self.packets), None)

    async def video_packets(self, participant: str) -> Sequence[av.Packet[Any]]:
        return self.packets.get(participant, [])


SESSIONS_KEY = web.AppKey[dict[str, SessionVideo]]("test_sessions")


async def _resolve(app: web.Application, session_id: str) -> SessionVideo | None:
    return app[SESSIONS_KEY].get(session_id)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def evidence_settings(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Settings]:
    """Runs each test on SQLite and on PostgreSQL (an empty database per test)."""
    data = tmp_path / "var"
    data.mkdir(parents=True)
    pg_name = None
    if request.param == "sqlite":
        settings = Settings.for_tests(data)
    else:
        if not pg_reachable(PG_URL):
            _unavailable("PostgreSQL", f"start it or set YUNKAN_TEST_POSTGRES (tried {PG_URL})")
        pg_name = f"yk_ev_{uuid.uuid4().hex[:12]}"
        await _pg_exec(PG_URL, f'CREATE DATABASE "{pg_name}"')
        settings = Settings.for_tests(data, database_url=pg_async_url(PG_URL, pg_name))
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()
    yield settings
    if pg_name is not None:
        await _pg_exec(PG_URL, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


@pytest.fixture
async def client(aiohttp_client: Any, evidence_settings: Settings) -> AsyncIterator[Client]:
    app = create_app(evidence_settings)
    app[SESSIONS_KEY] = {}
    app[VIDEO_RESOLVER] = _resolve
    yield await aiohttp_client(app, cookie_jar=DummyCookieJar())


async def new_case(
    client: Client, *, applicant_mobile: str | None = None, staff: Sequence[str] = ()
) -> int:
    """A case with the applicant (by mobile) and the named staff users as parties."""
    async with client.app[DB].begin() as session:
        applicant_id = None
        if applicant_mobile:
            applicant_id = await session.scalar(
                select(Applicant.id).where(Applicant.mobile == applicant_mobile)
            )
            if applicant_id is None:
                applicant = Applicant(mobile=applicant_mobile, name="张小明")
                session.add(applicant)
                await session.flush()
                applicant_id = applicant.id
        case = await open_case(
            session,
            title="种子公司许可变更勘验",
            zone=client.app[SETTINGS].zone,
            applicant_id=applicant_id,
            status="inspecting",  # evidence is taken while the video inspection runs
        )
        for username in staff:
            user_id = await session.scalar(select(User.id).where(User.username == username))
            assert user_id is not None, username
            session.add(
                CaseParty(
                    case_id=case.id, principal_kind="staff", principal_id=user_id, role="inspector"
                )
            )
        return case.id
