"""A supervisor takes an officer off duty on the admin page, in Chromium at a desk: one booking
goes to a free colleague, the clashing one is listed without an officer and its applicant
gets one SMS with the manage link."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from server.accounts.service import add_user
from server.app import create_app
from server.appkeys import DB
from server.booking import models as m
from server.settings import Settings
from tests.booking.support import person, seed_catalog
from tests.browser import chromium
from tests.journeys.support import DESK, staff_login

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-1"


async def test_a_supervisor_takes_an_officer_off_duty(
    aiohttp_server: Any, sqlite_settings: Settings, tmp_path: Path
) -> None:
    app = create_app(sqlite_settings)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    ids = {}
    async with app[DB].begin() as session:
        for name, role in (("wang", "inspector"), ("li", "inspector"), ("zhao", "supervisor")):
            user = await add_user(
                session, username=name, password=PASSWORD, role=role, display_name=name
            )
            ids[name] = user.id
    cat = await seed_catalog(app[DB], staff_ids=(ids["wang"], ids["li"]))
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            f"{base}/api/v1/auth/login", json={"username": "zhao", "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {(await r.json())['token']}"}
        booked = []
        for i, (hhmm, who) in enumerate((("10:00", "wang"), ("10:00", "li"), ("11:00", "wang"))):
            body = {
                "matter_id": cat.matter_id,
                "start": cat.iso(hhmm),
                "applicant": person(i),
                "staff_id": ids[who],
            }
            r = await http.post(f"{base}/api/v1/appointments", json=body, headers=headers)
            assert r.status == 201, await r.text()
            booked.append((await r.json())["id"])

    async with chromium() as browser:
        desk = await browser.new_page(**DESK)
        await staff_login(desk, base, "zhao", PASSWORD)
        await desk.goto(base + "/admin/matters#staff")
        row = desk.locator(f'tr[data-staff="{ids["wang"]}"]')
        await row.locator('input[name="active"]').uncheck()
        await row.locator('button[type="submit"]').click()
        await desk.wait_for_selector("#staff-outcome")
        said = await desk.inner_text("#staff-outcome")
        assert "已转交同事 1 个预约，1 个暂无经办人员" in said, said
        listed = await desk.inner_text("#unassigned")
        assert person(0)["name"] in listed and person(2)["name"] not in listed
        assert person(0)["mobile"] not in listed  # masked
        assert "已停用" in await row.inner_text()
        await desk.locator("#staff").screenshot(path=str(tmp_path / "staff-change.png"))

    async with app[DB]() as session:
        told = (
            await session.scalars(
                select(m.OutboxMessage).where(m.OutboxMessage.kind == "booking.staff_change")
            )
        ).all()
        moved = await session.get(m.Appointment, booked[2])
    assert [t.appointment_id for t in told] == [booked[0]]
    assert "/booking/manage/" in told[0].body
    assert moved is not None and moved.staff_id == ids["li"]
