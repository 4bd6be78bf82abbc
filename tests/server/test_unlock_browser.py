"""The unlock page in Chromium at desk size (1366x768): a supervisor unlocks a held number
with the button and reads the result; nothing overlaps, nothing is left in English."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from server.accounts import limits
from server.app import create_app
from server.appkeys import LIMITER
from server.settings import Settings
from tests.browser import chromium
from tests.support import create_staff

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


async def test_unlock_page_at_desk_size(sqlite_settings: Settings) -> None:
    server = TestServer(create_app(sqlite_settings), host="127.0.0.1")
    await server.start_server()
    try:
        client: Any = type("C", (), {"app": server.app})()
        await create_staff(client, "chief", "supervisor", "correct-horse-1")
        for _ in range(limits.OTP_VERIFY_FAILURES_PER_MOBILE.count):
            await server.app[LIMITER].hit(
                limits.OTP_VERIFY_FAILURES_PER_MOBILE, "mobile:13800138000"
            )
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
            base = str(server.make_url(""))
            await page.goto(f"{base}/login?tab=staff&next=/staff/unlock")
            await page.fill("#staff-login input[name=username]", "chief")
            await page.fill("form[action='/login/staff'] input[name=password]", "correct-horse-1")
            await page.click("form[action='/login/staff'] button[type=submit]")
            await page.wait_for_url("**/staff/unlock")
            await page.fill("input[name=account]", "13800138000")
            await page.click("form[action='/staff/unlock'] button[type=submit]")
            notice = page.locator("p.notice")
            await notice.wait_for()
            assert "138****8000 已解除锁定" in await notice.inner_text()
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "unlock-1366.png"), full_page=True)
            box = await page.locator("form[action='/staff/unlock'] button").bounding_box()
            field = await page.locator("input[name=account]").bounding_box()
            assert box is not None and field is not None
            assert (
                box["y"] >= field["y"] + field["height"] - 1
                or box["x"] >= field["x"] + field["width"]
            )
        assert (
            await server.app[LIMITER].peek(
                limits.OTP_VERIFY_FAILURES_PER_MOBILE, "mobile:13800138000"
            )
            is None
        )
    finally:
        await server.close()
