"""The inspection console's server parts: the workbench on the live page and the invite
dialog's link, QR code and SMS, through the real app (docs/evidence.md, "The console")."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.accounts.models import SmsMessage
from server.appkeys import DB
from tests.signaling.conftest import LiveServer
from tests.signaling.test_live_pages import make_party
from tests.support import staff_headers


async def _outbox(live: LiveServer) -> list[SmsMessage]:
    async with live.app[DB]() as session:
        return list(await session.scalars(select(SmsMessage).where(SmsMessage.kind == "invite")))


async def test_invite_texts_the_link_and_shows_it_as_a_qr_code(live: LiveServer) -> None:
    async with TestClient(live.server, cookie_jar=DummyCookieJar()) as client:
        staff: dict[str, Any] = await staff_headers(client)
        await make_party(live, live.case_id, "inspector", "inspector")
        url = f"/api/v1/live/rooms/{live.room}/invite"

        bad = await client.post(
            url, json={"role": "expert", "name": "省厅专家", "mobile": "12345"}, headers=staff
        )
        assert bad.status == 422
        error = (await bad.json())["error"]
        assert error["code"] == "validation_failed" and "mobile" in error["fields"]
        assert await _outbox(live) == []  # refused: nothing sent, nothing recorded

        response = await client.post(
            url,
            json={"role": "expert", "name": "省厅专家", "mobile": "+86 139 0013 9000"},
            headers=staff,
        )
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["sms_to"] == "139****9000"
        assert body["qr_svg"].lstrip().startswith("<?xml") and "<svg" in body["qr_svg"]
        (sms,) = await _outbox(live)
        assert sms.mobile == "13900139000" and body["url"] in sms.body

        # Without a number: a link and a QR code, no SMS.
        quiet = await client.post(url, json={"role": "observer", "name": "旁听"}, headers=staff)
        assert quiet.status == 200 and (await quiet.json())["sms_to"] is None
        async with live.app[DB]() as session:
            count = await session.scalar(select(func.count()).select_from(SmsMessage))
        assert count == 1


async def test_console_page_carries_the_case_workbench_for_its_inspectors(
    live: LiveServer,
) -> None:
    async with TestClient(live.server, cookie_jar=DummyCookieJar()) as client:
        staff: dict[str, Any] = await staff_headers(client)
        await make_party(live, live.case_id, "inspector", "lead")
        join = await client.post(f"/api/v1/cases/{live.case_id}/live/join", headers=staff)
        token = (await join.json())["token"]
        html = await (await client.get("/live/j/" + token, headers=staff)).text()
        found = re.search(r"data-workbench='([^']*)'", html)
        assert found is not None, "the inspector's console has no workbench"
        workbench = json.loads(unescape(found.group(1)))
        assert workbench["case_id"] == live.case_id
        assert [i["role"] for i in workbench["inspectors"]] == ["lead"]
        assert "evidence/console.js" in html and 'id="annotate-canvas"' in html

        # An expert's console shows the call only: no workbench, no evidence script.
        expert = await client.get("/live/j/" + live.token("guest-1", "expert"))
        text = await expert.text()
        assert expert.status == 200 and "data-workbench" not in text
        assert "evidence/console.js" not in text
