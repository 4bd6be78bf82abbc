"""Deadline clocks and their colours (电子监察), as pure functions of a case's timeline.

A matter promises working days per step (``Matter.promised_days``: ``accept`` 受理,
``inspect`` 核查, ``review`` 内部审核, ``rectify_review`` 整改 review, ``close`` 办结) and in
``total``. Which step runs in which state is :data:`server.cases.listing.STEP_OF_STATE`
(the case list's overdue column uses the same table). A step's *run* starts with the
timeline event that moved the case into it; a later return to the same step (a review
sent back) is a new run with its own clock.

Working days come from the holiday calendar (:class:`HolidayCalendar`: 调休 Saturdays
count, statutory holidays and ordinary weekends do not). A day counts as *used* when it
is a working day after the run's first day, up to today, and is not *paused*: a
supervisor's suspension, or — for the total only — the applicant's rectification period
(the applicant's time is not the agency's).

Colours rise, never fall, within a run::

    green ─▶ warning (预警, used ≥ ratio × promised) ─▶ yellow (黄牌, used > promised)
          ─▶ red (红牌, more than ``red_after`` working days late, or a step's second yellow)
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from server.cases import procedure
from server.cases.listing import STEP_OF_STATE

GREEN, WARNING, YELLOW, RED = "green", "warning", "yellow", "red"
COLOURS = (GREEN, WARNING, YELLOW, RED)
RANK = {c: i for i, c in enumerate(COLOURS)}
TOTAL = "total"
STEPS = ("accept", "inspect", "review", "rectify_review", "close")

STEP_LABELS = {
    "accept": "Acceptance",
    "inspect": "Inspection",
    "review": "Internal review",
    "rectify_review": "Rectification review",
    "close": "Conclusion",
    TOTAL: "Whole case",
}
"""English msgids of the steps (受理, 核查, 内部审核, 整改复核, 办结, 全程)."""
COLOUR_LABELS = {
    GREEN: "On time",
    WARNING: "Warning",
    YELLOW: "Yellow card",
    RED: "Red card",
}
"""English msgids of the colours (正常, 预警, 黄牌, 红牌)."""

SUSPENDED = "deadline.suspended"
RESUMED = "deadline.resumed"
CARD = "deadline.card"

IsWorking = Callable[[dt.date], bool]
Pause = tuple[dt.date, dt.date | None]
"""Days ``first < d <= last`` are paused (``last`` None: still paused)."""


@dataclass(frozen=True, slots=True)
class Rules:
    """How colours are given (``Settings.deadline_warning_percent``, ``deadline_red_after``)."""

    warning_ratio: float = 0.8
    red_after: int = 2

    @classmethod
    def of(cls, settings: Any) -> Rules:
        return cls(settings.deadline_warning_percent / 100, settings.deadline_red_after)


@dataclass(frozen=True, slots=True)
class Run:
    step: str
    run: int
    """The seq of the event that started it (0 for the total)."""
    started_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Clock:
    step: str
    run: int
    started_at: dt.datetime
    promised: int
    used: int
    due: dt.date | None
    colour: str
    suspended: bool

    @property
    def left(self) -> int:
        return self.promised - self.used


def used_days(
    start: dt.date, today: dt.date, is_working: IsWorking, paused: Iterable[Pause]
) -> int:
    """Working days after ``start`` up to ``today`` that no pause covers."""
    pauses = list(paused)
    used, day = 0, start
    while day < today:
        day += dt.timedelta(days=1)
        if not is_working(day):
            continue
        if any(first < day and (last is None or day <= last) for first, last in pauses):
            continue
        used += 1
    return used


def colour(promised: int, used: int, rules: Rules, *, yellow_before: bool = False) -> str:
    """The colour of a clock; ``yellow_before``: the case had a yellow card in another run."""
    late = used - promised
    if late > rules.red_after:
        return RED
    if late > 0:
        return RED if yellow_before else YELLOW
    if used >= math.ceil(rules.warning_ratio * promised - 1e-9):
        return WARNING
    return GREEN


def due_day(today: dt.date, left: int, is_working: IsWorking) -> dt.date | None:
    """The last working day of a clock with ``left`` days left (when it is not paused).

    None when no such day is known within two years: a year whose holidays are not
    loaded has no working days (:mod:`server.booking.calendar`), so the search is bounded.
    """
    if left <= 0:
        return today
    day = today
    for _ in range(731):
        day += dt.timedelta(days=1)
        if is_working(day):
            left -= 1
            if left == 0:
                return day
    return None


@dataclass(frozen=True, slots=True)
class Story:
    """What the evaluator needs from a case's timeline."""

    current: Run | None
    """The running step, if it has a clock (None in states without one)."""
    total: Run
    suspensions: list[tuple[dt.datetime, dt.datetime | None]]
    rectifying: list[tuple[dt.datetime, dt.datetime | None]]


