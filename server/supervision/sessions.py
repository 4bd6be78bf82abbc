"""Keeping ``video_sessions`` in step with the rooms (called by ``server.cases.rooms``
inside the transaction that moves the appointment and the case)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.booking.models import Appointment, QueueTicket
from server.cases.models import Case
from server.db.types import utcnow
from server.supervision.models import VideoSession


async def session_started(
    session: AsyncSession,
    room_id: str,
    case: Case,
    appointment: Appointment | None,
    *,
    now: dt.datetime | None = None,
) -> None:
    """The applicant was admitted: the room's session starts (once; a re-admission after a
    drop continues the same session)."""
    if await session.scalar(select(VideoSession.id).where(VideoSession.room == room_id)):
        return
    ticket_id = None
    if appointment is None:
        ticket_id = await session.scalar(
            select(QueueTicket.id).where(QueueTicket.case_id == case.id).order_by(QueueTicket.id)
        )
    session.add(
        VideoSession(
            room=room_id,
            case_id=case.id,
            matter_id=case.matter_id,
            appointment_id=appointment.id if appointment is not None else None,
            ticket_id=ticket_id,
            started_at=now or utcnow(),
        )
    )
    await session.flush()


async def session_finished(
    session: AsyncSession, room_id: str, *, by: str, now: dt.datetime | None = None
) -> None:
    """The room ended: the session's end time (the first end counts)."""
    await session.execute(
        update(VideoSession)
        .where(VideoSession.room == room_id, VideoSession.ended_at.is_(None))
        .values(ended_at=now or utcnow(), ended_by=by)
        .execution_options(synchronize_session=False)
    )
