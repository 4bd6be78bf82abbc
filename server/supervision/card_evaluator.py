"""The deadline evaluator: every open case's clocks, and a card for each change of colour.

It runs in every process with the background tasks (like the booking scheduler) and from
``yunkan supervision tick [--now ISO]``; tests call :func:`evaluate` with an explicit
``now``, or set :data:`CLOCK` on the app so that the pages and the suspension forms use
the same driven clock.

One transaction per case: the clocks are upserted; a colour higher than any card of the
run inserts a :class:`DeadlineCard` (unique per run and colour, so with two evaluators
at once exactly one inserts it), and only that inserter appends the ``deadline.card``
event to the case chain, writes the SMS to the outbox and the in-app notices for the
case's lead and the department head. Rows are always touched in the same order
(clocks, then the card, then the case row through ``append_event``), so two evaluators
wait for each other instead of deadlocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import User
from server.appkeys import CATALOGS, DB, SETTINGS
from server.booking import outbox
from server.booking.availability import load_calendar
from server.booking.leads import lead_of
from server.booking.models import Department, Matter
from server.cases import procedure
from server.cases.models import Case, CaseEvent
from server.cases.timeline import append_event
from server.i18n import Catalogs
from server.supervision import deadlines as d
from server.supervision.card_models import DeadlineCard, DeadlineClock, StaffNotice

log = logging.getLogger("yunkan.supervision.evaluator")

SMS_KIND = "supervision.card"
NOTICE_KIND = "deadline.card"
SMS_TEXT = (
    "[Yunkan] Deadline supervision: case %(number)s, %(step)s: %(card)s, "
    "%(used)s of %(promised)s working days used."
)


def real_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class SupervisionClock:
    """The evaluator's and the suspension forms' clock: the real one unless pinned.

    Tests pin it (``app[CLOCK].pin(t)``) to move time forward without sleeping; nothing
    in production pins it (``yunkan supervision tick --now`` passes its time directly).
    """

    pinned: dt.datetime | None = None

    def now(self) -> dt.datetime:
        return self.pinned or real_now()

    def pin(self, when: dt.datetime | None) -> None:
        self.pinned = when


CLOCK = web.AppKey("deadline_clock", SupervisionClock)


def clock_now(app: web.Application) -> dt.datetime:
    clock = app.get(CLOCK)
    return clock.now() if clock is not None else real_now()


@dataclass(frozen=True, slots=True)
class Context:
    zone: ZoneInfo
    rules: d.Rules
    catalogs: Catalogs
    locale: str
    """Staff accounts keep no language: their SMS is in the agency's default (zh-CN)."""


def _insert(session: AsyncSession) -> type[postgresql.Insert] | type[sqlite.Insert]:
    dialect = session.get_bind().dialect.name
    return postgresql.Insert if dialect == "postgresql" else sqlite.Insert


async def evaluate(db: async_sessionmaker[AsyncSession], ctx: Context, now: dt.datetime) -> int:
    """One pass over every case with a running clock; the number of cards issued."""
    async with db() as session:
        running = select(DeadlineClock.case_id).where(DeadlineClock.open.is_(True))
        case_ids = list(
            await session.scalars(
                select(Case.id)
                .where(
                    or_(
                        Case.status.in_(sorted(procedure.OPEN)),
                        Case.id.in_(running),
                    )
                )
                .order_by(Case.id)
            )
        )
        calendar = await load_calendar(session)
    issued = 0
    for case_id in case_ids:
        async with db.begin() as session:
            issued += await evaluate_case(session, case_id, ctx, now, calendar.is_working_day)
    return issued


async def evaluate_case(
    session: AsyncSession,
    case_id: int,
    ctx: Context,
    now: dt.datetime,
    is_working: d.IsWorking,
) -> int:
    """The clocks of one case at ``now``, in the caller's transaction; cards issued."""
    case = await session.get(Case, case_id)
    if case is None:
        return 0
    matter = await session.get(Matter, case.matter_id) if case.matter_id else None
    promised = {k: int(v) for k, v in ((matter.promised_days if matter else None) or {}).items()}
    events = (
        await session.execute(
            select(CaseEvent.kind, CaseEvent.seq, CaseEvent.data, CaseEvent.created_at)
            .where(CaseEvent.case_id == case_id)
            .order_by(CaseEvent.seq)
        )
    ).all()
    story = d.read_timeline(events, case.status, case.created_at)
    runs: list[tuple[d.Run, int]] = []
    if procedure.is_open(case):
        if story.current is not None and promised.get(story.current.step, 0) > 0:
            runs.append((story.current, promised[story.current.step]))
        if promised.get(d.TOTAL, 0) > 0:
            runs.append((story.total, promised[d.TOTAL]))
    keep = [(r.step, r.run) for r, _ in runs]
    stale = update(DeadlineClock).where(
        DeadlineClock.case_id == case_id, DeadlineClock.open.is_(True)
    )
    if keep:
        stale = stale.where(tuple_(DeadlineClock.step, DeadlineClock.run).not_in(keep))
    await session.execute(stale.values(open=False).execution_options(synchronize_session=False))
    cards = (
        await session.execute(
            select(DeadlineCard.step, DeadlineCard.run, DeadlineCard.colour).where(
                DeadlineCard.case_id == case_id
            )
        )
    ).all()
    issued = 0
    for run, days in runs:
        yellow_before = any(
            c.colour in (d.YELLOW, d.RED)
            and c.step != d.TOTAL
            and (c.step, c.run) != (run.step, run.run)
            for c in cards
        )
        clock = d.clock_of(
            run,
            days,
            story,
            now=now,
            zone=ctx.zone,
            is_working=is_working,
            rules=ctx.rules,
            yellow_before=yellow_before,
        )
        await _save_clock(session, case_id, clock, now)
        reached = max(
            (d.RANK[c.colour] for c in cards if (c.step, c.run) == (run.step, run.run)),
            default=0,
        )
        if d.RANK[clock.colour] > reached:
            previous = d.COLOURS[reached]
            if await _issue(session, case, matter, clock, previous, ctx, now):
                issued += 1
    return issued


