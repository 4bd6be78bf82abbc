"""The booking API on real SQLite and PostgreSQL: happy paths, every bad input, links."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.appkeys import DB
from server.booking import models as m
from server.booking import validation as v
from server.cases.models import Case, CaseEvent, CaseParty
from tests.booking.support import ENTERPRISE, PERSON, appointment_row, officer, person, seed_app
from tests.support import applicant_headers, create_staff, staff_headers

Client = TestClient[Any, Any]


async def _count(client: Client, model: Any, *where: Any) -> int:
    async with client.app[DB]() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_catalogue_and_slots(client: Client) -> None:
    cat = await seed_app(client.app)
    response = await client.get("/api/v1/matters?zone=citizen")
    assert response.status == 200
    codes = {x["code"] for x in (await response.json())["matters"]}
    assert codes == {"big", "walk"}
    assert (await client.get("/api/v1/matters?zone=moon")).status == 422
    response = await client.get(f"/api/v1/matters/{cat.matter_id}/slots?date={cat.day}")
    body = await response.json()
    assert body["working_day"] is True
    assert body["slots"][0]["start"] == cat.iso("08:00")
    assert body["slots"][0]["seats_left"] == 10
    assert len(body["slots"]) == 24  # 08:00-20:00 in 30-minute slots
    assert (await client.get(f"/api/v1/matters/{cat.matter_id}/slots?date=tomorrow")).status == 422
    assert (await client.get("/api/v1/matters/9999/slots?date=2026-12-01")).status == 404


async def test_staff_books_on_behalf_opens_case_and_sends_sms(client: Client) -> None:
    headers = await staff_headers(client)
    cat = await seed_app(client.app)
    response = await client.post(
        "/api/v1/appointments",
        json={"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": PERSON},
        headers=headers,
    )
    assert response.status == 201, await response.text()
    appt = await response.json()
    assert appt["status"] == "booked"
    assert appt["start"] == cat.iso("10:00")
    assert appt["on_behalf"] is True
    assert "/join/" in appt["join_url"] and "token=" in appt["manage_url"]
    async with client.app[DB]() as session:
        case = await session.get(Case, appt["case_id"])
        assert case is not None and case.matter_id == cat.matter_id
        kinds = list(
            await session.scalars(
                select(CaseEvent.kind).where(CaseEvent.case_id == case.id).order_by(CaseEvent.seq)
            )
        )
        assert kinds == ["case.opened", "appointment.booked"]
        parties = list(
            await session.scalars(
                select(CaseParty.principal_kind).where(CaseParty.case_id == case.id)
            )
        )
        assert "applicant" in parties
        sms = list(
            await session.scalars(
                select(m.OutboxMessage.body).where(m.OutboxMessage.mobile == PERSON["mobile"])
            )
        )
        assert any(appt["join_url"] in body for body in sms)  # the worker sends it
    slots = await (await client.get(f"/api/v1/matters/{cat.matter_id}/slots?date={cat.day}")).json()
    ten = next(s for s in slots["slots"] if s["start"] == cat.iso("10:00"))
    assert ten["seats_left"] == 9


async def test_applicant_books_for_self_and_lists_mine(client: Client) -> None:
    cat = await seed_app(client.app)
    headers = await applicant_headers(client, PERSON["mobile"])
    response = await client.post(
        "/api/v1/appointments",
        json={"matter_id": cat.matter_id, "start": cat.iso("09:00"), "applicant": PERSON},
        headers=headers,
    )
    assert response.status == 201, await response.text()
    mine = await (await client.get("/api/v1/appointments", headers=headers)).json()
    assert [a["start"] for a in mine["appointments"]] == [cat.iso("09:00")]
    assert mine["appointments"][0]["applicant"]["id_number"] == "110105********002X"
    other = {**PERSON, "mobile": "13700000000"}
    response = await client.post(
        "/api/v1/appointments",
        json={"matter_id": cat.matter_id, "start": cat.iso("09:30"), "applicant": other},
        headers=headers,
    )
    assert response.status == 422
    assert "applicant.mobile" in (await response.json())["error"]["fields"]


async def test_full_slot_and_one_booking_per_applicant(client: Client) -> None:
    headers = await staff_headers(client)
    cat = await seed_app(client.app)
    body = {
        "matter_id": cat.small_matter_id,
        "start": cat.iso("11:00"),
        "applicant": ENTERPRISE,
        "site_address": "某县工业园 3 号",
    }
    assert (await client.post("/api/v1/appointments", json=body, headers=headers)).status == 201
    again = await client.post("/api/v1/appointments", json=body, headers=headers)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "already_booked"
    other = {**body, "applicant": person(1)}
    full = await client.post("/api/v1/appointments", json=other, headers=headers)
    assert full.status == 409
    assert (await full.json())["error"]["code"] == "slot_full"
    # Same applicant, overlapping time, other matter: one person, one appointment at once.
    clash = {"matter_id": cat.matter_id, "start": cat.iso("11:00"), "applicant": ENTERPRISE}
    busy = await client.post("/api/v1/appointments", json=clash, headers=headers)
    assert busy.status == 409 and (await busy.json())["error"]["code"] == "person_busy"
    assert (await busy.json())["error"]["message"] == "您在该时间已有其他预约"
    ok = {**clash, "start": cat.iso("11:30")}  # right after: fine
    assert (await client.post("/api/v1/appointments", json=ok, headers=headers)).status == 201
    assert await _count(client, m.Appointment) == 2


async def test_bad_input_gets_field_errors_in_both_languages(client: Client) -> None:
    headers = await staff_headers(client)
    cat = await seed_app(client.app)
    bad = {"kind": "person", "name": "张三", "mobile": "12345", "id_number": "110105194912310021"}
    body = {"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": bad}
    zh = await client.post("/api/v1/appointments", json=body, headers=headers)
    assert zh.status == 422
    fields = (await zh.json())["error"]["fields"]
    assert fields["applicant.mobile"] == "请输入中国大陆手机号码：以1开头的11位数字"
    assert fields["applicant.id_number"] == "身份证号码无效：校验码不符"
    en = await client.post(
        "/api/v1/appointments", json=body, headers={**headers, "Accept-Language": "en"}
    )
    fields = (await en.json())["error"]["fields"]
    assert fields["applicant.mobile"] == "Enter a mainland mobile number: 11 digits starting with 1"
    bad_code = {**ENTERPRISE, "credit_code": "91350100M000100Y44"}
    response = await client.post(
        "/api/v1/appointments",
        json={**body, "applicant": bad_code, "site_address": "x"},
        headers={**headers, "Accept-Language": "en"},
    )
    fields = (await response.json())["error"]["fields"]
    assert fields == {"applicant.credit_code": v.USCC_CHECKSUM}
    missing = await client.post(
        "/api/v1/appointments", json={"matter_id": cat.matter_id}, headers=headers
    )
    assert missing.status == 422
    assert {"start", "applicant"} <= set((await missing.json())["error"]["fields"])
    assert await _count(client, m.Appointment) == 0


async def test_time_rules(client: Client) -> None:
    headers = await staff_headers(client)
    cat = await seed_app(client.app)

    async def fields_for(start: str, matter: int | None = None) -> dict[str, str]:
        response = await client.post(
            "/api/v1/appointments",
            json={"matter_id": matter or cat.matter_id, "start": start, "applicant": PERSON},
            headers={**headers, "Accept-Language": "en"},
        )
        assert response.status == 422, await response.text()
        return dict((await response.json())["error"]["fields"])

    past = cat.start("10:00", cat.day - timedelta(days=3)).isoformat()
    assert await fields_for(past) == {"start": "This time is in the past"}
    far = cat.start("10:00", cat.day + timedelta(days=40)).isoformat()
    assert "beyond the booking horizon" in (await fields_for(far))["start"]
    assert await fields_for(cat.iso("10:10")) == {"start": "There is no slot at this time"}
    assert await fields_for(cat.iso("21:00")) == {"start": "There is no slot at this time"}
    assert "UTC offset" in (await fields_for("2026-12-01T10:00:00"))["start"]
    assert "UTC offset" in (await fields_for("soon"))["start"]
    site = await fields_for(cat.iso("10:00"), cat.small_matter_id)
    assert site == {"site_address": "Give the site address for an inspection"}
    async with client.app[DB].begin() as session:
        matter = await session.get(m.Matter, cat.matter_id)
        assert matter is not None
        matter.notice_min = 3 * 24 * 60  # three days' notice: tomorrow is too soon
    assert await fields_for(cat.iso("10:00")) == {
        "start": "This time is too soon: book further ahead"
    }
    slots = await (await client.get(f"/api/v1/matters/{cat.matter_id}/slots?date={cat.day}")).json()
    assert slots["slots"] == []
    unauth = await client.post(
        "/api/v1/appointments",
        json={"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": PERSON},
    )
    assert unauth.status == 401


async def test_idempotency_key_books_once(client: Client) -> None:
    headers = await staff_headers(client)
    cat = await seed_app(client.app)
    body = {"matter_id": cat.matter_id, "start": cat.iso("13:00"), "applicant": PERSON}
    keyed = {**headers, "Idempotency-Key": "abc-123"}
    first = await client.post("/api/v1/appointments", json=body, headers=keyed)
    second = await client.post("/api/v1/appointments", json=body, headers=keyed)
    assert first.status == second.status == 201
    assert await first.json() == await second.json()
    assert second.headers.get("Idempotent-Replay") == "true"
    # Concurrent twins with a fresh key: still one booking.
    body2 = {**body, "applicant": person(7), "start": cat.iso("13:30")}
    twins = await asyncio.gather(
        *[
            client.post(
                "/api/v1/appointments", json=body2, headers={**headers, "Idempotency-Key": "k2"}
            )
            for _ in range(5)
        ]
    )
    assert [r.status for r in twins] == [201] * 5
    ids = {(await r.json())["id"] for r in twins}
    assert len(ids) == 1
    assert await _count(client, m.Appointment) == 2
    changed = await client.post(
        "/api/v1/appointments", json={**body, "start": cat.iso("14:00")}, headers=keyed
    )
    assert changed.status == 422
    assert (await changed.json())["error"]["code"] == "idempotency_key_reused"


async def test_manage_link_cancel_reschedule_ics_qr(client: Client) -> None:
    headers = await staff_headers(client)
    cat = await seed_app(client.app)
    appt = await (
        await client.post(
            "/api/v1/appointments",
            json={"matter_id": cat.matter_id, "start": cat.iso("15:00"), "applicant": PERSON},
            headers=headers,
        )
    ).json()
    token = appt["manage_url"].split("token=")[1]
    aid = appt["id"]
    # Without login, with the token: read, calendar, QR.
    got = await client.get(f"/api/v1/appointments/{aid}?token={token}")
    assert got.status == 200
    assert (await got.json())["applicant"]["mobile"] == "138****8000"
    assert (await client.get(f"/api/v1/appointments/{aid}")).status == 404
    assert (await client.get(f"/api/v1/appointments/{aid}?token={token}x")).status == 404
    ics = await client.get(f"/api/v1/appointments/{aid}/calendar.ics?token={token}")
    assert ics.status == 200 and ics.content_type == "text/calendar"
    assert "BEGIN:VEVENT" in await ics.text()
    qr = await client.get(f"/api/v1/appointments/{aid}/qr.svg?token={token}")
    assert qr.status == 200 and "<svg" in await qr.text()
    # The invite and the QR carry the read-only join token: it views, it cannot change.
    invite = appt["calendar_url"].split("token=")[1]
    assert invite != token and appt["qr_url"].split("token=")[1] == invite
    assert token not in (await ics.text()).replace("\r\n ", "")
    viewed = await client.get(f"/api/v1/appointments/{aid}?token={invite}")
    assert viewed.status == 200 and "manage_url" not in await viewed.text()
    for action, body in (("cancel", {}), ("reschedule", {"start": cat.iso("16:30")})):
        refused = await client.post(
            f"/api/v1/appointments/{aid}/{action}", json={**body, "token": invite}
        )
        assert refused.status in (403, 404), await refused.text()
    assert (await client.get(f"/api/v1/appointments/{aid}?token={token}")).status == 200
    assert (await appointment_row(client, aid)).status == "booked"
    # Reschedule: new token, old one dead.
    moved = await client.post(
        f"/api/v1/appointments/{aid}/reschedule", json={"start": cat.iso("16:00"), "token": token}
    )
    assert moved.status == 200, await moved.text()
    moved_body = await moved.json()
    assert moved_body["start"] == cat.iso("16:00")
    new_token = moved_body["manage_url"].split("token=")[1]
    stale = await client.post(f"/api/v1/appointments/{aid}/cancel", json={"token": token})
    assert stale.status == 403
    slots = {
        s["start"]: s["seats_left"]
        for s in (
            await (await client.get(f"/api/v1/matters/{cat.matter_id}/slots?date={cat.day}")).json()
        )["slots"]
    }
    assert slots[cat.iso("15:00")] == 10 and slots[cat.iso("16:00")] == 9
    cancelled = await client.post(f"/api/v1/appointments/{aid}/cancel", json={"token": new_token})
    assert cancelled.status == 200
    assert (await cancelled.json())["status"] == "cancelled"
    slots = {
        s["start"]: s["seats_left"]
        for s in (
            await (await client.get(f"/api/v1/matters/{cat.matter_id}/slots?date={cat.day}")).json()
        )["slots"]
    }
    assert slots[cat.iso("16:00")] == 10
    # Cancelled: the same applicant may book that slot again.
    again = await client.post(
        "/api/v1/appointments",
        json={"matter_id": cat.matter_id, "start": cat.iso("16:00"), "applicant": PERSON},
        headers=headers,
    )
    assert again.status == 201


async def test_status_machine_and_staff_day(client: Client) -> None:
    staff_id, headers = await officer(client)
    cat = await seed_app(client.app, staff_ids=(staff_id,))
    appt = await (
        await client.post(
            "/api/v1/appointments",
            json={"matter_id": cat.matter_id, "start": cat.iso("08:30"), "applicant": PERSON},
            headers=headers,
        )
    ).json()
    aid = appt["id"]
    token = appt["join_url"].split("token=")[1]
    checked = await client.post(f"/api/v1/appointments/{aid}/check-in", json={"token": token})
    assert checked.status == 200 and (await checked.json())["status"] == "checked_in"
    bad = await client.post(f"/api/v1/appointments/{aid}/cancel", json={"token": token})
    assert bad.status == 403  # a join link cannot cancel
    for status in ("in_session", "completed"):
        r = await client.post(
            f"/api/v1/appointments/{aid}/status", json={"status": status}, headers=headers
        )
        assert r.status == 200, await r.text()
    late = await client.post(
        f"/api/v1/appointments/{aid}/status", json={"status": "no_show"}, headers=headers
    )
    assert late.status == 409
    day = await (await client.get(f"/api/v1/appointments?date={cat.day}", headers=headers)).json()
    assert [a["status"] for a in day["appointments"]] == ["completed"]
    assert day["appointments"][0]["applicant"]["mobile"] == PERSON["mobile"]  # the lead


async def test_auto_assignment_prefers_least_loaded_free_staff(client: Client) -> None:
    headers = await staff_headers(client, "clerk", "supervisor")
    a = await create_staff(client, "a1")
    b = await create_staff(client, "b1")
    cat = await seed_app(client.app, staff_ids=(a, b))
    staff = []
    for i, hhmm in enumerate(["09:00", "09:00", "10:00", "10:00"]):
        r = await client.post(
            "/api/v1/appointments",
            json={"matter_id": cat.matter_id, "start": cat.iso(hhmm), "applicant": person(i)},
            headers=headers,
        )
        staff.append((await r.json())["staff_id"])
    assert staff[0] == a and staff[1] == b  # a busy at 09:00, so b
    assert sorted(staff[2:]) == sorted([a, b])
    r = await client.post(
        "/api/v1/appointments",
        json={"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": person(9)},
        headers=headers,
    )
    # Both officers are busy at 10:00: seats are people, so the slot is full.
    assert r.status == 409 and (await r.json())["error"]["code"] == "slot_full"
    slots = await client.get(f"/api/v1/matters/{cat.matter_id}/slots?date={cat.day}")
    by_start = {x["start"]: x for x in (await slots.json())["slots"]}
    assert by_start[cat.iso("10:00")]["seats_left"] == 0
    assert by_start[cat.iso("11:00")]["seats"] == 2  # two officers, not the window's 10
    bad = await client.post(
        "/api/v1/appointments",
        json={
            "matter_id": cat.matter_id,
            "start": cat.iso("11:00"),
            "applicant": person(10),
            "staff_id": 424242,
        },
        headers=headers,
    )
    assert bad.status == 422
    busy = await client.post(
        "/api/v1/appointments",
        json={
            "matter_id": cat.small_matter_id,
            "start": cat.iso("10:00"),
            "applicant": person(11),
            "staff_id": a,
            "site_address": "福州市鼓楼区",
        },
        headers=headers,
    )
    assert busy.status == 409, await busy.text()
    assert (await busy.json())["error"]["code"] == "staff_busy"  # another matter, same officer
    r = await client.post(
        "/api/v1/appointments",
        json={"matter_id": cat.matter_id, "start": cat.iso("11:00"), "applicant": person(9)},
        headers=headers,
    )
    first = await r.json()
    aid = first["id"]
    other = b if first["staff_id"] == a else a
    url = f"/api/v1/appointments/{aid}/assign"
    by_hand = await client.post(url, json={"staff_id": other}, headers=headers)
    assert by_hand.status == 200 and (await by_hand.json())["staff_id"] == other
    # Handing a 10:00 appointment to an officer who already has one at 10:00 is refused.
    ten = [
        x
        for x in (
            await (await client.get(f"/api/v1/appointments?date={cat.day}", headers=headers)).json()
        )["appointments"]
        if x["start"] == cat.iso("10:00")
    ]
    clash = await client.post(
        f"/api/v1/appointments/{ten[0]['id']}/assign",
        json={"staff_id": ten[1]["staff_id"]},
        headers=headers,
    )
    assert clash.status == 409 and (await clash.json())["error"]["code"] == "staff_busy"
    wrong = await client.post(url, json={"staff_id": 424242}, headers=headers)
    assert wrong.status == 422
    inspector = await staff_headers(client, "insp", "inspector")
    denied = await client.post(url, json={"staff_id": b}, headers=inspector)
    assert denied.status == 404  # not a party of the case: it does not exist for them


async def test_concurrent_bookings_in_one_process(client: Client) -> None:
    """The embedded default (SQLite) and PostgreSQL both answer a rush cleanly."""
    headers = await staff_headers(client)
    cat = await seed_app(client.app)

    async def attempt(i: int) -> int:
        r = await client.post(
            "/api/v1/appointments",
            json={"matter_id": cat.matter_id, "start": cat.iso("12:00"), "applicant": person(i)},
            headers=headers,
        )
        return r.status

    statuses = await asyncio.gather(*(attempt(i) for i in range(40)))
    assert sorted(statuses) == [201] * 10 + [409] * 30
