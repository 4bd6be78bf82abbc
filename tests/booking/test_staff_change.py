"""A staff change: an officer's bookings are handed to a free colleague, or their applicants
told once, in their own language; SMS about a booking are never bilingual."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.appkeys import DB
from server.booking import models as m
from server.cases.models import CaseEvent, CaseParty
from tests.booking.support import officer, person, seed_app
from tests.support import applicant_headers, staff_headers

Client = TestClient[Any, Any]
HAN = re.compile(r"[\u4e00-\u9fff]")


async def _book(client: Client, headers: dict[str, str], body: dict[str, Any]) -> int:
    r = await client.post("/api/v1/appointments", json=body, headers=headers)
    assert r.status == 201, await r.text()
    return int((await r.json())["id"])


async def _fingerprint(client: Client) -> tuple[Any, ...]:
    async with client.app[DB]() as session:
        appts = (
            await session.execute(
                select(m.Appointment.id, m.Appointment.staff_id).order_by(m.Appointment.id)
            )
        ).all()
        claims = await session.scalar(select(func.count()).select_from(m.TimeClaim))
        told = await session.scalar(select(func.count()).select_from(m.OutboxMessage))
    return tuple(appts), claims, told


async def test_deactivating_an_officer_hands_on_or_tells(client: Client) -> None:
    a_id, _ = await officer(client, "officer-a")
    b_id, _ = await officer(client, "officer-b")
    cat = await seed_app(client.app, staff_ids=(a_id, b_id))
    boss, admin = await officer(client, "boss", "admin")
    book = {"matter_id": cat.matter_id}
    clash = await _book(
        client, admin, {**book, "start": cat.iso("10:00"), "applicant": person(0), "staff_id": a_id}
    )
    await _book(
        client, admin, {**book, "start": cat.iso("10:00"), "applicant": person(1), "staff_id": b_id}
    )
    free = await _book(
        client, admin, {**book, "start": cat.iso("11:00"), "applicant": person(2), "staff_id": a_id}
    )

    # Bad input and a self-deactivation change nothing.
    before = await _fingerprint(client)
    r = await client.patch(f"/api/v1/admin/staff/{a_id}", json={"active": "no"}, headers=admin)
    assert r.status == 422
    r = await client.patch(f"/api/v1/admin/staff/{boss}", json={"active": False}, headers=admin)
    assert r.status == 409 and (await r.json())["error"]["code"] == "cannot_deactivate_self"
    r = await client.patch(
        f"/api/v1/admin/staff/{a_id}",
        json={"active": False},
        headers=await staff_headers(client, "clerk"),
    )
    assert r.status == 403
    assert await _fingerprint(client) == before

    for _ in range(2):  # saved twice: nobody is told twice
        r = await client.patch(f"/api/v1/admin/staff/{a_id}", json={"active": False}, headers=admin)
        assert r.status == 200, await r.text()
        if _ == 0:
            out = await r.json()
            assert out["handed"] == [{"appointment_id": free, "staff_id": b_id}]
            assert out["unserved"] == [clash]  # officer B is busy at 10:00
    async with client.app[DB]() as session:
        moved = await session.get(m.Appointment, free)
        stuck = await session.get(m.Appointment, clash)
        assert moved is not None and stuck is not None
        assert moved.staff_id == b_id and stuck.staff_id is None and stuck.status == "booked"
        lead = await session.scalar(
            select(CaseParty.principal_id).where(
                CaseParty.case_id == moved.case_id, CaseParty.role == "lead"
            )
        )
        assert lead == b_id
        event = await session.scalar(
            select(CaseEvent)
            .where(CaseEvent.case_id == moved.case_id, CaseEvent.kind == "appointment.assigned")
            .order_by(CaseEvent.seq.desc())
        )
        assert event is not None and event.data["reason"] == "staff_change"
        told = (
            await session.scalars(
                select(m.OutboxMessage).where(m.OutboxMessage.kind == "booking.staff_change")
            )
        ).all()
        # The moved booking's minutes are B's now; A holds none of them.
        holders = set(
            await session.scalars(
                select(m.TimeClaim.resource).where(m.TimeClaim.appointment_id == free)
            )
        )
    assert [t.appointment_id for t in told] == [clash]
    assert "/booking/manage/" in told[0].body and "改约" in told[0].body
    assert f"staff:{b_id}" in holders and f"staff:{a_id}" not in holders

    page = await (await client.get("/admin/matters#staff", headers=admin)).text()
    assert f'<li data-appointment="{clash}">' in page and "暂无经办人员的预约" in page
    assert f'data-appointment="{free}"' not in page.split('id="unassigned"')[1].split("</ul>")[0]


async def test_taking_a_matter_away_hands_its_bookings_on(client: Client) -> None:
    a_id, _ = await officer(client, "officer-a")
    b_id, _ = await officer(client, "officer-b")
    cat = await seed_app(client.app, staff_ids=(a_id, b_id))
    admin = await staff_headers(client, "boss", "admin")
    kept = await _book(
        client,
        admin,
        {
            "matter_id": cat.small_matter_id,
            "start": cat.iso("09:00"),
            "applicant": person(4),
            "staff_id": a_id,
            "site_address": "仓库",
        },
    )
    moved = await _book(
        client,
        admin,
        {
            "matter_id": cat.matter_id,
            "start": cat.iso("12:00"),
            "applicant": person(3),
            "staff_id": a_id,
        },
    )
    r = await client.put(
        f"/api/v1/admin/staff/{a_id}/qualifications",
        json={"matter_ids": [cat.small_matter_id]},
        headers=admin,
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["handed"] == [{"appointment_id": moved, "staff_id": b_id}]
    async with client.app[DB]() as session:
        assert (await session.get(m.Appointment, moved)).staff_id == b_id  # type: ignore[union-attr]
        assert (await session.get(m.Appointment, kept)).staff_id == a_id  # type: ignore[union-attr]


async def test_the_admin_page_form_deactivates_and_says_what_happened(client: Client) -> None:
    a_id, _ = await officer(client, "officer-a")
    cat = await seed_app(client.app, staff_ids=(a_id,))
    admin = await staff_headers(client, "boss", "admin")
    appt = await _book(
        client,
        admin,
        {"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": person(5)},
    )
    page = await (await client.get("/admin/matters", headers=admin)).text()
    assert f'action="/admin/staff/{a_id}"' in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    form = {"matter_id": str(cat.matter_id)}  # "active" unticked
    if csrf:
        form["csrf_token"] = csrf.group(1)
    r = await client.post(f"/admin/staff/{a_id}", data=form, headers=admin, allow_redirects=False)
    assert r.status == 303, await r.text()
    assert "handed=0&unserved=1" in r.headers["Location"]
    page = await (await client.get(r.headers["Location"], headers=admin)).text()
    assert "已转交同事 0 个预约，1 个暂无经办人员" in page
    async with client.app[DB]() as session:
        assert (await session.get(m.Appointment, appt)).staff_id is None  # type: ignore[union-attr]


async def test_every_sms_about_a_booking_is_in_the_applicants_language(client: Client) -> None:
    a_id, _ = await officer(client, "officer-a")
    cat = await seed_app(client.app, staff_ids=(a_id,))
    mobile = person(6)["mobile"]
    me = await applicant_headers(client, mobile)
    body = {"matter_id": cat.matter_id, "start": cat.iso("15:00"), "applicant": person(6)}
    r = await client.post(
        "/api/v1/appointments", json=body, headers={**me, "Accept-Language": "en-GB,en;q=0.8"}
    )
    assert r.status == 201, await r.text()
    appt = await r.json()
    admin = await staff_headers(client, "boss", "admin")
    zh = await _book(
        client,
        admin,
        {"matter_id": cat.matter_id, "start": cat.iso("16:00"), "applicant": person(7)},
    )
    r = await client.patch(f"/api/v1/admin/staff/{a_id}", json={"active": False}, headers=admin)
    assert sorted((await r.json())["unserved"]) == sorted([appt["id"], zh])
    async with client.app[DB]() as session:
        sms = (
            await session.scalars(
                select(m.OutboxMessage.body)
                .where(m.OutboxMessage.mobile == mobile)
                .order_by(m.OutboxMessage.id)
            )
        ).all()
        queued = {
            o.appointment_id: o.body
            for o in await session.scalars(
                select(m.OutboxMessage).where(m.OutboxMessage.kind == "booking.staff_change")
            )
        }
        stored = await session.get(m.Appointment, appt["id"])
    assert stored is not None and stored.lang == "en"
    confirmation = [b for b in sms if "You have booked" in b]
    assert confirmation and not HAN.search(confirmation[-1].replace("咨询", ""))
    assert "no longer available" in queued[appt["id"]]
    assert not HAN.search(queued[appt["id"]].replace("咨询", ""))  # only the matter's own name
    assert "改约" in queued[zh] and "available" not in queued[zh]
