"""The remote inspection, end to end, through pages only, in Chromium.

An enterprise manager books a site inspection on a phone (390x844), joins on time and
waits; the inspector at a desk (1366x768) adds a co-inspector, starts the video from the
day view and admits them; a supervisor watches the call unseen; in the console the
inspector walks the matter's checklist with a snapshot per item, annotates one snapshot,
asks for the phone's location (checked against the site), decides "rectify" (refused
until every item has a result) for review; the reviewer approves it on the review page
while the call goes on; the inspection record is issued in the call and signed by both
inspectors in their consoles and by the manager with a finger in the phone's document
panel, without leaving the call. After the call the phone shows the deadline, uploads
two rectification photos and books the re-inspection from the case; the second call
follows, the decision is "pass", the reviewer approves, the lead closes the case with the
licence number, and the case's bundle is exported from its page and verified with
``yunkan verify bundle``. The appointments are never marked no-show and the timeline
holds every transition with its actor.

Screenshots go to ``$YUNKAN_SCREENSHOTS`` (default: the test's tmp dir); the console and
the phone's document panel also to ``$YUNKAN_DOC_SCREENSHOTS`` when set (docs/screenshots).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image
from sqlalchemy import select

from recordings.models import Recording
from server.accounts.models import SmsMessage
from server.accounts.service import add_user
from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.booking.models import Appointment
from server.cases.models import Case, CaseEvent
from server.settings import Settings
from signaling.handlers import LIVE_OPTIONS, LiveOptions
from tests.browser import chromium
from tests.journeys.support import export_and_verify
from tests.support import latest_code, open_every_day

pytestmark = pytest.mark.browser

SITE = (26.07420, 119.29650)  # 沙河镇工业园 3 号, as the inspector enters it
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "permissions": ["geolocation"],
    # About 60 m from the site: inside the 500 m limit.
    "geolocation": {"latitude": SITE[0] + 0.0005, "longitude": SITE[1] + 0.0002, "accuracy": 12},
}
CHECKLIST = [("仓储条件", "problem", "无温湿度记录设备"), ("检验室", "ok", "仪器齐全")]
DESK = {"viewport": {"width": 1366, "height": 768}, "locale": "zh-CN"}
MOBILE = "13800138111"


class _Outbox:  # latest_code reads the SMS outbox through the app's database
    def __init__(self, app: Any) -> None:
        self.app = app


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    path = Path(os.environ.get("YUNKAN_SCREENSHOTS", tmp_path / "shots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _seed(app: Any) -> None:
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
        zhang = await add_user(
            session,
            username="zhang",
            password="yunkan-demo-4",
            role="inspector",
            display_name="张协查",
        )
        await add_user(
            session,
            username="boss",
            password="yunkan-demo-3",
            role="supervisor",
            display_name="赵监督",
        )
        await open_every_day(
            session,
            staff_ids=(wang.id, li.id, zhang.id),
            code="seed-licence",
            name="种子生产经营许可证变更",
            kind="inspection",
            duration_min=30,
            internal_review=True,
            issues_licence=True,
            observed_notice=True,
            rectify_days=5,
            checklist=[{"key": f"k{i}", "text": text} for i, (text, _, _) in enumerate(CHECKLIST)],
        )


async def _staff_login(page: Any, base: str, username: str, password: str) -> None:
    await page.goto(base + "/login?tab=staff")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("#staff-login button[type=submit]")
    await page.wait_for_url(base + "/staff")


async def _phone_login(page: Any, base: str, app: Any) -> None:
    await page.goto(base + "/login")
    await page.fill("input[name=mobile]", MOBILE)
    await page.click("#otp-request button[type=submit]")
    await page.wait_for_selector("#otp-verify")
    await page.fill("input[name=code]", await latest_code(_Outbox(app), MOBILE))  # type: ignore[arg-type]
    await page.click("#otp-verify button[type=submit]")
    await page.wait_for_url(re.compile(r".*/me$"))


async def _book_first_slot(phone: Any, base: str, *, first: bool) -> str:
    """From the slot list to the confirmation; the join link's path."""
    await phone.click("a.slot >> nth=0")
    if first:
        await phone.click("input[name=kind][value=enterprise]")
        await phone.fill("input[name=name]", "沙河种业有限公司")
        await phone.fill("input[name=credit_code]", "91350100M000100Y43")
        await phone.fill("input[name=contact_name]", "陈经理")
        await phone.fill("input[name=site_address]", "沙河镇工业园 3 号")
    await phone.fill("input[name=mobile]", MOBILE)
    await phone.click("button.primary.big")
    await phone.wait_for_url(re.compile(r".*/book/done/\d+.*"))
    href = await phone.get_attribute("a.join-link, a.button.primary.big", "href")
    assert href
    return urlsplit(href).path + ("?" + urlsplit(href).query if urlsplit(href).query else "")


