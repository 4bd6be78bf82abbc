"""Lists of cases: the ones a member of staff works on or oversees, an applicant's own.

The same rule as :mod:`server.cases.access` in SQL form: staff see the cases they are a
party to, supervisors and admins every case (oversight); applicants their own.

A case's *deadline* is the one that matters in its state: the applicant's rectification
deadline while rectifying, otherwise the matter's promised working days for the current
step (``Matter.promised_days``) counted from the day the case entered the state, through
the agency's holiday calendar. A case is *overdue* when that day has passed. Deadlines
need the calendar, so the overdue filter runs over the SQL-filtered rows in Python; every
other filter is SQL, and the order (newest case first, then id) is stable across pages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.booking.availability import load_calendar
from server.booking.calendar import HolidayCalendar
from server.booking.models import Appointment, Department, Matter
from server.cases import procedure
from server.cases.access import OVERSIGHT_ROLES
from server.cases.models import Case, CaseParty

PAGE_SIZE = 20

NEXT_STEP = {
    procedure.SUBMITTED: "Accept or reject the application",
    procedure.ACCEPTED: "Book the inspection",
    procedure.SCHEDULED: "Run the video session",
    procedure.INSPECTING: "Record the checklist and the decision",
    procedure.IN_SESSION: "Consultation in progress",
    procedure.UNDER_REVIEW: "Internal review of the decision",
    procedure.DECIDED: "Close the case",
    procedure.RECTIFYING: "Waiting for the rectification",
    procedure.RE_INSPECTION: "Re-inspect",
}
"""English msgids of what comes next in each open state (for staff)."""

APPLICANT_NEXT = {
    procedure.SUBMITTED: "Your application is waiting to be accepted.",
    procedure.ACCEPTED: "Your application was accepted: book the video inspection.",
    procedure.SCHEDULED: "Open the join link at the booked time and wait to be let in.",
    procedure.INSPECTING: "The inspector is recording the result of the inspection.",
    procedure.IN_SESSION: "Your consultation is in progress.",
    procedure.UNDER_REVIEW: "A second official is reviewing the decision; you will hear from us.",
    procedure.DECIDED: "The decision has been made; the case will be closed shortly.",
    procedure.RECTIFYING: "Rectify as required by the deadline, then book the re-inspection.",
    procedure.RE_INSPECTION: "Join the re-inspection at the booked time.",
    procedure.CLOSED: "The case is closed.",
    procedure.REJECTED: "The application was not accepted.",
    procedure.WITHDRAWN: "You withdrew the application.",
    procedure.CANCELLED: "The agency cancelled the case.",
}
"""What the applicant reads next to the state, in plain words."""

STEP_OF_STATE = {
    procedure.SUBMITTED: "accept",
    procedure.ACCEPTED: "inspect",
    procedure.SCHEDULED: "inspect",
    procedure.INSPECTING: "inspect",
    procedure.IN_SESSION: "inspect",
    procedure.UNDER_REVIEW: "review",
    procedure.DECIDED: "close",
    procedure.RE_INSPECTION: "rectify_review",
}
"""Which of the matter's promised working days runs in each open state."""


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """What the case list shows; every field survives pagination (:meth:`link`)."""

    state: str = "open"
    """A procedure state, ``open`` or ``all``."""
    matter_id: int | None = None
    department_id: int | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    """Inclusive local dates the case was opened between."""
    mine: bool = False
    overdue: bool = False
    search: str = ""
    page: int = 1

    def link(self, page: int) -> str:
        """The query string of this filter on ``page``."""
        query: dict[str, Any] = {"state": self.state, "mine": "1" if self.mine else ""}
        if self.matter_id:
            query["matter"] = self.matter_id
        if self.department_id:
            query["department"] = self.department_id
        if self.date_from:
            query["from"] = self.date_from.isoformat()
        if self.date_to:
            query["to"] = self.date_to.isoformat()
        if self.overdue:
            query["overdue"] = "1"
        if self.search:
            query["q"] = self.search
        query["page"] = page
        return "?" + urlencode(query)


@dataclass(frozen=True, slots=True)
class CaseRow:
    case: Case
    role: str | None
    """The viewer's party role (None: oversight)."""
    matter: str = ""
    department: str = ""
    due: dt.date | None = None
    overdue_days: int = 0
    """Working days past ``due`` (0: not overdue)."""

    @property
    def next_step(self) -> str:
        return NEXT_STEP.get(self.case.status, "")


@dataclass(slots=True)
class CasePage:
    rows: list[CaseRow] = field(default_factory=list)
    total: int = 0
    page: int = 1
    pages: int = 1


