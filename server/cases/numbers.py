"""Case numbers like ``YK-20261201-0001``: the day in the agency zone plus a counter."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping, Sequence

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.cases.models import GENESIS_HASH, Case, CaseCounter, CaseEvent, CaseParty
from server.cases.timeline import chained_event
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
    parties: Sequence[tuple[str, int, str]] = (),
    events: Sequence[tuple[str, Principal | None, Mapping[str, object]]] = (),
    number: str | None = None,
) -> Case:
    """Create a case with a fresh number and its first timeline event (caller commits).

    ``status`` is where the procedure starts (``server.cases.procedure``): ``submitted``
    for an application, ``scheduled`` for one that came with its appointment. Further
    ``parties`` (kind, id, role) and ``events`` (kind, actor, data) of the new case are
    written in the same go: nobody else can see the case before commit, so its chain is
    built in memory without the row lock :func:`append_event` takes, and the day's
    counter row (locked from :func:`next_number` to commit) waits for three INSERTs only.
    ``number``: one the caller took from :func:`next_number` in a transaction of its own
    (committed, so the counter row is free at once; a rollback here leaves a gap).
    """
    number = number or await next_number(session, zone)
    opened = ("case.opened", actor, {**(data or {"title": title}), "state": status, "kind": kind})
    chain: list[CaseEvent] = []
    for what, who, facts in (opened, *events):
        seq, prev = (chain[-1].seq, chain[-1].hash) if chain else (0, GENESIS_HASH)
        chain.append(chained_event(number, seq + 1, prev, kind=what, actor=who, data=facts))
    case = Case(
        number=number,
        title=title,
        applicant_id=applicant_id,
        matter_id=matter_id,
        status=status,
        kind=kind,
        state_changed_at=utcnow(),
        head_seq=chain[-1].seq,
        head_hash=chain[-1].hash,
    )
    session.add(case)
    await session.flush()
    members = [("applicant", applicant_id, "applicant")] if applicant_id is not None else []
    session.add_all(
        CaseParty(case_id=case.id, principal_kind=k, principal_id=i, role=r)
        for k, i, r in (*members, *parties)
    )
    for event in chain:
        event.case_id = case.id
    session.add_all(chain)
    await session.flush()
    return case
