"""Slot generation: plans, holidays, make-up days, exceptions, notice and horizon."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.booking.calendar import DayKind, HolidayCalendar
from server.booking.holidays import parse
from server.booking.slots import (
    PlanException,
    SlotRules,
    TimeRange,
    WeeklyPlan,
    day_ranges,
    generate_slots,
    period_of,
)
from server.errors import ValidationError

SH = ZoneInfo("Asia/Shanghai")
WEEKDAY = [TimeRange.parse("09:00-12:00"), TimeRange.parse("12:00-14:00")]  # 午间错时
EVENING = TimeRange.parse("18:00-20:00")  # 延时服务
PLAN = WeeklyPlan({d: WEEKDAY for d in range(5)} | {2: [*WEEKDAY, EVENING]})
RULES = SlotRules(duration=timedelta(minutes=30), buffer=timedelta(minutes=10))
CAL = HolidayCalendar()
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def local_times(day: date, rules: SlotRules = RULES, **kw: object) -> list[str]:
    now = kw.pop("now", LONG_AGO)
    plan = kw.pop("plan", PLAN)
    exceptions = kw.pop("exceptions", ())
    calendar = kw.pop("calendar", CAL)
    rules = SlotRules(rules.duration, rules.buffer, rules.notice, 400)
    slots = generate_slots(day, plan, exceptions, calendar, rules, SH, now)  # type: ignore[arg-type]
    return [s.start.astimezone(SH).strftime("%H:%M") for s in slots]


def test_weekday_ranges_with_buffer_and_adjacent_ranges_merged() -> None:
    # Monday 2026-11-23: 09:00-14:00 as one merged range, 40-minute steps.
    times = local_times(date(2026, 11, 23))
    assert times[:3] == ["09:00", "09:40", "10:20"]
    assert times[-1] == "13:00"  # 13:00-13:30 fits, 13:40-14:10 would not
    assert len(times) == 7


def test_evening_extended_hours_on_wednesday() -> None:
    times = local_times(date(2026, 11, 25))
    assert times[-3:] == ["18:00", "18:40", "19:20"]


def test_slots_are_utc() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    slots = generate_slots(date(2026, 11, 23), PLAN, (), CAL, RULES, SH, now)
    assert slots[0].start == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    assert slots[0].end - slots[0].start == timedelta(minutes=30)


def test_weekend_and_statutory_holiday_closed() -> None:
    assert local_times(date(2026, 11, 21)) == []  # Saturday
    assert local_times(date(2026, 10, 1)) == []  # National Day (a Thursday)


def test_makeup_saturday_runs_the_monday_plan() -> None:
    # 2026-10-10 is a Saturday worked in exchange for the National Day holiday.
    assert local_times(date(2026, 10, 10)) == local_times(date(2026, 11, 23))


def test_admin_override_beats_statutory_calendar() -> None:
    cal = HolidayCalendar(
        {date(2026, 11, 23): (False, "本地停电"), date(2026, 10, 1): (True, None)}
    )
    assert local_times(date(2026, 11, 23), calendar=cal) == []
    assert local_times(date(2026, 10, 1), calendar=cal)[0] == "09:00"


def test_closure_exceptions_and_extra_hours() -> None:
    day = date(2026, 11, 23)
    assert local_times(day, exceptions=[PlanException(day, closed=True)]) == []
    partial = PlanException(day, closed=True, range=TimeRange.parse("10:00-13:00"))
    assert day_ranges(day, PLAN, [partial], CAL) == [
        TimeRange.parse("09:00-10:00"),
        TimeRange.parse("13:00-14:00"),
    ]
    extra = PlanException(date(2026, 11, 22), closed=False, range=TimeRange.parse("10:00-11:00"))
    assert local_times(date(2026, 11, 22), exceptions=[extra]) == ["10:00"]


def test_notice_and_horizon() -> None:
    now = datetime(2026, 11, 23, 1, 5, tzinfo=UTC)  # 09:05 local, Monday
    rules = SlotRules(timedelta(minutes=30), timedelta(minutes=10), timedelta(hours=1), 3)
    slots = generate_slots(date(2026, 11, 23), PLAN, (), CAL, rules, SH, now)
    assert slots[0].start.astimezone(SH).strftime("%H:%M") == "10:20"
    assert generate_slots(date(2026, 11, 26), PLAN, (), CAL, rules, SH, now)
    assert generate_slots(date(2026, 11, 27), PLAN, (), CAL, rules, SH, now) == []
    assert generate_slots(date(2026, 11, 20), PLAN, (), CAL, rules, SH, now) == []


def test_an_unknown_year_is_closed_until_loaded() -> None:
    now = datetime(2031, 2, 1, tzinfo=UTC)
    assert local_times(date(2031, 3, 3), now=now) == []  # a Monday of a year nobody knows
    assert CAL.day_kind(date(2031, 3, 3)).reason == "unknown_year"
    assert CAL.day_kind(date(2031, 1, 1)).name == "元旦"
    text = """
    # 国务院办公厅关于2031年部分节假日安排的通知（节选）
    2031-01-01 休 元旦
    2031-03-01 班 试验   # a Saturday worked
    2031-03-05~2031-03-06 off 试验
    """
    loaded = HolidayCalendar({}, {2031: {e.day: (e.working, e.name) for e in parse(text, 2031)}})
    assert loaded.day_kind(date(2031, 3, 3)).reason == "weekday"
    assert loaded.day_kind(date(2031, 3, 1)) == DayKind(True, "makeup", "试验")  # Saturday
    assert loaded.day_kind(date(2031, 3, 5)).reason == "holiday"
    assert loaded.day_kind(date(2031, 3, 2)).reason == "weekend"
    # 劳动节 and 国庆节 are closed even when the import leaves them out.
    assert loaded.day_kind(date(2031, 5, 1)) == DayKind(False, "holiday", "劳动节")
    assert loaded.day_kind(date(2031, 10, 2)).name == "国庆节"
    assert loaded.knows(2031) and not CAL.knows(2031) and CAL.knows(2025)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("2031-13-01 休 元旦", "holidays.1"),
        ("\n2031-01-01", "holidays.2"),
        ("2031-01-01 maybe", "holidays.1"),
        ("2030-12-31 休 元旦", "holidays.1"),
        ("2031-03-03 班 周一", "holidays.1"),  # a Monday cannot be a 调休 working day
        ("2031-03-01 班 周六", "holidays"),  # no day off at all
        ("2031-02-01~2031-01-01 休 春节", "holidays.1"),
    ],
)
def test_holiday_import_errors_name_the_line(text: str, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse(text, 2031)
    assert list(error.value.fields) == [field]


def test_a_saturday_plan_gives_saturday_slots() -> None:
    weekend = WeeklyPlan({5: [TimeRange.parse("09:00-10:30")]})  # 周末不打烊, Saturdays only
    assert local_times(date(2026, 11, 21), plan=weekend) == ["09:00", "09:40"]  # a Saturday
    assert local_times(date(2026, 11, 22), plan=weekend) == []  # Sunday: not planned
    assert local_times(date(2026, 10, 3), plan=weekend) == []  # 国庆节, a Saturday: holiday
    assert local_times(date(2026, 11, 21)) == []  # the weekday plan has no Saturday rows


def test_slot_periods_and_labels() -> None:
    assert [period_of(h * 60) for h in (8, 12, 13, 14, 17, 18, 21)] == [
        "morning",
        "midday",
        "midday",
        "afternoon",
        "afternoon",
        "evening",
        "evening",
    ]
    noon = TimeRange.parse("12:00-14:00")
    plan = WeeklyPlan(
        {2: [noon, EVENING]}, labels={(2, noon): "午间错时", (2, EVENING): "延时服务"}
    )
    assert plan.label_at(2, 12 * 60 + 40) == "午间错时"
    assert plan.label_at(2, 19 * 60) == "延时服务"
    assert plan.label_at(2, 15 * 60) == "" and plan.label_at(3, 12 * 60) == ""


def test_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="within one day"):
        TimeRange(600, 600)
    with pytest.raises(ValueError, match="positive"):
        SlotRules(duration=timedelta(0))


ranges_st = st.lists(
    st.tuples(st.integers(0, 1439), st.integers(1, 600)).map(
        lambda t: TimeRange(t[0], min(1440, t[0] + t[1]))
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(
    ranges=ranges_st,
    closures=ranges_st,
    day=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
    duration=st.integers(5, 120),
    buffer=st.integers(0, 30),
    notice_h=st.integers(0, 48),
    now_offset_h=st.integers(-72, 72),
)
def test_slot_properties(
    ranges: list[TimeRange],
    closures: list[TimeRange],
    day: date,
    duration: int,
    buffer: int,
    notice_h: int,
    now_offset_h: int,
) -> None:
    plan = WeeklyPlan({d: ranges for d in range(7)})
    exceptions = [PlanException(day, True, c) for c in closures]
    rules = SlotRules(
        timedelta(minutes=duration), timedelta(minutes=buffer), timedelta(hours=notice_h), 2
    )
    midnight = datetime(day.year, day.month, day.day, tzinfo=SH)
    now = (midnight + timedelta(hours=now_offset_h)).astimezone(UTC)
    slots = generate_slots(day, plan, exceptions, CAL, rules, SH, now)
    open_ranges = day_ranges(day, plan, exceptions, CAL)
    if not CAL.is_working_day(day) and CAL.day_kind(day).reason != "weekend":
        assert open_ranges == []  # a holiday (or an unknown year) runs no plan
    for a, b in itertools.pairwise(slots):
        assert a.end <= b.start, "slots overlap"
    for s in slots:
        assert s.start >= now + rules.notice
        assert s.start.astimezone(SH).date() == day
        assert s.start.astimezone(SH).date() <= now.astimezone(SH).date() + timedelta(days=2)
        start = s.start.astimezone(SH)
        minute = start.hour * 60 + start.minute
        assert any(r.start <= minute and minute + duration <= r.end for r in open_ranges)
        for c in closures:
            assert minute + duration <= c.start or minute >= c.end, "slot inside a closure"
