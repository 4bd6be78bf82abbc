"""Helpers for tests: reach the services, create users, log in the way clients do."""

from __future__ import annotations

import re
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.accounts.models import SmsMessage
from server.accounts.service import add_user
from server.appkeys import DB


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def pg_reachable(url: str) -> bool:
    return _reachable(url, 5432)


def redis_reachable(url: str) -> bool:
    return _reachable(url, 6379)


def pg_admin_url(url: str) -> str:
    """A plain libpq URL (asyncpg) for administrative statements."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


def pg_async_url(url: str, database: str | None = None) -> str:
    parts = urlsplit(pg_admin_url(url))
    if database:
        parts = parts._replace(path="/" + database)
    return urlunsplit(parts).replace("postgresql://", "postgresql+asyncpg://", 1)


async def create_staff(
    client: TestClient[Any, Any],
    username: str = "inspector",
    role: str = "inspector",
    password: str = "correct-horse-1",
    display_name: str | None = None,
) -> int:
    async with client.app[DB].begin() as session:
        user = await add_user(
            session,
            username=username,
            password=password,
            role=role,
            display_name=display_name or username,
        )
        return user.id


async def staff_headers(
    client: TestClient[Any, Any],
    username: str = "inspector",
    role: str = "inspector",
    password: str = "correct-horse-1",
) -> dict[str, str]:
    """Create a member of staff and log in through the API; bearer headers."""
    await create_staff(client, username, role, password)
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def latest_code(client: TestClient[Any, Any], mobile: str) -> str:
    async with client.app[DB]() as session:
        body = await session.scalar(
            select(SmsMessage.body)
            .where(SmsMessage.mobile == mobile)
            .order_by(SmsMessage.id.desc())
            .limit(1)
        )
    assert body, f"no SMS to {mobile}"
    match = re.search(r"\b(\d{6})\b", body)
    assert match
    return match.group(1)


async def applicant_headers(
    client: TestClient[Any, Any], mobile: str = "13800138000"
) -> dict[str, str]:
    """Log an applicant in with an SMS code read from the outbox; bearer headers."""
    response = await client.post("/api/v1/auth/otp", json={"mobile": mobile})
    assert response.status == 202, await response.text()
    code = await latest_code(client, mobile)
    response = await client.post("/api/v1/auth/otp/verify", json={"mobile": mobile, "code": code})
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def open_every_day(
    session: Any,
    *,
    staff_ids: tuple[int, ...] = (),
    days: int = 3,
    **matter: Any,
) -> tuple[int, int]:
    """One department, one matter (``matter`` fields), one window open around the clock
    every day, the next ``days`` days forced to be working days and ``staff_ids`` qualified:
    a catalogue that offers a slot now, whatever day and hour the test runs.
    (matter id, window id)."""
    import datetime as dt
    import zoneinfo

    from server.booking import models as m

    zone = zoneinfo.ZoneInfo("Asia/Shanghai")  # the agency zone of the test settings
    dept = m.Department(code=f"d-{matter['code']}", name="市场监管局")
    session.add(dept)
    await session.flush()
    row = m.Matter(department_id=dept.id, **{"zone": "enterprise", "notice_min": 0, **matter})
    window = m.Window(code=f"w-{matter['code']}", department_id=dept.id, name="一号视频窗口")
    session.add_all([row, window])
    await session.flush()
    session.add(m.WindowMatter(window_id=window.id, matter_id=row.id))
    for weekday in range(7):
        session.add(m.WorkingPlan(window_id=window.id, weekday=weekday, start_min=0, end_min=1440))
    today = dt.datetime.now(zone).date()
    for n in range(days):
        session.add(m.HolidayOverride(day=today + dt.timedelta(days=n), working=True, note="test"))
    for user_id in staff_ids:
        session.add(m.StaffQualification(user_id=user_id, matter_id=row.id))
    await session.flush()
    return row.id, window.id
