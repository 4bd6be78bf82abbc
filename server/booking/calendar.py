"""Which dates are working days at the agency.

China's State Council publishes the statutory holidays and the make-up working days
(调休, usually a Saturday or Sunday) each November for the next year. In order:

1. an admin's override of the date (a local holiday, an explicit opening);
2. the year as loaded from the notice (:mod:`holidays`, table ``holiday_days``);
3. the ``chinese_calendar`` package, for the years it knows (it is the seed: a loaded
   year replaces it);
4. otherwise the year is unknown and **every day is closed** (reason ``unknown_year``):
   selling 元旦 or the Spring Festival as ordinary days is worse than opening a few days
   late. Fixed-date holidays (元旦, 劳动节, 国庆节 1–3 October) are closed in a loaded
   year too, even if the import left them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import chinese_calendar

from server.booking.holidays import fixed_holiday


@dataclass(frozen=True, slots=True)
class DayKind:
    """Why a date is (not) a working day, for the admin calendar and the slot list."""

    working: bool
    reason: str  # "weekday", "weekend", "holiday", "makeup", "override", "unknown_year"
    name: str | None = None  # holiday name, or the override's note


def _statutory(day: date) -> DayKind | None:
    """``None`` when ``chinese_calendar`` has no data for the year."""
    try:
        holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return None
    weekend = day.weekday() >= 5
    if holiday:
        if name is None:
            return DayKind(False, "weekend")
        return DayKind(False, "holiday", str(name))
    if weekend:
        # A working Saturday or Sunday is a make-up day; the package names what it makes up for.
        return DayKind(True, "makeup", str(name) if name else None)
    return DayKind(True, "weekday")


@dataclass(frozen=True)
class HolidayCalendar:
    """Admin overrides (``date -> (working, note)``), loaded years (``year -> date ->
    (working, name)``), then the package; see the module docstring for the order."""

    overrides: Mapping[date, tuple[bool, str | None]] = field(default_factory=dict)
    years: Mapping[int, Mapping[date, tuple[bool, str]]] = field(default_factory=dict)

    def day_kind(self, day: date) -> DayKind:
        if day in self.overrides:
            working, note = self.overrides[day]
            return DayKind(working, "override", note)
        loaded = self.years.get(day.year)
        if loaded is not None:
            if day in loaded:
                working, name = loaded[day]
                if working:
                    return DayKind(True, "makeup", name or None)
                return DayKind(False, "holiday", name or None)
            fixed = fixed_holiday(day)
            if fixed is not None:
                return DayKind(False, "holiday", fixed)
            return DayKind(True, "weekday") if day.weekday() < 5 else DayKind(False, "weekend")
        kind = _statutory(day)
        if kind is not None:
            return kind
        return DayKind(False, "unknown_year", fixed_holiday(day))

    def knows(self, year: int) -> bool:
        """Whether ``year``'s holidays are loaded or shipped (else it is closed)."""
        return year in self.years or _statutory(date(year, 6, 1)) is not None

    def is_working_day(self, day: date) -> bool:
        return self.day_kind(day).working

    def is_makeup_day(self, day: date) -> bool:
        """A working day on a weekend: it runs the weekday plan (see slots.plan_ranges)."""
        return day.weekday() >= 5 and self.is_working_day(day)
