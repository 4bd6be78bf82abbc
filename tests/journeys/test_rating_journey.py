"""好差评 end to end in Chromium: the applicant rates 不满意 on the phone as the call ends
(一次一评, one tap), a 差评 ticket appears for the department head with its working-day
deadline, the head records the 回访 and the fix, and the applicant re-rates the fix from
the SMS link; the clerk appeals the rating and a supervisor rejects the appeal. The case's
exported bundle, every rating event in it, verifies with ``yunkan verify bundle``.
Screenshots go to ``$YUNKAN_SCREENSHOTS`` (else the test's folder)."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.accounts.service import add_user
from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.booking.availability import load_calendar
from server.booking.models import Department, Matter, OutboxMessage
from server.cases.models import Case, CaseEvent
from server.cases.procedure import add_working_days
from server.cases.timeline import verify_case
from server.settings import Settings
from server.supervision.rating_models import Rating, RatingAppeal, RatingTicket
from signaling.handlers import LIVE_OPTIONS, LiveOptions
from tests.browser import chromium
from tests.journeys.support import (
    CLERK,
    DESK,
    PHONE,
    appointments,
    book_first_slot,
    end_call,
    export_and_verify,
    join_and_wait,
    phone_login,
    seed_consultation_desk,
    staff_login,
    start_and_admit,
    until,
    video_playing,
)

pytestmark = pytest.mark.browser

MOBILE = "13800138444"


async def _seed(app: Any) -> None:
    """The consultation desk, and a head of its department who handles 差评 in 7 days."""
    async with app[DB].begin() as session:
        await seed_consultation_desk(session)
        head = await add_user(
            session,
            username="liu",
            password="yunkan-head-5",
            role="inspector",
            display_name="刘科长",
        )
        await add_user(
            session,
            username="zhou",
            password="yunkan-super-5",
            role="supervisor",
            display_name="督查 周敏",
        )
        matter = await session.scalar(select(Matter).where(Matter.code == "fund-consult"))
        assert matter is not None
        department = await session.get(Department, matter.department_id)
        assert department is not None
        department.head_id = head.id
        department.complaint_days = 7


async def _ticket(app: Any) -> RatingTicket | None:
    async with app[DB]() as session:
        return await session.scalar(select(RatingTicket))


async def _sms(app: Any, kind: str) -> str:
    async with app[DB]() as session:
        body = await session.scalar(
            select(OutboxMessage.body).where(
                OutboxMessage.kind == kind, OutboxMessage.mobile == MOBILE
            )
        )
    assert body is not None, kind
    return body


def _rate_path(body: str) -> str:
    """The path of the rating link at the end of an SMS (its host is the public URL)."""
    link = re.search(r"/rate/\S+$", body)
    assert link, body
    return link[0]


def _shots(tmp_path: Path) -> Path:
    path = Path(os.environ.get("YUNKAN_SCREENSHOTS", tmp_path / "shots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


async def test_bad_rating_at_the_end_of_a_call_is_followed_up_fixed_and_rerated(
    aiohttp_server: Any, sqlite_settings: Settings, tmp_path: Path
) -> None:
    app = create_app(sqlite_settings)
    app[LIVE_OPTIONS] = LiveOptions(grace=5.0, host_addresses=("127.0.0.1",))
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    await _seed(app)
    shots = _shots(tmp_path)

    async with chromium() as browser:
        phone = await (await browser.new_context(**PHONE)).new_page()
        desk = await (await browser.new_context(**DESK)).new_page()

        await phone_login(phone, base, app, MOBILE)
        await phone.goto(base + "/")
        await phone.click(".zone-citizen")
        await phone.click(".matter >> nth=0 >> a.button.primary")
        join_path = await book_first_slot(
            phone, MOBILE, {"kind": "person", "name": "林晓梅", "id_number": "11010519491231002X"}
        )
        await join_and_wait(phone, base, join_path)
        (appt,) = await appointments(app)
        case_id = appt.case_id
        assert case_id is not None

        await staff_login(desk, base, CLERK[0], CLERK[1])
        await start_and_admit(desk, base, appt, app[SETTINGS].zone)
        await phone.wait_for_selector("#call:not([hidden])", timeout=20_000)
        await video_playing(phone, "#tiles video")
        assert await phone.locator("#rating-panel").is_hidden()
        await end_call(desk)

        # 一次一评: the call page turns into the rating as the call ends; one tap.
        await phone.wait_for_selector("#rating-panel:not([hidden])", timeout=20_000)
        await phone.click("#rating-panel .rating-level[data-level=dissatisfied]")
        await phone.wait_for_selector("#rating-panel[data-sent=dissatisfied]", timeout=10_000)
        await phone.fill("#rating-comment", "视频卡顿，等了很久")
        await phone.click("#rating-comment-send")
        await phone.wait_for_selector("#rating-panel[data-comment=sent]")
        await phone.screenshot(path=str(shots / "rating-call-end.png"))
        await until(lambda: _ticket(app))

        # The consultation closed with the call: 一事一评 by the SMS link, on the phone.
        invite = await _sms(app, "rating_invite")
        await phone.goto(base + _rate_path(invite))
        await phone.check("input[name=tags][value=friendly]")
        await phone.click(".rating-level[data-level=satisfied]")
        await phone.wait_for_selector("#rate[data-sent=satisfied]")
        await phone.screenshot(path=str(shots / "rating-case.png"), full_page=True)

        ticket = await _ticket(app)
        assert ticket is not None
        async with app[DB]() as session:
            calendar = await load_calendar(session)
            rating = await session.get(Rating, ticket.rating_id)
        today = dt.datetime.now(app[SETTINGS].zone).date()
        assert ticket.deadline == add_working_days(today, 7, calendar.is_working_day)
        assert rating is not None and rating.level == 2 and rating.scope == "session"

        # The department head's list shows it with its deadline.
        head = await (await browser.new_context(**DESK)).new_page()
        await staff_login(head, base, "liu", "yunkan-head-5")
        await head.goto(base + "/staff/rating-tickets")
        row = head.locator(f"#tickets tr[data-ticket='{ticket.id}']")
        assert await row.locator("td.deadline").inner_text() == ticket.deadline.isoformat()
        assert "不满意" in await row.inner_text()  # zh-CN first
        await head.screenshot(path=str(shots / "rating-tickets.png"))
        await row.locator("a").click()
        await head.wait_for_url(re.compile(rf".*/staff/rating-tickets/{ticket.id}$"))
        assert "视频卡顿" in await head.inner_text("#ticket-facts")

        # 回访, then the fix.
        await head.fill("#follow-up-form textarea[name=note]", "已电话回访，申请人反映网络卡顿")
        await head.click("#follow-up-form button[type=submit]")
        await head.wait_for_selector("#follow-up[data-done]")
        assert "已电话回访" in await head.inner_text("#follow-up")
        await head.fill("#fix-form textarea[name=note]", "为该窗口开通备用线路")
        await head.click("#fix-form button[type=submit]")
        await head.wait_for_selector("#ticket[data-status=fixed]")
        await head.screenshot(path=str(shots / "rating-ticket.png"))

        # The applicant re-rates the fix from the SMS link, on the phone.
        await phone.goto(base + _rate_path(await _sms(app, "rating_fix")))
        assert "为该窗口开通备用线路" in await phone.inner_text("#fix-note")
        await phone.click(".rating-level[data-level=satisfied]")
        await phone.wait_for_selector("#rate[data-sent=satisfied]")
        await phone.screenshot(path=str(shots / "rating-rerate.png"))

        # The clerk appeals the rating as mistaken; a supervisor rejects the appeal.
        await desk.goto(f"{base}/staff/rating-tickets/{ticket.id}")
        assert await desk.locator("#follow-up-form").count() == 0  # the clerk is not the head
        await desk.fill("#appeal-form textarea[name=reason]", "网络问题在申请人一侧")
        await desk.click("#appeal-form button[type=submit]")
        await desk.wait_for_selector("#appeal-state")
        supervisor = await (await browser.new_context(**DESK)).new_page()
        await staff_login(supervisor, base, "zhou", "yunkan-super-5")
        await supervisor.goto(base + "/staff/rating-appeals")
        assert "网络问题在申请人一侧" in await supervisor.inner_text("article.appeal")
        await supervisor.fill("article.appeal textarea[name=note]", "回访记录显示确有卡顿")
        await supervisor.screenshot(path=str(shots / "rating-appeals.png"))
        await supervisor.click("article.appeal button[value='0']")
        await supervisor.wait_for_selector("#no-appeals")
        await export_and_verify(desk, base, case_id, tmp_path)

    async with app[DB]() as session:
        final = await session.get(RatingTicket, ticket.id)
        assert final is not None and final.status == "closed" and final.rerating_level == 4
        assert final.follow_up_reached is True
        appeal = await session.scalar(select(RatingAppeal))
        assert appeal is not None and appeal.status == "rejected"
        assert appeal.decision_note == "回访记录显示确有卡顿"
        case = await session.get(Case, case_id)
        assert case is not None and case.status == "closed"
        assert (await verify_case(session, case)).ok
        by_case = await session.scalar(select(Rating).where(Rating.scope == "case"))
        assert by_case is not None and by_case.level == 4 and by_case.tags == ["friendly"]
        kinds = [
            e.kind
            for e in await session.scalars(
                select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)
            )
            if e.kind.startswith("rating.")
        ]
    assert kinds == [
        "rating.invited",
        "rating.given",
        "rating.ticket_opened",
        "rating.changed",
        "rating.given",
        "rating.follow_up",
        "rating.fixed",
        "rating.rerated",
        "rating.appealed",
        "rating.appeal_decided",
    ]
