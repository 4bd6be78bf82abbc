"""Lists of cases: the ones a member of staff works on or oversees, an applicant's own.

The same rule as :mod:`server.cases.access` in SQL form: staff see the cases they are a
party to, supervisors and admins every case (oversight); applicants their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.cases import procedure
from server.cases.access import OVERSIGHT_ROLES
from server.cases.models import Case, CaseParty

PAGE_SIZE = 50

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


@dataclass(frozen=True, slots=True)
class CaseRow:
    case: Case
    role: str | None
    """The viewer's party role (None: oversight)."""

    @property
    def next_step(self) -> str:
        return NEXT_STEP.get(self.case.status, "")


def _visible(principal: Principal) -> Select[Any]:
    party = (
        select(CaseParty.case_id, CaseParty.role)
        .where(CaseParty.principal_kind == principal.kind, CaseParty.principal_id == principal.id)
        .subquery()
    )
    query = select(Case, party.c.role).outerjoin(party, party.c.case_id == Case.id)
    if principal.kind == "applicant":
        return query.where(or_(Case.applicant_id == principal.id, party.c.role == "applicant"))
    if principal.has_role(*OVERSIGHT_ROLES):
        return query
    return query.where(party.c.role.is_not(None), party.c.role != "applicant")


async def visible_cases(
    session: AsyncSession,
    principal: Principal,
    *,
    state: str | None = None,
    mine: bool = False,
    search: str = "",
    page: int = 1,
) -> list[CaseRow]:
    query = _visible(principal)
    if state == "open":
        query = query.where(Case.status.in_(sorted(procedure.OPEN)))
    elif state in procedure.STATES:
        query = query.where(Case.status == state)
    if mine and principal.is_staff:
        query = query.where(
            Case.id.in_(
                select(CaseParty.case_id).where(
                    CaseParty.principal_kind == "staff", CaseParty.principal_id == principal.id
                )
            )
        )
    text = search.strip()[:40]
    if text:
        like = f"%{text.replace('%', '').replace('_', '')}%"
        query = query.where(or_(Case.number.ilike(like), Case.title.ilike(like)))
    rows = await session.execute(
        query.order_by(Case.id.desc()).limit(PAGE_SIZE).offset((max(page, 1) - 1) * PAGE_SIZE)
    )
    return [CaseRow(row[0], row[1]) for row in rows.all()]
