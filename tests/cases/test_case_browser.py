"""The staff case page in Chromium: the recording plays, snapshots show, verify says intact."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from recordings.evidence import store_snapshot
from recordings.snapshots import WatermarkInfo, take_snapshot
from server.accounts.principal import Principal
from server.accounts.service import add_user
from server.app import create_app
from server.appkeys import BLOBS, DB
from server.cases.models import Case, CaseParty
from server.cases.numbers import open_case
from server.evidence.recording import file_room_recordings
from server.settings import Settings
from signaling.archive import RoomRecording
from signaling.client import MediaClient
from signaling.relay import RelayConfig, RelayRoom
from tests.browser import chromium
from tests.recordings.pattern import as_rtp_payloads, encode

pytestmark = pytest.mark.browser


async def until(page: Any, predicate: str, within: float = 10.0) -> None:
    """Poll ``predicate`` from Python: the page's CSP (script-src 'self') forbids the
    in-page eval that Playwright's ``wait_for_function`` uses."""
    for _ in range(int(within / 0.1)):
        if await page.evaluate(predicate):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not true within {within}s: {predicate}")


LOOPBACK = ("127.0.0.1",)


async def test_staff_case_page_plays_the_recording(
    aiohttp_server: Any, evidence_settings: Settings, tmp_path: Path
) -> None:
    app = create_app(evidence_settings)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    async with app[DB].begin() as session:
        user = await add_user(
            session,
            username="wang",
            password="correct-horse-1",
            role="inspector",
            display_name="王勘验",
        )
        case = await open_case(session, title="种子公司许可变更勘验", zone=evidence_settings.zone)
        session.add(
            CaseParty(
                case_id=case.id, principal_kind="staff", principal_id=user.id, role="inspector"
            )
        )
        case_id, inspector = case.id, Principal("staff", user.id, "inspector", "王勘验")

    tape = RoomRecording(tmp_path / "rec")
    room = RelayRoom(f"case-{case_id}", RelayConfig(host_addresses=LOOPBACK), on_packet=tape.feed)
    phone = MediaClient(host_addresses=LOOPBACK)
    try:
        await phone.accept_publish_answer(
            await room.add_participant("applicant-9", await phone.publish_offer("testsrc"))
        )
        await asyncio.sleep(3.5)
    finally:
        await room.close()
        await phone.close()
    assert await file_room_recordings(app, room.room_id, case_id, tape.close())

    async with app[DB].begin() as session:
        case_row = await session.get(Case, case_id)
        assert case_row is not None
        now = dt.datetime.now(dt.UTC)
        images = take_snapshot(
            as_rtp_payloads(encode(3)),
            WatermarkInfo(now, "Asia/Shanghai", case_row.number, "种子", "王勘验"),
        )
        await store_snapshot(
            session,
            app[BLOBS],
            case=case_row,
            session_ref=room.room_id,
            participant="applicant-9",
            taken_by=inspector,
            images=images,
            checklist_item="仓储",
            location=None,
            taken_at=now,
        )

    async with chromium() as browser:
        page = await browser.new_page(locale="zh-CN")
        await page.goto(base + "/login?tab=staff")
        await page.fill("input[name=username]", "wang")
        await page.fill("input[name=password]", "correct-horse-1")
        await page.click("#staff-login button[type=submit]")
        await page.wait_for_url(base + "/staff")
        await page.goto(f"{base}/staff/cases/{case_id}")
        await until(page, "() => document.querySelector('#recordings video').readyState >= 1")
        duration = await page.evaluate("() => document.querySelector('#recordings video').duration")
        assert 2.0 < duration < 6.0, duration
        await page.evaluate(
            "() => { const v = document.querySelector('#recordings video');"
            " v.muted = true; return v.play(); }"
        )
        await until(page, "() => document.querySelector('#recordings video').currentTime > 0.5")
        await until(page, "() => document.querySelector('#snapshots img').naturalWidth === 640")
        await page.click("#verify-case")
        await until(page, "() => document.querySelector('#verify-result').className !== ''")
        assert await page.inner_text("#verify-result") == "完整"
        await page.screenshot(path=str(tmp_path / "case.png"), full_page=True)
