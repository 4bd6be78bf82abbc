"""好差评: the applicant's rating of a session (一次一评) or of the whole case (一事一评).

Five levels after GB/T 39734-2020 and 国办发〔2019〕51号; the last two are 差评 and open a
ticket (:mod:`server.supervision.tickets`). The rules kept here:

* **one rating per session and per case** — the database's unique constraint; a second
  rating of the same session changes the first (the chain shows both);
* **changeable until the rectification period ends** — ``editable_until`` is the last
  working day of the period a 差评 would get (15 working days unless the matter or its
  department says otherwise); afterwards :class:`RatingClosedError` (409
  ``rating_closed``), and a rating voided on appeal is closed too;
* **never anonymous** — the rater is the case's applicant, proved by the applicant's own
  join or SMS link, and members of staff cannot rate (403 ``staff_cannot_rate``).

Figures for the supervisor's dashboard (:func:`rating_figures`) and export rows
(:func:`rating_rows`) are computed here from the same rows. 好评率 counts the three upper
levels as 好评, the usual reading of 51号.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Applicant, User
from server.accounts.principal import Principal
from server.booking.availability import load_calendar
from server.booking.leads import lead_of
from server.booking.models import Department, Matter
from server.cases.access import set_party
from server.cases.models import Case, CaseEvent, CaseParty
from server.cases.procedure import add_working_days
from server.cases.timeline import append_event
from server.db.types import utcnow
from server.errors import ConflictError, PermissionDeniedError, ValidationError
from server.masking import mask_mobile, mask_text
from server.supervision import invites
from server.supervision.rating_models import LEVEL_KEYS, Rating, RatingTicket

DEFAULT_COMPLAINT_DAYS = 15
LEVELS: dict[int, str] = {5 - i: key for i, key in enumerate(LEVEL_KEYS)}
"""5 very_satisfied … 1 very_dissatisfied."""
LEVEL_OF = {key: level for level, key in LEVELS.items()}
LABELS = {
    "very_satisfied": "Very satisfied",
    "satisfied": "Satisfied",
    "basic": "Basically satisfied",
    "dissatisfied": "Dissatisfied",
    "very_dissatisfied": "Very dissatisfied",
}
"""English msgids; zh-CN: 非常满意, 满意, 基本满意, 不满意, 非常不满意."""
ZH_LABELS = {
    "very_satisfied": "非常满意",
    "satisfied": "满意",
    "basic": "基本满意",
    "dissatisfied": "不满意",
    "very_dissatisfied": "非常不满意",
}
BAD = frozenset({1, 2})
TAGS = {
    "friendly": "Friendly",
    "efficient": "Quick and efficient",
    "clear": "Clearly explained",
    "video_ok": "Clear video",
    "slow": "Long wait",
    "unclear": "Not clearly explained",
    "attitude": "Unfriendly",
    "video_bad": "Poor video",
    "repeat": "Asked for material again and again",
}
"""Optional tags (keys stored, English msgids shown)."""
SCOPES = ("session", "case")
SHANGHAI = ZoneInfo("Asia/Shanghai")


class RatingClosedError(ConflictError):
    code = "rating_closed"
    message = "This rating can no longer be changed: its rectification period ended on %(until)s"


class StaffCannotRateError(PermissionDeniedError):
    code = "staff_cannot_rate"
    message = "Only the applicant can rate this service"


class NoSessionYetError(ConflictError):
    code = "session_not_held"
    message = "There is no video session to rate yet"


class NotRatableError(ConflictError):
    code = "not_ratable"
    message = "This case has no applicant who could rate it"


def is_bad(level: int) -> bool:
    return level in BAD


def level_key(level: int) -> str:
    return LEVELS[level]


def clean_tags(tags: Iterable[str]) -> list[str]:
    unknown = [t for t in tags if t not in TAGS]
    if unknown:
        raise ValidationError(fields={"tags": "This value is not one of the allowed choices"})
    return sorted(set(tags))


async def complaint_days(session: AsyncSession, matter_id: int | None) -> int:
    """Working days of the rectification period: the matter's, its department's, or 15."""
    matter = await session.get(Matter, matter_id) if matter_id else None
    if matter is None:
        return DEFAULT_COMPLAINT_DAYS
    if matter.complaint_days:
        return matter.complaint_days
    department = await session.get(Department, matter.department_id)
    if department is not None and department.complaint_days:
        return department.complaint_days
    return DEFAULT_COMPLAINT_DAYS


async def working_deadline(session: AsyncSession, start: dt.date, days: int) -> dt.date:
    calendar = await load_calendar(session)
    return add_working_days(start, days, calendar.is_working_day)


async def was_admitted(session: AsyncSession, case_id: int, room: str, participant: str) -> bool:
    """Whether ``participant`` was let into ``room`` (the session to rate took place)."""
    found = await session.scalar(
        select(CaseEvent.id)
        .where(
            CaseEvent.case_id == case_id,
            CaseEvent.kind.in_(("live.admitted", "live.readmitted")),
            CaseEvent.data["room"].as_string() == room,
            CaseEvent.data["participant"].as_string() == participant,
        )
        .limit(1)
    )
    return found is not None


def applicant_principal(case: Case, applicant: Applicant) -> Principal:
    """The rater, named by the case: a link proves it is the applicant's, never a login."""
    return Principal("applicant", applicant.id, "applicant", applicant.name or "", applicant.mobile)


