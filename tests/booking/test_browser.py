"""The booking flow and the live queue in headless Chromium, on the demo catalogue."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from server.accounts.models import SmsMessage
from server.app import create_app
from server.appkeys import DB, SMS
from server.booking import outbox
from server.booking.demo import seed as booking_seed
from server.demo import DEMO_APPLICANT_MOBILE, seed
from server.settings import Settings
from tests.browser import chromium
from tests.support import latest_code

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "locale": "zh-CN"}


class _Client:  # latest_code reads the outbox through the app's database
    def __init__(self, app: Any) -> None:
        self.app = app


async def test_book_on_a_phone_and_staff_see_the_queue_live(
    aiohttp_server: Any, sqlite_settings: Settings, tmp_path: Path
) -> None:
    app = create_app(sqlite_settings)
    server = await aiohttp_server(app, host="127.0.0.1")
    await seed(app[DB], sqlite_settings)
    async with app[DB].begin() as session:
        await booking_seed(session, sqlite_settings)
    base = f"http://127.0.0.1:{server.port}"

    async with chromium() as browser:
        phone = await browser.new_page(**PHONE)
        await phone.goto(base + "/login")
        await phone.fill("input[name=mobile]", DEMO_APPLICANT_MOBILE)
        await phone.click("#otp-request button[type=submit]")
        await phone.wait_for_selector("#otp-verify")
        code = await latest_code(_Client(app), DEMO_APPLICANT_MOBILE)  # type: ignore[arg-type]
        await phone.fill("input[name=code]", code)
        await phone.click("#otp-verify button[type=submit]")
        await phone.wait_for_url(re.compile(r".*/me$"))

        # zone → matter → day → slot → details → confirmation
        await phone.goto(base + "/")
        await phone.click(".zone-citizen")
        await phone.click(".matter >> nth=0 >> a.button.primary")
        await phone.wait_for_selector(".period h3")
        # The day picker offers only days with slots (the demo plans Monday to Friday).
        days = await phone.eval_on_selector_all(
            "a.day", "els => els.map(e => e.getAttribute('href'))"
        )
        assert days, "no day offered"
        weekdays = {date.fromisoformat(d.split("date=")[1][:10]).weekday() for d in days}
        assert weekdays <= {0, 1, 2, 3, 4}
        matter_url = phone.url.split("?")[0]
        matter_id = matter_url.rstrip("/").rsplit("/", 1)[1]
        for href in days:
            day = href.split("date=")[1][:10]
            async with aiohttp.ClientSession() as http:
                got = await http.get(f"{base}/api/v1/matters/{matter_id}/slots?date={day}")
                assert (await got.json())["slots"], day
        # Slots grouped by the time of day, the lunch-time service labelled.
        headings = await phone.eval_on_selector_all(
            ".period h3", "els => els.map(e => e.textContent)"
        )
        assert headings and set(headings) <= {"上午", "午间", "下午", "晚间"}
        assert headings == sorted(headings, key=["上午", "午间", "下午", "晚间"].index)
        if "午间" in headings:
            assert "午间错时" in await phone.inner_text(".period[data-period=midday]")
        await phone.screenshot(path=str(tmp_path / "matter.png"), full_page=True)
        overlap = await phone.evaluate(
            """() => { const r = [...document.querySelectorAll('a.slot')]
              .map(e => e.getBoundingClientRect());
            return r.some((a, i) => r.some((b, j) => i < j && a.left < b.right && b.left < a.right
              && a.top < b.bottom && b.top < a.bottom)) || document.body.scrollWidth > 390; }"""
        )
        assert not overlap
        await phone.click("a.slot >> nth=0")
        await phone.fill("input[name=name]", "张三")
        await phone.fill("input[name=id_number]", "110105194912310021")  # wrong check digit
        await phone.click("button.primary.big")
        error = await phone.inner_text(".field-error[data-field=id_number]")
        assert error == "身份证号码无效：校验码不符"
        await phone.fill("input[name=id_number]", "11010519491231002X")
        await phone.click("button.primary.big")
        await phone.wait_for_url(re.compile(r".*/book/done/\d+\?token=.+"))
        assert await phone.locator(".qr svg").count() == 1
        assert "视频窗口预约成功" in await phone.inner_text("main")
        await phone.screenshot(path=str(tmp_path / "confirmation.png"))
        # The confirmation is in the outbox; the worker (off in tests) sends it.
        await outbox.deliver_due(app[DB], app[SMS], worker="test")
        async with app[DB]() as session:  # the confirmation SMS reached the applicant
            texts = list(
                await session.scalars(
                    select(SmsMessage.body).where(
                        SmsMessage.mobile == DEMO_APPLICANT_MOBILE,
                        SmsMessage.kind == "booking.booked",
                    )
                )
            )
        assert len(texts) == 1 and "您已预约" in texts[0] and "/join/" in texts[0]
        await phone.goto(base + "/book/mine")
        assert await phone.locator("article.appointment").count() == 1

        # staff day view open; a walk-in joins "video now"; the list grows without reload
        staff = await browser.new_page(locale="zh-CN")
        await staff.goto(base + "/login?tab=staff")
        await staff.fill("input[name=username]", "inspector")
        await staff.fill("input[name=password]", "yunkan-demo")
        await staff.click("#staff-login button[type=submit]")
        await staff.wait_for_url(base + "/staff")
        await staff.goto(base + "/staff/day")
        assert await staff.locator("tr[data-ticket]").count() == 0
        walk_in = await browser.new_page(**PHONE)
        await walk_in.goto(base + "/book/citizen")
        await walk_in.click("text=即时视频 >> nth=0")
        await walk_in.fill("input[name=name]", "王五")
        await walk_in.fill("input[name=mobile]", "13600136000")
        await walk_in.fill("input[name=id_number]", "11010519491231002X")
        await walk_in.click("button.primary.big")
        await walk_in.wait_for_url(re.compile(r".*/book/queue/.+"))
        assert "您排在第 1 位" in await walk_in.inner_text(".position")
        ticket_url = walk_in.url
        await staff.wait_for_selector("tr[data-ticket]", timeout=10_000)  # pushed, not reloaded
        await staff.click("text=呼叫下一位")
        # the clerk lands on the inspector console, the walk-in is taken into the room
        await staff.wait_for_url(re.compile(r".*/live/j/.+"), timeout=10_000)
        await walk_in.wait_for_url(re.compile(r".*/live/j/.+"), timeout=10_000)
        # back on the ticket after the call: the button is there, no automatic jump
        await walk_in.goto(ticket_url)
        await walk_in.wait_for_selector("#join-video >> text=进入视频")
        assert "轮到您了" in await walk_in.inner_text(".position")
        await walk_in.wait_for_timeout(500)
        assert walk_in.url == ticket_url
