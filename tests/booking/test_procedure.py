"""Booking joins the case procedure: check-in and no-shows, the queue's order, the staff
day view's actions, and the re-inspection booked on the same case."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.accounts.principal import Principal
from server.appkeys import DB, SETTINGS
from server.booking import appointments as svc
from server.booking import errors, queue
from server.booking import models as m
from server.booking.reminders import mark_no_shows
from server.booking.validation import validate_applicant
from server.cases import procedure
from server.cases.models import Case, CaseEvent, CaseParty
from signaling.links import appointment_room, signer_for
from tests.booking.support import (
    ENTERPRISE,
    PERSON,
    appointment_row,
    officer,
    person,
    seed_app,
    token_of,
)
from tests.support import applicant_headers, create_staff

Client = TestClient[Any, Any]
GRACE = timedelta(minutes=15)


async def _book(client: Client, headers: dict[str, str], body: dict[str, Any]) -> Any:
    r = await client.post("/api/v1/appointments", json=body, headers=headers)
    assert r.status == 201, await r.text()
    return await r.json()


async def test_the_live_moves_and_no_show_only_for_who_never_joined(client: Client) -> None:
    lead_id, lead = await officer(client, "lead")
    # Three appointments at 10:00 need three officers: one officer's time is claimed once.
    others = (await create_staff(client, "second"), await create_staff(client, "third"))
    cat = await seed_app(client.app, staff_ids=(lead_id, *others))
    ids = []
    for i, hhmm in enumerate(["10:00", "10:00", "10:00"]):
        body = {"matter_id": cat.matter_id, "start": cat.iso(hhmm), "applicant": person(i)}
        ids.append((await _book(client, lead, body))["id"])
    waiting, admitted, absent = ids
    actor = Principal(kind="staff", id=lead_id, role="inspector", name="lead")
    start = cat.start("10:00")
    async with client.app[DB].begin() as session:  # what the live side calls
        for aid, moves in (
            (waiting, ["checked_in", "checked_in"]),  # entered the waiting room, twice
            (admitted, ["in_session", "in_session", "checked_in"]),  # staff-started, rejoin
        ):
            appt = await session.get(m.Appointment, aid)
            assert appt is not None
            for status in moves:
                await svc.set_status(session, appt, status, None, now=start)
    assert (await appointment_row(client, waiting)).status == "checked_in"
    assert (await appointment_row(client, admitted)).status == "in_session"

    # The officer is 20 minutes late: only the one who never joined is a no-show.
    marked = await mark_no_shows(client.app[DB], grace=GRACE, now=start + timedelta(minutes=20))
    assert marked == [absent]
    assert (await appointment_row(client, waiting)).status == "checked_in"

    # By hand: never before the start, never once the applicant joined.
    async with client.app[DB]() as session:
        appt = await session.get(m.Appointment, waiting)
        assert appt is not None
        with pytest.raises(errors.AppointmentStatusError) as joined:
            await svc.set_status(session, appt, "no_show", actor, now=start + GRACE)
        assert "checked_in" in str(joined.value) and "joined" in str(joined.value)
    r = await client.post(
        f"/api/v1/appointments/{waiting}/status",
        json={"status": "completed"},
        headers={**lead, "Accept-Language": "en"},
    )
    assert r.status == 200 and (await r.json())["status"] == "completed"
    async with client.app[DB].begin() as session:
        appt = await session.get(m.Appointment, admitted)
        assert appt is not None
        await svc.set_status(session, appt, "completed", None, now=start)
        await svc.set_status(session, appt, "completed", None, now=start)  # both nodes end it
    body = {"matter_id": cat.matter_id, "start": cat.iso("11:00"), "applicant": PERSON}
    later = (await _book(client, lead, body))["id"]
    early = await client.post(
        f"/api/v1/appointments/{later}/status",
        json={"status": "no_show"},
        headers={**lead, "Accept-Language": "en"},
    )
    assert early.status == 409
    message = (await early.json())["error"]["message"]
    assert f"Appointment {later} starts at {cat.day} 11:00" in message
    async with client.app[DB].begin() as session:
        appt = await session.get(m.Appointment, later)
        assert appt is not None
        with pytest.raises(errors.NoShowTooEarly):
            await svc.set_status(session, appt, "no_show", actor, now=cat.start("10:59"))
        await svc.set_status(session, appt, "no_show", actor, now=cat.start("11:01"))
    assert (await appointment_row(client, later)).status == "no_show"
    async with client.app[DB]() as session:
        kinds = list(
            await session.scalars(
                select(CaseEvent.kind)
                .where(CaseEvent.kind.like("appointment.%"))
                .order_by(CaseEvent.id)
            )
        )
    assert kinds.count("appointment.checked_in") == 1 and kinds.count("appointment.completed") == 2


async def test_checked_in_due_appointments_come_before_walk_ins(client: Client) -> None:
    clerk_id, _ = await officer(client, "clerk")
    _, sup = await officer(client, "sup", "supervisor")
    cat = await seed_app(client.app)
    body = {"matter_id": cat.queue_matter_id, "applicant": PERSON}
    waiting = await _book(client, sup, {**body, "start": cat.iso("10:00")})
    absent = await _book(client, sup, {**body, "applicant": person(3), "start": cat.iso("09:40")})
    assert waiting["staff_id"] is None and absent["staff_id"] is None
    async with client.app[DB].begin() as session:
        session.add(m.StaffQualification(user_id=clerk_id, matter_id=cat.queue_matter_id))
    checked = await client.post(
        f"/api/v1/appointments/{waiting['id']}/check-in",
        json={"token": token_of(waiting["join_url"])},
    )
    assert checked.status == 200
    info, _ = validate_applicant(person(5))
    assert info is not None
    clerk = Principal(kind="staff", id=clerk_id, role="inspector", name="clerk")
    zone = client.app[SETTINGS].zone
    other, _ = validate_applicant(person(6))  # one live ticket per person: two people
    assert other is not None
    async with client.app[DB].begin() as session:
        await queue.join(session, cat.queue_matter_id, info, applicant_account_id=None)
        await queue.join(session, cat.queue_matter_id, other, applicant_account_id=None)
    async with client.app[DB].begin() as session:  # 09:45: the absent one does not block
        first = await queue.take_next(session, clerk, zone=zone, now=cat.start("09:45"))
    assert first is not None and first.kind == "ticket"
    async with client.app[DB].begin() as session:  # 09:57: the waiting one is due
        served = await queue.take_next(session, clerk, zone=zone, now=cat.start("09:57"))
    assert served is not None and (served.kind, served.id) == ("appointment", waiting["id"])
    row = await appointment_row(client, waiting["id"])
    assert (row.status, row.staff_id) == ("in_session", clerk_id)
    async with client.app[DB]() as session:
        lead = await session.scalar(
            select(CaseParty.principal_id).where(
                CaseParty.case_id == waiting["case_id"], CaseParty.role == "lead"
            )
        )
    assert lead == clerk_id
    settings = client.app[SETTINGS]
    url = queue.console_url(settings, served, clerk)
    assert url is not None
    grant = signer_for(settings).verify(url.split("/live/j/")[1])
    assert grant.room == appointment_room(waiting["id"]) and grant.role == "inspector"


async def test_staff_day_rows_and_their_actions(client: Client) -> None:
    lead_id, lead = await officer(client, "lead")
    _, outsider = await officer(client, "outsider")
    _, sup = await officer(client, "sup", "supervisor")
    cat = await seed_app(client.app, staff_ids=(lead_id,))
    booked = await _book(
        client, lead, {"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": PERSON}
    )
    aid, case_id = booked["id"], booked["case_id"]
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        number = case.number
    page = await (await client.get(f"/staff/day?date={cat.day}", headers=lead)).text()
    row = re.search(rf'<tr data-appointment="{aid}".*?</tr>', page, re.S)
    assert row is not None
    html = row.group(0)
    assert f'href="/staff/cases/{case_id}">{number}</a>' in html
    assert 'data-state="scheduled"' in html
    for action in ("start", "check_in", "reassign"):
        assert f'data-action="{action}"' in html
    assert 'data-action="no_show"' not in html  # not before the start
    assert 'name="csrf_token"' in html and PERSON["mobile"] in html
    hidden = await (await client.get(f"/staff/day?date={cat.day}", headers=outsider)).text()
    assert f'data-appointment="{aid}"' not in hidden and PERSON["mobile"] not in hidden
    watched = await (await client.get(f"/staff/day?date={cat.day}", headers=sup)).text()
    sup_row = re.search(rf'<tr data-appointment="{aid}".*?</tr>', watched, re.S)
    assert sup_row is not None and 'data-action="reassign"' in sup_row.group(0)
    assert 'data-action="start"' not in sup_row.group(0)
    assert PERSON["mobile"] not in sup_row.group(0) and "138****8000" in sup_row.group(0)

    url = f"/staff/appointments/{aid}"
    assert (await client.post(url + "/check-in", headers=outsider)).status == 404
    early = await client.post(url + "/no-show", headers=lead, allow_redirects=False)
    assert early.status == 409
    r = await client.post(url + "/check-in", headers=lead, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == f"/staff/day?date={cat.day}"
    assert (await appointment_row(client, aid)).status == "checked_in"
    r = await client.post(url + "/start", headers=lead, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/live/j/")
    grant = signer_for(client.app[SETTINGS]).verify(r.headers["Location"].removeprefix("/live/j/"))
    assert grant.room == appointment_room(aid) and grant.role == "inspector"
    assert grant.participant == f"staff-{lead_id}"
    assert (await client.post(url + "/start", headers=outsider)).status == 404
    assert (await client.post(url + "/start", headers=sup)).status == 403


async def test_staff_day_forms_work_with_the_session_and_its_csrf_token(browser: Client) -> None:
    lead_id, bearer = await officer(browser, "lead")
    cat = await seed_app(browser.app, staff_ids=(lead_id,))
    body = {"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": PERSON}
    aid = (await _book(browser, bearer, body))["id"]
    login_page = await (await browser.get("/login?tab=staff")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page)
    assert csrf is not None
    login = await browser.post(
        "/login/staff",
        data={"username": "lead", "password": "correct-horse-1", "csrf_token": csrf.group(1)},
        allow_redirects=False,
    )
    assert login.status == 303, await login.text()
    day = await (await browser.get(f"/staff/day?date={cat.day}")).text()
    form = re.search(
        rf'action="/staff/appointments/{aid}/check-in".*?name="csrf_token" value="([^"]+)"',
        day,
        re.S,
    )
    assert form is not None
    url = f"/staff/appointments/{aid}/check-in"
    forged = await browser.post(url, allow_redirects=False)
    assert forged.status == 403 and (await appointment_row(browser, aid)).status == "booked"
    r = await browser.post(url, data={"csrf_token": form.group(1)}, allow_redirects=False)
    assert r.status == 303 and (await appointment_row(browser, aid)).status == "checked_in"


async def _into_rectifying(client: Client, case_id: int, lead_id: int) -> None:
    actor = Principal(kind="staff", id=lead_id, role="inspector", name="lead")
    async with client.app[DB].begin() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        await procedure.admitted(session, case, actor, consultation=False)
        await procedure.draft_decision(
            session,
            case,
            actor,
            decision_id=1,
            outcome="rectify",
            reason="灭火器过期",
            review=False,
            reviewer=None,
            deadline=None,
        )
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None and case.status == "rectifying"


async def _inspection_booking(
    client: Client,
) -> tuple[int, Any, dict[str, str], dict[str, Any]]:
    """A lead qualified for the inspection matter, its owner logged in, a booking body."""
    lead_id, _ = await officer(client, "lead")
    cat = await seed_app(client.app, staff_ids=(lead_id,))
    owner = await applicant_headers(client, ENTERPRISE["mobile"])
    body = {
        "matter_id": cat.small_matter_id,
        "start": cat.iso("09:00"),
        "applicant": ENTERPRISE,
        "site_address": "某县工业园 3 号",
    }
    return lead_id, cat, owner, body


async def test_re_inspection_is_booked_on_the_same_case(client: Client) -> None:
    lead_id, cat, owner, body = await _inspection_booking(client)
    first = await _book(client, owner, body)
    case_id = first["case_id"]
    follow = {**body, "start": cat.iso("15:00"), "case_id": case_id}
    too_early = await client.post("/api/v1/appointments", json=follow, headers=owner)
    assert too_early.status == 201  # a second slot of the scheduled step: allowed, same case
    assert (await too_early.json())["case_id"] == case_id
    await _into_rectifying(client, case_id, lead_id)

    async with client.app[DB]() as session:
        cases = await session.scalar(select(func.count()).select_from(Case))
    again = await _book(client, owner, {**follow, "start": cat.iso("16:00")})
    assert again["case_id"] == case_id and again["staff_id"] == lead_id  # the same inspector
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None and case.status == "re_inspection"
        assert await session.scalar(select(func.count()).select_from(Case)) == cases
        moved = await session.scalar(
            select(CaseEvent.data).where(
                CaseEvent.case_id == case_id, CaseEvent.kind == "case.re_inspection"
            )
        )
        assert moved is not None and moved["appointment_id"] == again["id"]

    # Another applicant, another matter, a closed case: refused, nothing booked.
    stranger = await applicant_headers(client, person(4)["mobile"])
    other = {**follow, "applicant": person(4), "start": cat.iso("17:00")}
    assert (await client.post("/api/v1/appointments", json=other, headers=stranger)).status == 404
    wrong = {**follow, "matter_id": cat.matter_id, "start": cat.iso("17:00")}
    r = await client.post("/api/v1/appointments", json=wrong, headers=owner)
    assert r.status == 422 and "matter_id" in (await r.json())["error"]["fields"]
    async with client.app[DB].begin() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        await procedure.cancel(session, case, None, "申请人已注销")  # type: ignore[arg-type]
    r = await client.post(
        "/api/v1/appointments", json={**follow, "start": cat.iso("17:30")}, headers=owner
    )
    assert r.status == 409 and (await r.json())["error"]["code"] == "case_state"
    async with client.app[DB]() as session:
        assert await session.scalar(select(func.count()).select_from(m.Appointment)) == 3


async def test_re_inspection_through_the_pages(client: Client) -> None:
    lead_id, cat, owner, body = await _inspection_booking(client)
    case_id = (await _book(client, owner, body))["case_id"]
    await _into_rectifying(client, case_id, lead_id)
    page = await client.get(
        f"/book/matter/{cat.small_matter_id}?case={case_id}&date={cat.day}", headers=owner
    )
    html = await page.text()
    assert page.status == 200 and f'data-case="{case_id}"' in html
    link = re.search(r'href="(/book/matter/\d+/details\?start=[^"]+)"', html)
    assert link is not None and f"case={case_id}" in link.group(1)
    details_url = link.group(1).replace("&amp;", "&")
    details = await (await client.get(details_url, headers=owner)).text()
    assert f'name="case_id" value="{case_id}"' in details
    assert f'value="{ENTERPRISE["credit_code"]}"' in details  # filled in from the case
    start = re.search(r'name="start" value="([^"]+)"', details)
    assert start is not None
    form = {
        **{k: v for k, v in ENTERPRISE.items()},
        "start": start.group(1),
        "case_id": str(case_id),
        "site_address": "某县工业园 3 号",
    }
    done = await client.post(details_url, data=form, headers=owner, allow_redirects=False)
    assert done.status == 303, await done.text()
    confirmation = await (await client.get(done.headers["Location"], headers=owner)).text()
    assert f'data-case="{case_id}"' in confirmation
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None and case.status == "re_inspection"
        assert await session.scalar(select(func.count()).select_from(Case)) == 1
