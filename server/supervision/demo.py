"""Demo history for the supervisor's dashboard: a month of served, missed and cancelled
appointments, walk-ins with their waits, and ended video sessions with their lengths.

Deterministic (a seeded random), idempotent (skipped once its first row exists) and kept
apart from the bookable future: every appointment lies in the past, so no demo slot is
taken. Each history case is opened like any other (number, ``case.opened``) and gets one
``demo.history`` event saying where it ended, so the chain tells the truth about it.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Applicant, User
from server.booking import models as m
from server.cases import procedure
from server.cases.models import CaseParty
from server.cases.numbers import open_case
from server.cases.timeline import append_event
from server.db.types import utcnow
from server.settings import Settings
from server.supervision.models import VideoSession

DAYS = 30
MARK = "demo-hist-"
NAMES = ("刘洋", "陈静", "杨帆", "赵磊", "黄丽", "周杰", "吴敏", "徐强", "孙悦", "马超")
OUTCOMES = ("completed",) * 14 + ("no_show",) * 2 + ("cancelled",) * 2


def _mobile(rng: random.Random) -> str:
    return "139" + "".join(str(rng.randrange(10)) for _ in range(8))


async def seed(session: AsyncSession, settings: Settings) -> None:
    if await session.scalar(
        select(m.Appointment.id).where(m.Appointment.identity_key.like(f"{MARK}%")).limit(1)
    ):
        return
    zone = settings.zone
    rng = random.Random(17)
    lead = await session.scalar(select(User).where(User.role == "inspector").order_by(User.id))
    plans = (
        await session.execute(
            select(m.Matter, m.WindowMatter.window_id)
            .join(m.WindowMatter, m.WindowMatter.matter_id == m.Matter.id)
            .order_by(m.Matter.id)
        )
    ).all()
    if lead is None or not plans:
        return
    now = utcnow()
    today = now.astimezone(zone).date()
    serial = 0
    for back in range(DAYS, -1, -1):
        day = today - dt.timedelta(days=back)
        if day.weekday() >= 5:
            continue
        for hour in rng.sample(range(9, 17), k=rng.randint(3, 7)):
            matter, window_id = plans[rng.randrange(len(plans))]
            start = dt.datetime.combine(day, dt.time(hour, rng.choice((0, 30))), zone)
            start = start.astimezone(dt.UTC)
            end = start + dt.timedelta(minutes=matter.duration_min)
            if end > now:
                continue
            serial += 1
            await _appointment(session, rng, serial, matter, window_id, lead, start, end, zone)
        if matter_now := [p for p in plans if p[0].allows_video_now]:
            for _ in range(rng.randint(1, 4)):
                matter, _w = matter_now[rng.randrange(len(matter_now))]
                taken = dt.datetime.combine(
                    day, dt.time(rng.randint(9, 16), rng.randint(0, 59)), zone
                )
                taken = taken.astimezone(dt.UTC)
                if taken + dt.timedelta(minutes=30) > now:
                    continue
                serial += 1
                await _walk_in(session, rng, serial, matter, lead, taken, zone)


async def _history_case(
    session: AsyncSession,
    matter: m.Matter,
    name: str,
    lead: User,
    created: dt.datetime,
    status: str,
    zone: dt.tzinfo,
    mobile: str,
) -> int:
    """A past case of ``name`` (an applicant account by ``mobile``, so the demo's ratings can
    ask them), led by ``lead``, left in ``status``."""
    applicant_id = await session.scalar(select(Applicant.id).where(Applicant.mobile == mobile))
    if applicant_id is None:
        account = Applicant(mobile=mobile, name=name)
        session.add(account)
        await session.flush()
        applicant_id = account.id
    case = await open_case(
        session,
        title=f"{matter.name}（{name}）",
        zone=zone,  # type: ignore[arg-type]
        matter_id=matter.id,
        data={"title": matter.name, "matter": matter.code, "demo": True},
        status=procedure.SCHEDULED,
        kind="consultation" if matter.kind == "consultation" else "inspection",
    )
    case.created_at = created
    case.applicant_id = applicant_id
    case.status = status
    case.state_changed_at = created
    if status == procedure.CLOSED:
        case.closed_at = created + dt.timedelta(hours=1)
    session.add(
        CaseParty(case_id=case.id, principal_kind="staff", principal_id=lead.id, role="lead")
    )
    await append_event(
        session, case, kind="demo.history", data={"state": status, "note": "demo history"}
    )
    return case.id


async def _appointment(
    session: AsyncSession,
    rng: random.Random,
    serial: int,
    matter: m.Matter,
    window_id: int,
    lead: User,
    start: dt.datetime,
    end: dt.datetime,
    zone: dt.tzinfo,
) -> None:
    outcome = rng.choice(OUTCOMES)
    name = rng.choice(NAMES)
    created = start - dt.timedelta(days=rng.randint(1, 6))
    case_state = {
        "completed": procedure.CLOSED,
        "no_show": procedure.SCHEDULED,
        "cancelled": procedure.WITHDRAWN,
    }[outcome]
    mobile = _mobile(rng)
    case_id = await _history_case(session, matter, name, lead, created, case_state, zone, mobile)
    seat = m.SlotSeat(
        window_id=window_id,
        matter_id=matter.id,
        starts_at=start,
        ends_at=end,
        seats=matter.seats,
        taken=0 if outcome == "cancelled" else 1,
    )
    session.add(seat)
    await session.flush()
    appt = m.Appointment(
        matter_id=matter.id,
        window_id=window_id,
        slot_id=seat.id,
        starts_at=start,
        ends_at=end,
        staff_id=lead.id,
        applicant_kind="person",
        applicant_name=name,
        mobile=mobile,
        identity_key=f"{MARK}{serial}",
        status=outcome,
        case_id=case_id,
        created_at=created,
        updated_at=start,
    )
    session.add(appt)
    await session.flush()
    if outcome == "completed":
        began = start + dt.timedelta(minutes=rng.randint(0, 6))
        session.add(
            VideoSession(
                room=f"appt-{appt.id}",
                case_id=case_id,
                matter_id=matter.id,
                appointment_id=appt.id,
                started_at=began,
                ended_at=began + dt.timedelta(minutes=rng.randint(6, matter.duration_min + 10)),
                ended_by="end",
            )
        )


async def _walk_in(
    session: AsyncSession,
    rng: random.Random,
    serial: int,
    matter: m.Matter,
    lead: User,
    taken: dt.datetime,
    zone: dt.tzinfo,
) -> None:
    name = rng.choice(NAMES)
    created = taken - dt.timedelta(minutes=rng.randint(1, 25), seconds=rng.randint(0, 59))
    mobile = _mobile(rng)
    case_id = await _history_case(
        session, matter, name, lead, created, procedure.CLOSED, zone, mobile
    )
    ticket = m.QueueTicket(
        token=f"{MARK}{serial}-{secrets.token_hex(4)}",
        matter_id=matter.id,
        name=name,
        mobile=mobile,
        status="done",
        staff_id=lead.id,
        case_id=case_id,
        created_at=created,
        taken_at=taken,
    )
    session.add(ticket)
    await session.flush()
    session.add(
        VideoSession(
            room=f"case-{case_id}",
            case_id=case_id,
            matter_id=matter.id,
            ticket_id=ticket.id,
            started_at=taken + dt.timedelta(minutes=1),
            ended_at=taken + dt.timedelta(minutes=rng.randint(4, 20)),
            ended_by="end",
        )
    )
