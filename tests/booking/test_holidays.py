"""Holidays as data: a year nobody knows is closed for booking until its notice is loaded
(admin form or ``yunkan holidays import``); the admin page says so from 1 November."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from server.appkeys import DB
from server.booking import holidays
from server.booking import models as m
from server.booking.present import utcnow
from tests.booking.support import SH, person, seed_app
from tests.support import staff_headers

Client = TestClient[Any, Any]
ROOT = Path(__file__).resolve().parents[2]


def _coming_year() -> int:
    year = utcnow().astimezone(SH).year + 1
    if holidays.package_knows(year):
        pytest.skip(f"chinese_calendar already knows {year}")
    return year


def _first_monday(year: int) -> date:
    day = date(year, 1, 4)
    return day + timedelta(days=(7 - day.weekday()) % 7)


async def _book(client: Client, headers: dict[str, str], matter: int, day: date, i: int) -> Any:
    start = f"{day.isoformat()}T10:00:00+08:00"
    body = {"matter_id": matter, "start": start, "applicant": person(i)}
    return await client.post("/api/v1/appointments", json=body, headers=headers)


async def test_a_year_is_closed_until_its_holidays_are_loaded(client: Client) -> None:
    year = _coming_year()
    admin = await staff_headers(client, "admin", "admin")
    cat = await seed_app(client.app)
    new_year, monday = date(year, 1, 1), _first_monday(year)
    async with client.app[DB].begin() as session:  # far enough ahead to reach next year
        horizon = (monday - utcnow().astimezone(SH).date()).days + 5
        await session.execute(
            update(m.Matter).where(m.Matter.id == cat.matter_id).values(horizon_days=horizon)
        )
    slots = await (await client.get(f"/api/v1/matters/{cat.matter_id}/slots?date={monday}")).json()
    assert slots["slots"] == [] and slots["day_kind"] == "unknown_year"
    for i, day in enumerate((new_year, monday)):
        refused = await _book(client, admin, cat.matter_id, day, i)
        assert refused.status == 422, await refused.text()
        message = (await refused.json())["error"]["fields"]["start"]
        assert message == "该年度节假日安排公布并导入后方可预约"
    page = await (await client.get("/admin/matters", headers=admin)).text()
    if utcnow().astimezone(SH).month >= 11:
        assert f"{year} 年节假日安排尚未导入" in page

    bad = await client.post(
        "/admin/holidays/import",
        data={"year": str(year), "holidays": f"{year}-01-04 班 元旦"},
        headers=admin,
    )
    assert bad.status == 422  # nothing changes
    assert (await _book(client, admin, cat.matter_id, monday, 5)).status == 422
    text = f"# 国务院办公厅通知\n{year}-01-01~{year}-01-03 休 元旦\n"
    r = await client.post(
        "/admin/holidays/import",
        data={"year": str(year), "holidays": text, "source": "国办发明电"},
        headers=admin,
        allow_redirects=False,
    )
    assert r.status == 303, await r.text()
    assert (await _book(client, admin, cat.matter_id, monday, 6)).status == 201
    closed = await _book(client, admin, cat.matter_id, new_year, 7)  # 元旦, loaded as a holiday
    assert closed.status == 422
    assert (await closed.json())["error"]["fields"]["start"] == "该时间没有可预约的时段"
    page = await (await client.get("/admin/matters", headers=admin)).text()
    assert "尚未导入" not in page and "国办发明电" in page


def test_the_command_loads_a_year(tmp_path: Path) -> None:
    notice = tmp_path / "2031.txt"
    notice.write_text("2031-01-01 休 元旦\n2031-03-01 班 试验\n", encoding="utf-8")
    run = [sys.executable, "-m", "server.cli", "holidays"]
    env_dir = ["--data-dir", str(tmp_path / "var")]
    out = subprocess.run(
        [*run, "import", "2031", str(notice), *env_dir], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "2031: 1 days off, 1 worked weekend days" in out.stdout
    listed = subprocess.run([*run, "list", *env_dir], cwd=ROOT, capture_output=True, text=True)
    assert "2031: loaded" in listed.stdout
    notice.write_text("2031-03-03 班 周一\n", encoding="utf-8")
    bad = subprocess.run(
        [*run, "import", "2031", str(notice), *env_dir], cwd=ROOT, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "holidays.1" in bad.stderr
