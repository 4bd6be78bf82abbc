"""Who may do what to an appointment: the case's parties, oversight, takers, link holders.

Every booking endpoint is tried by each kind of caller; nobody outside the case reads
anything or changes anything.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.appkeys import DB
from server.booking import models as m
from server.cases.models import Case, CaseEvent, CaseParty
from tests.booking.support import (
    ENTERPRISE,
    PERSON,
    appointment_row,
    officer,
    person,
    seed_app,
    token_of,
)
from tests.support import applicant_headers

Client = TestClient[Any, Any]


async def _book(client: Client, cat: Any, headers: dict[str, str], hhmm: str = "10:00") -> Any:
    r = await client.post(
        "/api/v1/appointments",
        json={"matter_id": cat.matter_id, "start": cat.iso(hhmm), "applicant": PERSON},
        headers=headers,
    )
    assert r.status == 201, await r.text()
    return await r.json()


async def _parties(client: Client, case_id: int) -> dict[int, str]:
    async with client.app[DB]() as session:
        rows = await session.execute(
            select(CaseParty.principal_id, CaseParty.role).where(
                CaseParty.case_id == case_id, CaseParty.principal_kind == "staff"
            )
        )
        return dict(rows.all())


async def _try_everything(
    client: Client, aid: int, cat: Any, headers: dict[str, str]
) -> dict[str, int]:
    base = f"/api/v1/appointments/{aid}"
    out = {}
    for name, method, url, body in [
        ("get", "GET", base, None),
        ("ics", "GET", base + "/calendar.ics", None),
        ("qr", "GET", base + "/qr.svg", None),
        ("cancel", "POST", base + "/cancel", {}),
        ("reschedule", "POST", base + "/reschedule", {"start": cat.iso("16:00")}),
        ("check_in", "POST", base + "/check-in", {}),
        ("status", "POST", base + "/status", {"status": "in_session"}),
        ("assign", "POST", base + "/assign", {"staff_id": None}),
    ]:
        r = await client.request(method, url, json=body, headers=headers)
        out[name] = r.status
    return out


async def test_outsiders_get_404_oversight_reads_and_assigns(client: Client) -> None:
    lead_id, lead = await officer(client, "lead")
    other_id, other = await officer(client, "other")  # an inspector of another matter
    _, sup = await officer(client, "sup", "supervisor")
    cat = await seed_app(client.app, staff_ids=(lead_id,))
    booked = await _book(client, cat, await applicant_headers(client, PERSON["mobile"]))
    aid = booked["id"]
    assert booked["staff_id"] == lead_id
    before = await appointment_row(client, aid)

    stranger = await applicant_headers(client, "13700000001")
    for headers in (other, stranger, {}):
        tried = await _try_everything(client, aid, cat, headers)
        assert set(tried.values()) <= {401, 403, 404}, tried
        assert tried["get"] in (404, 401) and tried["cancel"] == 404, tried
        listed = await client.get("/api/v1/appointments", headers=headers)
        if listed.status == 200:
            assert aid not in [a["id"] for a in (await listed.json())["appointments"]]
    after = await appointment_row(client, aid)
    assert (after.status, after.version, after.staff_id) == ("booked", before.version, lead_id)

    # Oversight: reads (masked, no links), may not act on the booking.
    tried = await _try_everything(client, aid, cat, sup)
    assert tried["get"] == 200
    assert {k: tried[k] for k in ("ics", "qr", "cancel", "reschedule", "check_in", "status")} == {
        "ics": 403,
        "qr": 403,
        "cancel": 403,
        "reschedule": 403,
        "check_in": 403,
        "status": 403,
    }
    seen = await (await client.get(f"/api/v1/appointments/{aid}", headers=sup)).json()
    assert seen["applicant"]["id_number"] == "110105********002X" and "join_url" not in seen
    day = await (await client.get(f"/api/v1/appointments?date={cat.day}", headers=sup)).json()
    assert [a["id"] for a in day["appointments"]] == [aid]
    # …the "assign" above unassigned it: oversight may assign.
    assert (await appointment_row(client, aid)).staff_id is None

    # The lead (once more assigned) sees everything, in full.
    async with client.app[DB].begin() as session:
        session.add(m.StaffQualification(user_id=other_id, matter_id=cat.matter_id))
    r = await client.post(
        f"/api/v1/appointments/{aid}/assign", json={"staff_id": lead_id}, headers=sup
    )
    assert r.status == 200, await r.text()
    full = await (await client.get(f"/api/v1/appointments/{aid}", headers=lead)).json()
    assert full["applicant"]["id_number"] == PERSON["id_number"] and "manage_url" in full
    mine = await (await client.get(f"/api/v1/appointments?date={cat.day}", headers=lead)).json()
    assert [a["id"] for a in mine["appointments"]] == [aid]
    # Qualified but the appointment has an officer: still nothing for `other`.
    assert (await client.get(f"/api/v1/appointments/{aid}", headers=other)).status == 404


async def test_link_holders_keep_working_but_a_join_link_cannot_manage(client: Client) -> None:
    lead_id, lead = await officer(client, "lead")
    cat = await seed_app(client.app, staff_ids=(lead_id,))
    booked = await _book(client, cat, lead)
    aid, manage, join = booked["id"], token_of(booked["manage_url"]), token_of(booked["join_url"])
    got = await (await client.get(f"/api/v1/appointments/{aid}?token={join}")).json()
    assert got["applicant"]["mobile"] == "138****8000" and "manage_url" not in got
    ics = await client.get(f"/api/v1/appointments/{aid}/calendar.ics?token={join}")
    assert ics.status == 200 and "booking/manage" not in (await ics.text()).replace("\r\n ", "")
    assert (
        await client.post(f"/api/v1/appointments/{aid}/cancel", json={"token": join})
    ).status == 403
    with_manage = await client.get(f"/api/v1/appointments/{aid}?token={manage}")
    assert "manage_url" in await with_manage.json()
    r = await client.post(f"/api/v1/appointments/{aid}/check-in", json={"token": join})
    assert r.status == 200 and (await r.json())["status"] == "checked_in"


async def test_qualified_staff_may_take_an_unassigned_appointment(client: Client) -> None:
    _, sup = await officer(client, "sup", "supervisor")
    taker_id, taker = await officer(client, "taker")
    cat = await seed_app(client.app)  # nobody qualified yet: booked unassigned
    booked = await _book(client, cat, sup)
    aid = booked["id"]
    assert booked["staff_id"] is None
    assert (await client.get(f"/api/v1/appointments/{aid}", headers=taker)).status == 404
    async with client.app[DB].begin() as session:
        session.add(m.StaffQualification(user_id=taker_id, matter_id=cat.matter_id))
    day = await (await client.get(f"/api/v1/appointments?date={cat.day}", headers=taker)).json()
    assert [a["id"] for a in day["appointments"]] == [aid]
    assert day["appointments"][0]["applicant"]["id_number"] == "110105********002X"
    url = f"/api/v1/appointments/{aid}"
    assert (await client.post(url + "/cancel", json={}, headers=taker)).status == 403
    assert (await client.post(url + "/assign", json={"staff_id": 1}, headers=taker)).status == 403
    took = await client.post(url + "/assign", json={"staff_id": taker_id}, headers=taker)
    assert took.status == 200, await took.text()
    assert await _parties(client, booked["case_id"]) == {taker_id: "lead"}
    full = await (await client.get(url, headers=taker)).json()
    assert full["applicant"]["id_number"] == PERSON["id_number"]


async def test_reassign_hands_the_case_to_the_new_lead(client: Client) -> None:
    a_id, a = await officer(client, "a")
    b_id, b = await officer(client, "b")
    _, sup = await officer(client, "sup", "supervisor")
    cat = await seed_app(client.app, staff_ids=(a_id, b_id))
    booked = await _book(client, cat, sup)
    aid, case_id = booked["id"], booked["case_id"]
    first = booked["staff_id"]
    second = b_id if first == a_id else a_id
    url = f"/api/v1/appointments/{aid}/assign"
    r = await client.post(url, json={"staff_id": second}, headers=sup)
    assert r.status == 200 and (await r.json())["staff_id"] == second
    assert await _parties(client, case_id) == {second: "lead"}  # scheduled: the old lead leaves
    async with client.app[DB].begin() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        case.status = "inspecting"
    r = await client.post(url, json={"staff_id": first}, headers=sup)
    assert r.status == 200
    assert await _parties(client, case_id) == {first: "lead", second: "inspector"}
    async with client.app[DB]() as session:
        events = (
            await session.execute(
                select(CaseEvent.actor_name, CaseEvent.data).where(
                    CaseEvent.case_id == case_id, CaseEvent.kind == "appointment.assigned"
                )
            )
        ).all()
    assert [(n, d["staff_id"], d["previous_staff_id"]) for n, d in events] == [
        ("sup", second, first),
        ("sup", first, second),
    ]
    assert events[1][1]["previous_leads"] == [{"staff_id": second, "to": "inspector"}]
    # A co-inspector may not hand over; the lead may.
    co, lead = (a, b) if second == a_id else (b, a)
    assert (await client.post(url, json={"staff_id": second}, headers=co)).status == 403
    assert (await client.post(url, json={"staff_id": second}, headers=lead)).status == 200


async def test_enterprise_identity_is_masked_for_oversight(client: Client) -> None:
    lead_id, lead = await officer(client, "lead")
    _, sup = await officer(client, "sup", "supervisor")
    cat = await seed_app(client.app, staff_ids=(lead_id,))
    r = await client.post(
        "/api/v1/appointments",
        json={
            "matter_id": cat.small_matter_id,
            "start": cat.iso("09:00"),
            "applicant": ENTERPRISE,
            "site_address": "园区 1 号",
        },
        headers=lead,
    )
    aid = (await r.json())["id"]
    masked = await (await client.get(f"/api/v1/appointments/{aid}", headers=sup)).json()
    full = await (await client.get(f"/api/v1/appointments/{aid}", headers=lead)).json()
    assert masked["applicant"]["mobile"] == "139****9000"
    assert full["applicant"]["mobile"] == ENTERPRISE["mobile"]
    assert person(1)["mobile"] not in str(masked)
