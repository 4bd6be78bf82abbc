"""How bookings touch cases (办件): every appointment or served walk-in opens one.

The applicant becomes a case party through their account (found or created by mobile
number, so that a booking made by staff on someone's behalf shows up under "my
appointments" once that person logs in by SMS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.accounts import committed, session_cache
from server.accounts.models import Applicant
from server.accounts.principal import Principal
from server.booking import models as m
from server.booking.validation import ApplicantInfo
from server.cases.models import Case
from server.cases.numbers import next_number
from server.cases.numbers import open_case as _open_case
from server.cases.timeline import append_event


async def applicant_account(session: AsyncSession, info: ApplicantInfo) -> int:
    """The applicant account for ``info.mobile``, created if missing (racing creators ok).

    One statement: the upsert's update makes RETURNING give the id of an existing account
    too. A stored name is kept; an account made by an SMS login has none yet and takes the
    booking's (else the person would sign documents and appear in calls under a masked
    mobile number).
    """
    values = {"mobile": info.mobile, "name": info.contact_name or info.name}
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(Applicant).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[Applicant.mobile],
        set_={"name": func.coalesce(Applicant.name, statement.excluded.name)},
    )
    applicant_id = int((await session.execute(statement.returning(Applicant.id))).scalar_one())
    # The name may have just been filled: cached sessions of this account re-read it.
    committed.note(session, session_cache.TOPIC, session_cache.applicant_key(applicant_id))
    return applicant_id


async def open_case(
    session: AsyncSession,
    matter: m.Matter,
    info: ApplicantInfo,
    applicant_id: int,
    zone: ZoneInfo,
    actor: Principal | None,
    data: Mapping[str, object],
    *,
    parties: Sequence[tuple[str, int, str]] = (),
    events: Sequence[tuple[str, Principal | None, Mapping[str, object]]] = (),
    number: str | None = None,
) -> Case:
    title = f"{matter.name}（{info.display_name}）"[:200]
    return await _open_case(
        session,
        title=title,
        zone=zone,
        applicant_id=applicant_id,
        matter_id=matter.id,
        actor=actor,
        data={"title": title, "matter": matter.code, **data},
        # An online booking is the application with its appointment (procedure.py).
        status="scheduled",
        kind=case_kind(matter),
        parties=parties,
        events=events,
        number=number,
    )


class CaseNumbers:
    """Case numbers taken in short transactions of their own (PostgreSQL).

    A number taken inside the booking's transaction locks the day's counter row until
    that booking commits, so every booking of the day queued behind every other one. Here
    the upsert commits at once on a small pool of its own (a connection is never held
    while waiting for another, so the main pool cannot deadlock on it); numbers stay
    unique and increasing, and a booking that fails after taking one leaves a gap.
    """

    def __init__(self, engine: AsyncEngine, zone: ZoneInfo) -> None:
        self._engine = engine
        self._zone = zone

    async def take(self) -> str:
        # Autocommit: the upsert is its own transaction, one round trip (no BEGIN/COMMIT).
        async with self._engine.connect() as connection:
            return await next_number(AsyncSession(bind=connection), self._zone)


def case_kind(matter: m.Matter) -> str:
    """Consultations skip the inspection steps; joint inspections are inspections."""
    return "consultation" if matter.kind == "consultation" else "inspection"


async def record(
    session: AsyncSession,
    case: Case | int,
    kind: str,
    actor: Principal | None,
    data: Mapping[str, object],
) -> None:
    await append_event(session, case, kind=kind, actor=actor, data=dict(data))
