"""好差评 through the API, on SQLite and PostgreSQL: one rating per session and per case,
the change window, 差评 tickets with a working-day deadline, 回访, fix, re-rating,
appeals, bad input, who may do what, the figures and the export rows."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from server.accounts.models import User
from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.booking import appointments as svc
from server.booking.availability import load_calendar
from server.booking.models import Department, HolidayOverride, Matter, OutboxMessage
from server.booking.validation import validate_applicant
from server.cases import procedure
from server.cases.models import Case, CaseEvent
from server.cases.timeline import append_event, verify_case
from server.settings import Settings
from server.supervision.rating_demo import seed_demo_ratings
from server.supervision.rating_models import Rating, RatingTicket
from server.supervision.ratings import rating_figures, rating_rows
from signaling.handlers import SIGNER
from signaling.tokens import JoinGrant
from tests.support import applicant_headers, open_every_day, staff_headers

Client = TestClient[Any, Any]
MOBILE = "13912345678"


@dataclass
class World:
    case_id: int
    room: str
    token: str
    head: dict[str, str]
    lead: dict[str, str]
    outsider: dict[str, str]
    supervisor: dict[str, str]
    department_id: int
    matter_id: int


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> Client:
    app = create_app(settings)
    return await aiohttp_client(app, cookie_jar=DummyCookieJar())  # type: ignore[no-any-return]


async def _admit(client: Client, case_id: int, room: str, participant: str) -> None:
    """What the live hub records when the inspector lets the applicant in."""
    async with client.app[DB].begin() as session:
        await append_event(
            session, case_id, kind="live.admitted", data={"room": room, "participant": participant}
        )


async def _world(client: Client, *, admitted: bool = True) -> World:
    app = client.app
    zone = app[SETTINGS].zone
    heads = {
        "head": await staff_headers(client, "head", "inspector"),
        "lead": await staff_headers(client, "wang", "inspector"),
        "outsider": await staff_headers(client, "zhao", "inspector"),
        "supervisor": await staff_headers(client, "zhou", "supervisor"),
    }
    async with app[DB].begin() as session:
        users = {u.username: u for u in await session.scalars(select(User))}
        users["head"].mobile = "13700001111"
        matter_id, _ = await open_every_day(
            session,
            staff_ids=(users["wang"].id, users["zhao"].id),
            code="seed-licence",
            name="种子生产经营许可",
            kind="inspection",
        )
        matter = await session.get(Matter, matter_id)
        assert matter is not None
        department = await session.get(Department, matter.department_id)
        assert department is not None
        department.head_id = users["head"].id
        info, problems = validate_applicant(
            {
                "kind": "person",
                "name": "李四维",
                "mobile": MOBILE,
                "id_number": "11010519491231002X",
            }
        )
        assert info is not None, problems
        day = dt.datetime.now(zone).date() + dt.timedelta(days=1)
        appt = await svc.book(
            session,
            svc.BookingRequest(
                matter_id=matter_id,
                start=dt.datetime.combine(day, dt.time(10, 0), zone),
                applicant=info,
                actor=None,
                site_address="沙河镇种子仓库三号库",
                staff_id=users["wang"].id,
            ),
            zone=zone,
        )
        assert appt.case_id is not None
        room = f"appt-{appt.id}"
        token = app[SIGNER].issue(JoinGrant(room, "applicant-1", "applicant", "李四维"), ttl=600)
    if admitted:
        await _admit(client, appt.case_id, room, "applicant-1")
    return World(
        appt.case_id,
        room,
        token,
        heads["head"],
        heads["lead"],
        heads["outsider"],
        heads["supervisor"],
        department.id,
        matter_id,
    )


async def _rate(client: Client, w: World, level: str, **extra: Any) -> Any:
    return await client.post(
        "/api/v1/live/rating", json={"token": w.token, "level": level, **extra}
    )


async def _events(client: Client, case_id: int, prefix: str = "rating.") -> list[CaseEvent]:
    async with client.app[DB]() as session:
        rows = await session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)
        )
        return [e for e in rows if e.kind.startswith(prefix)]


async def test_one_rating_per_session_changed_not_doubled(client: Client) -> None:
    w = await _world(client)
    first = await _rate(client, w, "satisfied", tags=["friendly"])
    assert first.status == 201, await first.text()
    again = await _rate(client, w, "very_satisfied", comment="很好")
    assert again.status == 200, await again.text()
    assert (await again.json())["id"] == (await first.json())["id"]
    async with client.app[DB]() as session:
        rows = list(await session.scalars(select(Rating)))
        assert [(r.scope, r.level, r.comment) for r in rows] == [("session", 5, "很好")]
        assert await session.scalar(select(func.count()).select_from(RatingTicket)) == 0
        case = await session.get(Case, w.case_id)
        assert case is not None and (await verify_case(session, case)).ok
    kinds = [(e.kind, e.data["level"]) for e in await _events(client, w.case_id)]
    assert kinds == [("rating.given", "satisfied"), ("rating.changed", "very_satisfied")]


async def test_the_database_refuses_a_second_row(client: Client) -> None:
    w = await _world(client)
    assert (await _rate(client, w, "basic")).status == 201
    async with client.app[DB]() as session:
        rating = await session.scalar(select(Rating))
        assert rating is not None
    with pytest.raises(IntegrityError):
        async with client.app[DB].begin() as session:
            session.add(
                Rating(
                    case_id=rating.case_id,
                    scope="session",
                    session_ref=rating.session_ref,
                    applicant_id=rating.applicant_id,
                    level=3,
                    editable_until=rating.editable_until,
                )
            )


async def test_bad_rating_opens_a_ticket_for_the_head_with_a_working_day_deadline(
    client: Client,
) -> None:
    w = await _world(client)
    r = await client.patch(
        f"/api/v1/admin/matters/{w.matter_id}", json={"complaint_days": 5}, headers=w.supervisor
    )
    assert r.status == 200 and (await r.json())["complaint_days"] == 5, await r.text()
    zone = client.app[SETTINGS].zone
    today = dt.datetime.now(zone).date()
    async with client.app[DB].begin() as session:
        # A holiday inside the period pushes the deadline out by one working day.
        holiday = today + dt.timedelta(days=2)
        row = await session.get(HolidayOverride, holiday)
        if row is None:
            session.add(HolidayOverride(day=holiday, working=False, note="test holiday"))
        else:
            row.working = False
    r = await _rate(client, w, "dissatisfied", tags=["slow"], comment="等了很久")
    assert r.status == 201, await r.text()
    async with client.app[DB]() as session:
        calendar = await load_calendar(session)
        expected = procedure.add_working_days(today, 5, calendar.is_working_day)
        plain = today + dt.timedelta(days=5)
        assert expected > plain or not calendar.is_working_day(holiday)
        ticket = await session.scalar(select(RatingTicket))
        assert ticket is not None and ticket.deadline == expected
        head = await session.scalar(select(User).where(User.username == "head"))
        assert head is not None and ticket.assignee_id == head.id
        sms = list(await session.scalars(select(OutboxMessage.body)))
        assert any("差评工单" in body and "不满意" in body for body in sms), sms
    (opened,) = [e for e in await _events(client, w.case_id) if e.kind == "rating.ticket_opened"]
    assert opened.data["deadline"] == expected.isoformat() and opened.data["working_days"] == 5

    # The head sees it, calls back, fixes; the applicant re-rates by the SMS link.
    page = await client.get("/staff/rating-tickets", headers=w.head)
    assert page.status == 200 and f'data-ticket="{ticket.id}"' in await page.text()
    assert (
        f'data-ticket="{ticket.id}"'
        not in await (await client.get("/staff/rating-tickets", headers=w.outsider)).text()
    )
    url = f"/api/v1/rating-tickets/{ticket.id}"
    assert (await client.post(url + "/fix", json={"note": "x"}, headers=w.outsider)).status == 404
    assert (await client.post(url + "/fix", json={"note": "x"}, headers=w.lead)).status == 403
    r = await client.post(
        url + "/follow-up", json={"reached": True, "note": "已电话回访"}, headers=w.head
    )
    assert r.status == 200, await r.text()
    r = await client.post(url + "/fix", json={"note": "增开午间窗口"}, headers=w.head)
    assert r.status == 200 and (await r.json())["status"] == "fixed"
    r = await client.post(url + "/fix", json={"note": "again"}, headers=w.head)
    assert r.status == 409 and (await r.json())["error"]["code"] == "ticket_state"
    async with client.app[DB]() as session:
        body = await session.scalar(
            select(OutboxMessage.body).where(OutboxMessage.kind == "rating_fix")
        )
    assert body and "再次评价" in body
    token = re.search(r"/rate/([\w.\-]+)", body)
    assert token
    page = await client.get(f"/rate/{token[1]}")
    assert page.status == 200 and "增开午间窗口" in await page.text()
    r = await client.post("/api/v1/ratings/link", json={"token": token[1], "level": "satisfied"})
    assert r.status == 200 and (await r.json())["kind"] == "fix", await r.text()
    kinds = [e.kind for e in await _events(client, w.case_id)]
    assert kinds == [
        "rating.given",
        "rating.ticket_opened",
        "rating.follow_up",
        "rating.fixed",
        "rating.rerated",
    ]

    async with client.app[DB]() as session:
        start = today - dt.timedelta(days=1)
        figures = await rating_figures(session, start=start, end=today + dt.timedelta(days=1))
        rows = await rating_rows(session, start=start, end=today + dt.timedelta(days=1))
    overall = figures["overall"]
    assert overall["total"] == 1 and overall["bad"] == 1 and overall["good_rate"] == 0.0
    assert overall["levels"]["dissatisfied"] == 1
    assert overall["follow_up_rate"] == 1.0 and overall["rectified_on_time"] == 1
    assert figures["by_department"][0]["id"] == w.department_id
    assert (
        figures["by_officer"][0]["name"] and figures["by_matter"][0]["name"] == "种子生产经营许可"
    )
    (row,) = rows
    assert row["applicant_mobile"] == "139****5678" and MOBILE not in repr(rows)
    assert row["level_label"] == "不满意" and row["rerating"] == "satisfied"


async def test_change_window_closes_with_409(client: Client) -> None:
    w = await _world(client)
    assert (await _rate(client, w, "basic")).status == 201
    async with client.app[DB].begin() as session:
        rating = await session.scalar(select(Rating))
        assert rating is not None
        rating.editable_until = dt.date.today() - dt.timedelta(days=3)
    before = await _events(client, w.case_id)
    r = await _rate(client, w, "very_dissatisfied")
    assert r.status == 409
    assert (await r.json())["error"]["code"] == "rating_closed"
    async with client.app[DB]() as session:
        assert (await session.scalar(select(Rating.level))) == 3
        assert await session.scalar(select(func.count()).select_from(RatingTicket)) == 0
    assert len(await _events(client, w.case_id)) == len(before)


async def test_bad_input_and_forged_links_change_nothing(client: Client) -> None:
    w = await _world(client)
    for body, status in (
        ({"token": w.token, "level": "great"}, 422),
        ({"token": w.token}, 422),
        ({"token": w.token, "level": "basic", "tags": ["nonsense"]}, 422),
        ({"token": w.token, "level": "basic", "comment": "x" * 1001}, 422),
        ({"token": w.token, "level": 3}, 422),
        ({"token": w.token + "x", "level": "basic"}, 403),
        ({"token": "1.0.99999999999.forged", "level": "basic"}, 403),
    ):
        r = await client.post("/api/v1/live/rating", json=body)
        assert r.status == status, (body, await r.text())
        assert (await r.json())["error"]["code"]
    r = await client.post(
        "/api/v1/live/rating", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status == 400 and (await r.json())["error"]["code"] == "malformed_json"
    r = await client.post(
        "/api/v1/ratings/link", json={"token": "9.0.9999999999.xx", "level": "basic"}
    )
    assert r.status == 403 and (await r.json())["error"]["code"] == "bad_rating_link"
    assert (await client.get("/rate/9.0.9999999999.xx")).status == 403
    # A member of staff cannot rate, even holding the applicant's link.
    r = await client.post(
        "/api/v1/live/rating", json={"token": w.token, "level": "very_satisfied"}, headers=w.lead
    )
    assert r.status == 403 and (await r.json())["error"]["code"] == "staff_cannot_rate"
    staff_token = client.app[SIGNER].issue(
        JoinGrant(w.room, "staff-1", "inspector", "wang"), ttl=60
    )
    r = await client.post("/api/v1/live/rating", json={"token": staff_token, "level": "basic"})
    assert r.status == 403 and (await r.json())["error"]["code"] == "staff_cannot_rate"
    async with client.app[DB]() as session:
        assert await session.scalar(select(func.count()).select_from(Rating)) == 0
    assert await _events(client, w.case_id) == []


async def test_case_closing_sends_the_rating_link_and_appeal_is_decided(client: Client) -> None:
    w = await _world(client)
    async with client.app[DB].begin() as session:
        case = await session.get(Case, w.case_id)
        assert case is not None
        case.status = "decided"
        case.outcome = "pass"
    r = await client.post(f"/api/v1/cases/{w.case_id}/close", json={}, headers=w.lead)
    assert r.status == 200, await r.text()
    async with client.app[DB]() as session:
        invite = await session.scalar(
            select(OutboxMessage).where(OutboxMessage.kind == "rating_invite")
        )
    assert invite is not None and invite.mobile == MOBILE and "已办结" in invite.body
    token = re.search(r"/rate/([\w.\-]+)", invite.body)
    assert token
    page = await client.get(f"/rate/{token[1]}")
    assert page.status == 200 and 'data-state="case"' in await page.text()
    r = await client.post(
        "/api/v1/ratings/link", json={"token": token[1], "level": "very_dissatisfied"}
    )
    assert r.status == 201, await r.text()
    rating_id = (await r.json())["rating"]["id"]
    r = await client.post(
        "/api/v1/ratings/link",
        json={"token": token[1], "level": "very_dissatisfied", "comment": "改"},
    )
    assert r.status == 200  # one rating per case: changed
    # Another applicant's login does not make a link theirs, and does not rate as them.
    other = await applicant_headers(client, "13700137000")
    r = await client.post(
        f"/api/v1/ratings/{rating_id}/appeal", json={"reason": "x"}, headers=other
    )
    assert r.status in (403, 404)
    r = await client.post(
        f"/api/v1/ratings/{rating_id}/appeal", json={"reason": "x"}, headers=w.outsider
    )
    assert r.status == 404
    r = await client.post(
        f"/api/v1/ratings/{rating_id}/appeal", json={"reason": "申请人误点"}, headers=w.lead
    )
    assert r.status == 201, await r.text()
    appeal_id = (await r.json())["id"]
    r = await client.post(
        f"/api/v1/ratings/{rating_id}/appeal", json={"reason": "again"}, headers=w.lead
    )
    assert r.status == 409
    url = f"/api/v1/rating-appeals/{appeal_id}/decision"
    assert (await client.post(url, json={"uphold": True}, headers=w.lead)).status == 403
    page = await client.get("/staff/rating-appeals", headers=w.supervisor)
    assert f'data-appeal="{appeal_id}"' in await page.text()
    r = await client.post(url, json={"uphold": True, "note": "确属误评"}, headers=w.supervisor)
    assert r.status == 200, await r.text()
    async with client.app[DB]() as session:
        rating = await session.get(Rating, rating_id)
        ticket = await session.scalar(select(RatingTicket))
        assert rating is not None and rating.status == "void"
        assert ticket is not None and ticket.status == "void"
        today = dt.datetime.now(client.app[SETTINGS].zone).date()
        figures = await rating_figures(
            session, start=today - dt.timedelta(days=1), end=today + dt.timedelta(days=1)
        )
        case = await session.get(Case, w.case_id)
        assert case is not None and (await verify_case(session, case)).ok
    assert figures["overall"]["total"] == 0 and figures["overall"]["voided"] == 1
    kinds = [e.kind for e in await _events(client, w.case_id)]
    assert kinds == [
        "rating.invited",
        "rating.given",
        "rating.ticket_opened",
        "rating.changed",
        "rating.appealed",
        "rating.appeal_decided",
    ]
    r = await client.post("/api/v1/ratings/link", json={"token": token[1], "level": "satisfied"})
    assert r.status == 409 and (await r.json())["error"]["code"] == "rating_closed"


async def test_demo_seed_gives_a_month_of_ratings_once(client: Client) -> None:
    w = await _world(client)
    zone = client.app[SETTINGS].zone
    today = dt.datetime.now(zone).date()
    async with client.app[DB].begin() as session:
        case = await session.get(Case, w.case_id)
        head = await session.scalar(select(User).where(User.username == "head"))
        assert case is not None and head is not None
        written = await seed_demo_ratings(session, cases=[case], today=today, head=head)
        assert written >= 1
        assert await seed_demo_ratings(session, cases=[case], today=today) == 0
        figures = await rating_figures(
            session, start=today - dt.timedelta(days=31), end=today + dt.timedelta(days=1)
        )
        rows = await rating_rows(
            session, start=today - dt.timedelta(days=31), end=today + dt.timedelta(days=1)
        )
        assert (await verify_case(session, case)).ok
    assert figures["overall"]["total"] == written == len(rows)
    assert sum(figures["overall"]["levels"].values()) == written


async def test_no_session_rating_before_the_applicant_was_let_in(client: Client) -> None:
    w = await _world(client, admitted=False)
    r = await _rate(client, w, "satisfied")
    assert r.status == 409 and (await r.json())["error"]["code"] == "session_not_held"
    await _admit(client, w.case_id, "appt-0", "applicant-1")  # another room's admission
    assert (await _rate(client, w, "satisfied")).status == 409
    await _admit(client, w.case_id, w.room, "applicant-1")
    assert (await _rate(client, w, "satisfied")).status == 201
