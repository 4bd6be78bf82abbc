"""Plans that say what they do: a Saturday-only window, the day picker up to the
horizon with exceptions, slots grouped 上午 / 午间 / 晚间 with their labels."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from server.appkeys import DB
from server.booking import models as m
from server.booking.calendar import HolidayCalendar
from server.booking.present import utcnow
from tests.booking.support import SH, seed_app

Client = TestClient[Any, Any]
HORIZON = 16


async def _saturday_matter(client: Client) -> tuple[int, list[date], date]:
    """A matter served only on Saturdays (周末不打烊), with a closure and an extra day.

    (matter id, the days the picker must show, the Saturday it must skip). Today is shown
    when it is a Saturday before its last slot (19:30): CI ran this at 04:00 on a Saturday
    in Shanghai, and the picker rightly offered that day's slots."""
    cat = await seed_app(client.app)
    now = utcnow().astimezone(SH)
    today = now.date()
    calendar = HolidayCalendar()
    saturdays = [
        d
        for i in range(HORIZON + 1)
        if (d := today + timedelta(days=i)).weekday() == 5
        and calendar.day_kind(d).reason == "weekend"
        and d > today
    ]
    closed, kept = saturdays[0], saturdays[1:]
    extra = next(
        d
        for i in range(1, HORIZON)
        if (d := today + timedelta(days=i)).weekday() == 2 and d != cat.day
    )
    async with client.app[DB].begin() as session:
        base = await session.get(m.Matter, cat.matter_id)
        assert base is not None
        matter = m.Matter(
            code="weekend",
            name="周末咨询",
            zone="citizen",
            kind="consultation",
            department_id=base.department_id,
            duration_min=30,
            seats=2,
            buffer_min=0,
            notice_min=0,
            horizon_days=HORIZON,
            materials=[],
            checklist=[],
            joint_departments=[],
            retention_days=365,
            allows_video_now=False,
            active=True,
        )
        window = m.Window(code="sat", name="周末窗口", department_id=base.department_id)
        session.add_all([matter, window])
        await session.flush()
        session.add(m.WindowMatter(window_id=window.id, matter_id=matter.id))
        for start, end, label in ((9, 12, ""), (12, 14, "午间错时"), (18, 20, "延时服务")):
            session.add(
                m.WorkingPlan(
                    window_id=window.id,
                    weekday=5,
                    start_min=start * 60,
                    end_min=end * 60,
                    label=label,
                )
            )
        session.add(m.PlanException(window_id=window.id, day=closed, closed=True, note="检修"))
        session.add(
            m.PlanException(
                window_id=None, day=extra, closed=False, start_min=600, end_min=660, note="加开"
            )
        )
    open_today = (
        today.weekday() == 5
        and calendar.day_kind(today).reason == "weekend"
        and (now.hour, now.minute) < (19, 30)
    )
    return matter.id, sorted([*kept, extra, *([today] if open_today else [])]), closed


async def test_the_day_picker_shows_exactly_the_days_with_slots(client: Client) -> None:
    matter_id, days, closed = await _saturday_matter(client)
    page = await (await client.get(f"/book/matter/{matter_id}")).text()
    shown = [
        date.fromisoformat(x) for x in re.findall(r'class="day[^"]*" href="\?date=([\d-]+)', page)
    ]
    assert shown == days
    assert closed not in shown
    today = utcnow().astimezone(SH).date()
    saturday = next(d for d in days if d.weekday() == 5 and d > today)  # all its slots ahead
    slots = await (await client.get(f"/api/v1/matters/{matter_id}/slots?date={saturday}")).json()
    assert slots["day_kind"] == "weekend" and len(slots["slots"]) == 6 + 4 + 4
    by_time = {s["start"][11:16]: s for s in slots["slots"]}
    assert by_time["09:00"]["period"] == "morning" and by_time["09:00"]["label"] == ""
    assert by_time["12:30"]["period"] == "midday" and by_time["12:30"]["label"] == "午间错时"
    assert by_time["19:30"]["period"] == "evening" and by_time["19:30"]["label"] == "延时服务"

    page = await (await client.get(f"/book/matter/{matter_id}?date={saturday}")).text()
    periods = re.findall(r'<div class="period" data-period="(\w+)">\s*<h3>([^<]+)</h3>', page)
    assert periods == [("morning", "上午"), ("midday", "午间"), ("evening", "晚间")]
    assert page.count('<em class="slot-label">午间错时</em>') == 4
    assert page.count('<em class="slot-label">延时服务</em>') == 4
    closed_page = await (await client.get(f"/book/matter/{matter_id}?date={closed}")).text()
    assert "当天没有空闲时段" in closed_page and 'class="slot' not in closed_page
