"""The HTTP edge: CSRF, body limits, unknown routes, error shapes, pages, operations."""

from __future__ import annotations

import dataclasses
import io
import re
from typing import Any

from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.accounts.models import User
from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.settings import Settings
from tests.support import create_staff

Client = TestClient[Any, Any]


async def _csrf(client: Client, path: str = "/login") -> str:
    page = await client.get(path)
    match = re.search(r'name="csrf-token" content="([^"]+)"', await page.text())
    assert match
    return match.group(1)


async def test_form_login_needs_the_csrf_token(browser: Client) -> None:
    await create_staff(browser, "li", "inspector", "correct-horse-1")
    token = await _csrf(browser)
    missing = await browser.post(
        "/login/staff",
        data={"username": "li", "password": "correct-horse-1"},
        allow_redirects=False,
    )
    assert missing.status == 403
    assert "csrf_failed" in await missing.text()
    ok = await browser.post(
        "/login/staff",
        data={"username": "li", "password": "correct-horse-1", "csrf_token": token},
        allow_redirects=False,
    )
    assert ok.status == 303 and ok.headers["Location"] == "/staff"
    staff_page = await browser.get("/staff")
    assert "li" in await staff_page.text()


async def test_cookie_session_json_calls_need_the_csrf_header(browser: Client) -> None:
    await create_staff(browser, "li", "inspector", "correct-horse-1")
    token = await _csrf(browser)
    await browser.post("/api/v1/auth/login", json={"username": "li", "password": "correct-horse-1"})
    # The session cookie is now ambient: without the header a state change is refused.
    refused = await browser.post("/api/v1/auth/logout")
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "csrf_failed"
    assert (await browser.get("/api/v1/auth/me")).status == 200  # still logged in
    accepted = await browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": token})
    assert accepted.status == 204


async def test_oversized_body_is_413_and_changes_nothing(client: Client) -> None:
    big = "x" * (client.app[SETTINGS].client_max_size + 1)
    response = await client.post(
        "/api/v1/auth/login",
        data=io.BytesIO(big.encode()),
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"
    async with client.app[DB]() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_unknown_routes(client: Client) -> None:
    api = await client.get("/api/v1/nothing-here")
    assert api.status == 404
    assert (await api.json())["error"]["code"] == "not_found"
    page = await client.get("/nothing-here")
    assert page.status == 404
    assert "未找到" in await page.text()
    method = await client.delete("/api/v1/auth/me")
    assert method.status == 405
    assert (await method.json())["error"]["code"] == "method_not_allowed"


async def test_non_json_body_is_refused(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/login", data="username=a", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_request"


async def test_home_page_in_both_languages(browser: Client) -> None:
    zh = await browser.get("/")
    text = await zh.text()
    assert "惠民专区" in text and "利企专区" in text and 'lang="zh-CN"' in text
    assert "Content-Security-Policy" in zh.headers
    switch = await browser.get("/lang/en?next=/", allow_redirects=False)
    assert switch.status == 303
    en = await browser.get("/")
    assert "For citizens" in await en.text()


async def test_staff_page_redirects_anonymous_users(client: Client) -> None:
    response = await client.get("/staff", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/login")


async def test_open_redirects_are_refused(client: Client) -> None:
    response = await client.get("/lang/en?next=//evil.example", allow_redirects=False)
    assert response.headers["Location"] == "/"


async def test_health_ready_and_metrics(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"]["database"] == "ok"
    metrics = await (await client.get("/metrics")).text()
    assert "yunkan_http_requests_total" in metrics
    assert 'route="/healthz"' in metrics
    # Through the reverse proxy (it connects from loopback too, and says so): refused.
    proxied = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status == 403
    assert "metrics_forbidden" in await proxied.text()


async def test_metrics_token(aiohttp_client: Any, sqlite_settings: Settings) -> None:
    settings = dataclasses.replace(sqlite_settings, metrics_token="scrape-" + "k" * 24)
    client = await aiohttp_client(create_app(settings), cookie_jar=DummyCookieJar())
    assert (await client.get("/metrics")).status == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer scrape-nope"})
    assert wrong.status == 401
    assert "metrics_token_required" in await wrong.text()
    right = await client.get(
        "/metrics",
        headers={"Authorization": f"Bearer {settings.metrics_token}", "X-Forwarded-For": "1.2.3.4"},
    )
    assert right.status == 200 and "yunkan_http_requests_total" in await right.text()


async def test_csp_connects_to_this_origin_only(client: Client) -> None:
    response = await client.get("/")
    csp = response.headers["Content-Security-Policy"]
    connect = next(p for p in csp.split("; ") if p.startswith("connect-src"))
    host = f"127.0.0.1:{client.port}"
    assert connect == f"connect-src 'self' ws://{host} wss://{host}"
    odd = await client.get("/", headers={"Host": "evil.example/x y"})
    assert "connect-src 'self';" in odd.headers["Content-Security-Policy"]


async def test_errors_carry_a_request_id_and_no_stack(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/login", data="{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert response.headers["X-Request-Id"]
    assert "Traceback" not in await response.text()
