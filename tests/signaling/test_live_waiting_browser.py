"""Chromium: the console shows the waiting phone's still, declines it, and re-admits it.

The phone (fake camera, 390x844) joins and waits; the console (1366x768) must show an
``<img>`` whose pixels are a real JPEG from the phone's camera; after "decline" the phone
stays on the page in the declined state with the reason; "re-admit" takes it into the call
with moving video. Screenshots go to ``$YUNKAN_SCREENSHOTS`` (default: the tmp dir).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from server.appkeys import DB
from server.cases.models import CaseEvent
from server.settings import Settings
from signaling.handlers import LiveOptions
from tests.browser import chromium
from tests.signaling.conftest import LiveServer, start_live
from tests.signaling.test_live_browser import _moving

pytestmark = pytest.mark.browser

STILL = """(sel) => {
  const img = document.querySelector(sel);
  if (!img || !img.complete || !img.naturalWidth) return null;
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext("2d"); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let lit = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 60) lit++;
  return {w: img.naturalWidth, h: img.naturalHeight, lit, src: img.src.slice(0, 22)};
}"""


async def test_console_shows_the_waiting_still_and_readmits_a_declined_phone(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("YUNKAN_SCREENSHOTS", tmp_path / "shots"))
    await asyncio.to_thread(shots.mkdir, parents=True, exist_ok=True)
    server, case_id = await start_live(sqlite_settings, LiveOptions(grace=5.0))
    live = LiveServer(server, case_id, [])
    base = str(server.make_url("/"))
    try:
        async with chromium() as browser:
            staff_ctx = await browser.new_context(
                viewport={"width": 1366, "height": 768}, locale="zh-CN"
            )
            phone_ctx = await browser.new_context(
                viewport={"width": 390, "height": 844},
                is_mobile=True,
                has_touch=True,
                locale="zh-CN",
            )
            console = await staff_ctx.new_page()
            phone = await phone_ctx.new_page()
            errors: list[str] = []
            for page in (console, phone):
                page.on("pageerror", lambda exc: errors.append(str(exc)))
            await staff_ctx.add_cookies(
                [{"name": "yk_session", "value": await live.login(1), "url": base}]
            )
            await console.goto(base + "live/j/" + live.token("staff-1", "inspector", "王科员"))
            await phone.goto(base + "live/j/" + live.token("applicant-2", "applicant", "张三"))
            await phone.wait_for_selector("#chk-camera.ok", timeout=15000)
            await phone.click("#btn-join")
            await phone.wait_for_selector("#waiting:not([hidden])", timeout=10000)

            row = "#waiting-list li[data-participant='applicant-2']"
            await console.wait_for_selector(row + " img.still:not([hidden])", timeout=10000)
            still = await console.evaluate(STILL, row + " img.still")
            await phone.screenshot(path=str(shots / "applicant-waiting.png"))
            await console.screenshot(path=str(shots / "console-waiting-preview.png"))
            # Waiting means not publishing: no upstream connection before admission.
            assert await phone.evaluate("window.ykLive.publishPc") is None

            console.once("dialog", lambda d: d.accept("请带好营业执照"))
            await console.click(row + " .decline")
            await phone.wait_for_selector("#waiting[data-state='declined']", timeout=10000)
            await phone.wait_for_selector("#btn-wait-leave:not([hidden])", timeout=5000)
            reason = await phone.inner_text("#wait-reason")
            phone_text = await phone.inner_text("#waiting")
            declined_row = "#declined-list li[data-participant='applicant-2']"
            await console.wait_for_selector(declined_row + " .readmit", timeout=10000)
            await console.wait_for_selector(declined_row + " img.still:not([hidden])")
            console_text = await console.inner_text("#declined-box")
            await phone.screenshot(path=str(shots / "applicant-declined.png"))
            await console.screenshot(path=str(shots / "console-declined.png"))

            await console.click(declined_row + " .readmit")
            await phone.wait_for_selector("#call:not([hidden])", timeout=10000)
            on_console = await _moving(console, "#tile-applicant-2 video")
            await console.wait_for_selector("#declined-box[hidden]", state="attached")
            await console.screenshot(path=str(shots / "console-readmitted.png"))
            assert errors == []
            async with server.app[DB]() as session:
                kinds = list(
                    await session.scalars(
                        select(CaseEvent.kind)
                        .where(CaseEvent.case_id == case_id)
                        .order_by(CaseEvent.seq)
                    )
                )
    finally:
        await server.close()

    assert still is not None and (still["w"], still["h"]) == (160, 120), still
    assert still["src"] == "data:image/jpeg;base64"
    assert still["lit"] > 160 * 120 // 4, f"the still is black: {still}"
    assert reason == "请带好营业执照"
    assert "再次让您进入" in phone_text, phone_text
    assert "请带好营业执照" in console_text and "重新准入" in console_text, console_text
    assert on_console["changed"] > 100, on_console
    assert [k for k in kinds if k in ("live.declined", "live.readmitted")] == [
        "live.declined",
        "live.readmitted",
    ]
