"""The confirmation SMS goes through the transactional outbox, like reminders and
cancellations: written with the booking, sent by the worker, never inline in the request."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.accounts.models import SmsMessage
from server.app import create_app
from server.appkeys import DB, SMS
from server.booking import models as m
from server.booking import outbox
from server.settings import Settings
from tests.booking.support import PERSON, person, seed_app, token_of
from tests.support import staff_headers

Client = TestClient[Any, Any]


async def _outbox(client: Client, mobile: str) -> list[m.OutboxMessage]:
    async with client.app[DB]() as session:
        return list(
            await session.scalars(
                select(m.OutboxMessage)
                .where(m.OutboxMessage.mobile == mobile)
                .order_by(m.OutboxMessage.id)
            )
        )


async def _sent(client: Client, mobile: str) -> list[SmsMessage]:
    async with client.app[DB]() as session:
        return list(
            await session.scalars(
                select(SmsMessage).where(SmsMessage.mobile == mobile).order_by(SmsMessage.id)
            )
        )


async def test_confirmation_is_written_with_the_booking_and_sent_once_by_the_worker(
    client: Client,
) -> None:
    headers = await staff_headers(client)
    cat = await seed_app(client.app)
    response = await client.post(
        "/api/v1/appointments",
        json={"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": PERSON},
        headers=headers,
    )
    assert response.status == 201, await response.text()
    appt = await response.json()
    # Committed with the booking, not sent by the request (no worker runs in tests).
    [row] = await _outbox(client, PERSON["mobile"])
    assert (row.kind, row.status, row.appointment_id) == ("booking.booked", "pending", appt["id"])
    assert appt["join_url"] in row.body and appt["manage_url"] in row.body
    assert row.body.startswith("【云勘】您已预约") and "Appointment" not in row.body
    assert await _sent(client, PERSON["mobile"]) == []

    worker = {"worker": "test", "now": row.next_attempt_at}
    assert await outbox.deliver_due(client.app[DB], client.app[SMS], **worker) == 1
    assert await outbox.deliver_due(client.app[DB], client.app[SMS], **worker) == 0
    [sms] = await _sent(client, PERSON["mobile"])
    assert (sms.kind, sms.body) == ("booking.booked", row.body)

    # A move writes its own text (the new time, the new manage link), once.
    response = await client.post(
        f"/api/v1/appointments/{appt['id']}/reschedule",
        json={"start": cat.iso("11:00"), "token": token_of(appt["manage_url"])},
    )
    assert response.status == 200, await response.text()
    moved = await _outbox(client, PERSON["mobile"])
    assert [r.kind for r in moved] == ["booking.booked", "booking.rescheduled"]
    assert "11:00" in moved[1].body and "10:00" not in moved[1].body


async def test_a_refused_booking_writes_no_sms(client: Client) -> None:
    headers = await staff_headers(client)
    cat = await seed_app(client.app, seats=1)
    first = {"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": person(1)}
    assert (await client.post("/api/v1/appointments", json=first, headers=headers)).status == 201
    late = {**first, "applicant": person(2)}
    response = await client.post("/api/v1/appointments", json=late, headers=headers)
    assert response.status == 409
    assert await _outbox(client, person(2)["mobile"]) == []
    assert len(await _outbox(client, person(1)["mobile"])) == 1


async def test_the_worker_is_woken_by_the_booking(
    aiohttp_client: Any, sqlite_settings: Settings
) -> None:
    """With background tasks on, the SMS leaves long before the loop's 20 s interval."""
    app = create_app(dataclasses.replace(sqlite_settings, background_tasks=True))
    client: Client = await aiohttp_client(app, cookie_jar=DummyCookieJar())
    headers = await staff_headers(client)
    cat = await seed_app(client.app)
    # The loop's first pass ran at start-up; it now sleeps for its interval.
    body = {"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": PERSON}
    assert (await client.post("/api/v1/appointments", json=body, headers=headers)).status == 201
    deadline = time.monotonic() + 10
    while not await _sent(client, PERSON["mobile"]):
        assert time.monotonic() < deadline, "the confirmation waited for the interval"
        await asyncio.sleep(0.05)
    [row] = await _outbox(client, PERSON["mobile"])
    assert row.status == "sent"
