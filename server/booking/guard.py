"""Who may see and change an appointment: its case's rule, the link holders, the takers.

Every booking endpoint decides through here, and this module decides through
:mod:`server.cases.access` on the appointment's case — there is no second rule. Three
ways in:

1. **A logged-in principal**: the actions ``access.may`` grants their party roles on the
   case (applicant, lead, co-inspector, …); supervisors and admins read for oversight and
   may ``assign``.
2. **A taker**: staff qualified for the matter (``StaffQualification``) may read an
   appointment nobody is assigned to and ``take`` it (assign themselves as lead), so
   unassigned bookings do not fall through the cracks. Identity stays masked.
3. **A link holder** (anonymous): a *manage* token reads, manages the booking and checks
   in; a *join* token only reads and checks in. Identity stays masked.

Anyone else gets 404 (:class:`errors.AppointmentNotFound`), so ids cannot be probed; 403
when they may read the appointment but not do this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.booking import errors
from server.booking import models as m
from server.booking.links import BadManageToken, read_token
from server.booking.staffing import is_qualified
from server.cases import access
from server.cases.models import Case, CaseParty
from server.errors import PermissionDeniedError

TAKE = "take"
"""Assign oneself to an unassigned appointment (not a case action: there is no lead yet)."""
MANAGE_TOKEN = frozenset({"read", "manage_booking", "check_in"})
JOIN_TOKEN = frozenset({"read", "check_in"})
TAKER = frozenset({"read", TAKE})


@dataclass(frozen=True, slots=True)
class Permit:
    """What the caller may do with one appointment, and how they got in."""

    appt: m.Appointment
    principal: Principal | None
    actions: frozenset[str]
    via: str  # "principal", "manage" or "join"

    def may(self, action: str) -> bool:
        return action in self.actions

    @property
    def full_identity(self) -> bool:
        """Full ID and mobile numbers: staff parties who need them (``read_identity``)."""
        return (
            self.principal is not None
            and self.principal.is_staff
            and "read_identity" in self.actions
        )

    @property
    def links(self) -> bool:
        """The applicant's manage and join links: only for whoever may manage the booking."""
        return "manage_booking" in self.actions

    @property
    def join_link(self) -> bool:
        return self.links or self.via == "join"


def _roles_without_case(principal: Principal, appt: m.Appointment) -> frozenset[str]:
    """Appointments from before cases existed: the assigned officer leads, the applicant."""
    if principal.is_staff:
        return frozenset({"lead"}) if appt.staff_id == principal.id else frozenset()
    return frozenset({"applicant"}) if appt.applicant_id == principal.id else frozenset()


def _actions(principal: Principal, roles: frozenset[str]) -> frozenset[str]:
    return frozenset(a for a in access.RULES if access.may(principal, roles, a))


async def _may_take(session: AsyncSession, principal: Principal, appt: m.Appointment) -> bool:
    return (
        principal.is_staff
        and appt.staff_id is None
        and appt.status in m.LIVE_STATUSES
        and await is_qualified(session, principal.id, appt.matter_id)
    )


async def principal_actions(
    session: AsyncSession, principal: Principal, appt: m.Appointment
) -> frozenset[str]:
    case = await session.get(Case, appt.case_id) if appt.case_id is not None else None
    if case is None:
        roles = _roles_without_case(principal, appt)
    else:
        roles = await access.party_roles(session, principal, case)
    actions = _actions(principal, roles)
    if await _may_take(session, principal, appt):
        actions |= TAKER
    return actions if "read" in actions else frozenset()


