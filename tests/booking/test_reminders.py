"""Reminders go out exactly once with two schedulers on one database; no-shows are marked."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.accounts.models import SmsMessage
from server.accounts.sms import OutboxSender
from server.appkeys import DB, SETTINGS
from server.booking import models as m
from server.booking.reminders import mark_no_shows, send_due
from server.booking.scheduler import parse_offsets
from server.db.engine import create_engine, session_factory
from tests.booking.support import person, seed_app, token_of
from tests.support import staff_headers

Client = TestClient[Any, Any]


def test_parse_offsets() -> None:
    assert parse_offsets("24h,30m") == (timedelta(hours=24), timedelta(minutes=30))
    assert parse_offsets("30m, 2d ,bogus,") == (timedelta(days=2), timedelta(minutes=30))


async def _book(client: Client, n: int) -> list[dict[str, Any]]:
    headers = await staff_headers(client)
    cat = await seed_app(client.app)
    out = []
    for i in range(n):
        r = await client.post(
            "/api/v1/appointments",
            json={"matter_id": cat.matter_id, "start": cat.iso("19:00"), "applicant": person(i)},
            headers=headers,
        )
        assert r.status == 201, await r.text()
        out.append(await r.json())
    return out


async def test_two_schedulers_send_each_reminder_once(client: Client) -> None:
    booked = await _book(client, 6)
    settings = client.app[SETTINGS]
    second_engine = create_engine(settings)  # another "process": its own pool and sessions
    try:
        dbs = [client.app[DB], session_factory(second_engine)]
        async with client.app[DB]() as session:
            first = await session.get(m.Appointment, booked[0]["id"])
            assert first is not None
            start = first.starts_at
            rows = await session.scalar(select(func.count()).select_from(m.Reminder))
        # 24 h reminders may already be past (the slot is tomorrow), so only count what exists.
        assert rows is not None and rows >= 6
        now = start - timedelta(minutes=10)  # every reminder of these appointments is due
        senders = [OutboxSender(db) for db in dbs]

        def sender(i: int) -> Any:
            async def send(mobile: str, text: str) -> None:
                await senders[i].send(mobile, text, kind="booking.reminder")

            return send

        for _round in range(3):  # also "after a restart": later passes find nothing to do
            results = await asyncio.gather(
                *[
                    send_due(
                        dbs[i % 2],
                        sender(i % 2),
                        worker=f"w{i}",
                        zone=settings.zone,
                        join_url=lambda a: f"http://x/join/{a.id}",
                        now=now,
                    )
                    for i in range(4)
                ]
            )
            if _round:
                assert sum(results) == 0
        async with client.app[DB]() as session:
            sent = (
                await session.execute(
                    select(SmsMessage.mobile, func.count())
                    .where(SmsMessage.kind == "booking.reminder")
                    .group_by(SmsMessage.mobile)
                )
            ).all()
            unsent = await session.scalar(
                select(func.count()).select_from(m.Reminder).where(m.Reminder.sent_at.is_(None))
            )
        assert unsent == 0
        assert sum(c for _, c in sent) == rows
        per_mobile = rows // 6
        assert {mobile: c for mobile, c in sent} == {
            p["mobile"]: per_mobile for p in map(person, range(6))
        }
    finally:
        await second_engine.dispose()


async def test_cancelled_appointments_get_no_reminder_and_no_shows_are_marked(
    client: Client,
) -> None:
    booked = await _book(client, 3)
    headers = await staff_headers(client, "sup", "supervisor")
    denied = await client.post(
        f"/api/v1/appointments/{booked[0]['id']}/cancel", json={}, headers=headers
    )
    assert denied.status == 403  # oversight reads, it does not cancel
    cancel = await client.post(
        f"/api/v1/appointments/{booked[0]['id']}/cancel",
        json={"token": token_of(booked[0]["manage_url"])},
    )
    assert cancel.status == 200
    check = await client.post(  # the applicant opened the join link: the waiting room
        f"/api/v1/appointments/{booked[1]['id']}/check-in",
        json={"token": token_of(booked[1]["join_url"])},
    )
    assert check.status == 200
    settings = client.app[SETTINGS]
    async with client.app[DB]() as session:
        appt = await session.get(m.Appointment, booked[2]["id"])
        assert appt is not None
        start = appt.starts_at
    outbox = OutboxSender(client.app[DB])

    async def send(mobile: str, text: str) -> None:
        await outbox.send(mobile, text, kind="booking.reminder")

    await send_due(
        client.app[DB], send, worker="w", zone=settings.zone, join_url=lambda a: "u", now=start
    )
    async with client.app[DB]() as session:
        mobiles = set(
            await session.scalars(
                select(SmsMessage.mobile).where(SmsMessage.kind == "booking.reminder")
            )
        )
    assert person(0)["mobile"] not in mobiles
    assert person(2)["mobile"] in mobiles
    assert await mark_no_shows(client.app[DB], grace=timedelta(minutes=15), now=start) == []
    marked = await mark_no_shows(
        client.app[DB], grace=timedelta(minutes=15), now=start + timedelta(minutes=16)
    )
    assert marked == [booked[2]["id"]]  # the checked-in one joined; the cancelled one is gone
    got = await client.get(f"/api/v1/appointments/{booked[2]['id']}", headers=headers)
    assert (await got.json())["status"] == "no_show"
