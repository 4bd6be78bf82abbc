"""Turning a window's working plan into bookable slots.

The order of rules for one local date, and why:

1. The holiday calendar decides whether the date works at all (statutory holidays,
   make-up days, admin overrides). An ordinary Saturday or Sunday runs the plan's own
   rows for that weekday (周末不打烊), and only those; a statutory holiday runs nothing.
   A make-up Saturday runs its own rows, or the plan of ``makeup_weekday`` (Monday by
   default) when it has none, because the plan usually has no Saturday.
2. Dated exceptions then close ranges (a whole-day closure, or a meeting 14:00–16:00)
   and add extra ranges (extra hours, even on a holiday: an admin said so explicitly).
3. Each remaining range is cut into ``duration`` slots separated by ``buffer`` minutes;
   a slot must end inside its range.
4. Minimum notice and the booking horizon filter by the current time.

Times are local wall-clock times in the agency's zone; slots come out in UTC. A wall
time that does not exist (DST gap; not in China, but zones are configurable) is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from server.booking.calendar import HolidayCalendar

_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True, order=True)
class TimeRange:
    """Half-open local range ``[start, end)`` within one day, in minutes after midnight."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= _MINUTES_PER_DAY:
            raise ValueError(f"time range {self.start}-{self.end} is not within one day")

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        """``"09:00-12:00"``."""
        left, _, right = text.partition("-")
        return cls(_minutes(left), _minutes(right))

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _minutes(text: str) -> int:
    hours, _, minutes = text.strip().partition(":")
    return int(hours) * 60 + int(minutes or 0)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class WeeklyPlan:
    """Ranges per weekday (0 = Monday); several ranges a day are normal.

    ``labels`` names some ranges (午间错时, 延时服务): citizens see the label beside the
    slots that start inside it.
    """

    ranges: Mapping[int, Sequence[TimeRange]] = field(default_factory=dict)
    makeup_weekday: int = 0
    labels: Mapping[tuple[int, TimeRange], str] = field(default_factory=dict)

    def for_weekday(self, weekday: int) -> list[TimeRange]:
        return list(self.ranges.get(weekday, ()))

    def label_at(self, weekday: int, minute: int) -> str:
        """The label of the weekday's range that ``minute`` starts in ("" if none)."""
        for weekday_used in (weekday, self.makeup_weekday):
            for r in self.ranges.get(weekday_used, ()):
                if r.start <= minute < r.end and self.labels.get((weekday_used, r)):
                    return self.labels[(weekday_used, r)]
            if self.ranges.get(weekday):
                break
        return ""


PERIODS = (("morning", 0), ("midday", 12 * 60), ("afternoon", 14 * 60), ("evening", 18 * 60))
"""上午 / 午间 / 下午 / 晚间, by the local minute a slot starts at."""


def period_of(minute: int) -> str:
    name = PERIODS[0][0]
    for key, start in PERIODS:
        if minute >= start:
            name = key
    return name


@dataclass(frozen=True, slots=True)
class PlanException:
    """A dated change: ``closed`` removes ``range`` (or the whole day if None); else adds it."""

    day: date
    closed: bool
    range: TimeRange | None = None


@dataclass(frozen=True, slots=True)
class SlotRules:
    """The matter's timing rules."""

    duration: timedelta
    buffer: timedelta = timedelta(0)
    notice: timedelta = timedelta(0)
    horizon_days: int = 30

    def __post_init__(self) -> None:
        if self.duration <= timedelta(0):
            raise ValueError("slot duration must be positive")
        if self.buffer < timedelta(0) or self.notice < timedelta(0) or self.horizon_days < 0:
            raise ValueError("buffer, notice and horizon must not be negative")


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    start: datetime  # aware, UTC
    end: datetime


def _subtract(ranges: list[TimeRange], cut: TimeRange) -> list[TimeRange]:
    out: list[TimeRange] = []
    for r in ranges:
        if cut.end <= r.start or cut.start >= r.end:
            out.append(r)
            continue
        if r.start < cut.start:
            out.append(TimeRange(r.start, cut.start))
        if cut.end < r.end:
            out.append(TimeRange(cut.end, r.end))
    return out


def _merge(ranges: Iterable[TimeRange]) -> list[TimeRange]:
    merged: list[TimeRange] = []
    for r in sorted(ranges):
        if merged and r.start <= merged[-1].end:
            last = merged.pop()
            merged.append(TimeRange(last.start, max(last.end, r.end)))
        else:
            merged.append(r)
    return merged


def day_ranges(
    day: date,
    plan: WeeklyPlan,
    exceptions: Iterable[PlanException],
    calendar: HolidayCalendar,
) -> list[TimeRange]:
    """The open local ranges of ``day`` after holidays and exceptions (steps 1 and 2)."""
    kind = calendar.day_kind(day)
    ranges: list[TimeRange] = []
    weekday = day.weekday()
    if kind.working:
        ranges = plan.for_weekday(weekday)
        if weekday >= 5 and not ranges:
            ranges = plan.for_weekday(plan.makeup_weekday)
    elif kind.reason == "weekend":  # an ordinary weekend: only rows planned for it
        ranges = plan.for_weekday(weekday)
    ranges = _merge(ranges)
    todays = [e for e in exceptions if e.day == day]
    for exc in todays:
        if exc.closed:
            ranges = [] if exc.range is None else _subtract(ranges, exc.range)
    for exc in todays:
        if not exc.closed and exc.range is not None:
            ranges = _merge([*ranges, exc.range])
    return ranges


def _local(day: date, minutes: int, zone: ZoneInfo) -> datetime | None:
    naive = datetime.combine(day, time()) + timedelta(minutes=minutes)
    aware = naive.replace(tzinfo=zone)
    # Round-trip through UTC: a wall time inside a DST gap does not come back unchanged.
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return aware.astimezone(UTC)


def bookable_window(now: datetime, rules: SlotRules, zone: ZoneInfo) -> tuple[datetime, date]:
    """Earliest allowed start (UTC) and last allowed local date."""
    earliest = now + rules.notice
    last_day = now.astimezone(zone).date() + timedelta(days=rules.horizon_days)
    return earliest, last_day


def generate_slots(
    day: date,
    plan: WeeklyPlan,
    exceptions: Iterable[PlanException],
    calendar: HolidayCalendar,
    rules: SlotRules,
    zone: ZoneInfo,
    now: datetime,
) -> list[Slot]:
    """All bookable slots of one local date, sorted by start."""
    earliest, last_day = bookable_window(now, rules, zone)
    if day > last_day or day < now.astimezone(zone).date():
        return []
    step = int((rules.duration + rules.buffer).total_seconds() // 60)
    length = int(rules.duration.total_seconds() // 60)
    slots: list[Slot] = []
    for r in day_ranges(day, plan, exceptions, calendar):
        minute = r.start
        while minute + length <= r.end:
            start = _local(day, minute, zone)
            if start is not None and start >= earliest:
                slots.append(Slot(start, start + rules.duration))
            minute += max(step, 1)
    return sorted(slots)
