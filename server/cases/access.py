"""Who may do what to which case: the one place that decides.

A permission is a function of (principal, case, the principal's party roles on the case,
the action). The case's *state* is checked by :mod:`server.cases.procedure` when the move
is made; this module only answers "may this person ask for it at all".

Party roles (``case_parties.role``; the applicant is also recognised by
``cases.applicant_id``):

========== ==============================================================
applicant  the citizen, or the enterprise's named contact
lead       the inspector in charge (assigned by booking or by hand)
inspector  a co-inspector
expert     an invited expert of another department (联合勘验 / 远程评审)
reviewer   the second official of the internal review (内部审核)
observer   watches (quality, training); receive-only and hidden in calls
supervisor a supervisor made a party (may then act, not only watch)
head       the department head a 差评 ticket of the case is assigned to
========== ==============================================================

Staff who are not parties get 404 for everything about the case, so ids cannot be
probed. Supervisors and admins see every case for oversight (``OVERSIGHT``) but may only
do the few things oversight is for (read, export, watch a call hidden, assign staff,
legal hold) unless they are made parties.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.cases.models import Case, CaseParty
from server.errors import NotFoundError, PermissionDeniedError

OVERSIGHT_ROLES = ("supervisor", "admin")
PARTY_ROLES = (
    "applicant",
    "lead",
    "inspector",
    "expert",
    "reviewer",
    "observer",
    "supervisor",
    "head",
)
WORKING = frozenset({"lead", "inspector"})
"""The inspectors of the case: they run the session, take evidence and draft decisions."""
STAFF_PARTIES = frozenset(PARTY_ROLES) - {"applicant"}


@dataclass(frozen=True, slots=True)
class Rule:
    parties: frozenset[str]
    oversight: bool = False
    """Supervisors and admins who are not parties may do it too."""


def _rule(*parties: str, oversight: bool = False) -> Rule:
    return Rule(frozenset(parties), oversight)


RULES: dict[str, Rule] = {
    # reading
    "read": _rule(*PARTY_ROLES, oversight=True),
    "read_identity": _rule("applicant", "lead", "inspector", "reviewer"),
    "read_internal": _rule(*STAFF_PARTIES, oversight=True),
    "export": _rule("lead", "inspector", "reviewer", "supervisor", oversight=True),
    # booking
    "manage_booking": _rule("applicant", "lead"),
    "book_follow_up": _rule("applicant", "lead", "inspector"),
    "check_in": _rule("applicant", "lead", "inspector"),
    "appointment_status": _rule("lead", "inspector"),
    "assign": _rule("lead", "supervisor", oversight=True),
    # the procedure
    "accept": _rule("lead", "inspector"),
    "decide": _rule("lead", "inspector"),
    "review": _rule("reviewer", "supervisor"),
    "close": _rule("lead"),
    "document_review": _rule("lead", "inspector"),
    "withdraw": _rule("applicant"),
    "cancel": _rule("lead", "supervisor"),
    "parties": _rule("lead", "supervisor", oversight=True),
    "hold": _rule("supervisor", oversight=True),
    # deadline supervision (电子监察): stop and restart the clock, with a reason
    "suspend_clock": _rule("supervisor", oversight=True),
    # live
    "join_live": _rule(*PARTY_ROLES, oversight=True),
    "watch_hidden": _rule("supervisor", "observer", oversight=True),
    "invite": _rule("lead", "inspector"),
    # evidence and documents
    "evidence": _rule("lead", "inspector"),
    "share_location": _rule("applicant"),
    "rectify": _rule("applicant"),
    "issue_letter": _rule("lead", "inspector"),
    "sign": _rule("applicant", "lead", "inspector", "expert", "reviewer"),
    # 好差评 (server.supervision): only the applicant rates; the head settles a 差评 ticket
    # (supervisors too, who oversee — and do when the head served the case themselves);
    # the officers who served may appeal a rating, a supervisor decides.
    "rate": _rule("applicant"),
    "handle_complaint": _rule("head", "supervisor", oversight=True),
    "appeal_rating": _rule("lead", "inspector"),
    "decide_appeal": _rule("supervisor", oversight=True),
}


SUPERVISION_PAGES = OVERSIGHT_ROLES
"""Staff roles that open the supervisor's pages (dashboard, exports, live wall); what each
row of them shows is still decided per case by the rules above (``read_identity``)."""


def may_supervise(principal: Principal | None) -> bool:
    return principal is not None and principal.is_staff and principal.has_role(*SUPERVISION_PAGES)


def may(principal: Principal, roles: frozenset[str], action: str) -> bool:
    """Pure rule: may ``principal`` holding party ``roles`` on a case do ``action``?"""
    rule = RULES[action]
    if roles & rule.parties:
        return True
    return rule.oversight and principal.is_staff and principal.has_role(*OVERSIGHT_ROLES)


async def party_roles(session: AsyncSession, principal: Principal, case: Case) -> frozenset[str]:
    rows = await session.scalars(
        select(CaseParty.role).where(
            CaseParty.case_id == case.id,
            CaseParty.principal_kind == principal.kind,
            CaseParty.principal_id == principal.id,
        )
    )
    roles = set(rows)
    if principal.kind == "applicant":
        roles &= {"applicant"}  # an applicant account is never staff on a case
        if case.applicant_id == principal.id:
            roles.add("applicant")
    else:
        roles.discard("applicant")
    return frozenset(roles)


async def roles_on_cases(
    session: AsyncSession, principal: Principal, case_ids: set[int]
) -> dict[int, set[str]]:
    """The party roles ``principal`` holds on each of ``case_ids`` (lists: one query)."""
    roles: dict[int, set[str]] = {}
    if not case_ids:
        return roles
    for case_id, role in await session.execute(
        select(CaseParty.case_id, CaseParty.role).where(
            CaseParty.case_id.in_(case_ids),
            CaseParty.principal_kind == principal.kind,
            CaseParty.principal_id == principal.id,
        )
    ):
        roles.setdefault(case_id, set()).add(role)
    return roles


async def authorize(
    session: AsyncSession,
    principal: Principal | None,
    case: Case | int | None,
    action: str,
    *,
    lock: bool = False,
    hide: bool = False,
) -> Case:
    """The case if ``principal`` may do ``action`` on it.

    404 when the case does not exist or the principal may not even read it (so ids cannot
    be probed); 403 when they may read it but not do this — or 404 with ``hide``, for
    things whose existence is itself internal (an original frame, a recording).
    """
    if action not in RULES:
        raise KeyError(action)
    if isinstance(case, int):
        case = await session.get(Case, case, with_for_update=lock or None)
    if case is None or principal is None:
        raise NotFoundError("Case not found")
    roles = await party_roles(session, principal, case)
    if not may(principal, roles, "read"):
        raise NotFoundError("Case not found")
    if not may(principal, roles, action):
        raise NotFoundError() if hide else PermissionDeniedError()
    return case


async def allowed(session: AsyncSession, principal: Principal, case: Case, action: str) -> bool:
    return may(principal, await party_roles(session, principal, case), action)


async def actions_on(session: AsyncSession, principal: Principal, case: Case) -> frozenset[str]:
    """Every action ``principal`` may ask for on ``case`` (pages show only those buttons)."""
    roles = await party_roles(session, principal, case)
    return frozenset(a for a in RULES if may(principal, roles, a))


def live_role(principal: Principal, roles: frozenset[str]) -> str | None:
    """The role a principal joins the case's video as; None: may not join."""
    if "applicant" in roles:
        return "applicant"
    if roles & WORKING:
        return "inspector"
    if "expert" in roles:
        return "expert"
    if "supervisor" in roles or (principal.is_staff and principal.has_role(*OVERSIGHT_ROLES)):
        return "supervisor"
    if roles & {"observer", "reviewer"}:
        return "observer"
    return None