async def case_applicant(session: AsyncSession, case: Case) -> Applicant:
    applicant = await session.get(Applicant, case.applicant_id) if case.applicant_id else None
    if applicant is None:
        raise NotRatableError()
    return applicant


@dataclass(frozen=True, slots=True)
class Given:
    """What the applicant said."""

    level: int
    tags: tuple[str, ...] = ()
    comment: str = ""

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Given:
        key = body.get("level")
        if key not in LEVEL_OF:
            raise ValidationError(fields={"level": "Choose one of the five levels"})
        comment = str(body.get("comment") or "").strip()[:1000]
        return cls(LEVEL_OF[key], tuple(clean_tags(body.get("tags") or ())), comment)


async def rate(
    session: AsyncSession,
    case: Case,
    rater: Principal,
    given: Given,
    *,
    scope: str,
    session_ref: str = "",
    today: dt.date,
) -> tuple[Rating, bool]:
    """Give or change the rating of one session (``scope="session"``) or of the case; the
    row and whether it was new. A 差评 opens its ticket (once) in the same transaction."""
    if rater.is_staff:
        raise StaffCannotRateError()
    if scope not in SCOPES:
        raise ValueError(scope)
    ref = session_ref if scope == "session" else ""
    rating = await _existing(session, case.id, scope, ref)
    created = rating is None
    if rating is None:
        days = await complaint_days(session, case.matter_id)
        matter = await session.get(Matter, case.matter_id) if case.matter_id else None
        fresh = Rating(
            case_id=case.id,
            scope=scope,
            session_ref=ref,
            applicant_id=rater.id,
            level=given.level,
            tags=list(given.tags),
            comment=given.comment,
            matter_id=case.matter_id,
            department_id=matter.department_id if matter else None,
            officer_id=await lead_of(session, case.id),
            editable_until=await working_deadline(session, today, days),
        )
        try:
            async with session.begin_nested():
                session.add(fresh)
                await session.flush()
            rating = fresh
        except IntegrityError:
            # A second tap on another node won the insert: this one changes it.
            rating = await _existing(session, case.id, scope, ref)
            assert rating is not None
            created = False
    if not created:
        if rating.status != "valid" or today > rating.editable_until:
            raise RatingClosedError(
                params={"until": rating.editable_until.isoformat()},
                details={"editable_until": rating.editable_until.isoformat()},
            )
        previous = rating.level
        rating.level = given.level
        rating.tags = list(given.tags)
        rating.comment = given.comment
        rating.updated_at = utcnow()
        await session.flush()
    await append_event(
        session,
        case,
        kind="rating.given" if created else "rating.changed",
        actor=rater,
        data={
            "rating_id": rating.id,
            "scope": scope,
            "session": ref or None,
            "level": level_key(given.level),
            "tags": list(given.tags),
            "comment": given.comment,
            **({} if created else {"previous": level_key(previous)}),
        },
    )
    if is_bad(rating.level):
        await open_ticket(session, case, rating, today=today)
    return rating, created


async def _existing(session: AsyncSession, case_id: int, scope: str, ref: str) -> Rating | None:
    return await session.scalar(
        select(Rating)
        .where(Rating.case_id == case_id, Rating.scope == scope, Rating.session_ref == ref)
        .execution_options(populate_existing=True)
    )


