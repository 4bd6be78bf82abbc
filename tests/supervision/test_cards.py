"""The evaluator on real SQLite and PostgreSQL: one card, event, SMS and notice per change,
also with two evaluators (two app instances, as two nodes) at the same moment."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from aiohttp import DummyCookieJar
from sqlalchemy import select, update

from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.cases.models import Case, CaseEvent
from server.cases.timeline import verify_case
from server.supervision.card_evaluator import CLOCK, tick
from server.supervision.cards import card_figures, card_rows
from tests.supervision.support import (
    HEAD_MOBILE,
    LEAD_MOBILE,
    card_events,
    cards,
    notice_count,
    sms,
    world,
)

# day 1, 2 working; day 3 a holiday; then working days (weekends pinned away)
PATTERN = "WWHWWWWWWWWWWWW"


async def test_a_step_turns_warning_yellow_red_once_each(client: Any) -> None:
    app = client.app
    zone = app[SETTINGS].zone
    w = await world(app, pattern=PATTERN)
    assert await tick(app, w.at(zone, 2)) == 0  # 2 of 5 used: green, no card
    assert await tick(app, w.at(zone, 3)) == 0  # the holiday does not count
    assert await tick(app, w.at(zone, 4)) == 0  # 3 of 5
    assert await tick(app, w.at(zone, 5)) == 1  # 4 of 5: warning
    assert await tick(app, w.at(zone, 6)) == 0  # 5 of 5: still the warning
    assert await tick(app, w.at(zone, 7)) == 1  # 6 of 5: yellow
    assert await tick(app, w.at(zone, 8)) == 0  # two days late: yellow still
    assert await tick(app, w.at(zone, 9)) == 1  # three days late: red
    assert await tick(app, w.at(zone, 9, hour=15)) == 0  # nothing changed: nothing sent
    assert await cards(app, w.case_id) == [
        ("inspect", "warning"),
        ("inspect", "yellow"),
        ("inspect", "red"),
    ]
    events = await card_events(app, w.case_id)
    assert [(e["colour"], e["previous"], e["used"]) for e in events] == [
        ("warning", "green", 4),
        ("yellow", "warning", 6),
        ("red", "yellow", 8),
    ]
    messages = await sms(app)
    assert [m for m, _ in messages] == [LEAD_MOBILE, HEAD_MOBILE] * 3
    # one language per text: the staff's (zh-CN by default)
    assert "黄牌" in messages[2][1] and "Yellow" not in messages[2][1]
    assert "红牌" in messages[4][1]
    assert await notice_count(app, w.lead_id) == 3
    assert await notice_count(app, w.head_id) == 3
    async with app[DB]() as session:
        case = await session.get(Case, w.case_id)
        assert case is not None
        assert (await verify_case(session, case)).ok


async def test_two_evaluators_at_once_issue_each_change_once(
    aiohttp_client: Any, client: Any
) -> None:
    first = client.app
    second = (await aiohttp_client(create_app(first[SETTINGS]), cookie_jar=DummyCookieJar())).app
    zone = first[SETTINGS].zone
    w = await world(first, pattern=PATTERN)
    for day in (5, 7, 9):
        now = w.at(zone, day)
        issued = await asyncio.gather(tick(first, now), tick(second, now))
        assert sum(issued) == 1, (day, issued)
    assert [c for _, c in await cards(first, w.case_id)] == ["warning", "yellow", "red"]
    assert len(await card_events(first, w.case_id)) == 3
    assert len(await sms(first)) == 6
    assert await notice_count(first, w.head_id) == 3


async def _login(client: Any, username: str) -> dict[str, str]:
    r = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": "yunkan-test-1"}
    )
    assert r.status == 200, await r.text()
    return {"Authorization": f"Bearer {(await r.json())['token']}"}


async def test_a_suspension_stops_the_clock_and_is_on_the_chain(client: Any) -> None:
    app = client.app
    zone = app[SETTINGS].zone
    w = await world(app, pattern=PATTERN)
    app[CLOCK].pin(w.at(zone, 2))
    boss = await _login(client, "sun")
    lead = await _login(client, "liu")
    url = f"/api/v1/cases/{w.case_id}/suspension"

    r = await client.post(url, json={"reason": "等待申请人补交材料"}, headers=lead)
    assert r.status == 403  # the lead may not stop their own clock
    r = await client.post(url, json={"reason": ""}, headers=boss)
    assert r.status == 400 or r.status == 422
    r = await client.post(url, json={"reason": "等待申请人补交材料"}, headers=boss)
    assert r.status == 201, await r.text()
    r = await client.post(url, json={"reason": "again"}, headers=boss)
    assert r.status == 409 and (await r.json())["error"]["code"] == "clock_suspended"

    assert await tick(app, w.at(zone, 9)) == 0  # a week later: still 2 of 5 used
    r = await client.get(f"/api/v1/cases/{w.case_id}/deadlines", headers=lead)
    body = await r.json()
    assert body["suspended"] is True
    step = body["clocks"][0]
    assert (step["step"], step["used"], step["colour"], step["suspended"]) == (
        "inspect",
        2,
        "green",
        True,
    )

    app[CLOCK].pin(w.at(zone, 9))
    r = await client.post(f"{url}/resume", json={}, headers=boss)
    assert r.status == 200, await r.text()
    r = await client.post(f"{url}/resume", json={}, headers=boss)
    assert r.status == 409 and (await r.json())["error"]["code"] == "clock_running"
    assert await tick(app, w.at(zone, 11)) == 1  # days 10, 11 count again: 4 of 5
    assert await cards(app, w.case_id) == [("inspect", "warning")]
    async with app[DB]() as session:
        kinds = list(
            await session.scalars(
                select(CaseEvent.kind).where(CaseEvent.case_id == w.case_id).order_by(CaseEvent.seq)
            )
        )
    assert kinds[-3:] == ["deadline.suspended", "deadline.resumed", "deadline.card"]


async def test_figures_and_rows_for_the_dashboard(client: Any) -> None:
    app = client.app
    zone = app[SETTINGS].zone
    w = await world(app, pattern=PATTERN)
    other = await world(
        app, promised={"total": 30}, pattern=PATTERN, usernames=("qian", "wu", "zheng")
    )
    for day in (5, 7, 9):
        await tick(app, w.at(zone, day))
    end = w.at(zone, 10)
    async with app[DB].begin() as session:
        await session.execute(
            update(Case)
            .where(Case.id.in_([w.case_id, other.case_id]))
            .values(status="closed", closed_at=end - dt.timedelta(hours=1))
        )
    start = w.at(zone, 0, hour=0)
    async with app[DB]() as session:
        figures = await card_figures(session, start=start, end=end)
        mine = await card_figures(session, start=start, end=end, department_id=w.department_id)
        theirs = await card_figures(
            session, start=start, end=end, department_id=other.department_id
        )
        rows = await card_rows(session, start=start, end=end)
    assert figures["by_colour"] == {"warning": 1, "yellow": 1, "red": 1}
    assert figures["by_department"][0]["name"] == "农业农村局"
    assert figures["by_department"][0]["red"] == 1
    assert figures["by_officer"][0]["name"] == "刘勘验"
    assert (figures["closed"], figures["on_time"], figures["on_time_rate"]) == (2, 1, 0.5)
    assert mine["on_time_rate"] == 0.0 and theirs["on_time_rate"] == 1.0
    assert theirs["by_colour"] == {"warning": 0, "yellow": 0, "red": 0}
    assert [r["colour"] for r in rows] == ["Warning", "Yellow card", "Red card"]
    assert rows[0]["officer"] == "刘勘验" and rows[0]["step"] == "Inspection"
