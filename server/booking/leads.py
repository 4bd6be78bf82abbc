"""Who leads an appointment's case: the assigned officer is the case's ``lead`` party.

``appointments.staff_id`` (who serves the slot) and the case's lead party move together:
booking, taking an unassigned appointment, "next" in the queue and reassignment all go
through :func:`hand_over`. The officer who is replaced leaves the case while it is only
``scheduled`` (nothing of theirs is on it yet), and stays as a co-inspector once the
inspection has begun, so what they recorded keeps its author among the parties.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.booking import claims, errors
from server.booking import models as m
from server.booking.casework import record
from server.booking.staffing import is_qualified
from server.cases import access, procedure
from server.cases.models import Case, CaseParty


async def lead_of(session: AsyncSession, case_id: int) -> int | None:
    return await session.scalar(
        select(CaseParty.principal_id)
        .where(
            CaseParty.case_id == case_id,
            CaseParty.principal_kind == "staff",
            CaseParty.role == "lead",
        )
        .order_by(CaseParty.id)
        .limit(1)
    )


async def hand_over(
    session: AsyncSession, case_id: int, staff_id: int | None
) -> list[dict[str, Any]]:
    """Make ``staff_id`` the case's lead (None: nobody); what happened to the old lead(s)."""
    case = await session.get(Case, case_id)
    if case is None:
        return []
    parties = await access.staff_parties(session, case_id)
    if staff_id is not None and any(
        p.principal_id == staff_id and p.role == "reviewer" for p in parties
    ):
        # The second official of the internal review must not review their own work.
        raise errors.SlotRuleError(errors.REVIEWER_CANNOT_LEAD, field="staff_id")
    changes: list[dict[str, Any]] = []
    for party in parties:
        if party.role != "lead" or party.principal_id == staff_id:
            continue
        if case.status == procedure.SCHEDULED:
            await session.delete(party)
            changes.append({"staff_id": party.principal_id, "to": None})
        else:
            party.role = "inspector"
            changes.append({"staff_id": party.principal_id, "to": "inspector"})
    await session.flush()
    if staff_id is not None:
        await access.set_party(session, case_id, "staff", staff_id, "lead")
    return changes


async def assign(
    session: AsyncSession,
    appt: m.Appointment,
    staff_id: int | None,
    actor: Principal | None,
    *,
    now: datetime | None = None,
) -> m.Appointment:
    """Reassign by hand (``None`` unassigns): only qualified staff; they become the lead."""
    if appt.status not in m.LIVE_STATUSES:
        raise errors.AppointmentStatusError(appt.id, appt.status)
    if staff_id is not None and not await is_qualified(session, staff_id, appt.matter_id):
        raise errors.SlotRuleError(errors.STAFF_NOT_QUALIFIED, field="staff_id")
    previous = appt.staff_id
    if staff_id != previous:
        # The new officer's minutes are claimed like a booking's; a busy one is refused
        # and the appointment keeps its officer (the caller rolls back).
        if previous is not None:
            await claims.release(session, appt.id, claims.staff_resource(previous))
        if staff_id is not None and not await claims.claim(
            session, claims.staff_resource(staff_id), appt.id, appt.starts_at, appt.ends_at
        ):
            raise errors.StaffBusyError(staff_id)
    appt.staff_id = staff_id
    appt.updated_at = now or datetime.now(UTC)
    await lead_follows(session, appt, previous, actor)
    await session.flush()
    return appt


async def lead_follows(
    session: AsyncSession,
    appt: m.Appointment,
    previous: int | None,
    actor: Principal | None,
    **why: Any,
) -> None:
    """The case's lead becomes ``appt.staff_id`` (set by the caller), on the case chain."""
    if appt.case_id is None:
        return
    changes = await hand_over(session, appt.case_id, appt.staff_id)
    await record(
        session,
        appt.case_id,
        "appointment.assigned",
        actor,
        {
            "appointment_id": appt.id,
            "staff_id": appt.staff_id,
            "previous_staff_id": previous,
            "previous_leads": changes,
            **why,
        },
    )