async def _join_and_wait(phone: Any, base: str, join_path: str) -> None:
    await phone.goto(base + join_path)
    await phone.wait_for_url(re.compile(r".*/live/j/.+"))
    await phone.wait_for_selector("#btn-join:not([disabled])", timeout=20_000)
    await phone.click("#btn-join")
    await phone.wait_for_selector("#waiting:not([hidden])", timeout=15_000)


async def _start_and_admit(
    desk: Any, base: str, appt: Appointment, zone: Any, shot: Path | None = None
) -> None:
    day = appt.starts_at.astimezone(zone).date().isoformat()
    await desk.goto(f"{base}/staff/day?date={day}")
    if shot is not None:
        await desk.screenshot(path=str(shot), full_page=True)
    await desk.click(f"tr[data-appointment='{appt.id}'] button[data-action=start]")
    await desk.wait_for_url(re.compile(r".*/live/j/.+"), timeout=15_000)
    await desk.wait_for_selector("#waiting-list button.admit", timeout=20_000)
    await desk.click("#waiting-list button.admit")


async def _video_playing(page: Any, selector: str) -> None:
    for _ in range(200):
        if await page.evaluate(
            "(s) => [...document.querySelectorAll(s)].some(v => v.videoWidth > 0)", selector
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no video playing in {selector}")


async def _sign_in_frame(page: Any, frame_selector: str, *, touch: bool = False) -> None:
    """Read to the end, consent, sign with strokes on the pad, submit (letters/sign.html
    embedded in the call's panel)."""
    frame = page.frame_locator(frame_selector)
    await frame.locator("#letter-body").wait_for(timeout=15_000)
    await frame.locator("#letter-body").evaluate(
        "b => { b.scrollTop = b.scrollHeight; b.dispatchEvent(new Event('scroll')); }"
    )
    await frame.locator("#consent:not([disabled])").check()
    pad = frame.locator("#pad")
    await pad.wait_for(state="visible")
    await pad.scroll_into_view_if_needed()
    box = await pad.bounding_box()
    assert box is not None
    # A finger's strokes: pointer events from the (touch-enabled) context's mouse.
    for row in (0.35, 0.65):
        await page.mouse.move(box["x"] + box["width"] * 0.15, box["y"] + box["height"] * row)
        await page.mouse.down()
        for step in range(1, 9):
            await page.mouse.move(
                box["x"] + box["width"] * (0.15 + 0.09 * step),
                box["y"] + box["height"] * (row + (0.08 if step % 2 else -0.08)),
            )
        await page.mouse.up()
    await frame.locator("#pad-submit:not([disabled])").wait_for(timeout=5_000)
    if touch:
        return  # the caller screenshots the panel, then submits
    await frame.locator("#pad-submit").click()


async def _doc_shot(page: Any, shots: Path, name: str, **kwargs: Any) -> None:
    await page.screenshot(path=str(shots / name), **kwargs)
    docs = os.environ.get("YUNKAN_DOC_SCREENSHOTS")
    if docs:
        await page.screenshot(path=str(Path(docs) / name), **kwargs)


async def _walk_checklist_in_console(desk: Any, phone: Any, shots: Path) -> None:
    """Decision refused first; then every item: snapshot, note, result; one annotation;
    the site and the phone's location; the decision "rectify" for review by 李审核."""
    await desk.click(".tab[data-tab=tab-decision]")
    await desk.check("#console-decision input[name=outcome][value=rectify]")
    await desk.click("#console-decision button[type=submit]")
    await desk.wait_for_selector("#decision-error:not([hidden])")
    refusal = await desk.inner_text("#decision-error")
    assert "请先为核查清单的每一项填写结果" in refusal and "检验室" in refusal, refusal
    await desk.click(".tab[data-tab=tab-checklist]")
    for index, (_, result, note) in enumerate(CHECKLIST):
        row = f".check-item[data-index='{index}']"
        await desk.click(f"{row} [data-action=snapshot]")
        await desk.wait_for_selector(f"{row} .item-shots li", timeout=20_000)
        await desk.fill(f"{row} input.note", note)
        await desk.check(f"{row} input[type=radio][value={result}]")
        await desk.wait_for_selector(f"{row}[data-saved={result}]")
    assert await desk.locator("#snapshot-strip .shot").count() == len(CHECKLIST)

    # One annotation: an arrow dragged on the first snapshot, saved beside the original.
    await desk.click("#snapshot-strip .shot >> nth=-1")
    await desk.wait_for_function("document.getElementById('annotate-canvas').width >= 320")
    box = await desk.locator("#annotate-canvas").bounding_box()
    assert box is not None
    await desk.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    await desk.mouse.down()
    await desk.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=6)
    await desk.mouse.up()
    await desk.click("#annotate-save")
    await desk.wait_for_selector("#annotate-status[data-saved]")
    await desk.locator("#annotate").screenshot(path=str(shots / "03c-annotation.png"))
    await desk.click("#annotate [data-close]")
    await desk.wait_for_selector("#snapshot-strip .shot img.annotated")

    # The site's coordinates, then the phone's location with its distance and flag.
    await desk.fill("#site-form input[name=lat]", str(SITE[0]))
    await desk.fill("#site-form input[name=lon]", str(SITE[1]))
    await desk.click("#site-form button[type=submit]")
    await desk.wait_for_selector("#site-status[data-saved]")
    await desk.click("#requests [data-request=location]")
    await phone.wait_for_selector("#ask[open]")
    await phone.click("#ask-yes")
    await desk.wait_for_selector("#location-flag", timeout=15_000)
    assert await desk.get_attribute("#location-flag", "data-flagged") == "false"
    answer = await desk.inner_text("#answers li[data-kind=location]")
    assert "沙河种业有限公司" in answer and "共享了位置" in answer, answer
    assert "距现场" in await desk.inner_text("#location")
    await _doc_shot(desk, shots, "console.png")

    await desk.click(".tab[data-tab=tab-decision]")
    await desk.check("#console-decision input[name=outcome][value=rectify]")
    await desk.fill("#console-decision textarea[name=reason]", "种子仓库未配备温湿度记录设备")
    await desk.fill("#console-decision textarea[name=requirements]", "加装温湿度记录仪并提交记录")
    await desk.fill("#console-decision input[name=rectify_days]", "5")
    await desk.select_option("#console-decision select[name=reviewer_id]", label="李审核")
    await desk.click("#console-decision button[type=submit]")
    await desk.wait_for_selector("#decision-now[data-state=under_review]")


