"""Colours at their boundaries, working days through holidays and 调休, pauses."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from server.booking.calendar import HolidayCalendar
from server.supervision import deadlines as d

RULES = d.Rules(warning_ratio=0.8, red_after=2)
ZONE = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (0, d.GREEN),
        (3, d.GREEN),
        (4, d.WARNING),  # 80 % of 5
        (5, d.WARNING),  # the last promised day: not late yet
        (6, d.YELLOW),  # one day late
        (7, d.YELLOW),  # two days late: still within N = 2
        (8, d.RED),  # more than two days late
    ],
)
def test_colours_at_the_boundaries(used: int, expected: str) -> None:
    assert d.colour(5, used, RULES) == expected


def test_the_warning_share_is_configurable() -> None:
    assert d.colour(10, 5, d.Rules(warning_ratio=0.5)) == d.WARNING
    assert d.colour(10, 4, d.Rules(warning_ratio=0.5)) == d.GREEN
    assert d.colour(10, 7, RULES) == d.GREEN
    assert d.colour(10, 8, RULES) == d.WARNING
    # a one-day promise warns on its only day
    assert d.colour(1, 0, RULES) == d.GREEN
    assert d.colour(1, 1, RULES) == d.WARNING


def test_a_repeated_yellow_is_red() -> None:
    assert d.colour(5, 6, RULES, yellow_before=True) == d.RED
    assert d.colour(5, 5, RULES, yellow_before=True) == d.WARNING
    assert d.colour(5, 6, d.Rules(red_after=0)) == d.RED
    assert d.colour(5, 6, d.Rules(red_after=1)) == d.YELLOW
    assert d.colour(5, 7, d.Rules(red_after=1)) == d.RED


def _calendar() -> HolidayCalendar:
    # 2027 as loaded from a notice: 春节 off Mon 8 – Wed 10 February, Sunday 7 worked (调休).
    days = {dt.date(2027, 2, 7): (True, "春节")}
    days.update({dt.date(2027, 2, n): (False, "春节") for n in (8, 9, 10)})
    return HolidayCalendar(years={2027: days})


def test_tiaoxiu_days_count_and_holidays_do_not() -> None:
    cal = _calendar()
    friday = dt.date(2027, 2, 5)
    # Sat 6 (weekend) no, Sun 7 (调休) yes, Mon–Wed holiday no, Thu 11 yes, Fri 12 yes
    assert d.used_days(friday, dt.date(2027, 2, 7), cal.is_working_day, []) == 1
    assert d.used_days(friday, dt.date(2027, 2, 10), cal.is_working_day, []) == 1
    assert d.used_days(friday, dt.date(2027, 2, 12), cal.is_working_day, []) == 3
    # and the due day of three working days from that Friday is Friday 12
    assert d.due_day(friday, 3, cal.is_working_day) == dt.date(2027, 2, 12)


def test_paused_days_do_not_count() -> None:
    cal = _calendar()
    monday = dt.date(2027, 3, 1)
    working = cal.is_working_day
    assert d.used_days(monday, dt.date(2027, 3, 5), working, []) == 4
    # suspended on Tuesday, resumed on Thursday: Wednesday and Thursday do not count
    paused = [(dt.date(2027, 3, 2), dt.date(2027, 3, 4))]
    assert d.used_days(monday, dt.date(2027, 3, 5), working, paused) == 2
    # still suspended: nothing after Tuesday counts
    assert d.used_days(monday, dt.date(2027, 3, 12), working, [(dt.date(2027, 3, 2), None)]) == 1


def _event(seq: int, kind: str, written: dt.datetime, **data: object) -> SimpleNamespace:
    return SimpleNamespace(seq=seq, kind=kind, data=data, created_at=written)


def test_runs_and_pauses_from_the_timeline() -> None:
    t0 = dt.datetime(2027, 3, 1, 2, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)
    events = [
        _event(1, "case.opened", t0, state="submitted"),
        _event(2, "case.accepted", t0 + hour),
        _event(3, "case.scheduled", t0 + 2 * hour),  # same step (inspect): same run
        _event(4, "deadline.suspended", t0 + 3 * hour, at=(t0 + 48 * hour).isoformat()),
        _event(5, "deadline.resumed", t0 + 4 * hour, at=(t0 + 96 * hour).isoformat()),
        _event(6, "case.inspecting", t0 + 5 * hour),
    ]
    story = d.read_timeline(events, "inspecting", t0)
    assert story.current == d.Run("inspect", 2, t0 + hour)
    assert story.total == d.Run(d.TOTAL, 0, t0)
    # a suspension is read from the evaluator's clock in its data, not the row time
    assert story.suspensions == [(t0 + 48 * hour, t0 + 96 * hour)]
    events += [
        _event(7, "case.under_review", t0 + 6 * hour),
        _event(8, "case.inspecting", t0 + 7 * hour),  # returned: a new run of inspect
        _event(9, "case.decided", t0 + 8 * hour),
        _event(10, "case.rectifying", t0 + 9 * hour),
    ]
    story = d.read_timeline(events, "rectifying", t0)
    assert story.current is None  # the applicant's time: no step clock
    assert story.rectifying == [(t0 + 9 * hour, None)]
    events.append(_event(11, "case.re_inspection", t0 + 30 * hour))
    story = d.read_timeline(events, "re_inspection", t0)
    assert story.current == d.Run("rectify_review", 11, t0 + 30 * hour)
    assert story.rectifying == [(t0 + 9 * hour, t0 + 30 * hour)]


def test_a_clock_of_the_whole_case_skips_rectification() -> None:
    cal = _calendar()
    t0 = dt.datetime.combine(dt.date(2027, 3, 1), dt.time(10), ZONE)
    day = dt.timedelta(days=1)
    story = d.Story(
        current=None,
        total=d.Run(d.TOTAL, 0, t0),
        suspensions=[],
        rectifying=[(t0 + day, t0 + 3 * day)],
    )
    clock = d.clock_of(
        story.total,
        5,
        story,
        now=t0 + 4 * day,
        zone=ZONE,
        is_working=cal.is_working_day,
        rules=RULES,
    )
    assert (clock.used, clock.colour, clock.suspended) == (2, d.GREEN, False)


def test_every_message_of_deadline_supervision_reads_in_chinese() -> None:
    import re

    from server.i18n import Catalogs
    from server.supervision import deadline_suspensions as s
    from server.supervision.card_evaluator import SMS_TEXT
    from server.supervision.cards import CARD_COLUMNS

    zh = Catalogs().get("zh_CN")
    every = [
        *d.STEP_LABELS.values(),
        *d.COLOUR_LABELS.values(),
        SMS_TEXT,
        *(label for _, label in CARD_COLUMNS),
        s.AlreadySuspendedError.message,
        s.NotSuspendedError.message,
    ]
    for msgid in every:
        text = zh.gettext(msgid)
        assert text != msgid, msgid
        assert sorted(re.findall(r"%\((\w+)\)s", text)) == sorted(
            re.findall(r"%\((\w+)\)s", msgid)
        ), msgid
    # an SMS is in one language: no Latin words beyond the case number
    body = zh.gettext(SMS_TEXT) % {
        "number": "YK-1",
        "step": "核查",
        "card": "黄牌",
        "used": 4,
        "promised": 3,
    }
    assert not re.search(r"[A-Za-z]{2,}", body.replace("YK-1", ""))
