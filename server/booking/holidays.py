"""The statutory holidays as data: one year at a time, from the State Council's notice.

Each November the State Council's General Office publishes the next year's holidays
(国务院办公厅关于××年部分节假日安排的通知): the days off and the weekend days that are
worked instead (调休). ``chinese_calendar`` ships them only once a new release is
published and installed, which came too late before: 2027 was unknown in December 2026,
so its 元旦 was sold as an ordinary Friday. Now an admin loads the notice (the form on
``/admin/matters`` or ``yunkan holidays import``) into ``holiday_days``, and a year that
neither the table nor the package knows is **closed for booking**.

The text format, one entry per line (``#`` starts a comment, blank lines are fine)::

    2027-01-01 休 元旦
    2027-02-06~2027-02-12 休 春节
    2027-02-14 班 春节

a date or an inclusive range ``first~last``, then ``休`` (also ``off``) for days off or
``班`` (also ``work``) for a worked weekend day, then the holiday's name (optional).
Loading a year replaces what was loaded for it before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import chinese_calendar
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.booking import models as m
from server.booking import plancache
from server.errors import ValidationError

FIXED: Mapping[tuple[int, int], str] = {
    (1, 1): "元旦",
    (5, 1): "劳动节",
    (10, 1): "国庆节",
    (10, 2): "国庆节",
    (10, 3): "国庆节",
}
"""Holidays on fixed dates: closed in every year, loaded or not."""
OFF = {"休", "off", "holiday"}
WORK = {"班", "work", "working"}
LINE_ERROR = "Write one entry per line, like: 2027-02-06~2027-02-12 休 春节"
YEAR_ERROR = "Every date must be in the year being imported"
WORK_ERROR = "A 班 (worked) day must be a Saturday or a Sunday"
EMPTY_ERROR = "Give at least one holiday of the year"


@dataclass(frozen=True, slots=True)
class Entry:
    day: date
    working: bool
    name: str


def fixed_holiday(day: date) -> str | None:
    return FIXED.get((day.month, day.day))


def package_knows(year: int) -> bool:
    """Whether the installed ``chinese_calendar`` has the State Council's data for ``year``."""
    try:
        chinese_calendar.is_holiday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def parse(text: str, year: int) -> list[Entry]:
    """Entries of ``year`` from the text format above; a field error names the line."""
    out: dict[date, Entry] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        field = f"holidays.{number}"
        parts = line.split(maxsplit=2)
        try:
            first_text, _, last_text = parts[0].partition("~")
            first = date.fromisoformat(first_text.strip())
            last = date.fromisoformat(last_text.strip()) if last_text else first
            kind = parts[1].lower()
        except (ValueError, IndexError):
            raise ValidationError(fields={field: LINE_ERROR}) from None
        if kind not in OFF | WORK or last < first or (last - first).days > 31:
            raise ValidationError(fields={field: LINE_ERROR})
        name = parts[2].strip()[:60] if len(parts) > 2 else ""
        day = first
        while day <= last:
            if day.year != year:
                raise ValidationError(fields={field: YEAR_ERROR})
            if kind in WORK and day.weekday() < 5:
                raise ValidationError(fields={field: WORK_ERROR})
            out[day] = Entry(day, kind in WORK, name)
            day += timedelta(days=1)
    if not any(not e.working for e in out.values()):
        raise ValidationError(fields={"holidays": EMPTY_ERROR})
    return sorted(out.values(), key=lambda e: e.day)


async def import_year(
    session: AsyncSession, year: int, entries: list[Entry], source: str, now: datetime
) -> int:
    """Replace ``year``'s days with ``entries`` and mark the year loaded; the number of days."""
    await plancache.changed(session)  # Core DELETE: the caches and sold-out memos forget
    await session.execute(delete(m.HolidayDay).where(m.HolidayDay.year == year))
    session.add_all(
        m.HolidayDay(day=e.day, year=year, working=e.working, name=e.name) for e in entries
    )
    row = await session.get(m.HolidayYear, year)
    if row is None:
        session.add(m.HolidayYear(year=year, source=source[:200], imported_at=now))
    else:
        row.source, row.imported_at = source[:200], now
    await session.flush()
    return len(entries)


async def loaded(session: AsyncSession) -> dict[int, dict[date, tuple[bool, str]]]:
    """Every loaded year's days: ``year -> day -> (working, name)`` (a year may be empty)."""
    years: dict[int, dict[date, tuple[bool, str]]] = {
        y: {} for y in await session.scalars(select(m.HolidayYear.year))
    }
    for d in await session.scalars(select(m.HolidayDay)):
        years.setdefault(d.year, {})[d.day] = (d.working, d.name)
    return years


def missing_year(today: date, loaded_years: set[int] | Mapping[int, object]) -> int | None:
    """This year, or from 1 November on the coming year, if its holidays are unknown.

    The notice usually comes out in late October or November, so from 1 November the
    admin pages say so until somebody loads it (and all year if this year is unknown).
    """
    for year in (today.year, today.year + 1):
        if year > today.year and today < date(today.year, 11, 1):
            continue
        if year not in loaded_years and not package_knows(year):
            return year
    return None