def read_timeline(events: Sequence[Any], status: str, created_at: dt.datetime) -> Story:
    """Runs and pauses from the case's events (``kind``, ``seq``, ``data``, ``created_at``).

    Suspensions are read from their events' ``at`` (the evaluator's clock, which tests
    drive) rather than the row time, so a test clock and a real one agree.
    """
    current: Run | None = None
    step: str | None = None
    state = status
    suspensions: list[tuple[dt.datetime, dt.datetime | None]] = []
    rectifying: list[tuple[dt.datetime, dt.datetime | None]] = []
    for e in events:
        kind = e.kind
        at = _at(e)
        if kind == SUSPENDED:
            suspensions.append((at, None))
            continue
        if kind == RESUMED and suspensions and suspensions[-1][1] is None:
            suspensions[-1] = (suspensions[-1][0], at)
            continue
        if kind == "case.opened":
            new_state = str((e.data or {}).get("state") or procedure.SUBMITTED)
        elif kind.startswith("case.") and kind[5:] in procedure.STATES:
            new_state = kind[5:]
        else:
            continue
        if state == procedure.RECTIFYING and rectifying and rectifying[-1][1] is None:
            rectifying[-1] = (rectifying[-1][0], at)
        if new_state == procedure.RECTIFYING:
            rectifying.append((at, None))
        state = new_state
        new_step = STEP_OF_STATE.get(new_state)
        if new_step != step:
            current = Run(new_step, e.seq, at) if new_step else None
            step = new_step
    return Story(current, Run(TOTAL, 0, created_at), suspensions, rectifying)


def _at(event: Any) -> dt.datetime:
    stamp = (event.data or {}).get("at")
    if isinstance(stamp, str):
        try:
            parsed = dt.datetime.fromisoformat(stamp)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    created: dt.datetime = event.created_at
    return created


def _days(spans: Iterable[tuple[dt.datetime, dt.datetime | None]], zone: ZoneInfo) -> list[Pause]:
    return [(a.astimezone(zone).date(), b.astimezone(zone).date() if b else None) for a, b in spans]


def clock_of(
    run: Run,
    promised: int,
    story: Story,
    *,
    now: dt.datetime,
    zone: ZoneInfo,
    is_working: IsWorking,
    rules: Rules,
    yellow_before: bool = False,
) -> Clock:
    """The clock of ``run`` at ``now``."""
    today = now.astimezone(zone).date()
    paused = _days(story.suspensions, zone)
    if run.step == TOTAL:
        paused += _days(story.rectifying, zone)
    start = run.started_at.astimezone(zone).date()
    used = used_days(start, today, is_working, paused)
    suspended = bool(story.suspensions) and story.suspensions[-1][1] is None
    return Clock(
        step=run.step,
        run=run.run,
        started_at=run.started_at,
        promised=promised,
        used=used,
        due=None if suspended or used > promised else due_day(today, promised - used, is_working),
        colour=colour(promised, used, rules, yellow_before=yellow_before and run.step != TOTAL),
        suspended=suspended,
    )
