"""A joint inspection (联合勘验), end to end, through pages only, in Chromium.

An enterprise books a joint fire-safety inspection on a phone and waits; the inspector
starts the video from the day view and admits them; from the case page the inspector makes
an expert of another department (the fire brigade) a party of the case and a supervisor an
observer. Both join through the case page's button: the expert is seen and heard by
everyone and sees and hears the site, the supervisor watches receive-only and is nowhere on
the applicant's screen or record. After the call the inspector records the checklist and
the decision, the case closes, and the exported bundle verifies with ``yunkan verify``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.accounts.service import add_user
from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.booking.models import Department, Matter, StaffQualification
from server.cases.models import Case, CaseEvent, CaseParty
from server.settings import Settings
from signaling.handlers import LIVE_OPTIONS, LiveOptions
from tests.browser import chromium
from tests.journeys.support import (
    DESK,
    PHONE,
    appointment_status,
    appointments,
    book_first_slot,
    end_call,
    export_and_verify,
    join_and_wait,
    phone_login,
    staff_login,
    start_and_admit,
    until,
    video_playing,
)
from tests.support import open_every_day

pytestmark = pytest.mark.browser

MOBILE = "13800138222"


async def _seed(app: Any) -> None:
    async with app[DB].begin() as session:
        wang = await add_user(
            session,
            username="wang",
            password="yunkan-demo-1",
            role="inspector",
            display_name="王勘验",
        )
        zhou = await add_user(
            session,
            username="zhou",
            password="yunkan-demo-4",
            role="inspector",
            display_name="周消防",
        )
        await add_user(
            session,
            username="boss",
            password="yunkan-demo-3",
            role="supervisor",
            display_name="赵监督",
        )
        # The expert's own department and a matter of it that he is qualified for.
        fire = Department(code="xfj", name="消防救援大队")
        session.add(fire)
        await session.flush()
        own = Matter(
            code="fire-check",
            department_id=fire.id,
            name="消防安全检查",
            zone="enterprise",
            kind="inspection",
            active=False,  # not bookable: only its staff matter here
        )
        session.add(own)
        await session.flush()
        session.add(StaffQualification(user_id=zhou.id, matter_id=own.id))
        await open_every_day(
            session,
            staff_ids=(wang.id,),
            code="joint-storage",
            name="危险化学品仓储联合勘验",
            kind="joint_inspection",
            duration_min=30,
            internal_review=False,
            joint_departments=["xfj"],
            checklist=[{"key": "exits", "text": "安全出口"}, {"key": "ext", "text": "灭火器材"}],
        )


async def _has_audio(page: Any, selector: str) -> bool:
    return bool(
        await page.evaluate(
            """(s) => [...document.querySelectorAll(s)].some(v => v.srcObject &&
                 v.srcObject.getAudioTracks().some(t => t.readyState === 'live'))""",
            selector,
        )
    )


async def test_joint_inspection_with_an_expert_and_a_hidden_observer(
    aiohttp_server: Any, sqlite_settings: Settings, tmp_path: Path
) -> None:
    app = create_app(sqlite_settings)
    app[LIVE_OPTIONS] = LiveOptions(grace=5.0, host_addresses=("127.0.0.1",))
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    await _seed(app)

    async with chromium() as browser:
        phone = await (await browser.new_context(**PHONE)).new_page()
        desk_ctx = await browser.new_context(**DESK)
        desk, case_tab = await desk_ctx.new_page(), await desk_ctx.new_page()
        expert = await (await browser.new_context(**DESK)).new_page()
        watcher = await (await browser.new_context(**DESK)).new_page()

        # 1. The enterprise books and waits.
        await phone_login(phone, base, app, MOBILE)
        await phone.goto(base + "/")
        await phone.click(".zone-enterprise")
        await phone.click(".matter >> nth=0 >> a.button.primary")
        join_path = await book_first_slot(
            phone,
            MOBILE,
            {
                "kind": "enterprise",
                "name": "闽江化工仓储有限公司",
                "credit_code": "91350100M000100Y43",
                "contact_name": "林主管",
                "site_address": "马尾区化工园 8 号",
            },
        )
        await join_and_wait(phone, base, join_path)
        (appt,) = await appointments(app)
        case_id = appt.case_id
        assert case_id is not None

        # 2. The inspector admits the enterprise.
        await staff_login(desk, base, "wang", "yunkan-demo-1")
        await start_and_admit(desk, base, appt, app[SETTINGS].zone)
        await phone.wait_for_selector("#call:not([hidden])", timeout=20_000)
        await video_playing(desk, "#tiles video")

        # 3. From the case page: the fire brigade's expert and a supervising observer.
        await case_tab.goto(f"{base}/staff/cases/{case_id}")
        assert "闽江化工仓储有限公司" in await case_tab.inner_text("#case-facts")
        assert "马尾区化工园 8 号" in await case_tab.inner_text("#case-facts")
        for name, role in (("周消防", "expert"), ("赵监督", "observer")):
            await case_tab.click("#procedure details:has(.step-party) summary")
            await case_tab.select_option(".step-party select[name=user_id]", label=name)
            await case_tab.select_option(".step-party select[name=role]", value=role)
            await case_tab.click(".step-party button[type=submit]")
            await case_tab.wait_for_url(re.compile(r".*done=party.*"))
        assert "王勘验 将 周消防 加入办件" in await case_tab.inner_text("#timeline")
        # The list finds the case by the contact person given at booking.
        await case_tab.goto(f"{base}/staff/cases?state=all&q=林主管")
        assert await case_tab.locator(f"tr[data-case='{case_id}']").count() == 1

        # 4. The expert finds the case in his list and joins from the case page.
        await staff_login(expert, base, "zhou", "yunkan-demo-4")
        await expert.goto(base + "/staff/cases")
        await expert.click(f"tr[data-case='{case_id}'] a")
        await expert.click("#watch-live button")
        await expert.wait_for_url(re.compile(r".*/live/j/.+"), timeout=15_000)
        assert not await expert.is_visible("#receive-only")
        # The expert sees and hears the site and the inspector …
        await video_playing(expert, "#tiles video", 2)
        assert await _has_audio(expert, "#tiles video")
        # … and is seen by both of them.
        await video_playing(phone, "#tiles video", 2)
        await video_playing(desk, "#tiles video", 2)
        assert await _has_audio(phone, "#tiles video")

        # 5. The supervisor watches unseen.
        await staff_login(watcher, base, "boss", "yunkan-demo-3")
        await watcher.goto(f"{base}/staff/cases/{case_id}")
        await watcher.click("#watch-live button")
        await watcher.wait_for_url(re.compile(r".*/live/j/.+"), timeout=15_000)
        await watcher.wait_for_selector("#receive-only")
        await video_playing(watcher, "#tiles video", 3)
        await asyncio.sleep(1.0)
        on_phone = await phone.inner_text("#call")
        assert "赵监督" not in on_phone
        assert await phone.locator("#tiles video").count() == 2
        await end_call(desk)
        await until(lambda: _appointment_done(app, appt.id))

        # 6. The decision, and the case closes.
        await desk.goto(f"{base}/staff/cases/{case_id}")
        await desk.check("#checklist-form input[name=result-0][value=ok]")
        await desk.check("#checklist-form input[name=result-1][value=ok]")
        await desk.fill("#checklist-form input[name=note-1]", "周消防：灭火器在有效期内")
        await desk.click("#checklist-form button[type=submit]")
        await desk.wait_for_selector("#checklist-form input[name=result-1][value=ok]:checked")
        await desk.check("#decision-form input[name=outcome][value=pass]")
        await desk.click("#decision-form button[type=submit]")
        await desk.wait_for_selector("#procedure[data-state=decided]")
        await desk.click(".step-close button[type=submit]")
        await desk.wait_for_selector("#procedure[data-state=closed]")

        # The applicant's record has the expert, not the observer.
        await phone.goto(f"{base}/me/cases/{case_id}")
        mine = await phone.inner_text("main")
        assert "已办结" in mine and "赵监督" not in mine

        summary = await export_and_verify(desk, base, case_id, tmp_path)
        assert summary.get("ok", True)

    async with app[DB]() as session:
        parties = {
            (p.principal_id, p.role)
            for p in await session.scalars(select(CaseParty).where(CaseParty.case_id == case_id))
        }
        roles = sorted(role for _, role in parties)
        events = list(
            await session.scalars(
                select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)
            )
        )
        case = await session.get(Case, case_id)
    assert case is not None and case.status == "closed" and case.outcome == "pass"
    assert {"expert", "lead", "observer"} <= set(roles), roles
    joined = {e.data.get("role") for e in events if e.kind == "live.joined"}
    assert {"applicant", "inspector", "expert", "supervisor"} <= joined, joined


async def _appointment_done(app: Any, appointment_id: int) -> bool:
    return await appointment_status(app, appointment_id) == "completed"
