"""差评 tickets and appeals: 回访, the fix, the applicant's re-rating; a staff appeal and
the supervisor's decision. Every step is an event on the case's chain, in the caller's
transaction; who may ask is :mod:`server.cases.access` (``handle_complaint``,
``appeal_rating``, ``decide_appeal``), decided by the handlers before calling here.

Ticket states::

    open ─回访 (any number)─▶ open ─fix─▶ fixed ─applicant re-rates─▶ closed
      └──────── appeal upheld by a supervisor ─────────────────────▶ void
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Applicant, User
from server.accounts.principal import Principal
from server.cases.models import Case
from server.cases.timeline import append_event
from server.db.types import utcnow
from server.errors import ConflictError, NotFoundError
from server.supervision import invites
from server.supervision.rating_models import Rating, RatingAppeal, RatingTicket
from server.supervision.ratings import ZH_LABELS, is_bad, level_key


class TicketStateError(ConflictError):
    code = "ticket_state"
    message = "Ticket %(id)s is %(state)s"


class AppealStateError(ConflictError):
    code = "appeal_state"
    message = "This rating has been appealed already"


def _require(ticket: RatingTicket, *states: str) -> None:
    if ticket.status not in states:
        raise TicketStateError(
            params={"id": ticket.id, "state": ticket.status},
            details={"state": ticket.status, "expected": list(states)},
        )


async def get_ticket(session: AsyncSession, ticket_id: int, *, lock: bool = False) -> RatingTicket:
    ticket = await session.get(RatingTicket, ticket_id, with_for_update=lock or None)
    if ticket is None:
        raise NotFoundError()
    return ticket


async def follow_up(
    session: AsyncSession,
    ticket: RatingTicket,
    actor: Principal,
    *,
    reached: bool,
    note: str,
) -> None:
    """A 回访 call: whether the applicant was reached and what was said."""
    _require(ticket, "open", "fixed")
    ticket.follow_up_at = utcnow()
    ticket.follow_up_reached = reached
    ticket.follow_up_note = note.strip()[:2000]
    await session.flush()
    await append_event(
        session,
        ticket.case_id,
        kind="rating.follow_up",
        actor=actor,
        data={"ticket_id": ticket.id, "reached": reached, "note": ticket.follow_up_note},
    )


async def fix(
    session: AsyncSession, ticket: RatingTicket, actor: Principal, *, note: str, zone: dt.tzinfo
) -> None:
    """The fix (整改) is recorded; the applicant gets an SMS link to re-rate it."""
    _require(ticket, "open")
    case = await session.get(Case, ticket.case_id)
    assert case is not None
    ticket.status = "fixed"
    ticket.fixed_at = utcnow()
    ticket.fix_note = note.strip()[:2000]
    await session.flush()
    on_time = ticket.fixed_at.astimezone(zone).date() <= ticket.deadline
    await append_event(
        session,
        case,
        kind="rating.fixed",
        actor=actor,
        data={"ticket_id": ticket.id, "note": ticket.fix_note, "on_time": on_time},
    )
    links = invites.links_of(session)
    applicant = await session.get(Applicant, case.applicant_id) if case.applicant_id else None
    if links is not None and applicant is not None:
        url = links.url(invites.FIX, ticket.id, ticket.fixed_at)
        await invites.tell(
            session,
            key=f"rating-fix:{ticket.id}",
            kind="rating_fix",
            mobile=applicant.mobile,
            body=(
                f"【云勘】您对办件{case.number}的评价已整改：{ticket.fix_note[:60]}。"
                f"请对整改结果再次评价：{url}"
            ),
        )


async def rerate(
    session: AsyncSession, ticket: RatingTicket, rater: Principal, *, level: int, comment: str
) -> None:
    """The applicant's rating of the fix closes the ticket; the original rating stays."""
    _require(ticket, "fixed")
    ticket.status = "closed"
    ticket.rerating_level = level
    ticket.rerated_at = utcnow()
    await session.flush()
    await append_event(
        session,
        ticket.case_id,
        kind="rating.rerated",
        actor=rater,
        data={"ticket_id": ticket.id, "level": level_key(level), "comment": comment[:1000]},
    )


