"""What the journeys share: logins through the pages, the call, and the bundle check.

``export_and_verify`` is the end of every journey: the case page's export link is clicked
like a person would (a real download in Chromium), and the ZIP is checked by the real
command, ``python -m server.cli verify bundle FILE`` in a child process, exactly as an
auditor would run ``yunkan verify bundle`` on a copy.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from server.appkeys import DB
from server.booking.models import Appointment
from tests.support import latest_code

ROOT = Path(__file__).resolve().parents[2]
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
}
DESK = {"viewport": {"width": 1366, "height": 768}, "locale": "zh-CN"}


class _Outbox:  # latest_code reads the SMS outbox through the app's database
    def __init__(self, app: Any) -> None:
        self.app = app


async def export_and_verify(page: Any, base: str, case_id: int, folder: Path) -> dict[str, Any]:
    """Export the case from its staff page (``page`` is logged in as staff who may export)
    and run ``yunkan verify bundle`` on the download; its JSON summary. Fails unless OK."""
    await page.goto(f"{base}/staff/cases/{case_id}")
    async with page.expect_download(timeout=60_000) as info:
        await page.click("#export-bundle")
    download = await info.value
    target = folder / (download.suggested_filename or f"case-{case_id}.zip")
    await download.save_as(str(target))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server.cli", "verify", "bundle", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stdout, done.stdout
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


async def staff_login(page: Any, base: str, username: str, password: str) -> None:
    await page.goto(base + "/login?tab=staff")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("#staff-login button[type=submit]")
    await page.wait_for_url(base + "/staff")


async def phone_login(page: Any, base: str, app: Any, mobile: str) -> None:
    await page.goto(base + "/login")
    await page.fill("input[name=mobile]", mobile)
    await page.click("#otp-request button[type=submit]")
    await page.wait_for_selector("#otp-verify")
    await page.fill("input[name=code]", await latest_code(_Outbox(app), mobile))  # type: ignore[arg-type]
    await page.click("#otp-verify button[type=submit]")
    await page.wait_for_url(re.compile(r".*/me$"))


async def book_first_slot(phone: Any, mobile: str, fields: dict[str, str]) -> str:
    """From the matter's slot list to the confirmation; the join link's path."""
    await phone.click("a.slot >> nth=0")
    if fields.get("kind"):
        await phone.click(f"input[name=kind][value={fields['kind']}]")
    for name, value in fields.items():
        if name != "kind":
            await phone.fill(f"input[name={name}]", value)
    await phone.fill("input[name=mobile]", mobile)
    await phone.click("button.primary.big")
    await phone.wait_for_url(re.compile(r".*/book/done/\d+.*"))
    href = await phone.get_attribute("a.join-link, a.button.primary.big", "href")
    assert href
    parts = urlsplit(href)
    return parts.path + ("?" + parts.query if parts.query else "")


async def join_and_wait(phone: Any, base: str, join_path: str) -> None:
    await phone.goto(base + join_path)
    await phone.wait_for_url(re.compile(r".*/live/j/.+"))
    await phone.wait_for_selector("#btn-join:not([disabled])", timeout=20_000)
    await phone.click("#btn-join")
    await phone.wait_for_selector("#waiting:not([hidden])", timeout=15_000)


async def start_and_admit(desk: Any, base: str, appt: Appointment, zone: Any) -> None:
    day = appt.starts_at.astimezone(zone).date().isoformat()
    await desk.goto(f"{base}/staff/day?date={day}")
    await desk.click(f"tr[data-appointment='{appt.id}'] button[data-action=start]")
    await desk.wait_for_url(re.compile(r".*/live/j/.+"), timeout=15_000)
    await desk.wait_for_selector("#waiting-list button.admit", timeout=20_000)
    await desk.click("#waiting-list button.admit")


async def video_playing(page: Any, selector: str, count: int = 1) -> None:
    """Wait until ``count`` videos under ``selector`` show pictures."""
    script = (
        "([s, n]) => [...document.querySelectorAll(s)].filter(v => v.videoWidth > 0).length >= n"
    )
    for _ in range(200):
        if await page.evaluate(script, [selector, count]):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} videos playing in {selector}")


async def end_call(desk: Any) -> None:
    desk.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await desk.click("#btn-end")


async def appointments(app: Any) -> list[Appointment]:
    async with app[DB]() as session:
        return list(await session.scalars(select(Appointment).order_by(Appointment.id)))


async def until(predicate: Any, within: float = 15.0) -> None:
    for _ in range(int(within / 0.1)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def appointment_status(app: Any, appointment_id: int) -> str | None:
    async with app[DB]() as session:
        appt = await session.get(Appointment, appointment_id)
        return appt.status if appt else None


CLERK = ("chen", "yunkan-demo-5", "陈窗口")
"""The window clerk of the citizens' consultation journeys (username, password, name)."""


async def seed_consultation_desk(session: Any) -> int:
    """The clerk and the housing-fund consultation they serve, open around the clock."""
    from server.accounts.service import add_user
    from tests.support import open_every_day

    username, password, name = CLERK
    clerk = await add_user(
        session, username=username, password=password, role="inspector", display_name=name
    )
    await open_every_day(
        session,
        staff_ids=(clerk.id,),
        code="fund-consult",
        name="住房公积金提取咨询",
        zone="citizen",
        kind="consultation",
        duration_min=15,
    )
    return int(clerk.id)


async def consultation_in_call(
    phone: Any, desk: Any, base: str, app: Any, mobile: str, name: str
) -> Appointment:
    """A citizen books the consultation on the phone, joins and waits; the clerk starts the
    video from the day view and admits her; both see each other. Her appointment."""
    from server.appkeys import SETTINGS

    await phone_login(phone, base, app, mobile)
    await phone.goto(base + "/")
    await phone.click(".zone-citizen")
    await phone.click(".matter >> nth=0 >> a.button.primary")
    assert await phone.locator("input[name=site_address]").count() == 0  # no site to visit
    join_path = await book_first_slot(
        phone, mobile, {"kind": "person", "name": name, "id_number": "11010519491231002X"}
    )
    await join_and_wait(phone, base, join_path)
    (appt,) = await appointments(app)
    assert appt.case_id is not None
    await staff_login(desk, base, CLERK[0], CLERK[1])
    await start_and_admit(desk, base, appt, app[SETTINGS].zone)
    await phone.wait_for_selector("#call:not([hidden])", timeout=20_000)
    await video_playing(desk, "#tiles video")
    await video_playing(phone, "#tiles video")
    return appt
