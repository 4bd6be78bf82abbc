"""Case numbers like ``YK-20261201-0001``: the day in the agency zone plus a counter."""

from __future__ import annotations

import zoneinfo

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.cases.models import Case, CaseCounter, CaseParty
from server.cases.timeline import append_event
from server.db.types import utcnow


async def next_number(session: AsyncSession, zone: zoneinfo.ZoneInfo) -> str:
    """One atomic upsert per number: concurrent callers (any process) queue on the day's
    counter row instead of racing for the same number."""
    day = utcnow().astimezone(zone).strftime("%Y%m%d")
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(CaseCounter)
        .values(day=day, last=1)
        .on_conflict_do_update(
            index_elements=[CaseCounter.day], set_={"last": CaseCounter.last + 1}
        )
        .returning(CaseCounter.last)
    )
    last = (await session.execute(statement)).scalar_one()
    return f"YK-{day}-{last:04d}"


async def open_case(
    session: AsyncSession,
    *,
    title: str,
    zone: zoneinfo.ZoneInfo,
    applicant_id: int | None = None,
    matter_id: int | None = None,
    actor: Principal | None = None,
    data: dict[str, object] | None = None,
    status: str = "submitted",
    kind: str = "inspection",
) -> Case:
    """Create a case with a fresh number and its first timeline event (caller commits).

    ``status`` is where the procedure starts (``server.cases.procedure``): ``submitted``
    for an application, ``scheduled`` for one that came with its appointment.
    """
    case = Case(
        number=await next_number(session, zone),
        title=title,
        applicant_id=applicant_id,
        matter_id=matter_id,
        status=status,
        kind=kind,
        state_changed_at=utcnow(),
    )
    session.add(case)
    await session.flush()
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
        session,
        case,
        kind="case.opened",
        actor=actor,
        data={**(data or {"title": title}), "state": status, "kind": kind},
    )
    return case