async def _record_signed_in_call(desk: Any, second: Any, phone: Any, shots: Path) -> None:
    """The record issued from the console; both inspectors co-sign in their consoles, then
    the manager signs in the phone's panel over the running call."""
    await desk.click(".tab[data-tab=tab-documents]")
    await desk.click("#issue-record")
    await desk.wait_for_selector("#sign-dialog[open]", timeout=20_000)
    await _sign_in_frame(desk, "#sign-frame")
    await desk.wait_for_selector("#sign-dialog:not([open])", state="attached", timeout=40_000)
    await second.click(".tab[data-tab=tab-documents]")
    await second.click("#documents li[data-kind=record] button.sign", timeout=20_000)
    await _sign_in_frame(second, "#sign-frame")
    await second.wait_for_selector("#sign-dialog:not([open])", state="attached", timeout=40_000)

    await phone.wait_for_selector("#doc-panel.open", timeout=20_000)
    await _sign_in_frame(phone, "#doc-frame", touch=True)
    await _doc_shot(phone, shots, "phone-document-panel.png")
    await phone.frame_locator("#doc-frame").locator("#pad-submit").click()
    await phone.wait_for_selector("#doc-panel:not(.open)", state="attached", timeout=20_000)
    # Back to the video: the call kept going underneath.
    assert await phone.is_visible("#call")
    await _video_playing(phone, "#call video")
    await desk.wait_for_selector(
        "#documents li[data-kind=record][data-status=signed]", timeout=15_000
    )


