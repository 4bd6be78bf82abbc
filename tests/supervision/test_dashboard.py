"""The supervisor's dashboard over seeded history: the figures on the page are the ones
the rows make, the filters change them, and the XLSX export carries the same figures."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.app import create_app
from server.appkeys import DB
from server.booking import models as m
from server.cases.numbers import open_case
from server.settings import Settings
from server.supervision.models import VideoSession
from tests.support import open_every_day, staff_headers

Client = TestClient[Any, Any]
ZONE = ZoneInfo("Asia/Shanghai")
MOBILE = "13912345678"


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> Client:
    """On SQLite and on PostgreSQL: the figures are SQL of both dialects."""
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


async def _seed(client: Client) -> dict[str, int]:
    now = dt.datetime.now(dt.UTC)
    yesterday = now.astimezone(ZONE).date() - dt.timedelta(days=1)
    async with client.app[DB].begin() as session:
        seed_id, seed_window = await open_every_day(
            session, code="seed", name="种子许可核查", kind="inspection"
        )
        fund_id, fund_window = await open_every_day(
            session, code="fund", name="公积金咨询", kind="consultation", days=0
        )
        seed = await session.get(m.Matter, seed_id)
        fund = await session.get(m.Matter, fund_id)
        assert seed is not None and fund is not None
        serial = 0

        async def appointment(
            matter: m.Matter, window: int, hour: int, status: str, minutes: int | None
        ) -> None:
            nonlocal serial
            serial += 1
            case = await open_case(session, title=matter.name, zone=ZONE, matter_id=matter.id)
            start = dt.datetime.combine(yesterday, dt.time(hour), ZONE).astimezone(dt.UTC)
            seat = m.SlotSeat(
                window_id=window,
                matter_id=matter.id,
                starts_at=start,
                ends_at=start + dt.timedelta(minutes=30),
                seats=1,
                taken=1,
            )
            session.add(seat)
            await session.flush()
            appt = m.Appointment(
                matter_id=matter.id,
                window_id=window,
                slot_id=seat.id,
                starts_at=start,
                ends_at=seat.ends_at,
                applicant_kind="person",
                applicant_name=f"申请人{serial}",
                mobile=MOBILE,
                id_number="11010519491231002X",
                identity_key=f"t-{serial}",
                status=status,
                case_id=case.id,
                created_at=start - dt.timedelta(days=1),
                updated_at=start,
            )
            session.add(appt)
            await session.flush()
            if minutes is not None:
                session.add(
                    VideoSession(
                        room=f"appt-{appt.id}",
                        case_id=case.id,
                        matter_id=matter.id,
                        appointment_id=appt.id,
                        started_at=start,
                        ended_at=start + dt.timedelta(minutes=minutes),
                        ended_by="end",
                    )
                )

        for hour, status, minutes in (
            (9, "completed", 10),
            (10, "completed", 20),
            (11, "completed", 30),
            (14, "no_show", None),
            (15, "cancelled", None),
        ):
            await appointment(seed, seed_window, hour, status, minutes)
        await appointment(fund, fund_window, 9, "completed", 40)

        taken = dt.datetime.combine(yesterday, dt.time(13), ZONE).astimezone(dt.UTC)
        for n, wait in enumerate((2, 4, 9)):
            session.add(
                m.QueueTicket(
                    token=f"done-{n}",
                    matter_id=seed_id,
                    name="走进来",
                    mobile=f"1370000000{n}",
                    status="done",
                    created_at=taken - dt.timedelta(minutes=wait),
                    taken_at=taken,
                )
            )
        session.add(
            m.QueueTicket(
                token="waiting-1",
                matter_id=seed_id,
                name="排队中",
                mobile="13700000009",
                status="waiting",
                created_at=now - dt.timedelta(minutes=5),
            )
        )
        live = await open_case(session, title="进行中", zone=ZONE, matter_id=fund_id)
        session.add(
            VideoSession(
                room=f"case-{live.id}",
                case_id=live.id,
                matter_id=fund_id,
                started_at=now - dt.timedelta(minutes=3),
            )
        )
    return {"seed_department": seed.department_id, "fund_department": fund.department_id}


def _figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'class="figure" data-key="(\w+)" data-value="([^"]*)"', html))


async def test_dashboard_figures_filters_and_xlsx(client: Client) -> None:
    ids = await _seed(client)
    boss = await staff_headers(client, "zhou", "supervisor")

    page = await client.get("/staff/supervision?days=7", headers=boss)
    assert page.status == 200
    html = await page.text()
    figures = _figures(html)
    assert figures["served"] == "7"  # 4 booked sessions + 3 walk-ins
    assert figures["no_show_rate"] == "20.0"  # 1 missed of 5 due (the cancelled one is not due)
    assert figures["median_wait"] == "4.0"
    assert figures["median_length"] == "25.0"  # 10, 20, 30, 40 minutes
    assert figures["live_now"] == "1"
    assert figures["queue_waiting"] == "1"
    assert 4.9 <= float(figures["queue_longest"]) <= 6.0
    # six charts of operations, two of ratings, two of deadline cards
    assert html.count("<svg") == 10 and "<script" not in html.split("<main")[1].split("</main>")[0]
    # Each bar links to the list behind it; the served bar of yesterday to that day's list.
    yesterday = (dt.datetime.now(ZONE).date() - dt.timedelta(days=1)).isoformat()
    assert f'href="/staff/day?date={yesterday}&amp;status=completed"' in html
    assert f'href="/staff/day?date={yesterday}&amp;status=no_show"' in html
    assert 'data-value="4"' in html.split('id="chart-operations-served"')[1].split("</figure>")[0]

    dept = await client.get(
        f"/staff/supervision?days=7&department={ids['seed_department']}", headers=boss
    )
    figures = _figures(await dept.text())
    assert figures["served"] == "6" and figures["no_show_rate"] == "25.0"
    assert figures["median_length"] == "20.0" and figures["live_now"] == "0"

    # The list behind the no-show bar is that day's no-shows only.
    day = await client.get(f"/staff/day?date={yesterday}&status=no_show", headers=boss)
    text = await day.text()
    assert "申请人4" in text and "申请人1<" not in text and "申请人5" not in text

    xlsx = await client.get("/staff/supervision/exports/all?format=xlsx&days=7", headers=boss)
    assert xlsx.status == 200
    assert xlsx.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(await xlsx.read()))
    assert book.sheetnames == ["指标汇总", "办件", "预约", "好差评", "监察亮牌"]
    summary = list(book["指标汇总"].iter_rows(values_only=True))
    assert summary[0] == ("板块", "指标", "数值", "单位", "键")
    values = {row[4]: row[2] for row in summary[1:]}
    assert values["served"] == 7 and values["no_show_rate"] == 20.0
    assert values["median_wait"] == 4.0 and values["median_length"] == 25.0
    appointments = list(book["预约"].iter_rows(values_only=True))
    assert appointments[0][0] == "预约号" and "手机号" in appointments[0]
    statuses = [row[5] for row in appointments[1:]]
    assert statuses.count("已完成") == 4 and len(appointments) == 7
    # A supervisor doing oversight sees masked personal data only.
    flat = repr(appointments) + repr(list(book["办件"].iter_rows(values_only=True)))
    assert MOBILE not in flat and "139****5678" in flat
    assert "11010519491231002X" not in flat and "110105********002X" in flat

    csv = await client.get(
        "/staff/supervision/exports/appointments?format=csv&days=7", headers=boss
    )
    body = (await csv.read()).decode("utf-8-sig")
    assert body.splitlines()[0].startswith("预约号,办件编号") and MOBILE not in body
    assert len(body.splitlines()) == 7

    # Watching a room that may not be joined any more goes back to the wall; no such room: 404.
    async with client.app[DB]() as session:
        missed = await session.scalar(
            select(m.Appointment.id).where(m.Appointment.status == "no_show")
        )
    csrf = {"Cookie": "yk_csrf=t", "X-CSRF-Token": "t"}
    gone = await client.post(
        f"/staff/supervision/live/appt-{missed}/watch",
        headers={**boss, **csrf},
        allow_redirects=False,
    )
    assert gone.status == 303 and gone.headers["Location"] == "/staff/supervision/live?refused=1"
    nowhere = await client.post(
        "/staff/supervision/live/appt-999999/watch", headers={**boss, **csrf}
    )
    assert nowhere.status == 404


async def test_only_supervisors_open_the_supervision_pages(client: Client) -> None:
    paths = (
        "/staff/supervision",
        "/staff/supervision/live",
        "/staff/supervision/exports/cases?format=xlsx",
    )
    for path in paths:
        anonymous = await client.get(path, allow_redirects=False)
        assert anonymous.status == 303 and anonymous.headers["Location"].startswith("/login")
    inspector = await staff_headers(client, "wang", "inspector")
    client.session.cookie_jar.clear()  # the bearer token alone says who asks
    for path in paths:
        assert (await client.get(path, headers=inspector)).status == 403, path
    boss = await staff_headers(client, "zhou", "supervisor")
    for bad in ("/staff/supervision/exports/nope", "/staff/supervision/exports/all?format=csv"):
        assert (await client.get(bad, headers=boss)).status == 404
    # A forgiving page: nonsense filters show the default period.
    page = await client.get("/staff/supervision?from=2026-13-99&department=x&days=5", headers=boss)
    assert page.status == 200 and 'data-key="served"' in await page.text()
    home = await client.get("/staff", headers=boss)
    assert 'href="/staff/supervision"' in await home.text()
    assert (
        'href="/staff/supervision"'
        not in await (await client.get("/staff", headers=inspector)).text()
    )
