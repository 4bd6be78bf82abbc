"""Video now that holds: service hours with the next opening, one ticket per person per
matter, a leave button, and an ETA from the officers who actually serve."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from server.appkeys import DB
from server.booking import models as m
from server.booking.calendar import HolidayCalendar
from server.booking.present import utcnow
from server.booking.service_hours import next_opening
from tests.booking.support import SH, person, seed_app
from tests.support import create_staff

Client = TestClient[Any, Any]


def test_next_opening() -> None:
    cal = HolidayCalendar({date(2026, 12, 7): (False, "closed")})
    hours = "09:00-12:00,13:30-17:00"
    at = lambda d, hh, mm: datetime(2026, 12, d, hh, mm, tzinfo=SH)  # noqa: E731
    assert next_opening(hours, cal, at(2, 10, 0), SH) is None  # a Wednesday, open
    assert next_opening(hours, cal, at(2, 4, 15), SH) == at(2, 9, 0)
    assert next_opening(hours, cal, at(2, 12, 30), SH) == at(2, 13, 30)
    assert next_opening(hours, cal, at(4, 18, 0), SH) == at(8, 9, 0)  # Fri → (Mon closed) Tue
    assert next_opening("", cal, at(2, 4, 15), SH) is None  # no hours: always open


async def test_hours_one_ticket_leave_and_eta(browser: Client) -> None:
    client = browser  # keeps cookies: the leave form carries its CSRF token
    cat = await seed_app(client.app)
    now = utcnow().astimezone(SH)
    closed_now = f"{(now + timedelta(hours=2)):%H}:00-{(now + timedelta(hours=2)):%H}:59"
    async with client.app[DB].begin() as session:
        await session.execute(
            update(m.Matter)
            .where(m.Matter.id == cat.queue_matter_id)
            .values(video_now_hours=closed_now)
        )
    body = {"matter_id": cat.queue_matter_id, "applicant": person(1)}
    refused = await client.post("/api/v1/queue", json=body)
    if (now + timedelta(hours=2)).date() == now.date():  # not across midnight
        assert refused.status == 409, await refused.text()
        error = (await refused.json())["error"]
        assert error["code"] == "video_now_closed" and "开放" in error["message"]
        page = await (await client.get(f"/book/now/{cat.queue_matter_id}")).text()
        assert "video-now-closed" in page and f"/book/matter/{cat.queue_matter_id}" in page
    async with client.app[DB].begin() as session:
        await session.execute(
            update(m.Matter).where(m.Matter.id == cat.queue_matter_id).values(video_now_hours="")
        )
    # ETA: one inspector serves; the admin and supervisor qualified beside them do not.
    inspector = await create_staff(client, "clerk", "inspector")
    admin = await create_staff(client, "boss", "admin")
    supervisor = await create_staff(client, "sup", "supervisor")
    async with client.app[DB].begin() as session:
        for user in (inspector, admin, supervisor):
            session.add(m.StaffQualification(user_id=user, matter_id=cat.queue_matter_id))
    tickets = []
    for i in range(3):
        r = await client.post(
            "/api/v1/queue", json={"matter_id": cat.queue_matter_id, "applicant": person(i)}
        )
        assert r.status == 201, await r.text()
        tickets.append(await r.json())
    assert [t["eta_minutes"] for t in tickets] == [0, 20, 40]  # 20-minute matter, one server
    twice = await client.post("/api/v1/queue", json=body)
    assert twice.status == 409 and (await twice.json())["error"]["code"] == "already_queued"

    token = tickets[0]["ticket"]
    page = await (await client.get(f"/book/queue/{token}")).text()
    assert 'id="leave-queue"' in page and "退出排队" in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    left = await client.post(
        f"/book/queue/{token}/leave", data={"csrf_token": csrf.group(1)}, allow_redirects=False
    )
    assert left.status == 303
    assert 'id="leave-queue"' not in await (await client.get(f"/book/queue/{token}")).text()
    second = await (await client.get(f"/api/v1/queue/{tickets[1]['ticket']}")).json()
    assert second["position"] == 1
    again = await client.post("/api/v1/queue", json=body)  # person(1) still holds a ticket
    assert again.status == 409
    back = await client.post(
        "/api/v1/queue", json={"matter_id": cat.queue_matter_id, "applicant": person(0)}
    )
    assert back.status == 201  # who left may queue again


async def test_the_hall_display_calls_numbers(client: Client) -> None:
    cat = await seed_app(client.app)
    clerk = await create_staff(client, "clerk", "inspector")
    async with client.app[DB].begin() as session:
        session.add(m.StaffQualification(user_id=clerk, matter_id=cat.queue_matter_id))
    tickets = []
    for i in range(2):
        r = await client.post(
            "/api/v1/queue", json={"matter_id": cat.queue_matter_id, "applicant": person(i)}
        )
        tickets.append(await r.json())
    login = await client.post(
        "/api/v1/auth/login", json={"username": "clerk", "password": "correct-horse-1"}
    )
    headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
    served = await client.post("/api/v1/queue/next", json={}, headers=headers)
    assert served.status == 200, await served.text()
    hall = await (await client.get("/hall")).text()
    first, second = (f"{t['id']:04d}" for t in tickets)
    assert f'data-number="{first}"' in hall and f'data-number="{second}"' not in hall
    assert "等候 1 人" in hall and "正在呼叫" in hall
    assert person(0)["name"] not in hall  # numbers only on a public screen
    ticket = await (await client.get(f"/book/queue/{tickets[1]['ticket']}")).text()
    assert f"<b>{second}</b>" in ticket
