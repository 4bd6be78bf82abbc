"""A supervisor's justified suspension of a case's deadline clocks (暂停计时), and its end.

Both are events on the case chain (``deadline.suspended`` with the reason,
``deadline.resumed``) written in the same transaction as the suspension row; the
evaluator reads the pauses from those events (:func:`deadlines.read_timeline`). A partial
unique index allows one running suspension per case, so two supervisors pressing the
button at once give one suspension and one "already suspended" error. Who may do it is
``RULES["suspend_clock"]`` in :mod:`server.cases.access`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.cases import procedure
from server.cases.models import Case
from server.cases.timeline import append_event
from server.errors import ConflictError, ValidationError
from server.supervision import deadlines as d
from server.supervision.card_models import DeadlineSuspension

REASON_MAX = 500


class AlreadySuspendedError(ConflictError):
    code = "clock_suspended"
    message = "The clock of case %(number)s is already suspended"


class NotSuspendedError(ConflictError):
    code = "clock_running"
    message = "The clock of case %(number)s is not suspended"


async def running(session: AsyncSession, case_id: int) -> DeadlineSuspension | None:
    return await session.scalar(
        select(DeadlineSuspension).where(
            DeadlineSuspension.case_id == case_id, DeadlineSuspension.ended_at.is_(None)
        )
    )


async def suspend(
    session: AsyncSession, case: Case, actor: Principal, reason: str, now: dt.datetime
) -> DeadlineSuspension:
    text = (reason or "").strip()
    if not text:
        raise ValidationError(fields={"reason": "A reason is required"})
    procedure.require_open(case)
    if await running(session, case.id) is not None:
        raise AlreadySuspendedError(params={"number": case.number})
    row = DeadlineSuspension(
        case_id=case.id, reason=text[:REASON_MAX], started_at=now, started_by=actor.id
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:  # a second supervisor at the same moment
        raise AlreadySuspendedError(params={"number": case.number}) from None
    await append_event(
        session,
        case,
        kind=d.SUSPENDED,
        actor=actor,
        data={"reason": row.reason, "at": now.isoformat(), "suspension_id": row.id},
    )
    return row


async def resume(
    session: AsyncSession, case: Case, actor: Principal, now: dt.datetime
) -> DeadlineSuspension:
    row = await running(session, case.id)
    if row is None:
        raise NotSuspendedError(params={"number": case.number})
    row.ended_at, row.ended_by = now, actor.id
    await session.flush()
    await append_event(
        session,
        case,
        kind=d.RESUMED,
        actor=actor,
        data={"at": now.isoformat(), "suspension_id": row.id},
    )
    return row