def _jpeg(path: Path, shade: int) -> Path:
    """A photo as the phone's camera would hand it to the file input."""
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (90, 140 + 20 * shade, 60)).save(out, "JPEG")
    path.write_bytes(out.getvalue())
    return path


async def _end_call(desk: Any) -> None:
    desk.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await desk.click("#btn-end")


async def _appointments(app: Any) -> list[Appointment]:
    async with app[DB]() as session:
        return list(await session.scalars(select(Appointment).order_by(Appointment.id)))


async def _until(predicate: Any, within: float = 15.0) -> None:
    for _ in range(int(within / 0.1)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_inspection_from_booking_to_closed_case(
    aiohttp_server: Any, sqlite_settings: Settings, shots: Path, tmp_path: Path
) -> None:
    app = create_app(sqlite_settings)
    app[LIVE_OPTIONS] = LiveOptions(grace=5.0, host_addresses=("127.0.0.1",))
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    await _seed(app)

    async with chromium() as browser:
        phone_ctx = await browser.new_context(**PHONE)
        desk_ctx = await browser.new_context(**DESK)
        review_ctx = await browser.new_context(**DESK)
        watch_ctx = await browser.new_context(**DESK)
        cosign_ctx = await browser.new_context(**DESK)
        phone, desk = await phone_ctx.new_page(), await desk_ctx.new_page()
        reviewer, watcher = await review_ctx.new_page(), await watch_ctx.new_page()
        cosigner = await cosign_ctx.new_page()

        # 1. The manager books the inspection on the phone and joins on time.
        await _phone_login(phone, base, app)
        await phone.goto(base + "/")
        await phone.click(".zone-enterprise")
        await phone.click(".matter >> nth=0 >> a.button.primary")
        join_path = await _book_first_slot(phone, base, first=True)
        await phone.screenshot(path=str(shots / "01-phone-booked.png"))
        await _join_and_wait(phone, base, join_path)
        assert await phone.is_visible("#observed")  # the matter says calls may be observed
        (first,) = await _appointments(app)
        assert first.status == "checked_in"
        await phone.screenshot(path=str(shots / "02-phone-waiting.png"))

        # 2. The inspector adds 张协查 as co-inspector on the case page, starts the video
        # from the day view and admits the manager; the co-inspector joins from the case.
        await _staff_login(desk, base, "wang", "yunkan-demo-1")
        await desk.goto(f"{base}/staff/cases/{first.case_id}")
        await desk.locator("details:has(.step-party) > summary").click()
        await desk.select_option(".step-party select[name=user_id]", label="张协查")
        await desk.select_option(".step-party select[name=role]", "inspector")
        await desk.click(".step-party button[type=submit]")
        await desk.wait_for_selector("#procedure")
        await _start_and_admit(desk, base, first, app[SETTINGS].zone, shots / "02b-day-view.png")
        await phone.wait_for_selector("#call:not([hidden])", timeout=20_000)
        await _video_playing(desk, "#tiles video")
        await _video_playing(phone, "#call video")

        # 3. A supervisor watches from the case page, unseen by the phone.
        await _staff_login(watcher, base, "boss", "yunkan-demo-3")
        await watcher.goto(f"{base}/staff/cases/{first.case_id}")
        await watcher.click("#watch-live button")
        await watcher.wait_for_url(re.compile(r".*/live/j/.+"), timeout=15_000)
        await watcher.wait_for_selector("#receive-only")
        await _video_playing(watcher, "#tiles video")
        await asyncio.sleep(1.0)
        phone_people = await phone.inner_text("#call")
        assert "赵监督" not in phone_people
        await desk.screenshot(path=str(shots / "03-console-in-call.png"))
        await phone.screenshot(path=str(shots / "04-phone-in-call.png"))
        async with app[DB]() as session:
            case = await session.get(Case, first.case_id)
            assert case is not None and case.status == "inspecting"
        assert (await _appointments(app))[0].status == "in_session"
        await _staff_login(cosigner, base, "zhang", "yunkan-demo-4")
        await cosigner.goto(f"{base}/staff/cases/{first.case_id}")
        await cosigner.click("#watch-live button")
        await cosigner.wait_for_url(re.compile(r".*/live/j/.+"), timeout=15_000)
        await cosigner.wait_for_selector("#evidence")

        # 4. The console: checklist, snapshots, annotation, location, decision "rectify".
        try:
            await _walk_checklist_in_console(desk, phone, shots)
            # 5. The reviewer approves the draft on the review page while the call goes on
            # (a record states a decision in force: none is issued while under review).
            await _staff_login(reviewer, base, "li", "yunkan-demo-2")
            await reviewer.goto(base + "/staff/cases")
            await reviewer.screenshot(path=str(shots / "05b-reviewer-cases.png"))
            await reviewer.click(f"tr[data-case='{first.case_id}'] a.review-link")
            await reviewer.wait_for_selector("#review-decision")
            await reviewer.screenshot(path=str(shots / "05c-review-page.png"))
            await reviewer.check(".step-review input[name=decision][value=approve]")
            await reviewer.click(".step-review button[type=submit]")
            await reviewer.wait_for_selector("#procedure[data-state=rectifying]")
            # 6. The inspection record, issued and signed in the call by all three.
            await _record_signed_in_call(desk, cosigner, phone, shots)
            # Spotlight one tile; invite an expert (link, QR code, SMS) from the dialog.
            await desk.click("#tiles .tile >> nth=0 >> .tile-tools")
            await desk.wait_for_selector("#tiles.has-spotlight .tile.spotlit")
            await desk.click("#btn-invite")
            await desk.fill("#invite-form input[name=name]", "省种子站专家")
            await desk.fill("#invite-form input[name=mobile]", "13900139000")
            await desk.click("#invite-form button[type=submit]")
            await desk.wait_for_selector("#invite-qr svg")
            assert "/live/j/" in await desk.input_value("#invite-link")
            assert "139****9000" in await desk.inner_text("#invite-status")
            await _doc_shot(desk, shots, "console-invite.png")
            await desk.click("#invite-dialog [data-close]")
            assert await latest_sms(app, "13900139000", "invite")
        except Exception:
            for name, page in (("desk", desk), ("cosigner", cosigner), ("phone", phone)):
                await page.screenshot(path=str(shots / f"failed-{name}.png"))
            raise
        await _end_call(desk)
        await _until(lambda: _status_is(app, first.id, "completed"))
        await desk.goto(f"{base}/staff/cases/{first.case_id}")
        await desk.wait_for_selector("#procedure[data-state=rectifying]")
        await desk.screenshot(path=str(shots / "05-case-rectifying.png"), full_page=True)

        # 7. The phone sees the deadline, uploads the rectification photos taken with its
        # camera, and books the re-inspection from the case.
        await phone.goto(base + "/me")
        await phone.click(f"#my-cases li[data-case='{first.case_id}'] a")
        deadline = await phone.inner_text("#rectify-deadline")
        assert "请于" in deadline and "加装温湿度记录仪" in deadline
        assert "然后预约复查" in await phone.inner_text("#next-step")
        # The supervisor who watched is nowhere on the applicant's record either.
        assert "赵监督" not in await phone.inner_text("main")
        await phone.screenshot(path=str(shots / "06-phone-rectify.png"), full_page=True)
        photos = [_jpeg(tmp_path / f"整改{n}.jpg", n) for n in (1, 2)]
        await phone.set_input_files("#rectification-file", [str(p) for p in photos])
        assert "已选择 2 个文件" in await phone.inner_text("#rectification-chosen")
        await phone.fill("#rectification-form textarea[name=note]", "已加装温湿度记录仪")
        await phone.click("#rectification-form button[type=submit]")
        await phone.wait_for_selector("#upload-done")
        assert await phone.locator("#upload-list img").count() == 2
        await phone.click("#book-reinspection")
        join_path = await _book_first_slot(phone, base, first=False)
        assert "复查" in await phone.inner_text("main")
        await _join_and_wait(phone, base, join_path)
        second = (await _appointments(app))[1]
        assert second.case_id == first.case_id and second.status == "checked_in"

        # 8. The second call, the pass, the review and the closing.
        await _start_and_admit(desk, base, second, app[SETTINGS].zone)
        await phone.wait_for_selector("#call:not([hidden])", timeout=20_000)
        await _video_playing(desk, "#tiles video")
        await _video_playing(phone, "#call video")
        await asyncio.sleep(2.0)  # the site shown for a moment: it is on the recording
        await _end_call(desk)
        await _until(lambda: _status_is(app, second.id, "completed"))
        await desk.goto(f"{base}/staff/cases/{first.case_id}")
        await desk.check("#checklist-form input[name=result-0][value=ok]")
        await desk.fill("#checklist-form input[name=note-0]", "已加装温湿度记录仪")
        await desk.click("#checklist-form button[type=submit]")
        await desk.wait_for_selector("#checklist-form input[name=result-0][value=ok]:checked")
        await desk.check("#decision-form input[name=outcome][value=pass]")
        await desk.select_option("#decision-form select[name=reviewer_id]", label="李审核")
        await desk.click("#decision-form button[type=submit]")
        await desk.wait_for_selector("#procedure[data-state=under_review]")
        await reviewer.goto(f"{base}/staff/cases/{first.case_id}")
        await reviewer.check(".step-review input[name=decision][value=approve]")
        await reviewer.click(".step-review button[type=submit]")
        await reviewer.wait_for_selector("#procedure[data-state=decided]")
        await desk.goto(f"{base}/staff/cases/{first.case_id}")
        await desk.fill(".step-close input[name=licence_number]", "D(闽)农种许字(2026)第0042号")
        await desk.click(".step-close button[type=submit]")
        await desk.wait_for_selector("#procedure[data-state=closed]")
        await desk.screenshot(path=str(shots / "07-case-closed.png"), full_page=True)
        story = await desk.inner_text("#timeline")
        assert "王勘验 接入了 沙河种业有限公司" in story and "李审核 审核同意，结论生效" in story
        await phone.goto(f"{base}/me/cases/{first.case_id}")
        assert "已办结" in await phone.inner_text("#procedure")
        # The record of the whole case leaves as a bundle that verifies on its own.
        summary = await export_and_verify(desk, base, first.case_id, tmp_path)
        assert summary, summary

    statuses = [a.status for a in await _appointments(app)]
    assert statuses == ["completed", "completed"]
    # Each call that ended normally filed its recordings (the phone's and the inspectors';
    # the hidden supervisor published nothing).
    async with app[DB]() as session:
        filed = sorted(
            (r.session_ref, r.participant_role)
            for r in await session.scalars(
                select(Recording).where(Recording.case_id == first.case_id)
            )
        )
    assert filed == [
        ("appt-1", "applicant"),
        ("appt-1", "staff"),  # 王勘验
        ("appt-1", "staff"),  # 张协查, the co-inspector
        ("appt-2", "applicant"),
        ("appt-2", "staff"),
    ], filed
    async with app[DB]() as session:
        events = list(
            await session.scalars(
                select(CaseEvent).where(CaseEvent.case_id == first.case_id).order_by(CaseEvent.seq)
            )
        )
    kinds = [e.kind for e in events]
    assert "appointment.no_show" not in kinds
    moves = [
        (e.kind, e.actor_name if e.actor_kind == "staff" else e.actor_kind)
        for e in events
        if e.kind.startswith("case.")
    ]
    assert moves == [
        ("case.opened", "applicant"),
        ("case.party_added", "王勘验"),
        ("case.inspecting", "王勘验"),
        ("case.under_review", "王勘验"),
        ("case.decided", "李审核"),
        ("case.rectifying", "李审核"),
        ("case.re_inspection", "applicant"),
        ("case.inspecting", "王勘验"),
        ("case.under_review", "王勘验"),
        ("case.decided", "李审核"),
        ("case.closed", "王勘验"),
    ], moves
    joined = [e.data.get("role") for e in events if e.kind == "live.joined"]
    assert "supervisor" in joined


async def latest_sms(app: Any, mobile: str, kind: str) -> str | None:
    """The newest SMS to ``mobile`` in the outbox (the one thing the journey reads directly)."""
    async with app[DB]() as session:
        row = await session.scalar(
            select(SmsMessage)
            .where(SmsMessage.mobile == mobile, SmsMessage.kind == kind)
            .order_by(SmsMessage.id.desc())
            .limit(1)
        )
    return row.body if row else None


async def _status_is(app: Any, appointment_id: int, status: str) -> bool:
    async with app[DB]() as session:
        appt = await session.get(Appointment, appointment_id)
        return appt is not None and appt.status == status
