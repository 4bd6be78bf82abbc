"""Join API and join pages through the real app."""

from __future__ import annotations

from typing import Any

from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient

from signaling.handlers import SIGNER
from tests.signaling.conftest import LiveServer
from tests.support import applicant_headers, staff_headers


async def test_staff_and_applicant_get_their_own_join_links(live: LiveServer) -> None:
    async with TestClient(live.server, cookie_jar=DummyCookieJar()) as client:
        staff: dict[str, Any] = await staff_headers(client)
        response = await client.post(f"/api/v1/cases/{live.case_id}/live/join", headers=staff)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["role"] == "inspector" and body["room"] == live.room
        assert body["url"].endswith("/live/j/" + body["token"])
        grant = live.app[SIGNER].verify(body["token"], room=live.room)
        assert grant.participant.startswith("staff-")

        page = await client.get("/live/j/" + body["token"])
        html = await page.text()
        assert page.status == 200 and "live/console.js" in html
        assert "camera=(self)" in page.headers["Permissions-Policy"]

        # an applicant who is not a party of the case gets 404, not a link
        applicant = await applicant_headers(client)
        response = await client.post(f"/api/v1/cases/{live.case_id}/live/join", headers=applicant)
        assert response.status == 404
        response = await client.post("/api/v1/cases/999/live/join", headers=staff)
        assert response.status == 404
        response = await client.post(f"/api/v1/cases/{live.case_id}/live/join")
        assert response.status == 401
        response = await client.post("/api/v1/appointments/5/join", headers=staff)
        assert response.status == 404

        applicant_page = await client.get("/live/j/" + live.token("applicant-9", "applicant"))
        html = await applicant_page.text()
        assert "live/applicant.js" in html and "live.js" in html

        forged = await client.get("/live/j/" + body["token"][:-4] + "AAAA")
        assert forged.status == 403
