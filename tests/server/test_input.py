"""Bad input gets a 4xx with a stable code and changes nothing: ids, dates, integers, JSON
depth, text content (lone surrogates, NUL), multipart without a boundary, duplicates."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.appkeys import DB
from server.booking import models as m
from server.cases.models import Case
from tests.booking.support import person
from tests.support import applicant_headers, open_every_day, staff_headers

Client = TestClient[Any, Any]
APPLICANT = {"name": "张三", "mobile": "13800138000"}


async def _catalogue(client: Client) -> tuple[int, int]:
    async with client.app[DB].begin() as session:
        matter_id, _ = await open_every_day(
            session, code="seed", name="种子生产许可", kind="inspection", allows_video_now=True
        )
        dept = await session.scalar(select(m.Matter.department_id).where(m.Matter.id == matter_id))
    assert dept is not None
    return matter_id, dept


async def _code(response: Any) -> str:
    body = await response.json()
    return str(body["error"]["code"])


async def test_ids_are_ascii_digits_in_the_column_range(client: Client) -> None:
    await _catalogue(client)
    admin = await staff_headers(client, "root", "admin")
    for path in (
        "/api/v1/matters/²",
        "/api/v1/matters/١",
        "/api/v1/cases/١",
        "/api/v1/cases/²",
        "/api/v1/matters/2147483648",
        "/api/v1/cases/99999999999",
        "/api/v1/letters/99999999999",
    ):
        response = await client.get(path, headers=admin)
        assert response.status == 404, (path, await response.text())
        assert await _code(response) == "not_found"
    for page in ("/join/²", "/join/99999999999", "/book/matter/١", "/book/matter/99999999999"):
        response = await client.get(page, allow_redirects=False)
        assert response.status == 404, (page, response.status)


async def test_integers_in_bodies_fit_the_column(client: Client) -> None:
    matter_id, _ = await _catalogue(client)
    admin = await staff_headers(client, "root", "admin")
    staff = await client.get("/api/v1/auth/me", headers=admin)
    user_id = (await staff.json())["id"]
    for value in (2**63, 2**31, -(2**63) - 1):
        response = await client.put(
            f"/api/v1/admin/staff/{user_id}/qualifications",
            json={"matter_ids": [matter_id, value]},
            headers=admin,
        )
        assert response.status == 422, (value, await response.text())
        body = await response.json()
        assert body["error"]["code"] == "validation_failed"
        assert "matter_ids.1" in body["error"]["fields"]
    for constant in ("NaN", "Infinity", "-Infinity"):
        response = await client.put(
            "/api/v1/cases/1/site",
            data=f'{{"lat": {constant}}}',
            headers={**admin, "Content-Type": "application/json"},
        )
        assert response.status == 400, constant
        assert await _code(response) == "malformed_json"


async def test_dates_are_real_dates(client: Client) -> None:
    matter_id, _ = await _catalogue(client)
    admin = await staff_headers(client, "root", "admin")
    for day in ("2026-02-30", "0000-01-01", "9999-12-31", "2026-1-1", "20260101", "２０２６-01-01"):
        slots = await client.get(f"/api/v1/matters/{matter_id}/slots", params={"date": day})
        assert slots.status == 422, (day, await slots.text())
        assert await _code(slots) == "validation_failed"
        exc = await client.post(
            "/api/v1/admin/exceptions", json={"day": day, "closed": True}, headers=admin
        )
        assert exc.status == 422, (day, await exc.text())
        holiday = await client.put(
            f"/api/v1/admin/holidays/{day}", json={"working": True}, headers=admin
        )
        assert holiday.status in (404, 422), (day, await holiday.text())


async def test_json_nesting_depth_is_bounded(client: Client) -> None:
    await _catalogue(client)
    for depth in (100, 5000, 100_000):
        raw = "[" * depth + "]" * depth
        response = await client.post(
            "/api/v1/queue", data=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status == 400, (depth, await response.text())
        assert await _code(response) == "json_too_deep"
        nested = '{"matter_id": 1, "applicant": ' + '{"a":' * depth + "1" + "}" * depth + "}"
        response = await client.post(
            "/api/v1/queue", data=nested, headers={"Content-Type": "application/json"}
        )
        assert response.status == 400, (depth, await response.text())


async def test_lone_surrogates_and_nul_are_refused(client: Client) -> None:
    matter_id, _ = await _catalogue(client)
    for name in ("张\\u0000三", "\\ud800", "ab\\udfffcd"):
        raw = (
            f'{{"matter_id": {matter_id}, "applicant": {{"name": "{name}",'
            ' "mobile": "13800138000"}}'
        )
        response = await client.post(
            "/api/v1/queue", data=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status == 422, (name, await response.text())
        body = await response.json()
        assert body["error"]["code"] == "invalid_text"
        assert "applicant.name" in body["error"]["fields"]
        assert body["error"]["message"] != "Some text contains characters that are not allowed"
    # In a key, a query parameter, a form field.
    key = await client.post(
        "/api/v1/queue",
        data='{"matter_id": 1, "\\u0000": 1}',
        headers={"Content-Type": "application/json"},
    )
    assert key.status == 422 and await _code(key) == "invalid_text"
    for query in ({"zone": "citizen\x00"}, {"date\x00": "1"}):
        listed = await client.get("/api/v1/matters", params=query)
        assert listed.status == 422, (query, await listed.text())
        assert await _code(listed) == "invalid_text"
    async with client.app[DB]() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 0


async def test_multipart_without_a_boundary_is_400(client: Client) -> None:
    for path in ("/login/staff", "/api/v1/verify", "/book/matter/1/details"):
        response = await client.post(
            path,
            data=b"--x\r\n",
            headers={"Content-Type": "multipart/form-data", "Cookie": "yk_csrf=abc"},
        )
        assert response.status == 400, (path, await response.text())
        assert "malformed_form" in await response.text()
    # A boundary, but a part whose headers do not parse (aiohttp raises InvalidHeader).
    body = b'--b1\r\nContent-Disposition: form-data; name="\x12"\r\n\r\nx\r\n--b1--\r\n'
    for path in ("/api/v1/verify", "/login/staff"):
        response = await client.post(
            path,
            data=body,
            headers={"Content-Type": "multipart/form-data; boundary=b1", "Cookie": "yk_csrf=a"},
        )
        assert response.status == 400, (path, await response.text())
        assert "malformed_form" in await response.text()


async def test_a_duplicate_matter_code_is_409(client: Client) -> None:
    _, dept = await _catalogue(client)
    admin = await staff_headers(client, "root", "admin")
    body = {
        "code": "seed",
        "department_id": dept,
        "name": "重复",
        "zone": "citizen",
        "kind": "inspection",
    }
    response = await client.post("/api/v1/admin/matters", json=body, headers=admin)
    assert response.status == 409, await response.text()
    assert await _code(response) == "code_taken"
    other = await client.post(
        "/api/v1/admin/matters", json={**body, "code": "other"}, headers=admin
    )
    assert other.status == 201
    patched = await client.patch(
        f"/api/v1/admin/matters/{(await other.json())['id']}", json={"code": "seed"}, headers=admin
    )
    assert patched.status == 409, await patched.text()
    assert await _code(patched) == "code_taken"


async def test_405_carries_allow(client: Client) -> None:
    response = await client.delete("/api/v1/auth/me")
    assert response.status == 405
    assert await _code(response) == "method_not_allowed"
    assert set(response.headers["Allow"].split(",")) >= {"GET"}


async def test_slot_rule_errors_say_validation_failed(client: Client) -> None:
    matter_id, _ = await _catalogue(client)
    applicant = await applicant_headers(client, person(1)["mobile"])
    response = await client.post(
        "/api/v1/appointments",
        headers=applicant,
        json={
            "matter_id": matter_id,
            "start": "2020-01-01T09:00:00+08:00",  # in the past: a slot rule
            "applicant": person(1),
            "site_address": "某某路 1 号",
        },
    )
    assert response.status == 422, await response.text()
    body = await response.json()
    assert body["error"]["code"] == "validation_failed"
    assert "start" in body["error"]["fields"]
