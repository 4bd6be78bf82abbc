"""The demo's month of cards: figures for the dashboard, consistent with the evaluator."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.demo import seed
from server.supervision.card_evaluator import tick
from server.supervision.card_models import DeadlineCard, DeadlineClock
from server.supervision.cards import card_figures, card_rows
from server.supervision.deadlines import RANK


async def _count(app: Any) -> int:
    async with app[DB]() as session:
        return int(await session.scalar(select(func.count()).select_from(DeadlineCard)) or 0)


async def test_a_month_of_cards_is_seeded_once(aiohttp_client: Any, sqlite_settings: Any) -> None:
    # SQLite only: the evaluator's SQL runs on PostgreSQL in test_cards.py; this is about
    # the demo's history, and replaying a month takes a while
    app = (await aiohttp_client(create_app(sqlite_settings))).app
    await seed(app[DB], app[SETTINGS])
    seeded = await _count(app)
    assert seeded > 10
    await seed(app[DB], app[SETTINGS])  # idempotent
    assert await _count(app) == seeded
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    async with app[DB]() as session:
        figures = await card_figures(session, start=end - dt.timedelta(days=31), end=end)
        rows = await card_rows(session, start=end - dt.timedelta(days=31), end=end)
    assert figures["by_colour"]["red"] >= 1 and figures["by_colour"]["yellow"] >= 1
    assert len(rows) == sum(figures["by_colour"].values()) == seeded
    assert 0 < figures["on_time_rate"] < 1
    assert {e["name"] for e in figures["by_officer"]} == {"勘验员 李明", "勘验员 王芳"}
    # the evaluator reads the demo's past (the steps started weeks ago, not today): every
    # open inspection clock is at least as late as the cards its run already has
    await tick(app)
    async with app[DB]() as session:
        clocks = (
            await session.execute(
                select(DeadlineClock.case_id, DeadlineClock.colour, DeadlineClock.used).where(
                    DeadlineClock.step == "inspect", DeadlineClock.open.is_(True)
                )
            )
        ).all()
        worst: dict[int, int] = {}
        for case_id, colour in await session.execute(
            select(DeadlineCard.case_id, DeadlineCard.colour)
        ):
            worst[case_id] = max(worst.get(case_id, 0), RANK[colour])
    assert clocks
    assert all(RANK[colour] >= worst.get(case_id, 0) for case_id, colour, _ in clocks)
    assert max(used for _, _, used in clocks) > 5
