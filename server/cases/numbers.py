"""Case numbers like ``YK-20261201-0001``: the day in the agency zone plus a counter."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.cases.models import Case, CaseParty
from server.cases.timeline import append_event
from server.db.types import utcnow


async def open_case(
    session: AsyncSession,
    *,
    title: str,
    zone: zoneinfo.ZoneInfo,
    applicant_id: int | None = None,
    matter_id: int | None = None,
    actor: Principal | None = None,
    data: dict[str, object] | None = None,
) -> Case:
    """Create a case with a fresh number and its first timeline event (caller commits)."""
    day = utcnow().astimezone(zone).strftime("%Y%m%d")
    prefix = f"YK-{day}-"
    for _ in range(20):
        count = await session.scalar(select(func.count()).where(Case.number.like(prefix + "%")))
        number = f"{prefix}{(count or 0) + 1:04d}"
        case = Case(number=number, title=title, applicant_id=applicant_id, matter_id=matter_id)
        try:
            async with session.begin_nested():
                session.add(case)
                await session.flush()
        except IntegrityError:
            continue  # another process took the number; count again
        if applicant_id is not None:
            session.add(
                CaseParty(
                    case_id=case.id,
                    principal_kind="applicant",
                    principal_id=applicant_id,
                    role="applicant",
                )
            )
        await append_event(
            session, case, kind="case.opened", actor=actor, data=data or {"title": title}
        )
        return case
    raise RuntimeError("could not allocate a case number")


def today_in(zone: zoneinfo.ZoneInfo) -> dt.date:
    return utcnow().astimezone(zone).date()
