"""Taking and giving back seats, enforced by the database.

``take`` is the only way a seat is sold: a single conditional UPDATE
(``taken = taken + 1 WHERE taken < seats``). On PostgreSQL concurrent updaters of one
row queue on its row lock and each re-checks the WHERE clause against the committed
row, so exactly ``seats`` of them see one row changed; on SQLite writers are serialised
by the database lock. The CHECK constraint ``taken <= seats`` is a second wall: even a
buggy unconditional increment could not oversell. No process-local lock is involved,
so any number of server processes can share the database.

The caller should take the seat as late as possible in its transaction: the row lock is
held until commit, and everything done after ``take`` lengthens the queue behind it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts import committed
from server.booking.models import SlotSeat

CAPACITY = "booking.capacity"
"""After-commit topic (:mod:`server.accounts.committed`) of a transaction that gave
capacity back: every process's sold-out memo (:mod:`soldout`) forgets."""


def freed(session: AsyncSession) -> None:
    committed.note(session, CAPACITY)


async def ensure_row(
    session: AsyncSession,
    *,
    window_id: int,
    matter_id: int,
    start: datetime,
    end: datetime,
    seats: int,
) -> int:
    """Create the slot's capacity row if missing (racing creators are fine); return its id."""
    values = {
        "window_id": window_id,
        "matter_id": matter_id,
        "starts_at": start,
        "ends_at": end,
        "seats": seats,
        "taken": 0,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await session.execute(postgresql.insert(SlotSeat).values(**values).on_conflict_do_nothing())
    else:
        await session.execute(sqlite.insert(SlotSeat).values(**values).on_conflict_do_nothing())
    seat_id = await session.scalar(
        select(SlotSeat.id).where(
            SlotSeat.window_id == window_id,
            SlotSeat.matter_id == matter_id,
            SlotSeat.starts_at == start,
        )
    )
    assert seat_id is not None
    return seat_id


async def take(session: AsyncSession, seat_id: int) -> bool:
    """Take one seat; False when the slot is full. Holds the row lock until commit."""
    result = await session.execute(
        update(SlotSeat)
        .where(SlotSeat.id == seat_id, SlotSeat.taken < SlotSeat.seats)
        .values(taken=SlotSeat.taken + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def give_back(session: AsyncSession, seat_id: int) -> None:
    freed(session)
    await session.execute(
        update(SlotSeat)
        .where(SlotSeat.id == seat_id, SlotSeat.taken > 0)
        .values(taken=SlotSeat.taken - 1)
        .execution_options(synchronize_session=False)
    )
