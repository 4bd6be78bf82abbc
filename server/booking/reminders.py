"""Reminders and no-shows, safe with any number of schedulers running.

A due reminder is queued by whoever flips its ``sent_at`` from NULL in a conditional
UPDATE; the database lets exactly one scheduler see "one row changed". The flip and the
outbox row (:mod:`outbox`, keyed by reminder and due time) commit together, so a
reminder is never lost between the two and never queued twice; the outbox worker then
delivers it with retries and records the provider's answer. On PostgreSQL the candidate
rows are read with ``FOR UPDATE SKIP LOCKED`` so schedulers split the work instead of
queueing on the same rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.booking import models as m
from server.booking import outbox, texts
from server.booking.casework import record

log = logging.getLogger(__name__)

KIND = "booking.reminder"


async def queue_due(
    session: AsyncSession,
    *,
    now: datetime,
    worker: str,
    zone: ZoneInfo,
    join_url: Callable[[m.Appointment], str],
    limit: int = 50,
) -> int:
    """Claim due reminders and write their SMS to the outbox, in the caller's transaction."""
    query = (
        select(m.Reminder.id)
        .where(
            m.Reminder.sent_at.is_(None), m.Reminder.skipped.is_(False), m.Reminder.due_at <= now
        )
        .order_by(m.Reminder.due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(await session.scalars(query))
    queued = 0
    for rid in ids:
        result = await session.execute(
            update(m.Reminder)
            .where(m.Reminder.id == rid, m.Reminder.sent_at.is_(None))
            .values(sent_at=now, sent_by=worker)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another scheduler won this one
        reminder = await session.get(m.Reminder, rid)
        assert reminder is not None
        appt = await session.get(m.Appointment, reminder.appointment_id)
        if appt is None or appt.status not in ("booked", "checked_in"):
            continue  # cancelled or finished: claimed (so nobody retries) but not sent
        matter = await session.get(m.Matter, appt.matter_id)
        assert matter is not None
        await outbox.enqueue(
            session,
            key=f"reminder:{rid}:{reminder.due_at.isoformat()}",
            kind=KIND,
            mobile=appt.mobile,
            body=texts.reminder(appt, matter, zone, join_url(appt)),
            now=now,
            appointment_id=appt.id,
        )
        queued += 1
    return queued


async def send_due(
    db: async_sessionmaker[AsyncSession],
    provider: outbox.Provider,
    *,
    worker: str,
    zone: ZoneInfo,
    join_url: Callable[[m.Appointment], str],
    now: datetime | None = None,
) -> int:
    """One scheduler pass: queue due reminders, then deliver what the outbox holds (any
    kind); returns how many SMS this worker delivered."""
    now = now or datetime.now(UTC)
    async with db() as session, session.begin():
        await queue_due(session, now=now, worker=worker, zone=zone, join_url=join_url)
    return await outbox.deliver_due(db, provider, worker=worker, now=now)


async def mark_no_shows(
    db: async_sessionmaker[AsyncSession], *, grace: timedelta, now: datetime | None = None
) -> list[int]:
    """Appointments still ``booked`` ``grace`` after their start become no-shows.

    Only ``booked``: an applicant who opened the link and waits in the waiting room is
    ``checked_in`` (the live side moves it there on entry), one already admitted is
    ``in_session``; neither is a no-show however late the officer is. The UPDATE's
    WHERE decides it, so a check-in racing this pass either lands first (not marked) or
    finds the appointment gone to ``no_show`` (and the join page says so).
    """
    now = now or datetime.now(UTC)
    async with db() as session, session.begin():
        rows = (
            await session.execute(
                update(m.Appointment)
                .where(m.Appointment.status == "booked", m.Appointment.starts_at < now - grace)
                .values(status="no_show", version=m.Appointment.version + 1, updated_at=now)
                .returning(m.Appointment.id, m.Appointment.case_id, m.Appointment.slot_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        for appt_id, case_id, _slot in rows:
            if case_id is not None:
                await record(
                    session,
                    case_id,
                    "appointment.no_show",
                    None,
                    {"appointment_id": appt_id, "by": "grace", "grace_min": grace.seconds // 60},
                )
    return [r[0] for r in rows]
