"""Which dates are working days at the agency.

China's State Council publishes the statutory holidays and the make-up working days
(调休, usually a Saturday or Sunday) each November for the next year; the
``chinese_calendar`` package ships them. An admin can override any date (a local
holiday, a published change the package does not know yet). For a year the package
does not cover we fall back to Monday–Friday and log once per year, so that bookings
keep working in January before the package is upgraded — the admin overrides fix the
few dates that differ.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import chinese_calendar

log = logging.getLogger(__name__)

_warned_years: set[int] = set()


@dataclass(frozen=True, slots=True)
class DayKind:
    """Why a date is (not) a working day, for the admin calendar and the slot list."""

    working: bool
    reason: str  # "weekday", "weekend", "holiday", "makeup", "override", "fallback"
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
    """Statutory calendar plus per-date admin overrides (``date -> (working, note)``)."""

    overrides: Mapping[date, tuple[bool, str | None]] = field(default_factory=dict)

    def day_kind(self, day: date) -> DayKind:
        if day in self.overrides:
            working, note = self.overrides[day]
            return DayKind(working, "override", note)
        kind = _statutory(day)
        if kind is not None:
            return kind
        if day.year not in _warned_years:
            _warned_years.add(day.year)
            log.warning(
                "chinese_calendar has no holiday data for %d; treating Monday-Friday as "
                "working days (upgrade chinese-calendar or add holiday overrides)",
                day.year,
            )
        return DayKind(day.weekday() < 5, "fallback")

    def is_working_day(self, day: date) -> bool:
        return self.day_kind(day).working

    def is_makeup_day(self, day: date) -> bool:
        """A working day on a weekend: it runs the weekday plan (see slots.plan_ranges)."""
        return day.weekday() >= 5 and self.is_working_day(day)