async def open_ticket(
    session: AsyncSession, case: Case, rating: Rating, *, today: dt.date
) -> RatingTicket | None:
    """The 差评 ticket of ``rating`` (once: a changed 差评 keeps its ticket), assigned to the
    department head with a deadline in working days; the head becomes a party of the case
    (role ``head``) unless already one — a head who served the case is not made the judge
    of it, and supervisors settle that ticket."""
    if await session.scalar(select(RatingTicket.id).where(RatingTicket.rating_id == rating.id)):
        return None
    department = (
        await session.get(Department, rating.department_id) if rating.department_id else None
    )
    head = (
        await session.get(User, department.head_id) if department and department.head_id else None
    )
    days = await complaint_days(session, case.matter_id)
    ticket = RatingTicket(
        rating_id=rating.id,
        case_id=case.id,
        department_id=rating.department_id,
        assignee_id=head.id if head else None,
        deadline=await working_deadline(session, today, days),
    )
    session.add(ticket)
    await session.flush()
    if head is not None:
        held = await session.scalar(
            select(CaseParty.role).where(
                CaseParty.case_id == case.id,
                CaseParty.principal_kind == "staff",
                CaseParty.principal_id == head.id,
            )
        )
        if held is None:
            await set_party(session, case.id, "staff", head.id, "head")
    await append_event(
        session,
        case,
        kind="rating.ticket_opened",
        data={
            "rating_id": rating.id,
            "ticket_id": ticket.id,
            "level": level_key(rating.level),
            "deadline": ticket.deadline.isoformat(),
            "working_days": days,
            "assignee": {"id": head.id, "name": head.display_name} if head else None,
        },
    )
    links = invites.links_of(session)
    where = f"：{links.base_url}/staff/rating-tickets/{ticket.id}" if links else ""
    await invites.tell(
        session,
        key=f"rating-ticket:{ticket.id}",
        kind="rating_ticket",
        mobile=head.mobile if head else None,
        body=(
            f"【云勘】差评工单：办件{case.number}收到“{ZH_LABELS[level_key(rating.level)]}”评价，"
            f"请于{ticket.deadline:%Y年%m月%d日}前完成回访与整改{where}"
        ),
    )
    return ticket


def rating_view(rating: Rating) -> dict[str, Any]:
    return {
        "id": rating.id,
        "case_id": rating.case_id,
        "scope": rating.scope,
        "level": level_key(rating.level),
        "tags": list(rating.tags),
        "comment": rating.comment,
        "bad": is_bad(rating.level),
        "status": rating.status,
        "editable_until": rating.editable_until.isoformat(),
    }


# -- figures -----------------------------------------------------------------------------


def _bounds(value: dt.date | dt.datetime, zone: ZoneInfo) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.combine(value, dt.time(), zone)


async def _period(
    session: AsyncSession,
    start: dt.date | dt.datetime,
    end: dt.date | dt.datetime,
    department_id: int | None,
    zone: ZoneInfo,
) -> list[tuple[Rating, RatingTicket | None]]:
    query = (
        select(Rating, RatingTicket)
        .outerjoin(RatingTicket, RatingTicket.rating_id == Rating.id)
        .where(Rating.created_at >= _bounds(start, zone), Rating.created_at < _bounds(end, zone))
        .order_by(Rating.created_at, Rating.id)
    )
    if department_id is not None:
        query = query.where(Rating.department_id == department_id)
    return [(r, t) for r, t in (await session.execute(query)).all()]


def _local_day(moment: dt.datetime, zone: ZoneInfo) -> dt.date:
    return moment.astimezone(zone).date()


def _block(
    rows: Sequence[tuple[Rating, RatingTicket | None]], today: dt.date, zone: ZoneInfo
) -> dict[str, Any]:
    valid = [(r, t) for r, t in rows if r.status == "valid"]
    levels = {key: 0 for key in LEVEL_KEYS}
    for r, _ in valid:
        levels[level_key(r.level)] += 1
    bad = sum(1 for r, _ in valid if is_bad(r.level))
    tickets = [t for r, t in valid if t is not None and t.status != "void"]
    followed = sum(1 for t in tickets if t.follow_up_at is not None)
    fixed = [t for t in tickets if t.fixed_at is not None]
    on_time = sum(1 for t in fixed if t.fixed_at and _local_day(t.fixed_at, zone) <= t.deadline)
    open_tickets = [t for t in tickets if t.fixed_at is None]
    total = len(valid)
    return {
        "total": total,
        "good": total - bad,
        "bad": bad,
        "good_rate": round((total - bad) / total, 4) if total else None,
        "levels": levels,
        "voided": len(rows) - total,
        "tickets": len(tickets),
        "followed_up": followed,
        "follow_up_rate": round(followed / len(tickets), 4) if tickets else None,
        "rectified": len(fixed),
        "rectified_on_time": on_time,
        "on_time_rate": round(on_time / len(tickets), 4) if tickets else None,
        "open_tickets": len(open_tickets),
        "overdue_tickets": sum(1 for t in open_tickets if t.deadline < today),
    }