async def appeal(
    session: AsyncSession, rating: Rating, actor: Principal, *, reason: str
) -> RatingAppeal:
    if rating.status != "valid":
        raise AppealStateError()
    if await session.scalar(select(RatingAppeal.id).where(RatingAppeal.rating_id == rating.id)):
        raise AppealStateError()
    row = RatingAppeal(
        rating_id=rating.id, case_id=rating.case_id, by_id=actor.id, reason=reason.strip()[:2000]
    )
    session.add(row)
    await session.flush()
    await append_event(
        session,
        rating.case_id,
        kind="rating.appealed",
        actor=actor,
        data={"rating_id": rating.id, "appeal_id": row.id, "reason": row.reason},
    )
    return row


async def decide(
    session: AsyncSession, row: RatingAppeal, actor: Principal, *, uphold: bool, note: str
) -> None:
    """A supervisor's decision. Upheld: the rating is void (out of the figures, still on
    file and on the chain) and its ticket with it."""
    if row.status != "pending":
        raise AppealStateError("This appeal has been decided already")
    row.status = "upheld" if uphold else "rejected"
    row.decided_by_id = actor.id
    row.decision_note = note.strip()[:2000]
    row.decided_at = utcnow()
    if uphold:
        rating = await session.get(Rating, row.rating_id)
        assert rating is not None
        rating.status = "void"
        ticket = await session.scalar(
            select(RatingTicket).where(RatingTicket.rating_id == rating.id)
        )
        if ticket is not None and ticket.status != "closed":
            ticket.status = "void"
    await session.flush()
    await append_event(
        session,
        row.case_id,
        kind="rating.appeal_decided",
        actor=actor,
        data={
            "appeal_id": row.id,
            "rating_id": row.rating_id,
            "decision": row.status,
            "note": row.decision_note,
        },
    )


# -- views -------------------------------------------------------------------------------


def _at(moment: dt.datetime | None, zone: dt.tzinfo) -> str | None:
    return moment.astimezone(zone).isoformat(timespec="seconds") if moment else None


async def ticket_view(
    session: AsyncSession, ticket: RatingTicket, zone: dt.tzinfo
) -> dict[str, Any]:
    """The ticket as pages and the API show it; times in the agency's zone."""
    rating = await session.get(Rating, ticket.rating_id)
    case = await session.get(Case, ticket.case_id)
    assignee = await session.get(User, ticket.assignee_id) if ticket.assignee_id else None
    appeal_row = await session.scalar(
        select(RatingAppeal).where(RatingAppeal.rating_id == ticket.rating_id)
    )
    assert rating is not None and case is not None
    return {
        "id": ticket.id,
        "case_id": case.id,
        "case": case.number,
        "title": case.title,
        "status": ticket.status,
        "deadline": ticket.deadline.isoformat(),
        "assignee": assignee.display_name if assignee else None,
        "rating": {
            "id": rating.id,
            "level": level_key(rating.level),
            "label": ZH_LABELS[level_key(rating.level)],
            "scope": rating.scope,
            "tags": list(rating.tags),
            "comment": rating.comment,
            "status": rating.status,
            "bad": is_bad(rating.level),
        },
        "follow_up": {
            "at": _at(ticket.follow_up_at, zone),
            "reached": ticket.follow_up_reached,
            "note": ticket.follow_up_note,
        },
        "fix": {
            "at": _at(ticket.fixed_at, zone),
            "note": ticket.fix_note,
        },
        "rerating": level_key(ticket.rerating_level) if ticket.rerating_level else None,
        "appeal": (
            {
                "id": appeal_row.id,
                "status": appeal_row.status,
                "reason": appeal_row.reason,
                "note": appeal_row.decision_note,
            }
            if appeal_row
            else None
        ),
    }


async def tickets_for(session: AsyncSession, principal: Principal) -> list[RatingTicket]:
    """The tickets a member of staff works on: a head's own; every ticket for oversight."""
    query = select(RatingTicket).order_by(RatingTicket.status != "open", RatingTicket.deadline)
    if not principal.has_role("supervisor", "admin"):
        query = query.where(RatingTicket.assignee_id == principal.id)
    return list(await session.scalars(query))


async def pending_appeals(session: AsyncSession) -> list[RatingAppeal]:
    return list(
        await session.scalars(
            select(RatingAppeal).where(RatingAppeal.status == "pending").order_by(RatingAppeal.id)
        )
    )
