""" "Video now" service hours of a matter: when a walk-in may take a ticket.

A ticket taken at 04:15 waits for nobody, so a matter may set its hours
(``matters.video_now_hours``, ranges like ``09:00-12:00,13:30-17:00``) on the agency's
working days (the same calendar as bookings, so 元旦 is closed). Outside them the
answer is "closed, opens at …" with the next opening, and the page offers to book a
slot instead. Empty hours keep the old behaviour: open whenever video now is allowed.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from server.booking.calendar import HolidayCalendar
from server.booking.slots import TimeRange

LOOKAHEAD_DAYS = 31


def parse_hours(text: str) -> list[TimeRange]:
    """``"09:00-12:00,13:30-17:00"``; raises ValueError naming nothing (callers map it)."""
    return sorted(TimeRange.parse(part) for part in text.split(",") if part.strip())


def _at(day: date, minute: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone) + timedelta(minutes=minute)


def next_opening(
    text: str, calendar: HolidayCalendar, now: datetime, zone: ZoneInfo
) -> datetime | None:
    """``None`` when open now (or no hours are set); else when it opens next (local).

    Far in the future (nothing within a month) comes back as the month's end, so the
    caller always has something to say; an unknown year is closed like for bookings.
    """
    ranges = parse_hours(text) if text.strip() else []
    if not ranges:
        return None
    local = now.astimezone(zone)
    minute = local.hour * 60 + local.minute
    for offset in range(LOOKAHEAD_DAYS):
        day = local.date() + timedelta(days=offset)
        if not calendar.is_working_day(day):
            continue
        for r in ranges:
            if offset == 0 and r.start <= minute < r.end:
                return None
            if offset > 0 or r.start > minute:
                return _at(day, r.start, zone)
    return _at(local.date() + timedelta(days=LOOKAHEAD_DAYS), ranges[0].start, zone)
