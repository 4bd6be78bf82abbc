"""Booking pages end to end (server-rendered), the live staff stream, and the demo seed."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.appkeys import DB, SETTINGS
from server.booking import models as m
from server.booking.availability import open_slots
from server.booking.demo import seed
from tests.booking.support import PERSON, officer, seed_app
from tests.support import applicant_headers, staff_headers

Client = TestClient[Any, Any]


async def test_applicant_books_through_the_pages(client: Client) -> None:
    cat = await seed_app(client.app)
    zone = await client.get("/book/citizen")
    assert zone.status == 200 and "咨询" in await zone.text()
    page = await client.get(f"/book/matter/{cat.matter_id}?date={cat.day}")
    text = await page.text()
    assert 'data-start="' + cat.iso("10:00") + '"' in text
    details_url = (
        f"/book/matter/{cat.matter_id}/details?start={cat.iso('10:00').replace('+', '%2B')}"
    )
    anonymous = await client.get(details_url, allow_redirects=False)
    assert anonymous.status == 303 and anonymous.headers["Location"].startswith("/login")
    headers = await applicant_headers(client, PERSON["mobile"])
    form = {**PERSON, "start": cat.iso("10:00"), "mobile": "123"}
    bad = await client.post(details_url, data=form, headers=headers, allow_redirects=False)
    assert bad.status == 422
    assert "请输入中国大陆手机号码" in await bad.text()
    good = await client.post(
        details_url,
        data={**form, "mobile": PERSON["mobile"]},
        headers=headers,
        allow_redirects=False,
    )
    assert good.status == 303, await good.text()
    done_url = good.headers["Location"]
    done = await client.get(done_url)
    done_text = await done.text()
    assert done.status == 200 and "<svg" in done_text and "/join/" in done_text
    aid, token = re.match(r"/book/done/(\d+)\?token=(.+)", done_url).groups()  # type: ignore[union-attr]
    manage = await client.get(f"/booking/manage/{aid}?token={token}&date={cat.day}")
    assert manage.status == 200
    assert f'value="{cat.iso("11:00")}"' in await manage.text()
    moved = await client.post(
        f"/booking/manage/{aid}",
        data={"token": token, "action": "reschedule", "start": cat.iso("11:00")},
        allow_redirects=False,
        headers={"Authorization": headers["Authorization"]},
    )
    assert moved.status == 303
    mine = await client.get("/book/mine", headers=headers)
    assert "11:00" in await mine.text()
    new_token = moved.headers["Location"].split("token=")[1]
    cancelled = await client.post(
        f"/booking/manage/{aid}",
        data={"token": new_token, "action": "cancel"},
        allow_redirects=False,
        headers=headers,
    )
    assert cancelled.status == 303
    final = await client.get(cancelled.headers["Location"])
    assert "已取消" in await final.text()


async def test_video_now_pages(client: Client) -> None:
    cat = await seed_app(client.app)
    assert (await client.get(f"/book/now/{cat.queue_matter_id}")).status == 200
    r = await client.post(
        f"/book/now/{cat.queue_matter_id}",
        data={"name": "王五", "mobile": "13600136000", "id_number": PERSON["id_number"]},
        allow_redirects=False,
        headers={"Authorization": "Bearer none"},
    )
    assert r.status == 303, await r.text()
    ticket = await client.get(r.headers["Location"])
    assert "您排在第 1 位" in await ticket.text()


async def test_staff_day_view_streams_changes(client: Client) -> None:
    staff_id, headers = await officer(client)
    cat = await seed_app(client.app, staff_ids=(staff_id,))
    page = await client.get(f"/staff/day?date={cat.day}", headers=headers)
    assert page.status == 200 and "staff-live" in await page.text()
    stream = await client.get("/staff/day/events", headers=headers)
    first = await asyncio.wait_for(stream.content.readline(), 5)
    assert json.loads(first.decode()[6:]) == {"type": "hello"}
    await client.post(
        "/api/v1/appointments",
        json={"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": PERSON},
        headers=headers,
    )
    line = b""
    while not line.startswith(b"data: "):
        line = await asyncio.wait_for(stream.content.readline(), 5)
    assert json.loads(line.decode()[6:])["event"] == "booked"
    stream.close()
    partial = await client.get(f"/staff/day?date={cat.day}&partial=1", headers=headers)
    assert PERSON["mobile"] in await partial.text()
    assert (await client.get("/staff/day", allow_redirects=False)).status == 303


async def test_admin_editor_pages(client: Client) -> None:
    admin = await staff_headers(client, "boss", "admin")
    clerk = await staff_headers(client, "clerk", "inspector")
    cat = await seed_app(client.app)
    page = await client.get("/admin/matters", headers=admin)
    assert page.status == 200 and "午间错时" in await page.text()
    assert (await client.get("/admin/matters", headers=clerk)).status == 403
    r = await client.post(
        f"/admin/windows/{cat.window_id}/plans",
        data={
            "plan": "1 09:00-10:00 上午\n3 18:00-20:00 延时服务",
            "matter_ids": str(cat.matter_id),
        },
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 303
    bad = await client.post(
        f"/admin/windows/{cat.window_id}/plans", data={"plan": "8 09:00-10:00"}, headers=admin
    )
    assert bad.status == 422
    r = await client.post(
        f"/admin/matters/{cat.matter_id}",
        data={
            "name": "咨询2",
            "duration_min": "20",
            "seats": "4",
            "buffer_min": "0",
            "notice_min": "0",
            "horizon_days": "10",
            "active": "on",
            "checklist": "一\n二",
            "materials": "身份证",
        },
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 303
    r = await client.post(
        "/admin/exceptions",
        data={"day": cat.day.isoformat(), "closed": "on"},
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 303
    r = await client.post(
        "/admin/holidays",
        data={"day": cat.day.isoformat(), "mode": "closed"},
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 303
    async with client.app[DB]() as session:
        dept = (await session.get(m.Matter, cat.matter_id)).department_id  # type: ignore[union-attr]
    r = await client.post(
        "/admin/windows",
        data={"code": "w9", "name": "窗口9", "department_id": str(dept)},
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 303
    dup = await client.post(
        "/admin/windows",
        data={"code": "w9", "name": "x", "department_id": str(dept)},
        headers=admin,
    )
    assert dup.status == 422
    async with client.app[DB]() as session:
        matter = await session.get(m.Matter, cat.matter_id)
        assert matter is not None and matter.seats == 4
        assert [c["text"] for c in matter.checklist] == ["一", "二"]
        plans = await session.scalar(select(func.count()).select_from(m.WorkingPlan))
        assert plans == 2


async def test_demo_seed_is_idempotent_with_free_slots(client: Client) -> None:
    await staff_headers(client, "inspector", "inspector")
    for _ in range(2):
        async with client.app[DB].begin() as session:
            await seed(session, client.app[SETTINGS])
    async with client.app[DB]() as session:
        matters = (await session.scalars(select(m.Matter))).all()
        assert len(matters) == 6
        assert {(x.zone, x.kind) for x in matters} >= {
            ("citizen", "consultation"),
            ("citizen", "joint_inspection"),
            ("enterprise", "inspection"),
            ("enterprise", "joint_inspection"),
            ("enterprise", "consultation"),
        }
        qualified = await session.scalar(select(func.count()).select_from(m.StaffQualification))
        assert qualified == 6
        zone = client.app[SETTINGS].zone
        today = datetime.now(UTC).astimezone(zone).date()
        for matter in matters:
            found = 0
            for i in range(1, 8):
                found += len(
                    await open_slots(
                        session, matter, today + timedelta(days=i), zone, datetime.now(UTC)
                    )
                )
            assert found > 0, matter.code


async def test_admin_sets_which_procedure_steps_a_matter_has(client: Client) -> None:
    admin = await staff_headers(client, "boss", "admin")
    cat = await seed_app(client.app)
    page = await client.get("/admin/matters", headers=admin)
    assert 'name="internal_review"' in await page.text()
    r = await client.post(
        f"/admin/matters/{cat.matter_id}",
        data={
            "name": "种子许可",
            "duration_min": "30",
            "seats": "1",
            "buffer_min": "0",
            "notice_min": "0",
            "horizon_days": "10",
            "active": "on",
            "issues_licence": "on",
            "rectify_days": "7",
        },
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 303
    matter = await (await client.get(f"/api/v1/matters/{cat.matter_id}")).json()
    assert matter["internal_review"] is False and matter["issues_licence"] is True
    assert matter["rectify_days"] == 7 and matter["rectification_allowed"] is False
    r = await client.patch(
        f"/api/v1/admin/matters/{cat.matter_id}",
        json={"internal_review": True, "promised_days": {"inspect": 3, "total": 20}},
        headers=admin,
    )
    assert r.status == 200 and (await r.json())["promised_days"] == {"inspect": 3, "total": 20}
    r = await client.patch(
        f"/api/v1/admin/matters/{cat.matter_id}",
        json={"promised_days": {"whenever": 3}},
        headers=admin,
    )
    assert r.status == 422
