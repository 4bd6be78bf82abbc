"""Demo logins work in a real browser: staff with a password, an applicant with an SMS code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.appkeys import DB
from server.demo import DEMO_APPLICANT_MOBILE, seed
from server.settings import Settings
from tests.browser import chromium
from tests.support import latest_code

pytestmark = pytest.mark.browser


async def test_staff_and_applicant_log_in_in_chromium(
    aiohttp_server: Any, sqlite_settings: Settings, tmp_path: Path
) -> None:
    app = create_app(sqlite_settings)
    server = await aiohttp_server(app, host="127.0.0.1")
    await seed(app[DB], sqlite_settings)
    base = f"http://127.0.0.1:{server.port}"

    async with chromium() as browser:
        page = await browser.new_page(
            viewport={"width": 390, "height": 844}, locale="zh-CN"
        )  # a phone
        await page.goto(base + "/")
        assert await page.locator(".zone-citizen .zone-title").inner_text() == "惠民专区"
        await page.screenshot(path=str(tmp_path / "home.png"))

        await page.goto(base + "/login?tab=staff")
        await page.fill("input[name=username]", "inspector")
        await page.fill("input[name=password]", "yunkan-demo")
        await page.click("#staff-login button[type=submit]")
        await page.wait_for_url(base + "/staff")
        assert "勘验员 李明" in await page.inner_text("main")

        applicant = await browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
        await applicant.goto(base + "/login")
        await applicant.fill("input[name=mobile]", DEMO_APPLICANT_MOBILE)
        await applicant.click("#otp-request button[type=submit]")
        await applicant.wait_for_selector("#otp-verify")

        class _Client:  # latest_code reads the outbox through the app's database
            def __init__(self, app: Any) -> None:
                self.app = app

        code = await latest_code(_Client(app), DEMO_APPLICANT_MOBILE)  # type: ignore[arg-type]
        await applicant.fill("input[name=code]", code)
        await applicant.click("#otp-verify button[type=submit]")
        await applicant.wait_for_url(re.compile(r".*/me$"))
        assert "138****8000" in await applicant.inner_text("main")

        await applicant.click("a.lang")
        await applicant.wait_for_load_state()
        assert "My appointments" in await applicant.inner_text("main")
        await applicant.screenshot(path=str(tmp_path / "me-en.png"))
