"""电子监察 in Chromium: a step overruns on a working-day clock that skips a holiday.

The inspection step of a seed licence case promises three working days; the day after
the first is a holiday. The test clock (``app[CLOCK]``, the same one the evaluator and
the suspension form read) moves forward a day at a time and the evaluator runs, as the
background task would: green over the holiday, then the warning, the yellow card, the red
card — each one ``deadline.card`` event on the case chain, one SMS to the lead and one to
the department head (outbox rows), one in-app notice each. The lead sees the badges on
the case list, the case page and the notices page; the supervisor sees the red card and
suspends the clock with a reason; a week later the clock has not moved, and resuming
starts it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.appkeys import SETTINGS
from server.settings import Settings
from server.supervision.card_evaluator import CLOCK, tick
from tests.browser import chromium
from tests.journeys.support import DESK, staff_login
from tests.supervision.support import (
    HEAD_MOBILE,
    LEAD_MOBILE,
    card_events,
    cards,
    notice_count,
    sms,
    world,
)

pytestmark = pytest.mark.browser

PASSWORD = "yunkan-test-1"
# day 1 working, day 2 a holiday (节假日), then working days (weekends pinned away)
PATTERN = "WHWWWWWWWWWWWWW"


async def test_a_step_turns_yellow_then_red_and_a_suspension_stops_it(
    aiohttp_server: Any, sqlite_settings: Settings, tmp_path: Path
) -> None:
    app = create_app(sqlite_settings)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    zone = app[SETTINGS].zone
    w = await world(app, promised={"inspect": 3, "total": 20}, pattern=PATTERN)
    case_page = f"{base}/staff/cases/{w.case_id}"

    async def at_day(day: int) -> int:
        app[CLOCK].pin(w.at(zone, day))
        return await tick(app)

    # day 3: days 1 and 3 used, the holiday not (counted, it would be the warning)
    assert await at_day(3) == 0
    assert await at_day(4) == 1  # 3 of 3: 预警
    assert await at_day(5) == 1  # 4 of 3: 黄牌
    assert await cards(app, w.case_id) == [("inspect", "warning"), ("inspect", "yellow")]

    async with chromium() as browser:
        lead = await (await browser.new_context(**DESK)).new_page()
        await staff_login(lead, base, "liu", PASSWORD)
        await lead.goto(f"{base}/staff/cases")
        row = lead.locator(f"tr[data-case='{w.case_id}'] .deadline-badge[data-step=inspect]")
        assert await row.get_attribute("data-colour") == "yellow"
        assert "黄牌" in await row.inner_text()
        assert "超期1个工作日" in await row.inner_text()
        await lead.screenshot(path=str(tmp_path / "case-list.png"), full_page=True)

        await lead.goto(f"{base}/staff")
        await lead.click("#notices-link")
        await lead.wait_for_selector("#notices")
        colours = await lead.eval_on_selector_all(
            ".notice", "els => els.map(e => e.dataset.colour)"
        )
        assert colours == ["yellow", "warning"]
        await lead.screenshot(path=str(tmp_path / "notices.png"), full_page=True)
        await lead.click("#mark-read")
        await lead.wait_for_selector("#notices .notice:not(.unread)")
        assert await lead.locator("#mark-read").count() == 0

        assert await at_day(6) == 0  # two days late: still yellow
        assert await at_day(7) == 1  # three days late: 红牌
        await lead.goto(case_page)
        badge = lead.locator("#deadlines .deadline-badge[data-step=inspect]")
        assert await badge.get_attribute("data-colour") == "red"
        assert await lead.locator("#deadline-cards tr[data-colour]").count() == 3
        assert await lead.locator("#suspension-form").count() == 0  # the lead may not

        boss = await (await browser.new_context(**DESK)).new_page()
        await staff_login(boss, base, "sun", PASSWORD)
        await boss.goto(case_page)
        assert (
            await boss.get_attribute("#deadlines .deadline-badge[data-step=inspect]", "data-colour")
            == "red"
        )
        await boss.fill("#suspension-form input[name=reason]", "等待申请人补交检验报告")
        await boss.screenshot(path=str(tmp_path / "case-supervisor.png"), full_page=True)
        await boss.click("#suspend-clock")
        await boss.wait_for_selector("#suspension-running")
        assert "等待申请人补交检验报告" in await boss.inner_text("#suspension-running")

        assert await at_day(12) == 0  # suspended: no day counts
        await boss.goto(case_page)
        step = boss.locator("#deadlines .deadline-badge[data-step=inspect]")
        assert await step.get_attribute("data-used") == "6"
        assert await step.get_attribute("data-suspended") == "1"
        total = boss.locator("#deadlines .deadline-badge[data-step=total]")
        assert await total.get_attribute("data-used") == "6"
        await boss.screenshot(path=str(tmp_path / "case-suspended.png"), full_page=True)
        await boss.click("#resume-clock")
        await boss.wait_for_selector("#suspend-clock")
        assert await at_day(13) == 0
        await boss.goto(case_page)
        assert (
            await boss.get_attribute("#deadlines .deadline-badge[data-step=inspect]", "data-used")
            == "7"
        )

    events = await card_events(app, w.case_id)
    assert [(e["colour"], e["used"]) for e in events] == [
        ("warning", 3),
        ("yellow", 4),
        ("red", 6),
    ]
    messages = await sms(app)
    assert [m for m, _ in messages] == [LEAD_MOBILE, HEAD_MOBILE] * 3  # one SMS per change
    assert all(body.startswith("【云勘】电子监察") for _, body in messages)
    assert await notice_count(app, w.lead_id) == 3
    assert await notice_count(app, w.head_id) == 3
