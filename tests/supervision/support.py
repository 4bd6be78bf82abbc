"""A department with its head, a lead officer and a case whose clocks the tests drive.

The case's steps start at the real time its events are written, so the days after that
are pinned with holiday overrides (an admin's word beats every other calendar): the
counts do not depend on which weekday the suite runs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from server.accounts.service import add_user
from server.appkeys import DB, SETTINGS
from server.booking.models import Department, HolidayOverride, Matter, OutboxMessage
from server.cases.models import Case, CaseEvent, CaseParty
from server.cases.numbers import open_case
from server.supervision.card_models import DeadlineCard, StaffNotice

LEAD_MOBILE = "13900139001"
HEAD_MOBILE = "13900139002"


@dataclass
class World:
    case_id: int
    lead_id: int
    head_id: int
    supervisor_id: int
    department_id: int
    start: dt.date
    """The local day the case's steps started."""

    def at(self, zone: Any, days: int, hour: int = 10) -> dt.datetime:
        """Local ``hour`` o'clock ``days`` calendar days after the start."""
        return dt.datetime.combine(self.start + dt.timedelta(days=days), dt.time(hour), zone)


async def pin_days(app: Any, start: dt.date, pattern: str) -> None:
    """Day ``start + i + 1`` is working for ``W``, a holiday for ``H``, 调休 for ``B``
    (a worked weekend day: still an override), a weekend for ``-``."""
    async with app[DB].begin() as session:
        for i, ch in enumerate(pattern):
            day = start + dt.timedelta(days=i + 1)
            note = {"H": "节假日", "B": "调休", "-": "周末", "W": ""}[ch]
            existing = await session.get(HolidayOverride, day)
            if existing is not None:
                await session.delete(existing)
                await session.flush()
            session.add(HolidayOverride(day=day, working=ch in "WB", note=note))


async def world(
    app: Any,
    *,
    promised: dict[str, int] | None = None,
    pattern: str = "WWWWWWWWWWWWWWWWWWWW",
    usernames: tuple[str, str, str] = ("liu", "zhao", "sun"),
) -> World:
    lead_name, head_name, supervisor_name = usernames
    async with app[DB].begin() as session:
        lead = await add_user(
            session,
            username=lead_name,
            password="yunkan-test-1",
            role="inspector",
            display_name="刘勘验",
        )
        head = await add_user(
            session,
            username=head_name,
            password="yunkan-test-1",
            role="inspector",
            display_name="赵科长",
        )
        supervisor = await add_user(
            session,
            username=supervisor_name,
            password="yunkan-test-1",
            role="supervisor",
            display_name="孙督查",
        )
        lead.mobile, head.mobile = LEAD_MOBILE, HEAD_MOBILE
        department = Department(code=f"agri-{lead_name}", name="农业农村局", head_id=head.id)
        session.add(department)
        await session.flush()
        matter = Matter(
            code=f"seed-{lead_name}",
            department_id=department.id,
            name="种子生产经营许可变更",
            zone="enterprise",
            kind="inspection",
            promised_days=promised or {"inspect": 5, "total": 15},
        )
        session.add(matter)
        await session.flush()
        case = await open_case(
            session,
            title="沙河种业许可变更勘验",
            zone=app[SETTINGS].zone,
            matter_id=matter.id,
            status="scheduled",
        )
        session.add(
            CaseParty(case_id=case.id, principal_kind="staff", principal_id=lead.id, role="lead")
        )
        start = case.created_at.astimezone(app[SETTINGS].zone).date()
        ids = (case.id, lead.id, head.id, supervisor.id, department.id)
    await pin_days(app, start, pattern)
    return World(*ids, start=start)


async def cards(app: Any, case_id: int) -> list[tuple[str, str]]:
    async with app[DB]() as session:
        rows = await session.execute(
            select(DeadlineCard.step, DeadlineCard.colour)
            .where(DeadlineCard.case_id == case_id)
            .order_by(DeadlineCard.id)
        )
        return [(r[0], r[1]) for r in rows]


async def card_events(app: Any, case_id: int) -> list[dict[str, Any]]:
    async with app[DB]() as session:
        return list(
            await session.scalars(
                select(CaseEvent.data)
                .where(CaseEvent.case_id == case_id, CaseEvent.kind == "deadline.card")
                .order_by(CaseEvent.seq)
            )
        )


async def sms(app: Any) -> list[tuple[str, str]]:
    async with app[DB]() as session:
        rows = await session.execute(
            select(OutboxMessage.mobile, OutboxMessage.body)
            .where(OutboxMessage.kind == "supervision.card")
            .order_by(OutboxMessage.id)
        )
        return [(r[0], r[1]) for r in rows]


async def notice_count(app: Any, user_id: int) -> int:
    async with app[DB]() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(StaffNotice).where(StaffNotice.user_id == user_id)
            )
            or 0
        )


async def case_status(app: Any, case_id: int) -> str:
    async with app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        return case.status
