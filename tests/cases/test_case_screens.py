"""The review page at a desk (1366x768) and "My case" on a phone (390x844), in Chromium.

A case with real evidence — two watermarked snapshots (one annotated), a recording, a
location beyond the distance threshold, the checklist and a rectify draft — is put under
review by 李审核. In the browser the reviewer approves it on the review page; the
applicant then uploads a rectification photo from "My case" (the file input the phone's
camera fills); the photo shows on the staff case page and on the review page. The pages
must not scroll sideways and the review's three columns must not overlap. Screenshots
go to ``$YUNKAN_SCREENSHOTS`` (docs/screenshots/review.png and my-case.png come from here).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import os
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from recordings.evidence import (
    annotate_snapshot,
    record_checklist,
    record_location,
    set_site,
    store_snapshot,
)
from recordings.location import GeoFix
from recordings.models import Recording
from recordings.snapshots import WatermarkInfo, take_snapshot
from server.accounts.principal import Principal
from server.accounts.service import add_user
from server.app import create_app
from server.appkeys import BLOBS, DB, SETTINGS
from server.booking import appointments as svc
from server.booking.validation import validate_applicant
from server.cases import workflow
from server.cases.models import Case
from server.settings import Settings
from tests.browser import chromium
from tests.journeys.support import DESK, PHONE, phone_login, staff_login
from tests.recordings.pattern import as_rtp_payloads, encode
from tests.support import open_every_day

pytestmark = pytest.mark.browser
MOBILE = "13800138444"
CHECKLIST = [{"key": "store", "text": "仓储条件"}, {"key": "fire", "text": "消防器材"}]


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    path = Path(os.environ.get("YUNKAN_SCREENSHOTS", tmp_path / "shots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _under_review(app: Any) -> int:
    zone = app[SETTINGS].zone
    async with app[DB].begin() as session:
        wang = await add_user(
            session,
            username="wang",
            password="yunkan-demo-1",
            role="inspector",
            display_name="王勘验",
        )
        li = await add_user(
            session,
            username="li",
            password="yunkan-demo-2",
            role="inspector",
            display_name="李审核",
        )
        matter_id, _ = await open_every_day(
            session,
            staff_ids=(wang.id, li.id),
            code="seed-licence",
            name="种子生产经营许可证变更",
            kind="inspection",
            internal_review=True,
            checklist=CHECKLIST,
        )
        info, problems = validate_applicant(
            {
                "kind": "enterprise",
                "name": "沙河种业有限公司",
                "credit_code": "91350100M000100Y43",
                "contact_name": "陈经理",
                "mobile": MOBILE,
            }
        )
        assert info is not None, problems
        day = dt.datetime.now(zone).date() + dt.timedelta(days=1)
        start = dt.datetime.combine(day, dt.time(10, 0), zone)
        appt = await svc.book(
            session,
            svc.BookingRequest(
                matter_id=matter_id,
                start=start,
                applicant=info,
                actor=None,
                site_address="沙河镇工业园 3 号",
                staff_id=wang.id,
            ),
            zone=zone,
        )
        case = await session.get(Case, appt.case_id)
        assert case is not None
        case.status = "inspecting"
        lead = Principal("staff", wang.id, "inspector", "王勘验")
        now = dt.datetime.now(dt.UTC)
        shots = []
        for n, item in enumerate(("仓储条件", "消防器材")):
            images = take_snapshot(
                as_rtp_payloads(encode(2 + n)),
                WatermarkInfo(now, "Asia/Shanghai", case.number, "种子", "王勘验"),
            )
            shots.append(
                await store_snapshot(
                    session,
                    app[BLOBS],
                    case=case,
                    session_ref=f"appt-{appt.id}",
                    participant="applicant-1",
                    taken_by=lead,
                    images=images,
                    checklist_item=item,
                    location=None,
                    taken_at=now,
                )
            )
        await annotate_snapshot(
            session,
            app[BLOBS],
            case=case,
            snapshot=shots[0],
            by=lead,
            shapes=[
                {"type": "arrow", "from": [420, 60], "to": [250, 200], "color": "yellow"},
                {"type": "circle", "center": [200, 240], "radius": 60, "color": "yellow"},
                {"type": "text", "at": [330, 40], "text": "无温湿度计", "color": "yellow"},
            ],
        )
        blob = await app[BLOBS].put(b"\x1aE\xdf\xa3 short", suffix=".webm", kind="recording")
        session.add(
            Recording(
                case_id=case.id,
                session_ref=f"appt-{appt.id}",
                participant="applicant-1",
                participant_role="applicant",
                blob_key=blob.key,
                sha256=blob.sha256,
                size=10,
                duration_s=312.0,
            )
        )
        await set_site(
            session,
            case,
            by=lead,
            address="沙河镇工业园 3 号",
            site=GeoFix(26.0, 119.3),
            threshold_m=500,
        )
        applicant = Principal("applicant", case.applicant_id or 0, "applicant", "陈经理")
        await record_location(
            session,
            case,
            by=applicant,
            participant="applicant-1",
            fix=GeoFix(26.008, 119.3, 12.0),
        )
        notes = {"仓储条件": "无温湿度记录设备", "消防器材": "灭火器在有效期内"}
        for item, result in (("仓储条件", "problem"), ("消防器材", "ok")):
            await record_checklist(
                session,
                case,
                by=lead,
                item=item,
                result=result,
                note=notes[item],
                snapshot_ids=[shots[0].id if item == "仓储条件" else shots[1].id],
            )
        await workflow.draft_decision(
            session,
            case,
            lead,
            outcome="rectify",
            reason="种子仓库未配备温湿度记录设备",
            requirements="加装温湿度记录仪并提交一周的记录",
            rectify_days=5,
            reviewer_id=li.id,
            today=dt.datetime.now(zone).date(),
        )
        return case.id


async def _no_sideways_scroll(page: Any) -> None:
    wide = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert wide <= 0, f"the page scrolls {wide}px sideways"


def _jpeg(path: Path) -> Path:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (90, 140, 60)).save(out, "JPEG")
    path.write_bytes(out.getvalue())
    return path


async def test_review_page_and_my_case_page(
    aiohttp_server: Any, sqlite_settings: Settings, shots: Path, tmp_path: Path
) -> None:
    app = create_app(sqlite_settings)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    case_id = await _under_review(app)

    async with chromium() as browser:
        desk = await (await browser.new_context(**DESK)).new_page()
        phone = await (await browser.new_context(**PHONE)).new_page()

        await staff_login(desk, base, "li", "yunkan-demo-2")
        await desk.goto(base + "/staff/cases")
        await desk.click(f"tr[data-case='{case_id}'] a.review-link")
        await desk.wait_for_url(re.compile(rf".*/staff/cases/{case_id}/review$"))
        await desk.wait_for_function(
            "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        )
        boxes = [
            await desk.locator(f"#review-{part}").bounding_box()
            for part in ("evidence", "checklist", "decision")
        ]
        for left, right in itertools.pairwise(boxes):
            assert left and right and left["x"] + left["width"] <= right["x"], boxes
        assert boxes[2] and boxes[2]["x"] + boxes[2]["width"] <= 1366
        # Side by side: all three begin above the fold.
        assert all(b and b["y"] < 768 / 2 for b in boxes), boxes
        text = await desk.inner_text("main")
        for expected in ("沙河种业有限公司", "距现场", "超出距离阈值", "312 s", "无温湿度记录设备"):
            assert expected in text, expected
        await _no_sideways_scroll(desk)
        await desk.screenshot(path=str(shots / "review.png"))
        await desk.check(".step-review input[name=decision][value=approve]")
        await desk.click(".step-review button[type=submit]")
        await desk.wait_for_selector("#procedure[data-state=rectifying]")

        await phone_login(phone, base, app, MOBILE)
        await phone.goto(f"{base}/me/cases/{case_id}")
        assert "请于" in await phone.inner_text("#rectify-deadline")
        await phone.set_input_files("#rectification-file", str(_jpeg(tmp_path / "仓库.jpg")))
        assert "已选择 1 个文件" in await phone.inner_text("#rectification-chosen")
        await phone.fill("#rectification-form textarea[name=note]", "已加装温湿度记录仪")
        await phone.click("#rectification-form button[type=submit]")
        await phone.wait_for_selector("#upload-done")
        await phone.wait_for_selector("#upload-list img")
        await _no_sideways_scroll(phone)
        await phone.screenshot(path=str(shots / "my-case-upload.png"))
        await phone.evaluate("() => window.scrollTo(0, 0)")
        await phone.screenshot(path=str(shots / "my-case.png"))

        # The staff see the photo on the case page and the review page.
        await desk.goto(f"{base}/staff/cases/{case_id}/review")
        assert await desk.locator("#upload-list img").count() == 1
        await desk.goto(f"{base}/staff/cases/{case_id}")
        assert "仓库.jpg" in await desk.inner_text("#rectification")
        assert "上传了整改材料：仓库.jpg" in await desk.inner_text("#timeline")
        await _no_sideways_scroll(desk)
        await desk.screenshot(path=str(shots / "case-page.png"))
