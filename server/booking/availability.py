"""Slots of a matter on a date, with the seats left, read from the database.

A matter's slots are the union over the windows serving it: each window's plan is cut
with the matter's rules, and windows offering the same start add up their seats. The
seats taken come from ``slot_seats`` rows, which exist only once somebody booked.

Seats are people: once officers are qualified for the matter, a start offers no more
seats than officers free then (no appointment of theirs overlaps it, whatever the
matter), so the window's seat number is only an upper bound. A matter nobody is
qualified for yet keeps its window seats and is booked unassigned.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.booking import holidays, plancache
from server.booking import models as m
from server.booking.calendar import HolidayCalendar
from server.booking.slots import (
    PlanException,
    Slot,
    SlotRules,
    TimeRange,
    WeeklyPlan,
    generate_slots,
    period_of,
)
from server.booking.staffing import qualified_staff


@dataclass(frozen=True, slots=True)
class WindowSlot:
    window_id: int
    slot: Slot
    seats: int
    taken: int
    seat_id: int | None = None  # the slot_seats row, once somebody booked this slot
    label: str = ""  # the plan range's label: 午间错时, 延时服务 …

    @property
    def seats_left(self) -> int:
        return max(self.seats - self.taken, 0)


@dataclass(frozen=True, slots=True)
class OpenSlot:
    """One start time of a matter, summed over its windows."""

    start: datetime
    end: datetime
    seats: int
    seats_left: int
    label: str = ""
    period: str = "morning"  # slots.PERIODS: morning, midday, afternoon, evening


def rules_of(matter: m.Matter) -> SlotRules:
    return SlotRules(
        duration=timedelta(minutes=matter.duration_min),
        buffer=timedelta(minutes=matter.buffer_min),
        notice=timedelta(minutes=matter.notice_min),
        horizon_days=matter.horizon_days,
    )


async def load_calendar(session: AsyncSession) -> HolidayCalendar:
    """The holiday calendar (overrides and loaded years), kept per process (plancache)."""

    async def load() -> HolidayCalendar:
        rows = (await session.scalars(select(m.HolidayOverride))).all()
        return HolidayCalendar(
            {r.day: (r.working, r.note or None) for r in rows}, await holidays.loaded(session)
        )

    return await plancache.cached(session, "calendar", load)


async def window_plans(
    session: AsyncSession, window_ids: list[int]
) -> dict[int, tuple[WeeklyPlan, list[PlanException]]]:
    """Each window's weekly plan and exceptions, kept per process (plancache)."""
    key = ("plans", tuple(window_ids))
    return await plancache.cached(session, key, lambda: _window_plans(session, window_ids))


async def _window_plans(
    session: AsyncSession, window_ids: list[int]
) -> dict[int, tuple[WeeklyPlan, list[PlanException]]]:
    plans: dict[int, dict[int, list[TimeRange]]] = {w: defaultdict(list) for w in window_ids}
    labels: dict[int, dict[tuple[int, TimeRange], str]] = {w: {} for w in window_ids}
    for p in await session.scalars(
        select(m.WorkingPlan).where(m.WorkingPlan.window_id.in_(window_ids))
    ):
        planned = TimeRange(p.start_min, p.end_min)
        plans[p.window_id][p.weekday].append(planned)
        if p.label:
            labels[p.window_id][(p.weekday, planned)] = p.label
    exceptions: dict[int, list[PlanException]] = {w: [] for w in window_ids}
    rows = await session.scalars(
        select(m.PlanException).where(
            (m.PlanException.window_id.in_(window_ids)) | (m.PlanException.window_id.is_(None))
        )
    )
    for e in rows:
        span = None
        if e.start_min is not None and e.end_min is not None:
            span = TimeRange(e.start_min, e.end_min)
        targets = window_ids if e.window_id is None else [e.window_id]
        for w in targets:
            exceptions[w].append(PlanException(e.day, e.closed, span))
    return {w: (WeeklyPlan(dict(plans[w]), labels=labels[w]), exceptions[w]) for w in window_ids}


async def matter_windows(session: AsyncSession, matter_id: int) -> list[int]:
    """The active windows serving the matter, kept per process (plancache)."""

    async def load() -> tuple[int, ...]:
        rows = await session.scalars(
            select(m.WindowMatter.window_id)
            .join(m.Window, m.Window.id == m.WindowMatter.window_id)
            .where(m.WindowMatter.matter_id == matter_id, m.Window.active.is_(True))
            .order_by(m.WindowMatter.window_id)
        )
        return tuple(rows)

    return list(await plancache.cached(session, ("windows", matter_id), load))