def _visible(principal: Principal) -> Select[Any]:
    party = (
        select(CaseParty.case_id, CaseParty.role)
        .where(CaseParty.principal_kind == principal.kind, CaseParty.principal_id == principal.id)
        .subquery()
    )
    query = (
        select(
            Case,
            party.c.role,
            Matter.name.label("matter_name"),
            Department.name.label("department_name"),
            Matter.promised_days,
        )
        .outerjoin(party, party.c.case_id == Case.id)
        .outerjoin(Matter, Matter.id == Case.matter_id)
        .outerjoin(Department, Department.id == Matter.department_id)
    )
    if principal.kind == "applicant":
        return query.where(or_(Case.applicant_id == principal.id, party.c.role == "applicant"))
    if principal.has_role(*OVERSIGHT_ROLES):
        return query
    return query.where(party.c.role.is_not(None), party.c.role != "applicant")


def due_date(
    case: Case, promised: dict[str, int] | None, calendar: HolidayCalendar, zone: ZoneInfo
) -> dt.date | None:
    """The deadline that runs in the case's state (module docstring), or None."""
    if not procedure.is_open(case):
        return None
    if case.status == procedure.RECTIFYING:
        return case.deadline
    days = (promised or {}).get(STEP_OF_STATE.get(case.status, ""))
    if not days:
        return None
    since = (case.state_changed_at or case.created_at).astimezone(zone).date()
    return procedure.add_working_days(since, int(days), calendar.is_working_day)


def working_days_late(due: dt.date | None, today: dt.date, calendar: HolidayCalendar) -> int:
    """Working days after ``due`` up to ``today`` (0 when not yet due)."""
    if due is None or today <= due:
        return 0
    late, day = 0, due
    while day < today and late < 1000:
        day += dt.timedelta(days=1)
        late += calendar.is_working_day(day)
    return max(late, 1)


def _filtered(principal: Principal, f: CaseFilter, zone: ZoneInfo) -> Select[Any]:
    query = _visible(principal)
    if f.state == "open":
        query = query.where(Case.status.in_(sorted(procedure.OPEN)))
    elif f.state in procedure.STATES:
        query = query.where(Case.status == f.state)
    if f.matter_id:
        query = query.where(Case.matter_id == f.matter_id)
    if f.department_id:
        query = query.where(Matter.department_id == f.department_id)
    if f.date_from:
        start = dt.datetime.combine(f.date_from, dt.time(), zone)
        query = query.where(Case.created_at >= start)
    if f.date_to:
        end = dt.datetime.combine(f.date_to + dt.timedelta(days=1), dt.time(), zone)
        query = query.where(Case.created_at < end)
    if f.mine and principal.is_staff:
        query = query.where(
            Case.id.in_(
                select(CaseParty.case_id).where(
                    CaseParty.principal_kind == "staff", CaseParty.principal_id == principal.id
                )
            )
        )
    text = f.search.strip()[:40].replace("%", "").replace("_", "")
    if text:
        like = f"%{text}%"
        named = exists().where(
            Appointment.case_id == Case.id,
            or_(Appointment.applicant_name.ilike(like), Appointment.contact_name.ilike(like)),
        )
        query = query.where(or_(Case.number.ilike(like), Case.title.ilike(like), named))
    if f.overdue:
        query = query.where(Case.status.in_(sorted(procedure.OPEN)))
    return query.order_by(Case.created_at.desc(), Case.id.desc())


async def case_page(
    session: AsyncSession,
    principal: Principal,
    f: CaseFilter,
    *,
    zone: ZoneInfo,
    today: dt.date,
    page_size: int = PAGE_SIZE,
) -> CasePage:
    """One page of the cases ``principal`` may see that match ``f``."""
    calendar = await load_calendar(session)
    query = _filtered(principal, f, zone)
    page = max(f.page, 1)

    def row(r: Any) -> CaseRow:
        due = due_date(r[0], r[4], calendar, zone)
        late = working_days_late(due, today, calendar)
        return CaseRow(r[0], r[1], r[2] or "", r[3] or "", due, late)

    if f.overdue:
        rows = [x for x in map(row, (await session.execute(query)).all()) if x.overdue_days]
        total = len(rows)
        rows = rows[(page - 1) * page_size : page * page_size]
    else:
        total = int(
            await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
            or 0
        )
        result = await session.execute(query.limit(page_size).offset((page - 1) * page_size))
        rows = [row(r) for r in result.all()]
    return CasePage(rows, total, page, max(1, -(-total // page_size)))


async def visible_cases(
    session: AsyncSession,
    principal: Principal,
    *,
    state: str | None = None,
    mine: bool = False,
    search: str = "",
    page: int = 1,
) -> list[CaseRow]:
    """The simple form of :func:`case_page` (the applicant's "me" page uses it)."""
    f = CaseFilter(state=state or "all", mine=mine, search=search, page=page)
    zone = ZoneInfo("UTC")
    result = await case_page(session, principal, f, zone=zone, today=dt.date.today(), page_size=50)
    return result.rows
