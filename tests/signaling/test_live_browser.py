"""Headless Chromium with fake camera: applicant page and inspector console see each other.

Both pages must show MOVING remote video: we draw the remote <video> into a canvas twice,
half a second apart, and require the pixels to differ (a frozen or black frame fails).
Screenshots go to ``$YUNKAN_SCREENSHOTS`` (default: the test's tmp dir) for a human look.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.appkeys import DB
from server.cases.models import CaseEvent
from server.settings import Settings
from signaling.handlers import LiveOptions
from tests.browser import chromium
from tests.signaling.conftest import LiveServer, start_live

pytestmark = pytest.mark.browser

GRAB = """async (selector) => {
  const video = document.querySelector(selector);
  if (!video || video.videoWidth === 0) return null;
  const grab = () => {
    const c = document.createElement("canvas");
    c.width = video.videoWidth; c.height = video.videoHeight;
    const ctx = c.getContext("2d");
    ctx.drawImage(video, 0, 0);
    return ctx.getImageData(0, 0, c.width, c.height).data;
  };
  const a = grab();
  await new Promise(r => setTimeout(r, 500));
  const b = grab();
  let changed = 0, lit = 0;
  for (let i = 0; i < a.length; i += 4) {
    const d = Math.abs(a[i] - b[i]) + Math.abs(a[i+1] - b[i+1]) + Math.abs(a[i+2] - b[i+2]);
    if (d > 30) changed++;
    if (a[i] + a[i+1] + a[i+2] > 60) lit++;
  }
  return {width: video.videoWidth, height: video.videoHeight, changed, lit, pixels: a.length / 4};
}"""


async def _moving(page: Any, selector: str) -> dict[str, Any]:
    await page.wait_for_function(
        "(s) => { const v = document.querySelector(s); return v && v.videoWidth > 0 }",
        arg=selector,
        timeout=15000,
    )
    result: dict[str, Any] = await page.evaluate(GRAB, selector)
    return result


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    path = Path(os.environ.get("YUNKAN_SCREENSHOTS", tmp_path / "shots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


async def test_applicant_page_and_console_show_moving_video(
    sqlite_settings: Settings, shots: Path
) -> None:
    server, case_id = await start_live(sqlite_settings, LiveOptions(grace=5.0))
    live = LiveServer(server, case_id, [])
    base = str(server.make_url("/"))
    try:
        async with chromium() as browser:
            staff_ctx = await browser.new_context(
                viewport={"width": 1280, "height": 900}, locale="zh-CN"
            )
            phone_ctx = await browser.new_context(
                viewport={"width": 390, "height": 844},
                is_mobile=True,
                has_touch=True,
                locale="zh-CN",
                geolocation={"latitude": 31.2304, "longitude": 121.4737, "accuracy": 12},
                permissions=["geolocation"],
            )
            console = await staff_ctx.new_page()
            phone = await phone_ctx.new_page()
            errors: list[str] = []
            for page in (console, phone):
                page.on("pageerror", lambda exc: errors.append(str(exc)))

            # A console link needs its staff login: the browser has the session cookie.
            await staff_ctx.add_cookies(
                [{"name": "yk_session", "value": await live.login(1), "url": base}]
            )
            await console.goto(base + "live/j/" + live.token("staff-1", "inspector", "王科员"))
            await phone.goto(base + "live/j/" + live.token("applicant-2", "applicant", "张三"))
            await phone.wait_for_selector("#chk-camera.ok", timeout=15000)
            await phone.screenshot(path=str(shots / "applicant-check.png"))
            await phone.click("#btn-join")
            await phone.wait_for_selector("#waiting:not([hidden])", timeout=10000)

            admit = console.locator("#waiting-list li[data-participant='applicant-2'] .admit")
            await admit.wait_for(timeout=10000)
            await console.screenshot(path=str(shots / "console-waiting.png"))
            await admit.click()

            await phone.wait_for_selector("#call:not([hidden])", timeout=10000)
            on_console = await _moving(console, "#tile-applicant-2 video")
            on_phone = await _moving(phone, "#tile-staff-1 video")
            await console.screenshot(path=str(shots / "console-call.png"))
            await phone.screenshot(path=str(shots / "applicant-call.png"))

            # A supervisor watches: sees the applicant's video, opens no camera, and the
            # phone shows neither a tile nor a name for them.
            boss_ctx = await browser.new_context(
                viewport={"width": 1280, "height": 900}, locale="zh-CN"
            )
            await boss_ctx.add_cookies(
                [{"name": "yk_session", "value": await live.login(5, "supervisor"), "url": base}]
            )
            boss = await boss_ctx.new_page()
            boss.on("pageerror", lambda exc: errors.append(str(exc)))
            await boss.goto(base + "live/j/" + live.token("staff-5", "supervisor", "赵督查"))
            on_boss = await _moving(boss, "#tile-applicant-2 video")
            await console.wait_for_selector("#people li[data-participant='staff-5']", timeout=10000)
            boss_media = await boss.evaluate(
                "() => [window.ykLive.localStream, window.ykLive.publishPc]"
            )
            phone_sees_boss = await phone.evaluate(
                "() => document.body.innerText.includes('赵督查') || "
                "!!document.getElementById('tile-staff-5')"
            )
            await boss.screenshot(path=str(shots / "supervisor-call.png"))
            await boss_ctx.close()

            # The phone loses its connection: banner, automatic rejoin with the session
            # id and NEW peer connections, video again on both sides.
            old_pc = await phone.evaluate("window.ykLive.publishPc !== null")
            await phone.evaluate("window.ykLive.ws.close()")
            await phone.wait_for_selector("#banner:not([hidden])", timeout=5000)
            await phone.screenshot(path=str(shots / "applicant-reconnecting.png"))
            await phone.wait_for_selector("#banner[hidden]", state="attached", timeout=10000)
            await phone.wait_for_function(
                "() => window.ykLive.publishPc && "
                "window.ykLive.publishPc.connectionState === 'connected'",
                timeout=10000,
            )
            after_console = await _moving(console, "#tile-applicant-2 video")
            after_phone = await _moving(phone, "#tile-staff-1 video")
            await console.screenshot(path=str(shots / "console-after-reconnect.png"))
            assert old_pc

            # An in-call request: the phone shows a prompt, carries it out, answers.
            await console.click(
                "#requests [data-participant='applicant-2'] [data-request='rear_camera']"
            )
            await phone.wait_for_selector("#ask[open]", timeout=5000)
            await phone.screenshot(path=str(shots / "applicant-request.png"))
            await phone.click("#ask-yes")
            await console.wait_for_selector("#answers li.ok", timeout=10000)

            # Torch: agreed on the phone, but Chromium's fake camera has no torch, so the
            # answer is a refusal with a reason, not an error or silence.
            await console.click("#requests [data-participant='applicant-2'] [data-request='torch']")
            await phone.wait_for_selector("#ask[open]", timeout=5000)
            await phone.click("#ask-yes")
            await console.wait_for_selector("#answers li.bad", timeout=10000)

            # Location: the phone shares its (granted, emulated) position.
            await console.click(
                "#requests [data-participant='applicant-2'] [data-request='location']"
            )
            await phone.wait_for_selector("#ask[open]", timeout=5000)
            await phone.click("#ask-yes")
            await console.wait_for_selector("#answers li:nth-child(3)", timeout=10000)
            answers = await console.locator("#answers li").all_inner_texts()
            classes = [
                await li.get_attribute("class") for li in await console.locator("#answers li").all()
            ]
            await console.screenshot(path=str(shots / "console-answers.png"))
            assert errors == []
            async with server.app[DB]() as session:
                events = (
                    await session.scalars(
                        select(CaseEvent)
                        .where(CaseEvent.case_id == case_id)
                        .where(CaseEvent.kind.in_(["live.request", "live.response"]))
                        .order_by(CaseEvent.seq)
                    )
                ).all()
    finally:
        await server.close()

    assert classes == ["ok", "bad", "ok"], answers
    assert "该手机不支持" in answers[1], answers  # the console says why the torch stayed off
    assert "31.23040" in answers[-1] and "121.47370" in answers[-1], answers
    responses = [e.data for e in events if e.kind == "live.response"]
    assert [(r["kind"], r["ok"]) for r in responses] == [
        ("rear_camera", True),
        ("torch", False),
        ("location", True),
    ]
    assert responses[1]["data"]["reason"] == "unsupported"
    assert responses[2]["data"]["lat"] == pytest.approx(31.2304)
    assert [e.data["kind"] for e in events if e.kind == "live.request"] == [
        "rear_camera",
        "torch",
        "location",
    ]
    assert boss_media == [None, None]  # receive-only: no camera asked for, nothing offered
    assert phone_sees_boss is False
    for seen in (on_console, on_phone, on_boss, after_console, after_phone):
        assert seen["width"] >= 320 and seen["height"] >= 240, seen
        assert seen["lit"] > seen["pixels"] // 10, f"remote video is black: {seen}"
        assert seen["changed"] > 100, f"remote video is not moving: {seen}"
