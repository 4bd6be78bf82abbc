"""The QR code's status page (no upload, no personal data) and uploads judged for exactly
the version uploaded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar
from sqlalchemy import select

from server.app import create_app
from server.appkeys import BLOBS, DB
from server.letters.models import LetterEvent
from server.settings import Settings
from tests.browser import chromium
from tests.letters.flow import Client, make_world
from tests.letters.test_api import FIELDS, issue, sign, verify_upload
from tests.letters.test_browser import ARTIFACTS


async def page(client: Client, query: str, status: int = 200) -> str:
    response = await client.get(f"/verify?{query}")
    text = await response.text()
    assert response.status == status, text
    return text


async def test_status_page_shows_a_superseded_version(client: Client) -> None:
    world = await make_world(client)
    first = await issue(client, world, {"kind": "commitment", "fields": FIELDS})
    assert (await sign(client, first["id"], world.applicant.headers)).status == 200
    second = await issue(
        client, world, {"kind": "commitment", "fields": FIELDS, "supersedes": first["id"]}
    )

    old = await page(client, f"letter={first['id']}")
    assert 'data-state="superseded"' in old and "已被取代" in old
    assert f'href="/verify?letter={second["id"]}"' in old
    assert "第 1 版（共 2 版）" in old
    # masked: no full name, no mobile, no body text on a public page
    assert "张*" in old and "张伟" not in old and "13800138000" not in old
    assert "丰禾种业有限公司" not in old

    new = await page(client, f"letter={second['id']}")
    assert 'data-state="issued"' in new and "尚未生效" in new and "第 2 版（共 2 版）" in new
    assert second["pdf_sha256"] in new

    # ?version= names another version of the same document
    again = await page(client, f"letter={second['id']}&version=1")
    assert 'data-state="superseded"' in again
    assert "没有该编号的文件记录" in await page(client, "letter=999999")
    assert "没有该编号的文件记录" in await page(client, f"letter={second['id']}&version=7")


async def test_upload_is_judged_for_the_version_uploaded(client: Client) -> None:
    world = await make_world(client)
    letter = await issue(client, world, {"kind": "commitment", "fields": FIELDS})
    assert (await sign(client, letter["id"], world.applicant.headers)).status == 200
    async with client.app[DB]() as session:
        issued_key = await session.scalar(
            select(LetterEvent.pdf_key).where(
                LetterEvent.letter_id == letter["id"], LetterEvent.action == "issued"
            )
        )
    assert issued_key is not None
    unsigned = await client.app[BLOBS].read(issued_key)

    body = await (await verify_upload(client, unsigned)).json()
    assert body["valid"] is True  # authentic ...
    record = body["record"]
    # ... but the earlier, unsigned version: not "signed by everyone"
    assert record["status"] == "issued" and record["letter_status"] == "signed"
    assert record["latest"] is False and record["signers"] == []

    response = await client.get(
        f"/api/v1/letters/{letter['id']}/pdf", headers=world.applicant.headers
    )
    signed = await response.read()
    record = (await (await verify_upload(client, signed)).json())["record"]
    assert record["status"] == "signed" and record["latest"] is True
    assert [s["name"] for s in record["signers"]] == ["张伟"]

    # once corrected, the signed PDF is authentic but no longer the current document
    await issue(client, world, {"kind": "commitment", "fields": FIELDS, "supersedes": letter["id"]})
    record = (await (await verify_upload(client, signed)).json())["record"]
    assert record["status"] == "signed" and record["superseded"] is True
    assert record["latest"] is False


@pytest.mark.browser
async def test_status_page_in_chromium(
    aiohttp_client: Any, sqlite_settings: Settings, tmp_path: Path
) -> None:
    """Phone and desk: the status of a superseded version is legible, nothing overflows."""
    client = await aiohttp_client(create_app(sqlite_settings), cookie_jar=DummyCookieJar())
    world = await make_world(client)
    first = await issue(client, world, {"kind": "commitment", "fields": FIELDS})
    assert (await sign(client, first["id"], world.applicant.headers)).status == 200
    await issue(client, world, {"kind": "commitment", "fields": FIELDS, "supersedes": first["id"]})
    base = str(client.make_url("/")).rstrip("/")
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    async with chromium() as browser:
        for width, height in ((390, 844), (1366, 768)):
            context = await browser.new_context(
                viewport={"width": width, "height": height}, locale="zh-CN"
            )
            view = await context.new_page()
            await view.goto(f"{base}/verify?letter={first['id']}")
            verdict = view.locator("#status-verdict")
            assert await verdict.get_attribute("data-state") == "superseded"
            assert "已被取代" in await verdict.inner_text()
            assert "张*" in await view.inner_text("#s-signers")
            section = await view.inner_text("#document-status")
            assert "Version" not in section and "State" not in section  # all translated
            overflow = await view.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"page wider than the {width}px viewport by {overflow}px"
            shot = ARTIFACTS / f"verify-status-{width}.png"
            await view.screenshot(path=str(shot), full_page=True)
            await context.close()
