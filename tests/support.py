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
