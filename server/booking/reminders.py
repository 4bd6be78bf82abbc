"""Reminders and no-shows, safe with any number of schedulers running.

A reminder is sent by whoever flips its ``sent_at`` from NULL in a conditional UPDATE;
the database lets exactly one scheduler see "one row changed", so with several
processes (or a restart halfway) each reminder goes out once. The flip is committed
*before* the SMS is handed to the sender: a crash between the two loses one reminder
rather than sending it twice (an SMS cannot be taken back; a missed reminder is the
lesser harm, and the confirmation SMS already carried the time). On PostgreSQL the
candidate rows are read with ``FOR UPDATE SKIP LOCKED`` so schedulers split the work
instead of queueing on the same rows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.booking import models as m
from server.booking.casework import record

log = logging.getLogger(__name__)

SendSms = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DueReminder:
    reminder_id: int
    mobile: str
    text: str


def reminder_text(appt: m.Appointment, matter: m.Matter, zone: ZoneInfo, join_url: str) -> str:
    local = appt.starts_at.astimezone(zone)
    return (
        f"【云勘】提醒：您预约的“{matter.name}”将于{local:%m月%d日 %H:%M}开始，"
        f"请准时通过链接进入：{join_url}"
    )


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    worker: str,
    zone: ZoneInfo,
    join_url: Callable[[m.Appointment], str],
    limit: int = 50,
) -> list[DueReminder]:
    """Claim due reminders for this worker (commit before sending what it returns)."""
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
    claimed: list[DueReminder] = []
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
        claimed.append(
            DueReminder(rid, appt.mobile, reminder_text(appt, matter, zone, join_url(appt)))
        )
    return claimed


async def send_due(
    db: async_sessionmaker[AsyncSession],
    send: SendSms,
    *,
    worker: str,
    zone: ZoneInfo,
    join_url: Callable[[m.Appointment], str],
    now: datetime | None = None,
) -> int:
    """One scheduler pass; returns how many reminders this worker sent."""
    async with db() as session, session.begin():
        due = await claim_due(
            session, now=now or datetime.now(UTC), worker=worker, zone=zone, join_url=join_url
        )
    for item in due:
        try:
            await send(item.mobile, item.text)
        except Exception:  # one failing SMS must not stop the others
            log.exception("reminder %d could not be sent", item.reminder_id)
    return len(due)


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
