"""Log-in flows and their bad inputs, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from server.accounts.models import AuthSession, OtpCode
from server.app import create_app
from server.appkeys import DB
from server.settings import Settings
from tests.support import applicant_headers, create_staff, latest_code, staff_headers

Client = TestClient[Any, Any]


async def test_staff_login_returns_token_and_cookie(client: Client) -> None:
    await create_staff(client, "li", "inspector", "correct-horse-1")
    response = await client.post(
        "/api/v1/auth/login", json={"username": "li", "password": "correct-horse-1"}
    )
    assert response.status == 200
    body = await response.json()
    assert body["principal"]["role"] == "inspector"
    cookie = response.cookies["yk_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert (await me.json())["name"] == "li"


async def test_wrong_password_and_unknown_user_look_the_same(client: Client) -> None:
    await create_staff(client, "li", "inspector", "correct-horse-1")
    wrong = await client.post("/api/v1/auth/login", json={"username": "li", "password": "nope"})
    unknown = await client.post(
        "/api/v1/auth/login", json={"username": "ghost", "password": "nope"}
    )
    for response in (wrong, unknown):
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "invalid_credentials"
    async with client.app[DB]() as session:
        assert await session.scalar(select(func.count()).select_from(AuthSession)) == 0


async def test_login_messages_are_localised(client: Client) -> None:
    zh = await client.post("/api/v1/auth/login", json={"username": "x", "password": "y"})
    en = await client.post(
        "/api/v1/auth/login",
        json={"username": "x", "password": "y"},
        headers={"Accept-Language": "en-US"},
    )
    assert (await zh.json())["error"]["message"] == "用户名或密码错误"
    assert (await en.json())["error"]["message"] == "Wrong username or password"


async def test_applicant_otp_flow_is_single_use(client: Client) -> None:
    response = await client.post("/api/v1/auth/otp", json={"mobile": "+86 138-0013-8000"})
    assert response.status == 202
    assert (await response.json())["mobile"] == "138****8000"
    code = await latest_code(client, "13800138000")
    first = await client.post(
        "/api/v1/auth/otp/verify", json={"mobile": "13800138000", "code": code}
    )
    assert first.status == 200
    assert (await first.json())["principal"]["kind"] == "applicant"
    again = await client.post(
        "/api/v1/auth/otp/verify", json={"mobile": "13800138000", "code": code}
    )
    assert again.status == 401
    assert (await again.json())["error"]["code"] == "otp_used"


async def test_expired_code_is_refused(client: Client) -> None:
    await client.post("/api/v1/auth/otp", json={"mobile": "13900139000"})
    code = await latest_code(client, "13900139000")
    async with client.app[DB].begin() as session:
        await session.execute(
            update(OtpCode).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    response = await client.post(
        "/api/v1/auth/otp/verify", json={"mobile": "13900139000", "code": code}
    )
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "otp_expired"


async def test_wrong_codes_are_counted_then_the_code_is_dead(client: Client) -> None:
    await client.post("/api/v1/auth/otp", json={"mobile": "13700137000"})
    code = await latest_code(client, "13700137000")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        response = await client.post(
            "/api/v1/auth/otp/verify", json={"mobile": "13700137000", "code": wrong}
        )
        assert (await response.json())["error"]["code"] == "otp_invalid"
    response = await client.post(
        "/api/v1/auth/otp/verify", json={"mobile": "13700137000", "code": code}
    )
    assert (await response.json())["error"]["code"] == "otp_too_many_attempts"


async def test_malformed_mobile_is_a_field_error(client: Client) -> None:
    for mobile in ("123", "23800138000", "1380013800a", ""):
        response = await client.post("/api/v1/auth/otp", json={"mobile": mobile})
        assert response.status == 422, mobile
        body = await response.json()
        assert body["error"]["code"] == "invalid_mobile"
        assert "mobile" in body["error"]["fields"]
    async with client.app[DB]() as session:
        assert await session.scalar(select(func.count()).select_from(OtpCode)) == 0


async def test_code_requests_are_rate_limited_per_number(client: Client) -> None:
    first = await client.post("/api/v1/auth/otp", json={"mobile": "13600136000"})
    second = await client.post("/api/v1/auth/otp", json={"mobile": "13600136000"})
    assert first.status == 202
    assert second.status == 429
    assert int(second.headers["Retry-After"]) >= 1
    assert (await second.json())["error"]["code"] == "rate_limited"


async def test_wrong_types_and_unknown_fields(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/login", json={"username": 5, "password": "x", "extra": 1}
    )
    assert response.status == 422
    fields = (await response.json())["error"]["fields"]
    assert set(fields) == {"username", "extra"}


async def test_logout_revokes_the_token(client: Client) -> None:
    headers = await staff_headers(client)
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status == 204
    assert (await client.get("/api/v1/auth/me", headers=headers)).status == 401


async def test_forged_token_is_unauthenticated(client: Client) -> None:
    response = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer forged-token"})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthenticated"


async def test_outbox_api_is_for_admins_in_demo_mode_only(
    aiohttp_client: Any, sqlite_settings: Settings
) -> None:
    plain: Client = await aiohttp_client(create_app(sqlite_settings), cookie_jar=DummyCookieJar())
    boss = await staff_headers(plain, "root", "admin")
    await plain.post("/api/v1/auth/otp", json={"mobile": "13600136000"})
    refused = await plain.get("/api/v1/outbox", headers=boss)
    assert refused.status == 404  # real log-in codes are never served by the API
    assert "验证码" not in await refused.text()

    demo = dataclasses.replace(sqlite_settings, demo=True)
    client: Client = await aiohttp_client(create_app(demo), cookie_jar=DummyCookieJar())
    applicant = await applicant_headers(client, "13500135000")
    inspector = await staff_headers(client, "insp", "inspector")
    admin = await staff_headers(client, "boss", "admin")
    assert (await client.get("/api/v1/outbox", headers=applicant)).status == 403
    assert (await client.get("/api/v1/outbox", headers=inspector)).status == 403
    response = await client.get("/api/v1/outbox?mobile=13500135000", headers=admin)
    assert response.status == 200
    messages = (await response.json())["messages"]
    assert len(messages) == 1 and messages[0]["kind"] == "otp"
