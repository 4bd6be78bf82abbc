"""Booking test helpers: a small catalogue written straight into the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.booking import models as m

SH = ZoneInfo("Asia/Shanghai")
PERSON = {
    "kind": "person",
    "name": "张三",
    "mobile": "13800138000",
    "id_number": "11010519491231002X",
}
ENTERPRISE = {
    "kind": "enterprise",
    "name": "某某种业有限公司",
    "mobile": "13900139000",
    "credit_code": "91350100M000100Y43",
    "contact_name": "李四",
}


def person(i: int) -> dict[str, Any]:
    """A distinct valid applicant per ``i`` (mobile and resident ID)."""
    from server.booking.validation import resident_id_check_char

    first17 = f"110105198001{i % 28 + 1:02d}{i % 1000:03d}"
    return {
        "kind": "person",
        "name": f"申请人{i}",
        "mobile": f"137{i:08d}",
        "id_number": first17 + resident_id_check_char(first17),
    }


@dataclass
class Catalog:
    matter_id: int
    small_matter_id: int  # one seat per slot, inspection
    queue_matter_id: int
    window_id: int
    day: date  # a local working day with slots from 08:00 to 20:00

    def start(self, hhmm: str = "10:00", day: date | None = None) -> datetime:
        h, mi = hhmm.split(":")
        return datetime.combine(day or self.day, time(int(h), int(mi)), SH)

    def iso(self, hhmm: str = "10:00", day: date | None = None) -> str:
        return self.start(hhmm, day).isoformat()


def tomorrow() -> date:
    return datetime.now(UTC).astimezone(SH).date() + timedelta(days=1)


async def seed_catalog(
    db: async_sessionmaker[AsyncSession], *, seats: int = 10, staff_ids: tuple[int, ...] = ()
) -> Catalog:
    """Tomorrow is forced to be a working day so the tests never depend on the calendar."""
    day = tomorrow()
    async with db.begin() as session:
        dept = m.Department(code="test", name="测试局")
        session.add(dept)
        await session.flush()
        common: dict[str, Any] = dict(
            department_id=dept.id,
            description="",
            materials=["身份证"],
            checklist=[{"key": "a", "text": "场地"}],
            joint_departments=[],
            buffer_min=0,
            notice_min=0,
            horizon_days=20,
            retention_days=365,
            active=True,
        )
        big = m.Matter(
            code="big",
            name="咨询",
            zone="citizen",
            kind="consultation",
            duration_min=30,
            seats=seats,
            allows_video_now=False,
            **common,
        )
        small = m.Matter(
            code="small",
            name="勘验",
            zone="enterprise",
            kind="inspection",
            duration_min=30,
            seats=1,
            allows_video_now=False,
            **common,
        )
        walk = m.Matter(
            code="walk",
            name="即时咨询",
            zone="citizen",
            kind="consultation",
            duration_min=20,
            seats=1,
            allows_video_now=True,
            **common,
        )
        window = m.Window(code="w1", name="窗口1", department_id=dept.id, active=True)
        session.add_all([big, small, walk, window])
        await session.flush()
        for matter in (big, small, walk):
            session.add(m.WindowMatter(window_id=window.id, matter_id=matter.id))
            for user_id in staff_ids:
                session.add(m.StaffQualification(user_id=user_id, matter_id=matter.id))
        for weekday in range(7):
            session.add(
                m.WorkingPlan(
                    window_id=window.id,
                    weekday=weekday,
                    start_min=8 * 60,
                    end_min=12 * 60,
                    label="上午",
                )
            )
            session.add(
                m.WorkingPlan(
                    window_id=window.id,
                    weekday=weekday,
                    start_min=12 * 60,
                    end_min=20 * 60,
                    label="午间错时",
                )
            )
        session.add(m.HolidayOverride(day=day, working=True, note="test"))
    return Catalog(big.id, small.id, walk.id, window.id, day)


async def seed_app(app: web.Application, **kw: Any) -> Catalog:
    from server.appkeys import DB

    return await seed_catalog(app[DB], **kw)


async def officer(
    client: Any, username: str = "inspector", role: str = "inspector"
) -> tuple[int, dict[str, str]]:
    """A member of staff and their bearer headers (seed them as qualified to make them lead)."""
    from tests.support import create_staff

    staff_id = await create_staff(client, username, role)
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": "correct-horse-1"}
    )
    assert response.status == 200, await response.text()
    return staff_id, {"Authorization": f"Bearer {(await response.json())['token']}"}


def token_of(url: str) -> str:
    return url.split("token=")[1]


async def appointment_row(client: Any, appointment_id: int) -> m.Appointment:
    """The appointment as stored now."""
    from server.appkeys import DB

    async with client.app[DB]() as session:
        row = await session.get(m.Appointment, appointment_id)
        assert row is not None
        return row
