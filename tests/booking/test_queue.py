""" "Video now" queue: positions, live updates over SSE, fair order, admin editors."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.accounts.principal import Principal
from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.booking import models as m
from server.booking import queue
from server.booking.validation import validate_applicant
from server.settings import Settings
from tests.booking.support import PERSON, person, seed_app, token_of
from tests.support import create_staff, staff_headers

Client = TestClient[Any, Any]


async def _next_event(stream: Any) -> dict[str, Any]:
    while True:
        line = await asyncio.wait_for(stream.content.readline(), 5)
        text = line.decode().strip()
        if text.startswith("data: "):
            return dict(json.loads(text[6:]))


async def test_walk_in_queue_with_live_positions(client: Client) -> None:
    staff_id = await create_staff(client, "clerk")
    cat = await seed_app(client.app, staff_ids=(staff_id,))
    login = await client.post(
        "/api/v1/auth/login", json={"username": "clerk", "password": "correct-horse-1"}
    )
    headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
    off = await client.post(
        "/api/v1/queue", json={"matter_id": cat.matter_id, "applicant": person(1)}
    )
    assert off.status == 422  # this matter has no "video now"
    tickets = []
    for i in range(3):
        r = await client.post(
            "/api/v1/queue", json={"matter_id": cat.queue_matter_id, "applicant": person(i)}
        )
        assert r.status == 201, await r.text()
        tickets.append(await r.json())
    assert [t["position"] for t in tickets] == [1, 2, 3]
    assert [t["eta_minutes"] for t in tickets] == [0, 20, 40]
    second = tickets[1]["ticket"]
    stream = await client.get(f"/api/v1/queue/{second}/events")
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert (await _next_event(stream))["position"] == 2
    served = await client.post("/api/v1/queue/next", headers=headers)
    body = await served.json()
    assert body["kind"] == "ticket" and body["id"] == tickets[0]["id"] and body["case_id"]
    assert (await _next_event(stream))["position"] == 1
    served = await client.post("/api/v1/queue/next", headers=headers)
    assert (await served.json())["id"] == tickets[1]["id"]
    final = await _next_event(stream)
    assert final["status"] == "serving" and final["position"] == 0
    stream.close()
    left = await client.post(f"/api/v1/queue/{tickets[2]['ticket']}/leave")
    assert (await left.json())["status"] == "left"
    empty = await client.post("/api/v1/queue/next", headers=headers)
    assert (await empty.json())["kind"] == "none"
    assert (await client.get("/api/v1/queue/nope")).status == 404
    assert (await client.post("/api/v1/queue/next")).status == 401


async def test_due_booked_appointment_is_served_before_walk_ins(client: Client) -> None:
    staff_id = await create_staff(client, "clerk")
    headers = await staff_headers(client, "sup", "supervisor")
    cat = await seed_app(client.app, staff_ids=(staff_id,))
    r = await client.post(
        "/api/v1/appointments",
        json={"matter_id": cat.queue_matter_id, "start": cat.iso("10:00"), "applicant": PERSON},
        headers=headers,
    )
    appt = await r.json()
    checked = await client.post(
        f"/api/v1/appointments/{appt['id']}/check-in", json={"token": token_of(appt["join_url"])}
    )
    assert checked.status == 200
    info, _ = validate_applicant(person(5))
    assert info is not None
    clerk = Principal(kind="staff", id=staff_id, role="inspector", name="clerk")
    zone = client.app[SETTINGS].zone
    async with client.app[DB].begin() as session:
        await queue.join(session, cat.queue_matter_id, info, applicant_account_id=None)
    at_ten = cat.start("10:01")
    async with client.app[DB].begin() as session:
        before = await queue.take_next(session, clerk, zone=zone, now=cat.start("09:30"))
    assert before is not None and before.kind == "ticket"  # not due yet: the walk-in
    later, _ = validate_applicant(person(6))  # person(5) is being served: one live ticket
    assert later is not None
    async with client.app[DB].begin() as session:
        await queue.join(session, cat.queue_matter_id, later, applicant_account_id=None)
        ahead = await queue.positions(session, cat.queue_matter_id, now=at_ten)
    assert ahead[0].eta_minutes == 20  # the due appointment is ahead of the walk-in
    async with client.app[DB].begin() as session:
        served = await queue.take_next(session, clerk, zone=zone, now=at_ten)
    assert served is not None and (served.kind, served.id) == ("appointment", appt["id"])
    async with client.app[DB]() as session:
        row = await session.get(m.Appointment, appt["id"])
        assert row is not None and row.status == "in_session" and row.staff_id == staff_id
    async with client.app[DB].begin() as session:
        late = await queue.take_next(session, clerk, zone=zone, now=at_ten + timedelta(minutes=1))
    assert late is not None and late.kind == "ticket"


async def test_admin_edits_catalogue_and_schedule(client: Client) -> None:
    admin = await staff_headers(client, "boss", "admin")
    clerk = await staff_headers(client, "clerk", "inspector")
    cat = await seed_app(client.app)
    async with client.app[DB]() as session:
        dept = (await session.get(m.Matter, cat.matter_id)).department_id  # type: ignore[union-attr]
    new = {
        "code": "new",
        "department_id": dept,
        "name": "新事项",
        "zone": "enterprise",
        "kind": "joint_inspection",
        "duration_min": 60,
        "seats": 2,
        "notice_min": 0,
        "window_ids": [cat.window_id],
        "checklist": [{"key": "a", "text": "一"}, {"key": "b", "text": "二"}],
    }
    assert (await client.post("/api/v1/admin/matters", json=new, headers=clerk)).status == 403
    r = await client.post("/api/v1/admin/matters", json=new, headers=admin)
    assert r.status == 201, await r.text()
    matter = await r.json()
    assert [c["key"] for c in matter["checklist"]] == ["a", "b"]
    dup = await client.post("/api/v1/admin/matters", json=new, headers=admin)
    assert dup.status == 409
    r = await client.patch(
        f"/api/v1/admin/matters/{matter['id']}", json={"seats": 3}, headers=admin
    )
    assert (await r.json())["seats"] == 3
    bad = await client.patch(
        f"/api/v1/admin/matters/{matter['id']}", json={"zone": "moon"}, headers=admin
    )
    assert bad.status == 422
    w = await client.post(
        "/api/v1/admin/windows",
        json={"code": "w2", "department_id": dept, "name": "窗口2"},
        headers=admin,
    )
    assert w.status == 201
    plan = {"ranges": [{"weekday": d, "start": "09:00", "end": "11:00"} for d in range(7)]}
    r = await client.put(f"/api/v1/admin/windows/{cat.window_id}/plans", json=plan, headers=admin)
    assert r.status == 200
    backwards = {"ranges": [{"weekday": 0, "start": "11:00", "end": "09:00"}]}
    r = await client.put(
        f"/api/v1/admin/windows/{cat.window_id}/plans", json=backwards, headers=admin
    )
    assert r.status == 422
    slots = await (await client.get(f"/api/v1/matters/{matter['id']}/slots?date={cat.day}")).json()
    assert [s["start"] for s in slots["slots"]] == [cat.iso("09:00"), cat.iso("10:00")]
    r = await client.post(
        "/api/v1/admin/exceptions",
        json={"day": cat.day.isoformat(), "closed": True, "start": "10:00", "end": "11:00"},
        headers=admin,
    )
    assert r.status == 201
    exc_id = (await r.json())["id"]
    slots = await (await client.get(f"/api/v1/matters/{matter['id']}/slots?date={cat.day}")).json()
    assert [s["start"] for s in slots["slots"]] == [cat.iso("09:00")]
    assert (await client.delete(f"/api/v1/admin/exceptions/{exc_id}", headers=admin)).status == 200
    r = await client.put(
        f"/api/v1/admin/holidays/{cat.day}", json={"working": False, "note": "停电"}, headers=admin
    )
    assert r.status == 200
    slots = await (await client.get(f"/api/v1/matters/{matter['id']}/slots?date={cat.day}")).json()
    assert slots["slots"] == [] and slots["working_day"] is False
    windows = await (await client.get("/api/v1/admin/windows", headers=admin)).json()
    assert {w["code"] for w in windows["windows"]} == {"w1", "w2"}
    r = await client.put(
        "/api/v1/admin/staff/1/qualifications", json={"matter_ids": [matter["id"]]}, headers=admin
    )
    assert r.status == 200


@pytest.mark.postgres
@pytest.mark.redis
async def test_queue_positions_cross_processes_through_redis(
    aiohttp_client: Any, scaleout_settings: Settings
) -> None:
    """Two app instances (two workers) on PostgreSQL + Redis: the ticket's stream is on
    one, the queue moves on the other, and the new position still arrives."""
    first = await aiohttp_client(create_app(scaleout_settings))
    second = await aiohttp_client(create_app(scaleout_settings))
    staff_id = await create_staff(first, "clerk")
    cat = await seed_app(first.app, staff_ids=(staff_id,))
    login = await second.post(
        "/api/v1/auth/login", json={"username": "clerk", "password": "correct-horse-1"}
    )
    headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
    tickets = []
    for i in range(2):
        r = await first.post(
            "/api/v1/queue", json={"matter_id": cat.queue_matter_id, "applicant": person(i)}
        )
        tickets.append(await r.json())
    stream = await first.get(f"/api/v1/queue/{tickets[1]['ticket']}/events")
    assert (await _next_event(stream))["position"] == 2
    served = await second.post("/api/v1/queue/next", headers=headers)
    assert (await served.json())["id"] == tickets[0]["id"]
    assert (await _next_event(stream))["position"] == 1  # published on `second`, via Redis
    stream.close()


async def test_stream_survives_quiet_periods(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep-alives while nothing happens must not end the subscription."""
    from server.booking import queue_handlers

    monkeypatch.setattr(queue_handlers, "KEEPALIVE_SECONDS", 0.1)
    staff_id = await create_staff(client, "clerk")
    cat = await seed_app(client.app, staff_ids=(staff_id,))
    login = await client.post(
        "/api/v1/auth/login", json={"username": "clerk", "password": "correct-horse-1"}
    )
    headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
    tickets = []
    for i in range(2):
        r = await client.post(
            "/api/v1/queue", json={"matter_id": cat.queue_matter_id, "applicant": person(i)}
        )
        tickets.append(await r.json())
    stream = await client.get(f"/api/v1/queue/{tickets[1]['ticket']}/events")
    assert (await _next_event(stream))["position"] == 2
    keepalives = 0
    while keepalives < 3:
        line = await asyncio.wait_for(stream.content.readline(), 5)
        keepalives += line.startswith(b": keepalive")
    await client.post("/api/v1/queue/next", headers=headers)
    assert (await _next_event(stream))["position"] == 1
    stream.close()
