"""Behind the reverse proxy: the client is the rightmost X-Forwarded-For hop that is not a
trusted proxy, so a client who writes its own X-Forwarded-For escapes no limit and leaves
no made-up address in sessions."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.accounts import limits
from server.accounts.models import AuthSession
from server.app import create_app
from server.appkeys import DB
from server.settings import Settings
from tests.support import create_staff

Client = TestClient[Any, Any]
CLIENT = "203.0.113.7"  # what nginx saw and appended ($proxy_add_x_forwarded_for)


@pytest.fixture
def app(settings: Settings) -> web.Application:
    # The test client connects from 127.0.0.1, one of the default trusted proxies.
    return create_app(
        dataclasses.replace(settings, trust_proxy=True, trusted_proxies="127.0.0.1,10.0.0.0/8")
    )


def _spoofed(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.{n // 250}.{n % 250 + 1}, {CLIENT}"}


async def test_rotating_x_forwarded_for_does_not_escape_the_login_limit(client: Client) -> None:
    statuses = []
    for n in range(limits.LOGIN_FAILURES_PER_IP.count + 1):
        response = await client.post(
            "/api/v1/auth/login",
            json={"username": f"nobody{n}", "password": "wrong-password-1"},
            headers=_spoofed(n),
        )
        statuses.append(response.status)
    assert statuses[:-1] == [401] * limits.LOGIN_FAILURES_PER_IP.count
    assert statuses[-1] == 429
    # Another client behind the same proxy is not affected.
    other = await client.post(
        "/api/v1/auth/login",
        json={"username": "nobody", "password": "wrong-password-1"},
        headers={"X-Forwarded-For": "192.0.2.55"},
    )
    assert other.status == 401


async def test_rotating_x_forwarded_for_does_not_escape_the_sms_limit(client: Client) -> None:
    statuses = []
    for n in range(limits.OTP_PER_IP_HOUR.count + 1):
        response = await client.post(
            "/api/v1/auth/otp", json={"mobile": f"1380013{n:04d}"}, headers=_spoofed(n)
        )
        statuses.append(response.status)
    assert statuses[:-1] == [202] * limits.OTP_PER_IP_HOUR.count
    assert statuses[-1] == 429
    assert "Retry-After" in response.headers


@pytest.mark.parametrize(
    ("forwarded", "recorded"),
    [
        (f"6.6.6.6, {CLIENT}", CLIENT),
        (f"6.6.6.6, {CLIENT}, 10.0.0.2", CLIENT),  # two proxies of ours
        ("6.6.6.6, not-an-address", "127.0.0.1"),  # garbage: the last hop we vouch for
        (None, "127.0.0.1"),
    ],
)
async def test_the_spoofed_address_does_not_reach_sessions(
    client: Client, forwarded: str | None, recorded: str
) -> None:
    await create_staff(client, "li", "inspector", "correct-horse-1")
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    response = await client.post(
        "/api/v1/auth/login",
        json={"username": "li", "password": "correct-horse-1"},
        headers=headers,
    )
    assert response.status == 200
    async with client.app[DB]() as session:
        assert await session.scalar(select(AuthSession.ip)) == recorded


async def test_a_peer_that_is_not_a_trusted_proxy_is_the_client(
    aiohttp_client: Any, settings: Settings
) -> None:
    app = create_app(dataclasses.replace(settings, trust_proxy=True, trusted_proxies="10.0.0.1"))
    client = await aiohttp_client(app)
    await create_staff(client, "li", "inspector", "correct-horse-1")
    response = await client.post(
        "/api/v1/auth/login",
        json={"username": "li", "password": "correct-horse-1"},
        headers={"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https"},
    )
    assert response.status == 200
    assert "Strict-Transport-Security" not in response.headers
    async with client.app[DB]() as session:
        assert await session.scalar(select(AuthSession.ip)) == "127.0.0.1"
