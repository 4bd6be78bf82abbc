"""Join API and join pages through the real app."""

from __future__ import annotations

from typing import Any

from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.accounts.models import User
from server.appkeys import DB
from server.cases.access import set_party
from signaling.handlers import SIGNER
from tests.signaling.conftest import LiveServer
from tests.support import applicant_headers, staff_headers


async def make_party(live: LiveServer, case_id: int, username: str, role: str) -> None:
    async with live.app[DB].begin() as session:
        user = await session.scalar(select(User).where(User.username == username))
        assert user is not None
        await set_party(session, case_id, "staff", user.id, role)


async def test_staff_and_applicant_get_their_own_join_links(live: LiveServer) -> None:
    async with TestClient(live.server, cookie_jar=DummyCookieJar()) as client:
        staff: dict[str, Any] = await staff_headers(client)
        # staff who are not parties of the case get nothing (404, not even a 403)
        response = await client.post(f"/api/v1/cases/{live.case_id}/live/join", headers=staff)
        assert response.status == 404
        await make_party(live, live.case_id, "inspector", "lead")
        response = await client.post(f"/api/v1/cases/{live.case_id}/live/join", headers=staff)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["role"] == "inspector" and body["room"] == live.room
        assert body["url"].endswith("/live/j/" + body["token"])
        grant = live.app[SIGNER].verify(body["token"], room=live.room)
        assert grant.participant.startswith("staff-")

        page = await client.get("/live/j/" + body["token"], headers=staff)
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

        # a supervisor who is no party joins for oversight, as a hidden supervisor
        boss = await staff_headers(client, "boss", "supervisor")
        response = await client.post(f"/api/v1/cases/{live.case_id}/live/join", headers=boss)
        assert response.status == 200, await response.text()
        assert (await response.json())["role"] == "supervisor"


async def test_booking_join_link_leads_to_the_appointment_room(live: LiveServer) -> None:
    from urllib.parse import urlsplit

    from server.booking.models import Appointment
    from tests.booking.support import ENTERPRISE, seed_app

    async with TestClient(live.server, cookie_jar=DummyCookieJar()) as client:
        staff: dict[str, Any] = await staff_headers(client)
        cat = await seed_app(client.app)
        body = {
            "matter_id": cat.small_matter_id,
            "start": cat.iso("11:00"),
            "applicant": ENTERPRISE,
            "site_address": "某县工业园 3 号",
        }
        booked = await client.post("/api/v1/appointments", json=body, headers=staff)
        assert booked.status == 201, await booked.text()
        appt = await booked.json()
        link = urlsplit(appt["join_url"])
        async with live.app[DB]() as session:
            case_id = (await session.get(Appointment, appt["id"])).case_id  # type: ignore[union-attr]
        assert case_id is not None

        page = await client.get(f"{link.path}?{link.query}", allow_redirects=False)
        assert page.status == 302
        token = page.headers["Location"].removeprefix("/live/j/")
        grant = live.app[SIGNER].verify(token, room=f"appt-{appt['id']}")
        assert grant.role == "applicant" and grant.name == ENTERPRISE["name"]
        assert (await client.get(page.headers["Location"])).status == 200

        bad = await client.get(f"{link.path}?token=1.0.9999999999.forged", allow_redirects=False)
        assert bad.status == 403
        other = await client.get(f"/join/{appt['id'] + 1}?{link.query}", allow_redirects=False)
        assert other.status == 403

        mine = await client.post(f"/api/v1/appointments/{appt['id']}/join", headers=staff)
        assert mine.status == 404  # the clerk who booked it is no party of the case
        await make_party(live, case_id, "inspector", "inspector")
        mine = await client.post(f"/api/v1/appointments/{appt['id']}/join", headers=staff)
        assert mine.status == 200
        assert (await mine.json())["room"] == grant.room
        assert (await mine.json())["role"] == "inspector"


async def test_inspector_invites_an_expert_who_joins_without_waiting(live: LiveServer) -> None:
    async with TestClient(live.server, cookie_jar=DummyCookieJar()) as client:
        staff: dict[str, Any] = await staff_headers(client)
        url = f"/api/v1/live/rooms/{live.room}/invite"
        stranger = await client.post(url, json={"role": "expert", "name": "x"}, headers=staff)
        assert stranger.status == 404  # not a party of the case
        await make_party(live, live.case_id, "inspector", "inspector")
        response = await client.post(
            url, json={"role": "expert", "name": "省厅专家"}, headers=staff
        )
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["role"] == "expert"
        bad = await client.post(url, json={"role": "inspector", "name": "x"}, headers=staff)
        assert bad.status == 422
        missing = await client.post(
            "/api/v1/live/rooms/case-999/invite",
            json={"role": "observer", "name": "x"},
            headers=staff,
        )
        assert missing.status == 404
        applicant = await applicant_headers(client)
        # an applicant who is no party of the case cannot even tell the room exists
        forbidden = await client.post(url, json={"role": "expert", "name": "x"}, headers=applicant)
        assert forbidden.status == 404

        from signaling.client import MediaClient
        from signaling.wsclient import SignalingClient
        from tests.signaling.conftest import LOOPBACK

        expert = SignalingClient(
            live.ws_url, body["token"], source=None, media=MediaClient(host_addresses=LOOPBACK)
        )
        live.clients.append(expert)
        await expert.connect()
        await expert.wait_state("admitted")
        assert expert.participant is not None and expert.participant.startswith("guest-")
