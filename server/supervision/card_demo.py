"""Demo data of deadline supervision: promised days, department heads, a month of cards.

``seed_cards`` gives every demo matter its promised working days (if it has none), makes
the demo ``inspector2`` the head of every department without one, and opens a month of
demo cases (one a day, the last thirty days), some concluded quickly, some late, some
still open. Then it replays the month day by day through the real evaluator
(:func:`evaluate_case` at each past moment), so the cards, their chain events and the
notices are exactly what the background task would have issued (the demo staff have no
mobile numbers: no SMS). Idempotent: it does nothing once a demo case exists.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import User
from server.booking.availability import load_calendar
from server.booking.models import Department, Matter
from server.cases import procedure
from server.cases.access import set_party
from server.cases.models import Case
from server.cases.numbers import open_case
from server.cases.timeline import append_event
from server.i18n import Catalogs
from server.settings import Settings
from server.supervision import deadlines as d
from server.supervision.card_evaluator import Context, evaluate_case

TITLE = "【演示】电子监察"
PROMISED = {"accept": 1, "inspect": 5, "review": 2, "rectify_review": 5, "close": 2, "total": 20}
DURATIONS = (3, 6, 0, 9, 4, 12, 0, 5, 7, 15)
"""Calendar days until each demo case is concluded (0: still open), cycling."""


async def seed_cards(
    session: AsyncSession, settings: Settings, *, now: dt.datetime | None = None, days: int = 30
) -> None:
    if await session.scalar(select(Case.id).where(Case.title.startswith(TITLE)).limit(1)):
        return
    now = now or dt.datetime.now(dt.UTC)
    for matter in await session.scalars(select(Matter)):
        if not matter.promised_days:
            matter.promised_days = dict(PROMISED)
    staff = {u.username: u for u in await session.scalars(select(User))}
    head = staff.get("inspector2")
    for department in await session.scalars(select(Department)):
        if department.head_id is None and head is not None:
            department.head_id = head.id
    leads = [u for name, u in sorted(staff.items()) if name in ("inspector", "inspector2")]
    matters = list(await session.scalars(select(Matter).order_by(Matter.id)))
    if not leads or not matters:
        return
    await session.flush()
    cases: list[tuple[Case, dt.datetime | None]] = []
    for i in range(days):
        matter = matters[i % len(matters)]
        opened = now - dt.timedelta(days=days - i, hours=i % 5)
        case = await open_case(
            session,
            title=f"{TITLE}{i + 1:02d} {matter.name}",
            zone=settings.zone,
            matter_id=matter.id,
            status="scheduled",
            # the evaluator reads the step's start from "at" (the demo's past, not today)
            data={"title": f"{TITLE}{i + 1:02d}", "demo": True, "at": opened.isoformat()},
        )
        case.created_at = case.state_changed_at = opened
        await set_party(session, case.id, "staff", leads[i % len(leads)].id, "lead")
        duration = DURATIONS[i % len(DURATIONS)]
        closes = opened + dt.timedelta(days=duration) if duration else None
        cases.append((case, closes if closes and closes < now else None))
    # Replay the month a day at a time, as the background evaluator would have seen it.
    ctx = Context(settings.zone, d.Rules.of(settings), Catalogs(), settings.default_locale)
    is_working = (await load_calendar(session)).is_working_day
    for k in range(days + 1):
        moment = now - dt.timedelta(days=days - k)
        if k < days and not is_working(moment.astimezone(settings.zone).date()):
            continue  # no clock moves on a day off
        for case, closes in cases:
            if case.created_at > moment or (case.closed_at and case.closed_at < moment):
                continue
            if closes is not None and closes <= moment and case.status != procedure.CLOSED:
                case.status, case.closed_at = procedure.CLOSED, closes
                await append_event(
                    session,
                    case,
                    kind="case.closed",
                    data={"from": "scheduled", "demo": True, "at": closes.isoformat()},
                )
            await evaluate_case(session, case.id, ctx, moment, is_working)
    await session.flush()