async def set_party(
    session: AsyncSession, case_id: int, kind: str, principal_id: int, role: str
) -> str | None:
    """Make someone a party in ``role``; their previous role on the case, if any.

    A person holds one role per case (unique constraint): a co-inspector made lead is lead.
    """
    if role not in PARTY_ROLES:
        raise ValueError(role)
    existing = await session.scalar(
        select(CaseParty).where(
            CaseParty.case_id == case_id,
            CaseParty.principal_kind == kind,
            CaseParty.principal_id == principal_id,
        )
    )
    if existing is None:
        session.add(
            CaseParty(case_id=case_id, principal_kind=kind, principal_id=principal_id, role=role)
        )
        await session.flush()
        return None
    previous = existing.role
    existing.role = role
    await session.flush()
    return previous


async def staff_parties(session: AsyncSession, case_id: int) -> list[CaseParty]:
    return list(
        await session.scalars(
            select(CaseParty)
            .where(CaseParty.case_id == case_id, CaseParty.principal_kind == "staff")
            .order_by(CaseParty.id)
        )
    )


# Kept for the callers that only read.
async def can_read_case(session: AsyncSession, principal: Principal, case: Case) -> bool:
    return await allowed(session, principal, case, "read")


async def readable_case(session: AsyncSession, principal: Principal, case_id: int) -> Case:
    """The case if ``principal`` may read it. Otherwise 404, so case ids cannot be probed."""
    return await authorize(session, principal, case_id, "read")
