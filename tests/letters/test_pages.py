"""The letters pages answer, localised, and keep their doors shut."""

from __future__ import annotations

from typing import Any

from tests.letters.flow import Client, make_world
from tests.support import staff_headers


async def test_verify_page_is_public(sqlite_client: Client) -> None:
    response = await sqlite_client.get("/verify?letter=3")
    text = await response.text()
    assert response.status == 200
    assert "文件核验" in text and "letters-verify.js" in text


async def test_sign_page_needs_a_login(sqlite_client: Client) -> None:
    response = await sqlite_client.get("/letters/1", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=/letters/1"


async def test_template_editor_is_for_admins(sqlite_client: Client) -> None:
    admin = await staff_headers(sqlite_client, "admin1", role="admin")
    response = await sqlite_client.get("/staff/letter-templates", headers=admin)
    assert response.status == 200
    assert "tpl-source" in await response.text()
    inspector = await staff_headers(sqlite_client, "inspector9")
    response = await sqlite_client.get("/staff/letter-templates", headers=inspector)
    assert response.status == 403


async def test_verify_is_rate_limited_per_address(sqlite_client: Client) -> None:
    statuses: list[Any] = []
    for _ in range(61):
        response = await sqlite_client.post(
            "/api/v1/verify", data=b"not a pdf", headers={"Content-Type": "application/pdf"}
        )
        statuses.append(response.status)
    assert statuses[:60] == [422] * 60
    assert statuses[60] == 429


async def test_sign_page_full_and_embedded(sqlite_client: Client) -> None:
    world = await make_world(sqlite_client)
    response = await sqlite_client.post(
        f"/api/v1/cases/{world.case_id}/letters",
        json={"kind": "commitment"},
        headers=world.inspector.headers,
    )
    letter_id = (await response.json())["id"]
    full = await sqlite_client.get(f"/letters/{letter_id}", headers=world.applicant.headers)
    text = await full.text()
    assert full.status == 200 and 'class="topbar"' in text and 'id="pad"' in text
    embedded = await sqlite_client.get(
        f"/letters/{letter_id}?embed=1", headers=world.applicant.headers
    )
    text = await embedded.text()
    assert embedded.status == 200 and 'class="topbar"' not in text and 'id="pad"' in text
    # The inspector sees the letter but gets no signature pad: it is not their turn.
    staff = await sqlite_client.get(f"/letters/{letter_id}", headers=world.inspector.headers)
    assert staff.status == 200 and 'id="pad"' not in await staff.text()
    other = await sqlite_client.get(f"/letters/{letter_id}", headers=world.stranger.headers)
    assert other.status == 404
