"""The supervisor's dashboard: sections of figures and charts, each linked to its list.

Adding a section (ratings, deadline cards…) is one function and one line::

    async def rating_section(session: AsyncSession, period: Period, _: Translate) -> Section:
        figures = await rating_figures(session, start=period.start, end=period.end,
                                       department_id=period.department_id)
        return Section("ratings", _("Ratings"), figures=[Figure("good_rate", …)],
                       charts=[Chart("distribution", _("…"), bar_chart(…), link="/…")])

    SECTIONS.append(rating_section)

A :class:`Section` holds :class:`Figure` s (one number each, with the list behind it) and
:class:`Chart` s (an SVG from :mod:`server.supervision.charts`, the list behind the whole
chart, and per bar/point links inside the SVG). The page renders sections in order; the
summary export (:mod:`server.supervision.exports`) writes every section's figures, so
the XLSX holds the same numbers as the page.

Figures are computed in SQL (counts grouped by local day and status, on SQLite and
PostgreSQL alike); medians are taken in Python over the rows SQL selected, as neither
database has a portable median. Days are the agency's local days: PostgreSQL converts with
the zone itself, SQLite with the zone's UTC offset at the period's start (exact for
``Asia/Shanghai``, which has no daylight saving).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.booking.models import Appointment, Department, Matter, QueueTicket
from server.booking.present import STATUS_LABELS
from server.cases.models import Case
from server.supervision.charts import Series, bar_chart, line_chart
from server.supervision.models import VideoSession

Translate = Callable[..., str]
AnySelect = Select[*tuple[Any, ...]]
LIVE_HORIZON = dt.timedelta(hours=12)
"""A session still "live" after this long was left open by a crashed node: not counted."""
PERIODS = (7, 30, 90)
APPOINTMENT_STATUSES = ("booked", "checked_in", "in_session", "completed", "no_show", "cancelled")
ATTENDED = ("checked_in", "in_session", "completed")


@dataclass(frozen=True, slots=True)
class Period:
    """What the dashboard shows: local days ``start``…``end`` (inclusive), one department."""

    start: dt.date
    end: dt.date
    zone: ZoneInfo
    today: dt.date
    now: dt.datetime
    department_id: int | None = None

    @classmethod
    def last_days(
        cls, days: int, *, zone: ZoneInfo, now: dt.datetime, department_id: int | None = None
    ) -> Period:
        today = now.astimezone(zone).date()
        return cls(today - dt.timedelta(days=days - 1), today, zone, today, now, department_id)

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        start = dt.datetime.combine(self.start, dt.time(), self.zone).astimezone(dt.UTC)
        end = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), self.zone)
        return start, end.astimezone(dt.UTC)

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def query(self) -> dict[str, str]:
        """The filter as query parameters (the page's links and the export's)."""
        out = {"from": self.start.isoformat(), "to": self.end.isoformat()}
        if self.department_id:
            out["department"] = str(self.department_id)
        return out


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    label: str
    value: int | float | None
    """None: nothing to measure yet (shown as "—")."""
    unit: str = ""
    link: str | None = None

    @property
    def text(self) -> str:
        if self.value is None:
            return "—"
        number = f"{self.value:.1f}" if isinstance(self.value, float) else str(self.value)
        return number + self.unit


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    svg: str
    link: str
    """The list behind the whole chart."""


@dataclass(slots=True)
class Section:
    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)


SectionBuilder = Callable[[AsyncSession, Period, Translate], Awaitable[Section]]


# -- SQL helpers -------------------------------------------------------------------------


def local_day(session: AsyncSession, column: Any, period: Period) -> ColumnElement[str]:
    """``YYYY-MM-DD`` of a UTC timestamp column in the agency's zone, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(period.zone.key, column), "YYYY-MM-DD")
    start = dt.datetime.combine(period.start, dt.time(), period.zone)
    offset = start.utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    return func.strftime("%Y-%m-%d", column, literal(f"{minutes:+d} minutes"))


def _by_department(query: AnySelect, matter_column: Any, period: Period) -> AnySelect:
    if period.department_id:
        departments = select(Matter.id).where(Matter.department_id == period.department_id)
        query = query.where(matter_column.in_(departments))
    return query


def link(path: str, **params: object) -> str:
    clean = {k: str(v) for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(clean) if clean else "")


def _median_minutes(seconds: Sequence[float]) -> float | None:
    return round(statistics.median(seconds) / 60, 1) if seconds else None


