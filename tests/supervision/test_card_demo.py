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
            # the inspection step's own cards (the whole-case clock of the dashboard's
            # history cases may be later than their inspection step)
            select(DeadlineCard.case_id, DeadlineCard.colour).where(DeadlineCard.step == "inspect")
        ):
            worst[case_id] = max(worst.get(case_id, 0), RANK[colour])
    assert clocks
    assert all(RANK[colour] >= worst.get(case_id, 0) for case_id, colour, _ in clocks)
    assert max(used for _, _, used in clocks) > 5


async def test_the_dashboard_shows_the_demos_ratings_and_cards(
    aiohttp_client: Any, sqlite_settings: Any
) -> None:
    """The page's rating and card figures are the domains' own, and the XLSX has their rows."""
    import io
    import re

    import openpyxl

    from server.supervision.dashboard import Period
    from server.supervision.ratings import rating_figures, rating_rows

    client = await aiohttp_client(create_app(sqlite_settings))
    app = client.app
    await seed(app[DB], app[SETTINGS])
    r = await client.post(
        "/api/v1/auth/login", json={"username": "supervisor", "password": "yunkan-super"}
    )
    headers = {"Authorization": f"Bearer {(await r.json())['token']}"}
    page = await (await client.get("/staff/supervision?days=30", headers=headers)).text()
    shown = dict(re.findall(r'data-key="([a-z_]+)" data-value="([^"]*)"', page))
    period = Period.last_days(30, zone=app[SETTINGS].zone, now=dt.datetime.now(dt.UTC))
    start, end = period.bounds()
    async with app[DB]() as session:
        ratings = await rating_figures(
            session, start=start, end=end, today=period.today, zone=period.zone
        )
        rows = await rating_rows(session, start=start, end=end, zone=period.zone)
        cards = await card_figures(session, start=start, end=end)
    overall = ratings["overall"]
    assert overall["total"] > 10 and overall["bad"] >= 1  # the demo has 差评 to show
    assert shown["ratings"] == str(overall["total"]) and shown["bad"] == str(overall["bad"])
    assert float(shown["good_rate"]) == round(overall["good_rate"] * 100, 1)
    assert shown["cards_red"] == str(cards["by_colour"]["red"])
    assert shown["cards_yellow"] == str(cards["by_colour"]["yellow"])
    assert 'id="chart-ratings-rating_levels"' in page and 'id="chart-cards-cards_officers"' in page

    r = await client.get("/staff/supervision/exports/all?days=30&format=xlsx", headers=headers)
    assert r.status == 200, await r.text()
    book = openpyxl.load_workbook(io.BytesIO(await r.read()))
    assert {"好差评", "监察亮牌"} <= set(book.sheetnames)
    assert book["好差评"].max_row - 1 == len(rows)  # a header row, then one per rating
    assert book["监察亮牌"].max_row - 1 == sum(cards["by_colour"].values())
    values = [c.value for row in book["好差评"].iter_rows(min_row=2) for c in row]
    assert not any(isinstance(v, str) and re.fullmatch(r"1[3-9]\d{9}", v) for v in values)