async def permit(
    session: AsyncSession,
    principal: Principal | None,
    appointment_id: int,
    action: str,
    *,
    token: str | None = None,
    secret: str = "",
    now: datetime | None = None,
) -> Permit:
    """The appointment with the caller's actions, if they may do ``action``; else 404/403."""
    appt = await session.get(m.Appointment, appointment_id)
    if appt is None:
        raise errors.AppointmentNotFound()
    actions: frozenset[str] = frozenset()
    if principal is not None:
        actions = await principal_actions(session, principal, appt)
        if action in actions:
            return Permit(appt, principal, actions, "principal")
    if token:
        held = _token_actions(appt, token, secret, now or datetime.now(UTC), action)
        if held is not None:
            return Permit(appt, principal, held[1], held[0])
        if action == "manage_booking":
            raise errors.ManageLinkError()
    if "read" in actions:
        raise PermissionDeniedError()
    raise errors.AppointmentNotFound()


def _token_actions(
    appt: m.Appointment, token: str, secret: str, now: datetime, action: str
) -> tuple[str, frozenset[str]] | None:
    """(purpose, actions) of a valid link for this appointment that allows ``action``.

    A manage link retires when the appointment changes (its version moves on): using an
    old one is a clear 403, not a silent 404.
    """
    for purpose, actions in (("manage", MANAGE_TOKEN), ("join", JOIN_TOKEN)):
        if action not in actions:
            continue
        try:
            claim = read_token(secret, token, now, purpose)
        except BadManageToken:
            continue
        if claim.appointment_id != appt.id:
            return None
        if purpose == "manage" and claim.version != appt.version:
            raise errors.ManageLinkError()
        return purpose, actions
    return None


# -- lists -------------------------------------------------------------------------------


def visible(principal: Principal) -> ColumnElement[bool]:
    """SQL condition: the appointments ``principal`` may see in a list.

    Staff see the appointments of the cases they are parties of, unassigned ones of the
    matters they are qualified for (to take them), and supervisors and admins all of them;
    an applicant their own.
    """
    if not principal.is_staff:
        return m.Appointment.applicant_id == principal.id
    if principal.has_role(*access.OVERSIGHT_ROLES):
        return true()
    parties = select(CaseParty.case_id).where(
        CaseParty.principal_kind == "staff", CaseParty.principal_id == principal.id
    )
    qualified = select(m.StaffQualification.matter_id).where(
        m.StaffQualification.user_id == principal.id
    )
    return or_(
        m.Appointment.case_id.in_(parties),
        m.Appointment.staff_id.is_(None)
        & m.Appointment.status.in_(m.LIVE_STATUSES)
        & m.Appointment.matter_id.in_(qualified),
    )


async def permits(
    session: AsyncSession, principal: Principal, appts: Iterable[m.Appointment]
) -> dict[int, Permit]:
    """:class:`Permit` of each listed appointment, in three queries however long the list."""
    rows = list(appts)
    case_ids = {a.case_id for a in rows if a.case_id is not None}
    cases: dict[int, Case] = {}
    if case_ids:
        for case in await session.scalars(select(Case).where(Case.id.in_(case_ids))):
            cases[case.id] = case
    roles = await access.roles_on_cases(session, principal, case_ids)
    qualified: set[int] = set()
    if principal.is_staff:
        qualified = set(
            await session.scalars(
                select(m.StaffQualification.matter_id).where(
                    m.StaffQualification.user_id == principal.id
                )
            )
        )
    out = {}
    for appt in rows:
        found = cases.get(appt.case_id) if appt.case_id is not None else None
        if found is None:
            held = _roles_without_case(principal, appt)
        else:
            held = _party_roles(principal, found, roles.get(found.id, set()))
        actions = _actions(principal, held)
        if (
            principal.is_staff
            and appt.staff_id is None
            and appt.status in m.LIVE_STATUSES
            and appt.matter_id in qualified
        ):
            actions |= TAKER
        if "read" in actions:
            out[appt.id] = Permit(appt, principal, actions, "principal")
    return out


def _party_roles(principal: Principal, case: Case, rows: set[str]) -> frozenset[str]:
    """What :func:`access.party_roles` answers, from rows already read."""
    if principal.kind == "applicant":
        held = rows & {"applicant"}
        if case.applicant_id == principal.id:
            held.add("applicant")
        return frozenset(held)
    return frozenset(rows - {"applicant"})