def _rate(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


# -- the figures -------------------------------------------------------------------------


@dataclass(slots=True)
class Operations:
    """The raw figures of the operations section (tests and exports read them)."""

    days: list[dt.date]
    appointments: dict[tuple[str, str], int]
    """(local day, status) -> appointments starting that day."""
    today: dict[str, int]
    walk_ins_served: dict[str, int]
    waits: dict[str, list[float]]
    """Local day -> seconds each walk-in waited from ticket to being taken."""
    lengths: dict[str, list[float]]
    """Local day -> seconds of each ended session that started that day."""
    live_now: int
    queue_waiting: int
    queue_longest_s: float | None
    cases_by_department: list[tuple[int, str, int]]

    def status_total(self, status: str) -> int:
        return sum(n for (_, s), n in self.appointments.items() if s == status)

    def served(self, day: str) -> int:
        return self.appointments.get((day, "completed"), 0) + self.walk_ins_served.get(day, 0)

    def no_show_rate(self, day: str | None = None) -> float | None:
        """No-shows among past appointments that were due (attended or missed)."""
        keys = [k for k in self.appointments if day is None or k[0] == day]
        missed = sum(self.appointments[k] for k in keys if k[1] == "no_show")
        due = missed + sum(self.appointments[k] for k in keys if k[1] in ATTENDED)
        return _rate(missed, due)


async def operations(session: AsyncSession, period: Period) -> Operations:
    start, end = period.bounds()
    day = local_day(session, Appointment.starts_at, period)
    query: AnySelect = select(day, Appointment.status, func.count()).where(
        Appointment.starts_at >= start, Appointment.starts_at < end
    )
    query = _by_department(query, Appointment.matter_id, period).group_by(day, Appointment.status)
    appointments = {(d, s): int(n) for d, s, n in (await session.execute(query)).all()}

    today_start = dt.datetime.combine(period.today, dt.time(), period.zone).astimezone(dt.UTC)
    today_end = today_start + dt.timedelta(days=1)
    query = select(Appointment.status, func.count()).where(
        Appointment.starts_at >= today_start, Appointment.starts_at < today_end
    )
    query = _by_department(query, Appointment.matter_id, period).group_by(Appointment.status)
    today = {s: int(n) for s, n in (await session.execute(query)).all()}

    taken_day = local_day(session, QueueTicket.taken_at, period)
    query = select(taken_day, QueueTicket.created_at, QueueTicket.taken_at, QueueTicket.status)
    query = query.where(
        QueueTicket.taken_at.is_not(None), QueueTicket.taken_at >= start, QueueTicket.taken_at < end
    )
    waits: dict[str, list[float]] = defaultdict(list)
    walk_ins: dict[str, int] = defaultdict(int)
    for d, created, taken, status in (
        await session.execute(_by_department(query, QueueTicket.matter_id, period))
    ).all():
        waits[d].append((taken - created).total_seconds())
        walk_ins[d] += status == "done"

    started_day = local_day(session, VideoSession.started_at, period)
    query = select(started_day, VideoSession.started_at, VideoSession.ended_at).where(
        VideoSession.ended_at.is_not(None),
        VideoSession.started_at >= start,
        VideoSession.started_at < end,
    )
    lengths: dict[str, list[float]] = defaultdict(list)
    for d, began, ended in (
        await session.execute(_by_department(query, VideoSession.matter_id, period))
    ).all():
        lengths[d].append((ended - began).total_seconds())

    query = select(func.count()).where(
        VideoSession.ended_at.is_(None), VideoSession.started_at > period.now - LIVE_HORIZON
    )
    live_now = int(await session.scalar(_by_department(query, VideoSession.matter_id, period)) or 0)

    query = select(func.count(), func.min(QueueTicket.created_at)).where(
        QueueTicket.status == "waiting"
    )
    waiting, oldest = (
        await session.execute(_by_department(query, QueueTicket.matter_id, period))
    ).one()
    longest = (period.now - oldest).total_seconds() if oldest is not None else None

    query = (
        select(Department.id, Department.name, func.count(Case.id))
        .join(Matter, Matter.department_id == Department.id)
        .join(Case, Case.matter_id == Matter.id)
        .where(Case.created_at >= start, Case.created_at < end)
        .group_by(Department.id, Department.name)
        .order_by(Department.id)
    )
    if period.department_id:
        query = query.where(Department.id == period.department_id)
    by_department = [(int(i), str(n), int(c)) for i, n, c in (await session.execute(query)).all()]
    return Operations(
        period.days(),
        appointments,
        today,
        dict(walk_ins),
        dict(waits),
        dict(lengths),
        live_now,
        int(waiting),
        longest,
        by_department,
    )


async def operations_section(session: AsyncSession, period: Period, _: Translate) -> Section:
    ops = await operations(session, period)
    keys = [d.isoformat() for d in ops.days]
    labels = [d.strftime("%m-%d") for d in ops.days]
    dept = period.department_id or None
    day_links = [link("/staff/day", date=k, department=dept) for k in keys]
    served_links = [link("/staff/day", date=k, status="completed", department=dept) for k in keys]
    no_show_links = [link("/staff/day", date=k, status="no_show", department=dept) for k in keys]
    today = period.today.isoformat()
    all_waits = [w for k in keys for w in ops.waits.get(k, [])]
    all_lengths = [s for k in keys for s in ops.lengths.get(k, [])]
    served_total = sum(ops.served(k) for k in keys)
    minutes = _(" min")
    section = Section("operations", _("Appointments, sessions and the queue"))
    section.figures = [
        Figure(
            "today_appointments",
            _("Appointments today"),
            sum(n for s, n in ops.today.items() if s != "cancelled"),
            link=link("/staff/day", date=today, department=dept),
        ),
        Figure("live_now", _("Sessions live now"), ops.live_now, link="/staff/supervision/live"),
        Figure(
            "queue_waiting",
            _("Waiting for video now"),
            ops.queue_waiting,
            link=link("/staff/day", date=today, department=dept),
        ),
        Figure(
            "queue_longest",
            _("Longest wait now"),
            round(ops.queue_longest_s / 60, 1) if ops.queue_longest_s is not None else None,
            unit=minutes,
            link=link("/staff/day", date=today, department=dept),
        ),
        Figure(
            "served",
            _("Served in the period"),
            served_total,
            link=link("/staff/cases", state="all", **period.query()),
        ),
        Figure("median_wait", _("Median wait (video now)"), _median_minutes(all_waits), minutes),
        Figure("median_length", _("Median session length"), _median_minutes(all_lengths), minutes),
        Figure(
            "no_show_rate",
            _("No-show rate"),
            ops.no_show_rate(),
            unit="%",
            link=link("/staff/day", date=today, status="no_show", department=dept),
        ),
    ]
    statuses = list(APPOINTMENT_STATUSES)
    section.charts = [
        Chart(
            "today",
            _("Today's appointments by status"),
            bar_chart(
                [_(STATUS_LABELS[s]) for s in statuses],
                [Series(_("Appointments"), [ops.today.get(s, 0) for s in statuses])],
                links=[link("/staff/day", date=today, status=s, department=dept) for s in statuses],
                title=_("Today's appointments by status"),
            ),
            link("/staff/day", date=today, department=dept),
        ),
        Chart(
            "served",
            _("Served per day"),
            bar_chart(
                labels,
                [
                    Series(_("Booked"), [ops.appointments.get((k, "completed"), 0) for k in keys]),
                    Series(_("Video now"), [ops.walk_ins_served.get(k, 0) for k in keys]),
                ],
                links=served_links,
                stacked=True,
                title=_("Served per day"),
            ),
            link("/staff/cases", state="all", **period.query()),
        ),
        Chart(
            "wait",
            _("Median wait per day (video now)"),
            line_chart(
                labels,
                [Series(_("Median wait"), [_median_minutes(ops.waits.get(k, [])) for k in keys])],
                links=day_links,
                unit=minutes,
                title=_("Median wait per day (video now)"),
            ),
            link("/staff/day", date=today, department=dept),
        ),
        Chart(
            "length",
            _("Median session length per day"),
            line_chart(
                labels,
                [
                    Series(
                        _("Median session length"),
                        [_median_minutes(ops.lengths.get(k, [])) for k in keys],
                    )
                ],
                links=served_links,
                unit=minutes,
                title=_("Median session length per day"),
            ),
            link("/staff/cases", state="all", **period.query()),
        ),
        Chart(
            "no_show",
            _("No-show rate per day"),
            line_chart(
                labels,
                [Series(_("No-show rate"), [ops.no_show_rate(k) for k in keys], "#cf222e")],
                links=no_show_links,
                unit="%",
                title=_("No-show rate per day"),
            ),
            link("/staff/day", date=today, status="no_show", department=dept),
        ),
        Chart(
            "cases",
            _("Cases opened by department"),
            bar_chart(
                [name for _i, name, _n in ops.cases_by_department],
                [Series(_("Cases"), [n for _i, _name, n in ops.cases_by_department])],
                links=[
                    link("/staff/cases", state="all", **{**period.query(), "department": i})
                    for i, _name, _n in ops.cases_by_department
                ],
                title=_("Cases opened by department"),
            ),
            link("/staff/cases", state="all", **period.query()),
        ),
    ]
    return section


def sections() -> list[SectionBuilder]:
    """The dashboard's sections in page order: operations, then service quality (ratings
    and deadline cards, :mod:`server.supervision.quality_sections`, which builds on this
    module and so is imported here, not at the top)."""
    from server.supervision import quality_sections

    return [operations_section, *quality_sections.SECTIONS]


async def dashboard(session: AsyncSession, period: Period, translate: Translate) -> list[Section]:
    return [await build(session, period, translate) for build in sections()]
