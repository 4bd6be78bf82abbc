"""Who may read or act on which case: the single place that decides."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.cases.models import Case, CaseParty
from server.errors import NotFoundError

OVERSIGHT_ROLES = ("supervisor", "admin")


async def is_party(session: AsyncSession, principal: Principal, case: Case) -> bool:
    if principal.kind == "applicant" and case.applicant_id == principal.id:
        return True
    row = await session.scalar(
        select(CaseParty.id).where(
            CaseParty.case_id == case.id,
            CaseParty.principal_kind == principal.kind,
            CaseParty.principal_id == principal.id,
        )
    )
    return row is not None


async def can_read_case(session: AsyncSession, principal: Principal, case: Case) -> bool:
    if principal.is_staff and principal.has_role(*OVERSIGHT_ROLES):
        return True
    return await is_party(session, principal, case)


async def readable_case(session: AsyncSession, principal: Principal, case_id: int) -> Case:
    """The case if ``principal`` may read it. Otherwise 404, so case ids cannot be probed."""
    case = await session.get(Case, case_id)
    if case is None or not await can_read_case(session, principal, case):
        raise NotFoundError("Case not found")
    return case
