"""The supervisor's live wall, end to end in Chromium: a citizen's video consultation is
running (phone + clerk, as in the consultation journey); the supervisor opens the wall,
sees the call with its matter, people, duration and network, clicks "watch silently" and
receives the media, while the applicant's phone shows no supervisor tile and no name. When
the call ends, the watch is on the case chain as one ``live.watched`` event (from, to)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.accounts.service import add_user
from server.app import create_app
from server.appkeys import DB
from server.cases.models import CaseEvent
from server.settings import Settings
from server.supervision.models import VideoSession
from signaling.handlers import LIVE_OPTIONS, LiveOptions
from tests.browser import chromium
from tests.journeys.support import (
    DESK,
    PHONE,
    consultation_in_call,
    end_call,
    seed_consultation_desk,
    staff_login,
    until,
    video_playing,
)

pytestmark = pytest.mark.browser

MOBILE = "13800138444"
SUPERVISOR = "督查周敏"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def _seed(app: Any) -> None:
    async with app[DB].begin() as session:
        await seed_consultation_desk(session)
        await add_user(
            session,
            username="zhou",
            password="yunkan-super-1",
            role="supervisor",
            display_name=SUPERVISOR,
        )


async def _events(app: Any, case_id: int, kind: str) -> list[CaseEvent]:
    async with app[DB]() as session:
        return list(
            await session.scalars(
                select(CaseEvent)
                .where(CaseEvent.case_id == case_id, CaseEvent.kind == kind)
                .order_by(CaseEvent.seq)
            )
        )


async def test_supervisor_watches_a_live_call_from_the_wall_unseen(
    aiohttp_server: Any, sqlite_settings: Settings, tmp_path: Path
) -> None:
    app = create_app(sqlite_settings)
    app[LIVE_OPTIONS] = LiveOptions(grace=5.0, host_addresses=("127.0.0.1",))
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    await _seed(app)

    async with chromium() as browser:
        phone = await (await browser.new_context(**PHONE)).new_page()
        desk = await (await browser.new_context(**DESK)).new_page()
        boss = await (await browser.new_context(**DESK)).new_page()

        appt = await consultation_in_call(phone, desk, base, app, MOBILE, "林晓梅")
        case_id = appt.case_id
        assert case_id is not None

        # The wall: the call with its matter, applicant, people; network after a refresh.
        await staff_login(boss, base, "zhou", "yunkan-super-1")
        await boss.click("#to-live-wall")
        tile = boss.locator(f".wall-tile[data-room='appt-{appt.id}']")
        await tile.wait_for()
        assert "住房公积金提取咨询" in await tile.inner_text()
        assert "林晓梅" in await tile.locator(".wall-applicant").inner_text()
        assert "陈窗口" in await tile.locator(".wall-people").inner_text()
        await boss.wait_for_function(
            "() => /kbps/.test(document.querySelector('.wall-quality').textContent)",
            timeout=20_000,
        )
        assert "%" in await tile.locator(".wall-quality").inner_text()
        await boss.screenshot(path=str(SHOTS / "supervision-live-wall.png"))

        # Watch silently: hidden, receive-only, media arrives.
        await tile.locator("form.watch button").click()
        await boss.wait_for_url("**/live/j/**", timeout=15_000)
        await boss.wait_for_selector("#receive-only")
        await video_playing(boss, "#tiles video", count=2)  # the applicant and the clerk
        joined = await _events(app, case_id, "live.joined")
        assert any(
            e.data.get("role") == "supervisor" and e.actor_name == SUPERVISOR for e in joined
        )
        await asyncio.sleep(1.0)  # time for any presence or offer to reach the phone
        assert await phone.locator("#tiles .tile").count() == 1  # the clerk's, nobody else's
        assert SUPERVISOR not in await phone.inner_text("body")
        await phone.screenshot(path=str(tmp_path / "phone-while-watched.png"))

        await end_call(desk)
        await until(lambda: _ended(app, f"appt-{appt.id}"))
        await until(lambda: _has_watch(app, case_id))
        # Staff read the watch on the case's timeline; the applicant's page does not show it.
        await boss.goto(f"{base}/staff/cases/{case_id}")
        assert f"{SUPERVISOR} 监看，自" in await boss.inner_text("main")
        await phone.goto(f"{base}/me/cases/{case_id}")
        assert SUPERVISOR not in await phone.inner_text("main")

    (watch,) = await _events(app, case_id, "live.watched")
    assert watch.actor_name == SUPERVISOR and watch.data["role"] == "supervisor"
    start = dt.datetime.fromisoformat(watch.data["from"])
    end = dt.datetime.fromisoformat(watch.data["to"])
    assert start <= end and abs(watch.data["seconds"] - (end - start).total_seconds()) <= 1
    (ended,) = await _events(app, case_id, "live.ended")
    assert ended.seq < watch.seq  # the room's end ended the watch
    async with app[DB]() as session:
        vs = await session.scalar(
            select(VideoSession).where(VideoSession.room == f"appt-{appt.id}")
        )
        assert vs is not None and vs.ended_at is not None and vs.ended_by == "end"


async def _ended(app: Any, room: str) -> bool:
    async with app[DB]() as session:
        vs = await session.scalar(select(VideoSession).where(VideoSession.room == room))
        return vs is not None and vs.ended_at is not None


async def _has_watch(app: Any, case_id: int) -> bool:
    return bool(await _events(app, case_id, "live.watched"))
