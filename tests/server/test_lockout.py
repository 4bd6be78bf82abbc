"""Limits that cannot be turned against the owner: wrong passwords and codes slow their
source; the account's own limit never holds a browser that logged in to it before and a
successful login clears it; walk-in joins are limited per address; the memory limiter
keeps each window's counters for that window and stays cheap with many keys."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.accounts import limits
from server.app import create_app
from server.appkeys import DB, LIMITER
from server.booking.queue_handlers import JOIN_PER_IP
from server.ratelimit import Limit, MemoryRateLimiter
from server.settings import Settings
from tests.booking.support import person
from tests.support import create_staff, latest_code, open_every_day

Client = TestClient[Any, Any]
OWNER = "192.0.2.10"
PASSWORD = "correct-horse-1"


@pytest.fixture
def app(settings: Settings) -> web.Application:
    # Behind our proxy (the test client connects from 127.0.0.1), so each test can speak
    # from several client addresses.
    return create_app(dataclasses.replace(settings, trust_proxy=True))


def _from(ip: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip, **headers}


async def _login(client: Client, ip: str, password: str, **headers: str) -> Any:
    return await client.post(
        "/api/v1/auth/login",
        json={"username": "li", "password": password},
        headers=_from(ip, **headers),
    )


async def test_wrong_passwords_slow_the_source_not_the_owner(client: Client) -> None:
    await create_staff(client, "li", "inspector", PASSWORD)
    attacker = "198.51.100.9"
    for _ in range(limits.LOGIN_FAILURES_PER_IP.count):
        assert (await _login(client, attacker, "wrong-password")).status == 401
    held = await _login(client, attacker, PASSWORD)  # even the right one, from there
    assert held.status == 429 and int(held.headers["Retry-After"]) >= 1
    assert (await _login(client, OWNER, PASSWORD)).status == 200


async def test_the_account_limit_spares_the_owners_browser_and_a_login_clears_it(
    client: Client,
) -> None:
    await create_staff(client, "li", "inspector", PASSWORD)
    first = await _login(client, OWNER, PASSWORD)
    assert first.status == 200
    device = first.cookies["yk_device"].value
    per_ip = limits.LOGIN_FAILURES_PER_IP.count
    for n in range(limits.LOGIN_FAILURES_PER_USER.count):  # many addresses, each under its limit
        assert (await _login(client, f"198.51.{n // per_ip}.{n % per_ip + 1}", "x")).status == 401
    # The account is now held for strangers...
    assert (await _login(client, "203.0.113.99", PASSWORD)).status == 429
    # ...but not for the browser that logged in to it before, and its login clears the hold.
    owner = await _login(client, OWNER, PASSWORD, Cookie=f"yk_device={device}")
    assert owner.status == 200
    assert (await _login(client, "203.0.113.99", "wrong-again")).status == 401
    assert (await _login(client, "203.0.113.98", PASSWORD)).status == 200
    # A forged or another account's device cookie is no pass.
    for n in range(limits.LOGIN_FAILURES_PER_USER.count):
        await _login(client, f"198.52.{n // per_ip}.{n % per_ip + 1}", "x")
    forged = await _login(client, OWNER, PASSWORD, Cookie="yk_device=" + "0" * 40)
    assert forged.status == 429


async def test_wrong_codes_slow_the_source_not_the_owner(client: Client) -> None:
    mobile = "13800138000"
    attacker = "198.51.100.9"
    for _ in range(limits.OTP_VERIFY_FAILURES_PER_IP.count):
        wrong = await client.post(
            "/api/v1/auth/otp/verify",
            json={"mobile": mobile, "code": "000000"},
            headers=_from(attacker),
        )
        assert wrong.status == 401
    held = await client.post(
        "/api/v1/auth/otp/verify",
        json={"mobile": mobile, "code": "000000"},
        headers=_from(attacker),
    )
    assert held.status == 429
    sent = await client.post("/api/v1/auth/otp", json={"mobile": mobile}, headers=_from(OWNER))
    assert sent.status == 202
    code = await latest_code(client, mobile)
    owner = await client.post(
        "/api/v1/auth/otp/verify", json={"mobile": mobile, "code": code}, headers=_from(OWNER)
    )
    assert owner.status == 200, await owner.text()


async def test_walk_in_joins_are_limited_per_address(client: Client) -> None:
    async with client.app[DB].begin() as session:
        matter_id, _ = await open_every_day(
            session, code="walkin", name="咨询", kind="consultation", allows_video_now=True
        )

    def body(n: int) -> dict[str, Any]:
        return {"matter_id": matter_id, "applicant": person(n)}

    statuses = [
        (await client.post("/api/v1/queue", json=body(n), headers=_from("198.51.100.9"))).status
        for n in range(JOIN_PER_IP.count + 1)
    ]
    assert statuses == [201] * JOIN_PER_IP.count + [429]
    other = await client.post("/api/v1/queue", json=body(99), headers=_from(OWNER))
    assert other.status == 201
    ticket = (await other.json())["ticket"]
    assert (await client.get(f"/api/v1/queue/{ticket}", headers=_from(OWNER))).status == 200


async def test_the_memory_limiter_keeps_each_window_and_is_cheap_with_many_keys() -> None:
    limiter = MemoryRateLimiter()
    day = Limit("day", 2, 86_400)
    minute = Limit("minute", 5, 60)
    assert await limiter.hit(day, "13800138000") is None
    for n in range(100_001):  # a busy day: many addresses, each in its own minute window
        await limiter.hit(minute, f"10.{n}")
    started = time.perf_counter()
    for n in range(500):
        await limiter.hit(minute, f"fresh-{n}")
    assert time.perf_counter() - started < 0.5  # was ~60 ms a hit past 100k keys
    # The day counter outlived every clean-up: its second hit is allowed, the third is not.
    assert await limiter.hit(day, "13800138000") is None
    assert await limiter.hit(day, "13800138000") is not None
    await limiter.clear(day, "13800138000")
    assert await limiter.peek(day, "13800138000") is None


async def test_the_redis_limiter_counts_peeks_and_clears(redis_url: str, redis_prefix: str) -> None:
    from redis.asyncio import Redis

    from server.ratelimit import RedisRateLimiter

    redis = Redis.from_url(redis_url)
    try:
        limiter = RedisRateLimiter(redis, redis_prefix)
        failures = Limit("fail", 2, 900)
        assert await limiter.peek(failures, "li") is None
        assert await limiter.hit(failures, "li") is None
        assert await limiter.peek(failures, "li") is None
        assert await limiter.hit(failures, "li") is None
        assert await limiter.peek(failures, "li") is not None  # the next one would be over
        assert await limiter.peek(failures, "someone-else") is None
        await limiter.clear(failures, "li")
        assert await limiter.peek(failures, "li") is None
    finally:
        await redis.aclose()


async def test_sms_codes_are_capped_per_address_per_day(client: Client) -> None:
    sender = "198.51.100.77"
    for _ in range(limits.OTP_PER_IP_DAY.count):  # as if sent over the day's earlier hours
        await client.app[LIMITER].hit(limits.OTP_PER_IP_DAY, sender)
    held = await client.post(
        "/api/v1/auth/otp", json={"mobile": "13900139000"}, headers=_from(sender)
    )
    assert held.status == 429 and int(held.headers["Retry-After"]) >= 1
    other = await client.post(
        "/api/v1/auth/otp", json={"mobile": "13900139001"}, headers=_from(OWNER)
    )
    assert other.status == 202
    for _ in range(limits.OTP_PER_MOBILE_DAY.count):
        await client.app[LIMITER].hit(limits.OTP_PER_MOBILE_DAY, "13700137000")
    capped = await client.post(
        "/api/v1/auth/otp", json={"mobile": "13700137000"}, headers=_from("203.0.113.5")
    )
    assert capped.status == 429


async def test_a_supervisor_unlocks_a_held_account_and_it_is_audited(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    await create_staff(client, "li", "inspector", PASSWORD)
    await create_staff(client, "chief", "supervisor", PASSWORD)
    chief = await client.post(
        "/api/v1/auth/login", json={"username": "chief", "password": PASSWORD}
    )
    boss = {"Authorization": f"Bearer {(await chief.json())['token']}"}
    per_ip = limits.LOGIN_FAILURES_PER_IP.count
    for n in range(limits.LOGIN_FAILURES_PER_USER.count):
        await _login(client, f"198.53.{n // per_ip}.{n % per_ip + 1}", "x")
    assert (await _login(client, "203.0.113.99", PASSWORD)).status == 429
    inspector = await client.post(
        "/api/v1/auth/login", json={"username": "li", "password": PASSWORD}, headers=_from(OWNER)
    )
    assert inspector.status == 429  # the held account cannot log in to unlock itself
    refused = await client.post("/api/v1/admin/unlock", json={"username": "li"})
    assert refused.status == 401
    with caplog.at_level(logging.INFO, logger="yunkan.audit"):
        unlocked = await client.post("/api/v1/admin/unlock", json={"username": "li"}, headers=boss)
    assert unlocked.status == 200, await unlocked.text()
    assert await unlocked.json() == {"account": "li", "was_locked": True}
    [record] = [r for r in caplog.records if r.name == "yunkan.audit"]
    assert record.__dict__["event"] == "account.unlocked"
    assert record.__dict__["account"] == "staff:li" and record.__dict__["was_locked"] is True
    assert (await _login(client, "203.0.113.99", PASSWORD)).status == 200
    again = await client.post("/api/v1/admin/unlock", json={"username": "li"}, headers=boss)
    assert (await again.json())["was_locked"] is False
    both = await client.post(
        "/api/v1/admin/unlock", json={"username": "li", "mobile": "1"}, headers=boss
    )
    assert both.status == 422
    bad = await client.post("/api/v1/admin/unlock", json={"mobile": "12"}, headers=boss)
    assert bad.status == 422 and (await bad.json())["error"]["code"] == "invalid_mobile"
    # An inspector may not unlock anyone.
    li = await _login(client, "203.0.113.99", PASSWORD)
    li_headers = {"Authorization": f"Bearer {(await li.json())['token']}"}
    denied = await client.post(
        "/api/v1/admin/unlock", json={"mobile": "13800138000"}, headers=li_headers
    )
    assert denied.status == 403


async def test_the_unlock_page_button(browser: Client) -> None:
    await create_staff(browser, "chief", "supervisor", PASSWORD)
    page = await browser.get("/staff/unlock", allow_redirects=False)
    assert page.status == 303
    csrf = (await browser.get("/login")).cookies["yk_csrf"].value
    login = await browser.post(
        "/login/staff",
        data={"username": "chief", "password": PASSWORD, "csrf_token": csrf},
        allow_redirects=False,
    )
    assert login.status == 303
    assert "/staff/unlock" in await (await browser.get("/staff")).text()
    page = await browser.get("/staff/unlock")
    assert page.status == 200 and "解除账号锁定" in await page.text()
    for _ in range(limits.OTP_VERIFY_FAILURES_PER_MOBILE.count):
        await browser.app[LIMITER].hit(limits.OTP_VERIFY_FAILURES_PER_MOBILE, "mobile:13800138000")
    done = await browser.post("/staff/unlock", data={"account": "13800138000", "csrf_token": csrf})
    assert done.status == 200
    assert "138****8000 已解除锁定" in await done.text()
    assert (
        await browser.app[LIMITER].peek(limits.OTP_VERIFY_FAILURES_PER_MOBILE, "mobile:13800138000")
        is None
    )
    empty = await browser.post("/staff/unlock", data={"account": "", "csrf_token": csrf})
    assert empty.status == 422
