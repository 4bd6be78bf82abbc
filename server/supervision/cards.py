"""Deadline cards as the pages and the dashboard read them.

* :func:`badges` — the running clocks of some cases (case list, case page);
* :func:`card_figures` — cards by colour, department and officer in a period, and the
  on-time rate of the cases concluded in it (the dashboard helper's charts);
* :func:`card_rows` — one row per card for CSV/XLSX exports (:data:`CARD_COLUMNS` are
  the English msgids of the headers, in order).

A period is ``start <= issued_at < end`` (aware datetimes); "on time" means a case
concluded (``closed``) in the period that never got a yellow or red card.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import User
from server.booking.models import Department, Matter
from server.cases import procedure
from server.cases.models import Case
from server.supervision import deadlines as d
from server.supervision.card_models import DeadlineCard, DeadlineClock, DeadlineSuspension

CARD_COLUMNS = (
    ("case", "Case"),
    ("title", "Title"),
    ("matter", "Matter"),
    ("department", "Department"),
    ("officer", "Officer"),
    ("step", "Step"),
    ("colour", "Card"),
    ("used", "Working days used"),
    ("promised", "Working days promised"),
    ("issued_at", "Issued at"),
)
BAD = (d.YELLOW, d.RED)


@dataclass(frozen=True, slots=True)
class Badge:
    step: str
    colour: str
    used: int
    promised: int
    due: dt.date | None
    suspended: bool

    @property
    def left(self) -> int:
        return self.promised - self.used

    @property
    def step_label(self) -> str:
        return d.STEP_LABELS[self.step]

    @property
    def colour_label(self) -> str:
        return d.COLOUR_LABELS[self.colour]


async def badges(session: AsyncSession, case_ids: list[int]) -> dict[int, list[Badge]]:
    """Each case's running clocks, its current step first, then the whole case."""
    out: dict[int, list[Badge]] = defaultdict(list)
    if not case_ids:
        return out
    rows = await session.scalars(
        select(DeadlineClock)
        .where(DeadlineClock.case_id.in_(case_ids), DeadlineClock.open.is_(True))
        .order_by(DeadlineClock.case_id, (DeadlineClock.step == d.TOTAL), DeadlineClock.run)
    )
    for c in rows:
        out[c.case_id].append(Badge(c.step, c.colour, c.used, c.promised, c.due, c.suspended))
    return out


@dataclass(frozen=True, slots=True)
class CaseDeadlines:
    """The case page's card section."""

    clocks: list[Badge]
    cards: list[DeadlineCard]
    suspension: DeadlineSuspension | None
    suspensions: list[DeadlineSuspension]
    step_labels: ClassVar[dict[str, str]] = d.STEP_LABELS
    colour_labels: ClassVar[dict[str, str]] = d.COLOUR_LABELS


async def case_deadlines(session: AsyncSession, case_id: int) -> CaseDeadlines:
    clocks = (await badges(session, [case_id])).get(case_id, [])
    cards = list(
        await session.scalars(
            select(DeadlineCard)
            .where(DeadlineCard.case_id == case_id)
            .order_by(DeadlineCard.issued_at, DeadlineCard.id)
        )
    )
    suspensions = list(
        await session.scalars(
            select(DeadlineSuspension)
            .where(DeadlineSuspension.case_id == case_id)
            .order_by(DeadlineSuspension.started_at)
        )
    )
    running = next((s for s in suspensions if s.ended_at is None), None)
    return CaseDeadlines(clocks, cards, running, suspensions)


def _period(query: Any, start: dt.datetime, end: dt.datetime, department_id: int | None) -> Any:
    query = query.where(DeadlineCard.issued_at >= start, DeadlineCard.issued_at < end)
    if department_id is not None:
        query = query.where(DeadlineCard.department_id == department_id)
    return query


async def card_figures(
    session: AsyncSession,
    *,
    start: dt.datetime,
    end: dt.datetime,
    department_id: int | None = None,
) -> dict[str, Any]:
    """Cards issued in ``[start, end)`` and the on-time rate (module docstring)."""
    query = _period(
        select(
            DeadlineCard.colour,
            DeadlineCard.department_id,
            Department.name,
            DeadlineCard.officer_id,
            User.display_name,
        )
        .outerjoin(Department, Department.id == DeadlineCard.department_id)
        .outerjoin(User, User.id == DeadlineCard.officer_id),
        start,
        end,
        department_id,
    )
    by_colour = {c: 0 for c in d.COLOURS if c != d.GREEN}
    departments: dict[int | None, dict[str, Any]] = {}
    officers: dict[int | None, dict[str, Any]] = {}
    for colour, dept_id, dept_name, officer_id, officer_name in await session.execute(query):
        by_colour[colour] += 1
        for table, key, name, id_field in (
            (departments, dept_id, dept_name, "department_id"),
            (officers, officer_id, officer_name, "officer_id"),
        ):
            entry = table.setdefault(
                key, {id_field: key, "name": name or "", **{c: 0 for c in by_colour}}
            )
            entry[colour] += 1
    closed_query = (
        select(Case.id)
        .outerjoin(Matter, Matter.id == Case.matter_id)
        .where(Case.status == procedure.CLOSED, Case.closed_at >= start, Case.closed_at < end)
    )
    if department_id is not None:
        closed_query = closed_query.where(Matter.department_id == department_id)
    closed = set(await session.scalars(closed_query))
    carded = (
        set(
            await session.scalars(
                select(DeadlineCard.case_id).where(
                    DeadlineCard.case_id.in_(closed), DeadlineCard.colour.in_(BAD)
                )
            )
        )
        if closed
        else set()
    )
    on_time = len(closed - carded)

    def ranked(table: dict[int | None, dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(table.values(), key=lambda e: (-e[d.RED], -e[d.YELLOW], e["name"]))

    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "department_id": department_id,
        "by_colour": by_colour,
        "by_department": ranked(departments),
        "by_officer": ranked(officers),
        "closed": len(closed),
        "on_time": on_time,
        "on_time_rate": round(on_time / len(closed), 4) if closed else None,
    }


async def card_rows(
    session: AsyncSession,
    *,
    start: dt.datetime,
    end: dt.datetime,
    department_id: int | None = None,
) -> list[dict[str, Any]]:
    """One dict per card issued in ``[start, end)``, keys as in :data:`CARD_COLUMNS`
    (``step`` and ``colour`` are English msgids; ``issued_at`` an aware datetime)."""
    query = _period(
        select(
            DeadlineCard, Case.number, Case.title, Matter.name, Department.name, User.display_name
        )
        .join(Case, Case.id == DeadlineCard.case_id)
        .outerjoin(Matter, Matter.id == Case.matter_id)
        .outerjoin(Department, Department.id == DeadlineCard.department_id)
        .outerjoin(User, User.id == DeadlineCard.officer_id)
        .order_by(DeadlineCard.issued_at, DeadlineCard.id),
        start,
        end,
        department_id,
    )
    return [
        {
            "case": number,
            "title": title,
            "matter": matter or "",
            "department": department or "",
            "officer": officer or "",
            "step": d.STEP_LABELS[card.step],
            "colour": d.COLOUR_LABELS[card.colour],
            "used": card.used,
            "promised": card.promised,
            "issued_at": card.issued_at,
        }
        for card, number, title, matter, department, officer in (await session.execute(query))
    ]
