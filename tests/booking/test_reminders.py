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
from server.booking import outbox
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

        for _round in range(3):  # also "after a restart": later passes find nothing to do
            results = await asyncio.gather(
                *[
                    send_due(
                        dbs[i % 2],
                        senders[i % 2],
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
    await send_due(
        client.app[DB],
        OutboxSender(client.app[DB]),
        worker="w",
        zone=settings.zone,
        join_url=lambda a: "u",
        now=start,
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


TOLD = m.OutboxMessage.kind.in_(["booking.reminder", "booking.cancelled"])


class FlakyGateway:
    """An SMS provider that is down for its first ``failures`` calls, then delivers to the
    real outbox table; it answers with a message id like a gateway does."""

    def __init__(self, inner: OutboxSender, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, 0

    async def send(self, mobile: str, body: str, *, kind: str) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("gateway unavailable (HTTP 503)")
        await self.inner.send(mobile, body, kind=kind)
        return f"msgid-{self.calls}"


async def test_a_failing_provider_still_delivers_each_sms_once_it_recovers(
    client: Client,
) -> None:
    booked = await _book(client, 2)
    # The two confirmations leave first, through a working gateway; what follows is about
    # the reminder and the cancellation.
    sender = OutboxSender(client.app[DB])
    assert await outbox.deliver_due(client.app[DB], sender, worker="setup") == 2
    cancel = await client.post(  # a cancellation is told too, through the same outbox
        f"/api/v1/appointments/{booked[1]['id']}/cancel",
        json={"token": token_of(booked[1]["manage_url"])},
    )
    assert cancel.status == 200
    settings = client.app[SETTINGS]
    second_engine = create_engine(settings)
    try:
        dbs = [client.app[DB], session_factory(second_engine)]
        async with client.app[DB]() as session:
            appt = await session.get(m.Appointment, booked[0]["id"])
            assert appt is not None
            now = appt.starts_at - timedelta(minutes=10)
        gateways = [FlakyGateway(OutboxSender(db), failures=3) for db in dbs]

        async def round_(at: Any) -> list[int]:
            return list(
                await asyncio.gather(
                    *[
                        send_due(
                            dbs[i],
                            gateways[i],
                            worker=f"node{i}",
                            zone=settings.zone,
                            join_url=lambda a: f"http://x/join/{a.id}",
                            now=at,
                        )
                        for i in range(2)
                    ]
                )
            )

        assert sum(await round_(now)) == 0  # both gateways down: nothing delivered, all kept
        async with client.app[DB]() as session:
            rows = (await session.scalars(select(m.OutboxMessage).where(TOLD))).all()
        assert {r.kind for r in rows} == {"booking.reminder", "booking.cancelled"}
        assert all(r.status == "pending" and r.attempts == 1 for r in rows)
        assert all("503" in r.answer for r in rows)
        assert sum(await round_(now)) == 0  # not due again before the backoff
        later = now + timedelta(minutes=5)
        for _ in range(4):
            await round_(later)
            later += timedelta(minutes=5)
        async with client.app[DB]() as session:
            rows = (await session.scalars(select(m.OutboxMessage).where(TOLD))).all()
            delivered = (
                await session.execute(
                    select(SmsMessage.kind, SmsMessage.mobile, func.count())
                    .where(SmsMessage.kind.in_(["booking.reminder", "booking.cancelled"]))
                    .group_by(SmsMessage.kind, SmsMessage.mobile)
                )
            ).all()
        assert all(r.status == "sent" and r.answer.startswith("msgid-") for r in rows)
        # Exactly once each: as many SMS reached the outbox table as there are messages,
        # and the gateways accepted exactly that many calls between them.
        assert sum(count for _, _, count in delivered) == len(rows)
        assert sum(max(g.calls - g.failures, 0) for g in gateways) == len(rows)
        assert {r.answer for r in rows} == {r.answer for r in rows if r.answer.startswith("msgid")}
        cancelled = [r for r in rows if r.kind == "booking.cancelled"]
        assert len(cancelled) == 1 and cancelled[0].mobile == person(1)["mobile"]
        assert "已取消" in cancelled[0].body and "http" in cancelled[0].body
        assert "Your" not in cancelled[0].body  # one language per text
    finally:
        await second_engine.dispose()


async def test_a_closure_lists_and_tells_the_affected(client: Client) -> None:
    booked = await _book(client, 3)  # 10:00, 10:30, 11:00 (see _book)
    admin = await staff_headers(client, "boss", "admin")
    async with client.app[DB]() as session:
        appts = [await session.get(m.Appointment, b["id"]) for b in booked]
    day = appts[0].starts_at.astimezone(client.app[SETTINGS].zone).date()  # type: ignore[union-attr]
    first = appts[0].starts_at.astimezone(client.app[SETTINGS].zone)  # type: ignore[union-attr]
    end = (first + timedelta(minutes=45)).strftime("%H:%M")
    body = {"day": day.isoformat(), "closed": "on", "start": first.strftime("%H:%M"), "end": end}
    for _ in range(2):  # saved twice: nobody is told twice
        r = await client.post("/admin/exceptions", data=body, headers=admin, allow_redirects=False)
        assert r.status == 303, await r.text()
    async with client.app[DB]() as session:
        told = (
            await session.scalars(
                select(m.OutboxMessage).where(m.OutboxMessage.kind == "booking.closure")
            )
        ).all()
    overlapping = [
        a for a in appts if a is not None and a.starts_at < first + timedelta(minutes=45)
    ]
    assert {t.appointment_id for t in told} == {a.id for a in overlapping}
    assert len(told) == len(overlapping) == 3  # all at 19:00; told once each
    assert all("/booking/manage/" in t.body and "改约" in t.body for t in told)
    page = await (await client.get("/admin/matters", headers=admin)).text()
    assert page.count('class="affected"') == 2
    assert f"受影响的预约 {len(overlapping)} 个" in page