async def window_slots(
    session: AsyncSession,
    matter: m.Matter,
    day: date,
    zone: ZoneInfo,
    now: datetime,
    *,
    only: datetime | None = None,
) -> list[WindowSlot]:
    """Every (window, slot) of ``matter`` on local ``day`` with its seats taken
    (``only``: just the slots starting then, with the seat rows of that start alone)."""
    windows = await matter_windows(session, matter.id)
    if not windows:
        return []
    calendar = await load_calendar(session)
    plans = await window_plans(session, windows)
    rules = rules_of(matter)
    generated: list[tuple[int, Slot, str]] = []
    for w in windows:
        plan, exceptions = plans[w]
        for s in generate_slots(day, plan, exceptions, calendar, rules, zone, now):
            if only is not None and s.start != only:
                continue
            local = s.start.astimezone(zone)
            label = plan.label_at(day.weekday(), local.hour * 60 + local.minute)
            generated.append((w, s, label))
    if not generated:
        return []
    starts = [s.start for _, s, _ in generated]
    rows = await session.execute(
        select(
            m.SlotSeat.window_id,
            m.SlotSeat.starts_at,
            m.SlotSeat.seats,
            m.SlotSeat.taken,
            m.SlotSeat.id,
        ).where(
            m.SlotSeat.matter_id == matter.id,
            m.SlotSeat.starts_at >= min(starts),
            m.SlotSeat.starts_at <= max(starts),
        )
    )
    taken = {(w, at): (seats, used, seat_id) for w, at, seats, used, seat_id in rows.all()}
    out = []
    for w, s, label in generated:
        seats, used, seat_id = taken.get((w, s.start), (matter.seats, 0, None))
        out.append(WindowSlot(w, s, seats, used, seat_id, label))
    return out


async def _officer_busy(
    session: AsyncSession, staff: list[int], first: datetime, last: datetime
) -> list[tuple[int, datetime, datetime]]:
    """(officer, start, end) of every appointment holding the officers' time in the span."""
    rows = await session.execute(
        select(m.Appointment.staff_id, m.Appointment.starts_at, m.Appointment.ends_at).where(
            m.Appointment.staff_id.in_(staff),
            m.Appointment.status != "cancelled",
            m.Appointment.starts_at < last,
            m.Appointment.ends_at > first,
        )
    )
    return [(int(s), a, b) for s, a, b in rows.all() if s is not None]


async def open_slots(
    session: AsyncSession, matter: m.Matter, day: date, zone: ZoneInfo, now: datetime
) -> list[OpenSlot]:
    by_start: dict[datetime, list[WindowSlot]] = defaultdict(list)
    for ws in await window_slots(session, matter, day, zone, now):
        by_start[ws.slot.start].append(ws)
    if not by_start:
        return []
    staff = await qualified_staff(session, matter.id)
    busy: list[tuple[int, datetime, datetime]] = []
    if staff:
        ends = [g[0].slot.end for g in by_start.values()]
        busy = await _officer_busy(session, staff, min(by_start), max(ends))
    out = []
    for start, group in sorted(by_start.items()):
        end = group[0].slot.end
        seats = sum(g.seats for g in group)
        left = sum(g.seats_left for g in group)
        if staff:
            taken = {s for s, a, b in busy if a < end and b > start}
            free = len(staff) - len(taken & set(staff))
            seats, left = min(seats, len(staff)), min(left, free)
        local = start.astimezone(zone)
        out.append(
            OpenSlot(
                start=start,
                end=end,
                seats=seats,
                seats_left=max(left, 0),
                label=next((g.label for g in group if g.label), ""),
                period=period_of(local.hour * 60 + local.minute),
            )
        )
    return out


async def bookable_days(
    session: AsyncSession, matter: m.Matter, zone: ZoneInfo, now: datetime
) -> list[date]:
    """Local dates from today to the horizon on which the matter has at least one slot
    (full or not): what the day picker offers. Pure generation after two reads."""
    windows = await matter_windows(session, matter.id)
    if not windows:
        return []
    calendar = await load_calendar(session)
    plans = await window_plans(session, windows)
    rules = rules_of(matter)
    today = now.astimezone(zone).date()
    out = []
    for i in range(rules.horizon_days + 1):
        day = today + timedelta(days=i)
        if any(
            generate_slots(day, plan, exceptions, calendar, rules, zone, now)
            for plan, exceptions in plans.values()
        ):
            out.append(day)
    return out