async def _save_clock(
    session: AsyncSession, case_id: int, clock: d.Clock, now: dt.datetime
) -> None:
    values = {
        "promised": clock.promised,
        "used": clock.used,
        "due": clock.due,
        "colour": clock.colour,
        "suspended": clock.suspended,
        "open": True,
        "evaluated_at": now,
    }
    insert = _insert(session)(DeadlineClock).values(
        case_id=case_id, step=clock.step, run=clock.run, started_at=clock.started_at, **values
    )
    await session.execute(
        insert.on_conflict_do_update(index_elements=["case_id", "step", "run"], set_=values)
    )


async def _issue(
    session: AsyncSession,
    case: Case,
    matter: Matter | None,
    clock: d.Clock,
    previous: str,
    ctx: Context,
    now: dt.datetime,
) -> bool:
    """Insert the card; if this evaluator won it, its event, SMS and notices."""
    officer = await lead_of(session, case.id)
    department = await session.get(Department, matter.department_id) if matter else None
    insert = (
        _insert(session)(DeadlineCard)
        .values(
            case_id=case.id,
            step=clock.step,
            run=clock.run,
            colour=clock.colour,
            previous=previous,
            department_id=department.id if department else None,
            officer_id=officer,
            promised=clock.promised,
            used=clock.used,
            due=clock.due,
            issued_at=now,
        )
        .on_conflict_do_nothing()
        .returning(DeadlineCard.id)
    )
    card_id = (await session.execute(insert)).scalar_one_or_none()
    if card_id is None:
        return False  # another evaluator issued this change
    data = {
        "card_id": card_id,
        "step": clock.step,
        "run": clock.run,
        "colour": clock.colour,
        "previous": previous,
        "used": clock.used,
        "promised": clock.promised,
        "due": clock.due.isoformat() if clock.due else None,
        "officer_id": officer,
        "department_id": department.id if department else None,
        "at": now.isoformat(),
    }
    event = await append_event(session, case, kind=d.CARD, data=data)
    await session.execute(
        update(DeadlineCard)
        .where(DeadlineCard.id == card_id)
        .values(event_seq=event.seq)
        .execution_options(synchronize_session=False)
    )
    recipients = [u for u in (officer, department.head_id if department else None) if u]
    for user_id in dict.fromkeys(recipients):
        await _tell(session, user_id, case, card_id, data, ctx, now)
    log.info("case %s %s: %s card", case.number, clock.step, clock.colour)
    return True


async def _tell(
    session: AsyncSession,
    user_id: int,
    case: Case,
    card_id: int,
    data: dict[str, object],
    ctx: Context,
    now: dt.datetime,
) -> None:
    user = await session.get(User, user_id)
    if user is None or not user.active:
        return
    notice = {**data, "number": case.number, "title": case.title}
    await session.execute(
        _insert(session)(StaffNotice)
        .values(
            user_id=user_id,
            case_id=case.id,
            card_id=card_id,
            kind=NOTICE_KIND,
            data=notice,
            created_at=now,
        )
        .on_conflict_do_nothing()
    )
    if not user.mobile:
        return
    text = ctx.catalogs.get(ctx.locale).gettext
    body = text(SMS_TEXT) % {
        "number": case.number,
        "step": text(d.STEP_LABELS[str(data["step"])]),
        "card": text(d.COLOUR_LABELS[str(data["colour"])]),
        "used": data["used"],
        "promised": data["promised"],
    }
    await outbox.enqueue(
        session,
        key=f"deadline-card:{card_id}:{user_id}",
        kind=SMS_KIND,
        mobile=user.mobile,
        body=body,
        now=now,
    )


def context_of(app: web.Application) -> Context:
    settings = app[SETTINGS]
    return Context(settings.zone, d.Rules.of(settings), app[CATALOGS], settings.default_locale)


async def tick(app: web.Application, now: dt.datetime | None = None) -> int:
    """One pass at ``now`` (default: the app's clock); the number of cards issued."""
    return await evaluate(app[DB], context_of(app), now or clock_now(app))


async def _loop(app: web.Application, interval: float) -> None:
    while True:
        try:
            await tick(app)
        except Exception:  # keep the loop alive through a database restart
            log.exception("deadline evaluator pass failed")
        await asyncio.sleep(interval)


async def evaluator_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    task = None
    if settings.background_tasks and settings.deadline_check_s > 0:
        task = asyncio.create_task(
            _loop(app, float(settings.deadline_check_s)), name="deadline-evaluator"
        )
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
