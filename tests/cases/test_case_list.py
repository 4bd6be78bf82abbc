"""The staff case list: filters that combine and survive pagination, overdue by working days."""

from __future__ import annotations

import datetime as dt
import html
import re

from server.appkeys import DB, SETTINGS
from server.booking.models import Department, HolidayOverride, Matter
from server.cases.listing import working_days_late
from server.cases.models import Case, CaseParty
from server.cases.numbers import open_case
from tests.cases.conftest import Client
from tests.cases.test_procedure import _user_id
from tests.support import staff_headers

ZH = {"Accept-Language": "zh-CN"}


async def _matter(client: Client, code: str, dept: str, **flags: object) -> tuple[int, int]:
    async with client.app[DB].begin() as session:
        department = Department(code=f"d-{code}", name=dept)
        session.add(department)
        await session.flush()
        matter = Matter(
            code=code,
            department_id=department.id,
            name=f"事项{code}",
            zone="enterprise",
            kind="inspection",
            **flags,
        )
        session.add(matter)
        await session.flush()
        return matter.id, department.id


async def _cases(
    client: Client, matter_id: int, lead: int, n: int, *, title: str, status: str = "scheduled"
) -> list[int]:
    ids = []
    async with client.app[DB].begin() as session:
        for i in range(n):
            case = await open_case(
                session,
                title=f"{title}{i:02d}",
                zone=client.app[SETTINGS].zone,
                matter_id=matter_id,
                status=status,
            )
            session.add(
                CaseParty(case_id=case.id, principal_kind="staff", principal_id=lead, role="lead")
            )
            ids.append(case.id)
    return ids


def _ids(page: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-case="(\d+)"', page)]


def _next(page: str) -> str | None:
    found = re.search(r'<a rel="next" href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


async def test_filters_combine_and_survive_pagination(client: Client) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    lead = await _user_id(client, "wang")
    seed, seed_dept = await _matter(client, "seed", "农业农村局")
    food, food_dept = await _matter(client, "food", "市场监管局")
    seeds = await _cases(client, seed, lead, 23, title="沙河种业")
    foods = await _cases(client, food, lead, 2, title="城南餐饮")

    async def get(query: str) -> str:
        r = await client.get(f"/staff/cases{query}", headers={**lead_h, **ZH})
        assert r.status == 200
        return await r.text()

    first = await get("?state=open&mine=1")
    assert len(_ids(first)) == 20 and "共 25 件" in first and "第 1 / 2 页" in first
    link = _next(first)
    assert link and "page=2" in link and "state=open" in link and "mine=1" in link
    second = await get(link)
    assert len(_ids(second)) == 5
    assert set(_ids(first)).isdisjoint(_ids(second))
    assert set(_ids(first)) | set(_ids(second)) == set(seeds) | set(foods)
    # Newest first, stable: the two pages are one ordered list.
    assert _ids(first) + _ids(second) == sorted(seeds + foods, reverse=True)

    by_matter = await get(f"?state=all&matter={seed}&mine=1")
    assert "共 23 件" in by_matter and not set(_ids(by_matter)) & set(foods)
    link = _next(by_matter)
    assert link and f"matter={seed}" in link
    assert not set(_ids(await get(link))) & set(foods)
    by_dept = await get(f"?state=all&department={food_dept}")
    assert sorted(_ids(by_dept)) == sorted(foods)
    assert "农业农村局" in await get(f"?department={seed_dept}")
    found = await get("?state=all&q=城南餐饮01")
    assert _ids(found) == [foods[1]]
    async with client.app[DB]() as session:
        number = (await session.get(Case, seeds[3])).number  # type: ignore[union-attr]
    assert _ids(await get(f"?state=all&q={number}")) == [seeds[3]]
    # Opened-between: move three cases a month back.
    zone = client.app[SETTINGS].zone
    old = dt.datetime.now(zone) - dt.timedelta(days=30)
    async with client.app[DB].begin() as session:
        for case_id in seeds[:3]:
            (await session.get(Case, case_id)).created_at = old  # type: ignore[union-attr]
    day = old.date()
    ranged = await get(f"?state=all&from={day - dt.timedelta(days=1)}&to={day}")
    assert sorted(_ids(ranged)) == sorted(seeds[:3])
    assert f'value="{day}"' in ranged  # the form shows what was applied
    # A value that cannot be a filter is ignored, not an error page.
    assert len(_ids(await get("?state=nonsense&from=2026-02-30&matter=x&page=-1"))) == 20


async def test_overdue_counts_working_days(client: Client) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    lead = await _user_id(client, "wang")
    matter, _ = await _matter(client, "lic", "农业农村局", promised_days={"review": 2})
    zone = client.app[SETTINGS].zone
    today = dt.datetime.now(zone).date()
    late_review, fresh_review = await _cases(
        client, matter, lead, 2, title="审核", status="under_review"
    )
    late_rectify, fresh_rectify = await _cases(
        client, matter, lead, 2, title="整改", status="rectifying"
    )
    async with client.app[DB].begin() as session:
        # Twenty days ago, every day a working day: the two promised days are long gone.
        for n in range(0, 25):
            session.add(HolidayOverride(day=today - dt.timedelta(days=n), working=True))
        late = await session.get(Case, late_review)
        assert late is not None
        late.state_changed_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=20)
        fresh = await session.get(Case, fresh_review)
        assert fresh is not None
        fresh.state_changed_at = dt.datetime.now(dt.UTC)
        for case_id, deadline in (
            (late_rectify, today - dt.timedelta(days=3)),
            (fresh_rectify, today + dt.timedelta(days=3)),
        ):
            row = await session.get(Case, case_id)
            assert row is not None
            row.deadline = deadline
    r = await client.get("/staff/cases?state=open&mine=1&overdue=1", headers={**lead_h, **ZH})
    page = await r.text()
    assert sorted(_ids(page)) == sorted([late_review, late_rectify])
    assert "已超期 18 个工作日" in page and "已超期 3 个工作日" in page
    everything = await (await client.get("/staff/cases", headers={**lead_h, **ZH})).text()
    assert sorted(_ids(everything)) == sorted(
        [late_review, fresh_review, late_rectify, fresh_rectify]
    )
    assert everything.count('class="overdue"') == 2


def test_working_days_late_skips_holidays() -> None:
    from server.booking.calendar import HolidayCalendar

    # 2026-10-01..08 is the National Day holiday: a deadline on 30 Sept is one working
    # day late on 9 Oct (a make-up working day), not nine.
    calendar = HolidayCalendar({})
    assert working_days_late(dt.date(2026, 9, 30), dt.date(2026, 10, 9), calendar) >= 1
    assert working_days_late(dt.date(2026, 9, 30), dt.date(2026, 10, 9), calendar) < 4
    assert working_days_late(dt.date(2026, 9, 30), dt.date(2026, 9, 30), calendar) == 0
