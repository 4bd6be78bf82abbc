"""The per-process cache of calendar, windows, plans and officers (server/booking/plancache.py).

Two engines on one database stand for two server processes: each has its own cache, and
a change committed through one must be what the other's next transaction uses, with no
bus between them. And a booking reads one version number instead of six tables.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.service import add_user
from server.booking import admin, plancache
from server.booking import models as m
from server.booking.availability import load_calendar, matter_windows, window_slots
from server.booking.staffing import qualified_staff
from server.db.engine import create_engine, session_factory
from server.settings import Settings
from tests.booking.support import SH, seed_catalog

TABLES = ("holiday_", "working_plans", "plan_exceptions", "window_matters", "staff_qualif")


def counting(db: async_sessionmaker[AsyncSession]) -> list[str]:
    statements: list[str] = []

    def before(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(db.kw["bind"].sync_engine, "before_cursor_execute", before)
    return statements


async def slots_of(db: async_sessionmaker[AsyncSession], matter_id: int, day: object) -> int:
    async with db() as session:
        matter = await session.get(m.Matter, matter_id)
        assert matter is not None
        return len(await window_slots(session, matter, day, SH, datetime.now(UTC)))  # type: ignore[arg-type]


async def test_a_change_through_one_process_is_what_the_other_uses_next(
    settings: Settings,
) -> None:
    engine_a, engine_b = create_engine(settings), create_engine(settings)
    node_a, node_b = session_factory(engine_a), session_factory(engine_b)
    try:
        async with node_a.begin() as session:
            officer = (
                await add_user(
                    session,
                    username="officer",
                    password="correct-horse-1",
                    role="inspector",
                    display_name="officer",
                )
            ).id
        cat = await seed_catalog(node_a, staff_ids=(officer,))
        statements = counting(node_b)
        before = await slots_of(node_b, cat.matter_id, cat.day)
        assert before > 0
        loads = plancache.entries_of(engine_b.sync_engine).loads
        statements.clear()
        assert await slots_of(node_b, cat.matter_id, cat.day) == before
        assert not [s for s in statements if any(t in s for t in TABLES)], statements
        assert [s for s in statements if "capacity_version" in s]  # the one read instead
        assert plancache.entries_of(engine_b.sync_engine).loads == loads

        # An ORM write on node A (the day closed) bumps the version in its transaction.
        async with node_a.begin() as session:
            session.add(m.PlanException(window_id=cat.window_id, day=cat.day, closed=True))
        assert await slots_of(node_b, cat.matter_id, cat.day) == 0

        # A Core DELETE (the admin's qualification form) bumps through plancache.changed.
        async with node_b() as session:
            assert await qualified_staff(session, cat.matter_id) == [officer]
        async with node_a.begin() as session:
            await admin.set_qualifications(session, officer, [])
        async with node_b() as session:
            assert await qualified_staff(session, cat.matter_id) == []
            assert await matter_windows(session, cat.matter_id) == [cat.window_id]
    finally:
        await engine_a.dispose()
        await engine_b.dispose()


async def test_a_transaction_sees_its_own_change_and_a_slow_load_files_nothing_stale(
    settings: Settings,
) -> None:
    engine = create_engine(settings)
    db = session_factory(engine)
    try:
        cat = await seed_catalog(db)
        async with db.begin() as session:
            assert (await load_calendar(session)).day_kind(cat.day).working
            # Its own change, not yet committed: the cache (which others share) is not
            # what this transaction must see.
            override = await session.get(m.HolidayOverride, cat.day)
            assert override is not None
            override.working = False
            await session.flush()
            assert not (await load_calendar(session)).day_kind(cat.day).working
            await session.rollback()
        async with db() as session:
            assert (await load_calendar(session)).day_kind(cat.day).working

        # A load that began under the old version finishes after a newer one was seen:
        # its value is returned to its own transaction, never kept for others. (On SQLite
        # every transaction begins IMMEDIATE, so a change cannot commit under a reader.)
        if settings.effective_database_url.startswith("sqlite"):
            return
        async with db() as slow:
            await plancache.cached(slow, "first", _value("first"))  # reads the version
            version = await slow.scalar(select(m.CapacityVersion.version))
            assert version is not None
            async with db.begin() as admin_session:
                later_day = cat.day + timedelta(days=40)
                admin_session.add(m.HolidayOverride(day=later_day, working=False, note="停电"))
            async with db() as fresh:
                await plancache.cached(fresh, "probe", _value("new"))
            assert await plancache.cached(slow, "probe", _value("old")) == "old"
        async with db() as later:
            assert await plancache.cached(later, "probe", _value("unused")) == "new"
            bumped = await later.scalar(select(func.max(m.CapacityVersion.version)))
            assert bumped == version + 1
    finally:
        await engine.dispose()


def _value(value: str):  # type: ignore[no-untyped-def]
    async def load() -> str:
        return value

    return load
