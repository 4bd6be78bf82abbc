"""The signing page in headless Chromium: read to the end, consent, draw with the mouse,
submit; then the sealed PDF rendered by pdftoppm must show ink in the signature box."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar
from PIL import Image
from sqlalchemy import select

from server.app import create_app
from server.appkeys import BLOBS, DB
from server.letters.demo import seed_templates
from server.letters.models import LetterEvent
from server.settings import Settings
from tests.browser import chromium
from tests.letters.flow import make_world
from tests.support import staff_headers

ARTIFACTS = Path(os.environ.get("YUNKAN_TEST_ARTIFACTS", "/tmp/yunkan-test-artifacts"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed"),
]


def _signature_box(pdf: Path, dpi: int) -> tuple[int, int, int, int]:
    """Pixel box of the applicant's signature image on page 1, from the label's position
    (``server.letters.pdf`` draws the image right under "申请人（签名）：", 60 x 24 mm)."""
    html = subprocess.run(
        ["pdftotext", "-bbox", "-f", "1", "-l", "1", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    match = re.search(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">'
        r"申请人（签名）",
        html,
    )
    assert match, "signature label not found on page 1"
    x_pt, y_max_pt = float(match.group(1)), float(match.group(3))
    scale = dpi / 72
    mm = 72 / 25.4 * scale
    left = int(x_pt * scale + 3 * mm)
    top = int(y_max_pt * scale + 2 * mm)
    return left, top, int(left + 56 * mm), int(top + 20 * mm)


def _dark_pixels(png: Path, box: tuple[int, int, int, int]) -> int:
    with Image.open(png) as image:
        region = image.convert("L").crop(box)
        return sum(region.point(lambda v: 255 if v < 100 else 0).histogram()[255:])


async def test_sign_with_the_mouse_in_chromium(
    aiohttp_client: Any, sqlite_settings: Settings, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(sqlite_settings), cookie_jar=DummyCookieJar())
    world = await make_world(client)
    response = await client.post(
        f"/api/v1/cases/{world.case_id}/letters",
        json={"kind": "commitment", "fields": {"enterprise_name": "丰禾种业有限公司"}},
        headers=world.inspector.headers,
    )
    letter = await response.json()
    token = world.applicant.headers["Authorization"].removeprefix("Bearer ")
    base = str(client.make_url("/")).rstrip("/")
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)

    async with chromium() as browser:
        context = await browser.new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=2, locale="zh-CN"
        )
        await context.add_cookies([{"name": "yk_session", "value": token, "url": base + "/"}])
        page = await context.new_page()
        await page.goto(f"{base}/letters/{letter['id']}")
        consent = page.locator("#consent")
        assert await consent.is_disabled()  # not read to the end yet
        await page.locator("#letter-body").evaluate("el => el.scrollTo(0, el.scrollHeight)")
        # Locator waits, not wait_for_function: the page's CSP forbids eval.
        await page.locator("#consent:not([disabled])").wait_for()
        await consent.check()
        pad = page.locator("#pad")
        await pad.wait_for(state="visible")
        await page.wait_for_timeout(400)  # the smooth scroll to the pad
        box = await pad.bounding_box()
        assert box is not None
        submit = page.locator("#pad-submit")
        assert await submit.is_disabled()
        # A scribble that looks like a short name: three strokes.
        x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
        for stroke in (
            [(0.10, 0.70), (0.18, 0.30), (0.26, 0.70), (0.34, 0.35)],
            [(0.42, 0.40), (0.55, 0.40), (0.48, 0.75), (0.60, 0.70)],
            [(0.66, 0.30), (0.70, 0.80), (0.80, 0.35), (0.90, 0.65)],
        ):
            await page.mouse.move(x0 + stroke[0][0] * w, y0 + stroke[0][1] * h)
            await page.mouse.down()
            for fx, fy in stroke[1:]:
                await page.mouse.move(x0 + fx * w, y0 + fy * h, steps=12)
            await page.mouse.up()
        assert await submit.is_enabled()
        await page.screenshot(path=str(ARTIFACTS / "sign-page-drawn.png"), full_page=True)
        await submit.click()
        await page.wait_for_selector("#signed-banner", timeout=20_000)
        await page.screenshot(path=str(ARTIFACTS / "sign-page-signed.png"), full_page=True)

        # The public verification page, with the PDF the applicant just signed.
        pdf_response = await context.request.get(f"{base}/api/v1/letters/{letter['id']}/pdf")
        assert pdf_response.ok
        signed_pdf = tmp_path / "from-browser.pdf"
        signed_pdf.write_bytes(await pdf_response.body())
        public = await browser.new_context(locale="zh-CN")
        verify_page = await public.new_page()
        await verify_page.goto(f"{base}/verify?letter={letter['id']}")
        await verify_page.set_input_files("#verify-file", str(signed_pdf))
        await verify_page.click("#verify-form button[type=submit]")
        await verify_page.wait_for_selector("#verdict.ok", timeout=20_000)
        assert "有效" in await verify_page.inner_text("#verdict")
        assert "张伟" in await verify_page.inner_text("#v-signers")
        assert "已全部签署" in await verify_page.inner_text("#v-record")
        await verify_page.screenshot(path=str(ARTIFACTS / "verify-page.png"), full_page=True)

    response = await client.get(
        f"/api/v1/letters/{letter['id']}/pdf", headers=world.applicant.headers
    )
    assert response.status == 200
    signed = tmp_path / "signed.pdf"
    signed.write_bytes(await response.read())
    async with client.app[DB]() as session:
        issued_key = await session.scalar(
            select(LetterEvent.pdf_key).where(
                LetterEvent.letter_id == letter["id"], LetterEvent.action == "issued"
            )
        )
    assert issued_key is not None
    issued = tmp_path / "issued.pdf"
    issued.write_bytes(await client.app[BLOBS].read(issued_key))

    signed_ink, area = await _ink_in_signature_box(signed, tmp_path / "signed")
    issued_ink, _ = await _ink_in_signature_box(issued, tmp_path / "issued")
    shutil.copy(tmp_path / "signed-1.png", ARTIFACTS / "signed-letter-page1.png")
    with Image.open(tmp_path / "signed-1.png") as image:
        image.crop(area).save(ARTIFACTS / "signed-letter-signature-box.png")
    assert signed_ink > 150, f"only {signed_ink} dark pixels in the signature box {area}"
    assert issued_ink < 20, "the unsigned letter already has ink where the signature goes"


async def _ink_in_signature_box(pdf: Path, prefix: Path) -> tuple[int, tuple[int, int, int, int]]:
    dpi = 100
    await asyncio.to_thread(
        subprocess.run,
        ["pdftoppm", "-r", str(dpi), "-f", "1", "-l", "1", "-png", str(pdf), str(prefix)],
        check=True,
        timeout=60,
    )
    box = _signature_box(pdf, dpi)
    return _dark_pixels(Path(f"{prefix}-1.png"), box), box


async def test_template_editor_marks_the_error_line(
    aiohttp_client: Any, sqlite_settings: Settings
) -> None:
    client = await aiohttp_client(create_app(sqlite_settings), cookie_jar=DummyCookieJar())
    async with client.app[DB].begin() as session:
        await seed_templates(session, {7: "农作物种子生产经营许可证变更"})
    admin = await staff_headers(client, "admin1", role="admin")
    token = admin["Authorization"].removeprefix("Bearer ")
    base = str(client.make_url("/")).rstrip("/")
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    async with chromium() as browser:
        context = await browser.new_context(locale="zh-CN")
        await context.add_cookies([{"name": "yk_session", "value": token, "url": base + "/"}])
        page = await context.new_page()
        await page.goto(f"{base}/staff/letter-templates")
        await page.select_option("#tpl-matter", "7")
        await page.locator("#tpl-output", has_text="种子检验室").wait_for()
        source = page.locator("#tpl-source")
        await source.fill("第一行\n第二行 {{ applicant_name }}\n第三行 {{ applicant_nmae }}")
        await page.wait_for_selector("#tpl-problem:not([hidden])")
        problem = await page.inner_text("#tpl-problem")
        assert "第 3 行" in problem and "applicant_nmae" in problem
        assert "▶3" in await page.inner_text("#tpl-gutter")
        await page.screenshot(path=str(ARTIFACTS / "template-editor.png"), full_page=True)
        # Saving the broken template is refused; the stored one is unchanged.
        await page.click("#tpl-save")
        await page.wait_for_timeout(300)
        assert await page.locator("#tpl-saved").is_hidden()
    response = await client.get("/api/v1/letter-templates", headers=admin)
    stored = {t["matter_id"]: t for t in (await response.json())["templates"]}
    assert "种子检验室" in stored[7]["source"]
