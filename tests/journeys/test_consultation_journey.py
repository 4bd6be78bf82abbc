"""A citizen's video consultation (惠民, 线上面对面), end to end, through pages only, in Chromium.

A citizen books a housing-fund consultation on the phone, joins on time and waits; the
clerk starts the video from the day view and admits her; they see and hear each other; the
clerk ends the call and the case closes by itself — a consultation has no checklist, no
decision and no documents. The phone's "My case" page says so in plain words, and the
exported bundle verifies with ``yunkan verify``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.app import create_app
from server.appkeys import DB
from server.cases.models import Case, CaseEvent
from server.letters.models import Letter
from server.settings import Settings
from signaling.handlers import LIVE_OPTIONS, LiveOptions
from tests.browser import chromium
from tests.journeys.support import (
    DESK,
    PHONE,
    appointment_status,
    consultation_in_call,
    end_call,
    export_and_verify,
    seed_consultation_desk,
    until,
)

pytestmark = pytest.mark.browser

MOBILE = "13800138333"


async def _seed(app: Any) -> None:
    async with app[DB].begin() as session:
        await seed_consultation_desk(session)


async def _closed(app: Any, case_id: int) -> bool:
    async with app[DB]() as session:
        case = await session.get(Case, case_id)
        return case is not None and case.status == "closed"


async def test_citizen_consultation_booked_served_and_closed(
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

        appt = await consultation_in_call(phone, desk, base, app, MOBILE, "林晓梅")
        case_id = appt.case_id
        assert case_id is not None
        async with app[DB]() as session:
            case = await session.get(Case, case_id)
            assert case is not None and case.status == "in_session"
        await asyncio.sleep(1.0)
        await end_call(desk)
        await until(lambda: _completed(app, appt.id))
        await until(lambda: _closed(app, case_id))

        await phone.goto(f"{base}/me/cases/{case_id}")
        procedure = await phone.inner_text("#procedure")
        assert "已办结" in procedure and "办件已办结" in procedure
        assert await phone.locator("#letters li[data-letter]").count() == 0
        assert await phone.locator("#rectification-form").count() == 0
        assert "住房公积金提取咨询" in await phone.inner_text("#case-facts")

        await desk.goto(f"{base}/staff/cases/{case_id}")
        assert await desk.locator("#letters li[data-letter]").count() == 0
        assert await desk.locator("#procedure form.step").count() == 0  # nothing left to do
        await export_and_verify(desk, base, case_id, tmp_path)

    async with app[DB]() as session:
        letters = list(await session.scalars(select(Letter).where(Letter.case_id == case_id)))
        moves = [
            e.kind
            for e in await session.scalars(
                select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)
            )
            if e.kind.startswith("case.")
        ]
    assert letters == []
    assert moves == ["case.opened", "case.in_session", "case.closed"], moves


async def _completed(app: Any, appointment_id: int) -> bool:
    return await appointment_status(app, appointment_id) == "completed"
