"""A month of demo ratings for the dashboard: ``seed_demo_ratings`` rates given cases.

Called by the demo seed once it has cases (the dashboard's demo history). The ratings go
through the domain (:func:`server.supervision.ratings.rate`), so each is on its case's
chain and every 差评 opens its ticket; then their days are set back over the last 30 days
(the chain events keep the time the demo was seeded). Deterministic (a fixed seed) and
idempotent: a case already rated by the demo is left alone.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Applicant, User
from server.accounts.principal import Principal
from server.booking.models import Department, Matter
from server.cases.models import Case
from server.supervision import tickets
from server.supervision.rating_models import Rating, RatingTicket
from server.supervision.ratings import SHANGHAI, TAGS, Given, applicant_principal, rate

WEIGHTS = {5: 62, 4: 24, 3: 8, 2: 4, 1: 2}
"""About 94 % 好评, as the seeds' centres report."""
GOOD_TAGS = ["friendly", "efficient", "clear", "video_ok"]
BAD_TAGS = ["slow", "unclear", "attitude", "video_bad", "repeat"]
COMMENTS = {5: "很方便，不用跑腿", 4: "", 3: "还可以", 2: "等候时间有点长", 1: "视频总是卡顿"}


async def seed_demo_ratings(
    session: AsyncSession,
    *,
    cases: Sequence[Case],
    today: dt.date | None = None,
    head: User | None = None,
    zone: ZoneInfo = SHANGHAI,
    seed: int = 17,
) -> int:
    """Rate each of ``cases`` that has an applicant (一事一评; one in three also for its
    session), spread over the 30 days before ``today``; most 差评 tickets are followed up
    and fixed, a few are left open or overdue. ``head`` becomes the head of departments
    that have none. The number of ratings written."""
    today = today or dt.datetime.now(zone).date()
    pick = random.Random(seed)
    if head is not None:
        for department in await session.scalars(select(Department)):
            department.head_id = department.head_id or head.id
        await session.flush()
    written = 0
    for case in cases:
        if case.applicant_id is None:
            continue
        if await session.scalar(select(Rating.id).where(Rating.case_id == case.id).limit(1)):
            continue
        applicant = await session.get(Applicant, case.applicant_id)
        if applicant is None:
            continue
        rater = applicant_principal(case, applicant)
        day = today - dt.timedelta(days=pick.randrange(0, 30))
        scopes = [("case", "")] + ([("session", f"case-{case.id}")] if pick.random() < 0.33 else [])
        for scope, ref in scopes:
            level = pick.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
            tags = pick.sample(GOOD_TAGS if level >= 3 else BAD_TAGS, k=pick.randrange(0, 3))
            given = Given(level, tuple(sorted(t for t in tags if t in TAGS)), COMMENTS[level])
            rating, _ = await rate(
                session, case, rater, given, scope=scope, session_ref=ref, today=day
            )
            at = dt.datetime.combine(day, dt.time(pick.randrange(9, 17), pick.randrange(60)), zone)
            rating.created_at = rating.updated_at = at
            written += 1
            await _settle(session, rating, at, pick, today, zone)
    await session.flush()
    return written


async def _settle(
    session: AsyncSession,
    rating: Rating,
    at: dt.datetime,
    pick: random.Random,
    today: dt.date,
    zone: ZoneInfo,
) -> None:
    """Work a demo 差评 ticket the way a department would, mostly in time."""
    ticket = await session.scalar(select(RatingTicket).where(RatingTicket.rating_id == rating.id))
    if ticket is None:
        return
    ticket.created_at = at
    head = await session.get(User, ticket.assignee_id) if ticket.assignee_id else None
    if head is None or pick.random() < 0.15:
        return  # left open: unassigned, or not yet called back
    actor = Principal("staff", head.id, head.role, head.display_name)
    await tickets.follow_up(session, ticket, actor, reached=pick.random() < 0.9, note="已电话回访")
    ticket.follow_up_at = at + dt.timedelta(days=1)
    if pick.random() < 0.2:
        return
    matter = await session.get(Matter, rating.matter_id) if rating.matter_id else None
    note = f"已针对“{matter.name if matter else '本事项'}”的问题整改"
    await tickets.fix(session, ticket, actor, note=note, zone=zone)
    late = pick.random() < 0.1
    fixed = ticket.deadline + dt.timedelta(days=2) if late else at.date() + dt.timedelta(days=3)
    ticket.fixed_at = dt.datetime.combine(min(fixed, today), dt.time(16, 0), zone)
