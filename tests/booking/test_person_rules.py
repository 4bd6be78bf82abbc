"""Rules per person, per matter: a cap on open bookings and a block after no-shows,
with the reason and its end in the refusal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from server.appkeys import DB
from server.booking import models as m
from server.booking.present import utcnow
from tests.booking.support import PERSON, SH, seed_app, token_of
from tests.support import staff_headers

Client = TestClient[Any, Any]


async def test_open_bookings_are_capped_and_no_shows_block(client: Client) -> None:
    headers = {**await staff_headers(client), "Accept-Language": "zh-CN"}
    cat = await seed_app(client.app)
    async with client.app[DB].begin() as session:
        await session.execute(
            update(m.Matter).where(m.Matter.id == cat.matter_id).values(max_open_bookings=2)
        )

    async def book(hhmm: str) -> Any:
        body = {"matter_id": cat.matter_id, "start": cat.iso(hhmm), "applicant": PERSON}
        return await client.post("/api/v1/appointments", json=body, headers=headers)

    first, second = await book("09:00"), await book("10:00")
    assert first.status == second.status == 201
    third = await book("11:00")
    assert third.status == 409
    error = (await third.json())["error"]
    assert error["code"] == "booking_limit"
    assert error["message"] == "您已持有该事项 2 个未办结预约，已达上限"
    # Another matter has its own cap; cancelling frees a place in this one.
    other = {
        "matter_id": cat.small_matter_id,
        "start": cat.iso("11:00"),
        "applicant": PERSON,
        "site_address": "某县工业园 3 号",
    }
    assert (await client.post("/api/v1/appointments", json=other, headers=headers)).status == 201
    booked = await first.json()
    cancel = await client.post(
        f"/api/v1/appointments/{booked['id']}/cancel",
        json={"token": token_of(booked["manage_url"])},
    )
    assert cancel.status == 200, await cancel.text()
    assert (await book("12:00")).status == 201

    # Three no-shows within 90 days (the default policy): blocked for 30 days from the last.
    last = utcnow() - timedelta(days=5)
    async with client.app[DB].begin() as session:
        rows = (await session.scalars(select_live(cat.matter_id))).all()
        for i, appt in enumerate(rows[:3]):
            appt.status = "no_show"
            appt.starts_at = last - timedelta(days=10 * i)
            appt.ends_at = appt.starts_at + timedelta(minutes=30)
    blocked = await book("15:00")
    assert blocked.status == 403, await blocked.text()
    error = (await blocked.json())["error"]
    until = (last + timedelta(days=30)).astimezone(SH).strftime("%Y-%m-%d")
    assert error["code"] == "booking_blocked"
    assert error["message"] == f"您在 90 天内爽约 3 次，{until} 前暂停预约"
    async with client.app[DB].begin() as session:  # an older no-show falls out of the window
        await session.execute(
            update(m.Appointment)
            .where(m.Appointment.status == "no_show", m.Appointment.starts_at < last)
            .values(starts_at=utcnow() - timedelta(days=200))
        )
    assert (await book("15:00")).status == 201


def select_live(matter_id: int) -> Any:
    from sqlalchemy import select

    return select(m.Appointment).where(m.Appointment.status == "booked").order_by(m.Appointment.id)