async def rating_figures(
    session: AsyncSession,
    *,
    start: dt.date | dt.datetime,
    end: dt.date | dt.datetime,
    department_id: int | None = None,
    today: dt.date | None = None,
    zone: ZoneInfo = SHANGHAI,
) -> dict[str, Any]:
    """好评率, 差评 count, rectified on time, 回访率 and the five levels for ratings given in
    ``[start, end)`` (dates are local midnights in ``zone``), overall and per matter,
    department and officer. Rates are fractions (0–1) or None when nothing was rated;
    "rectified on time" counts tickets fixed by their deadline out of all tickets."""
    today = today or dt.datetime.now(zone).date()
    rows = await _period(session, start, end, department_id, zone)
    names = await _names(session, rows)
    out: dict[str, Any] = {
        "start": _bounds(start, zone).isoformat(),
        "end": _bounds(end, zone).isoformat(),
        "department_id": department_id,
        "overall": _block(rows, today, zone),
    }
    for key, attr in (
        ("by_matter", "matter_id"),
        ("by_department", "department_id"),
        ("by_officer", "officer_id"),
    ):
        groups: dict[int | None, list[tuple[Rating, RatingTicket | None]]] = defaultdict(list)
        for row in rows:
            groups[getattr(row[0], attr)].append(row)
        out[key] = [
            {"id": gid, "name": names[attr].get(gid, ""), **_block(group, today, zone)}
            for gid, group in sorted(groups.items(), key=lambda g: (g[0] is None, g[0] or 0))
        ]
    return out


async def _lookup(session: AsyncSession, key: Any, value: Any, ids: set[int]) -> dict[Any, Any]:
    if not ids:
        return {}
    return {k: v for k, v in (await session.execute(select(key, value).where(key.in_(ids)))).all()}


async def _names(
    session: AsyncSession, rows: Sequence[tuple[Rating, RatingTicket | None]]
) -> dict[str, dict[Any, str]]:
    def ids(attr: str) -> set[int]:
        return {v for r, _ in rows if (v := getattr(r, attr)) is not None}

    return {
        "matter_id": await _lookup(session, Matter.id, Matter.name, ids("matter_id")),
        "department_id": await _lookup(
            session, Department.id, Department.name, ids("department_id")
        ),
        "officer_id": await _lookup(session, User.id, User.display_name, ids("officer_id")),
    }


async def rating_rows(
    session: AsyncSession,
    *,
    start: dt.date | dt.datetime,
    end: dt.date | dt.datetime,
    department_id: int | None = None,
    zone: ZoneInfo = SHANGHAI,
) -> list[dict[str, Any]]:
    """One dict per rating of the period, for CSV/XLSX: the applicant's mobile masked, no
    name; labels in zh-CN (the export's language)."""
    rows = await _period(session, start, end, department_id, zone)
    names = await _names(session, rows)
    numbers = await _lookup(session, Case.id, Case.number, {r.case_id for r, _ in rows})
    mobiles = await _lookup(
        session, Applicant.id, Applicant.mobile, {r.applicant_id for r, _ in rows}
    )
    out = []
    for r, t in rows:
        key = level_key(r.level)
        out.append(
            {
                "id": r.id,
                "case": numbers.get(r.case_id, ""),
                "scope": r.scope,
                "rated_at": r.created_at.astimezone(zone).isoformat(timespec="seconds"),
                "level": key,
                "level_label": ZH_LABELS[key],
                "bad": is_bad(r.level),
                "tags": ",".join(r.tags),
                "comment": mask_text(r.comment),
                "matter": names["matter_id"].get(r.matter_id, ""),
                "department": names["department_id"].get(r.department_id, ""),
                "officer": names["officer_id"].get(r.officer_id, ""),
                "applicant_mobile": mask_mobile(mobiles.get(r.applicant_id, "")),
                "status": r.status,
                "ticket_status": t.status if t else "",
                "ticket_deadline": t.deadline.isoformat() if t else "",
                "followed_up": bool(t and t.follow_up_at),
                "fixed_on_time": bool(
                    t and t.fixed_at and _local_day(t.fixed_at, zone) <= t.deadline
                ),
                "rerating": level_key(t.rerating_level) if t and t.rerating_level else "",
            }
        )
    return out
