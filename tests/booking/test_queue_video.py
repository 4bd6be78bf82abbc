""" "Video now" ends in the video room: the served ticket carries the applicant's join link,
the staff member who called gets the console; both open the live join page."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient

from server.appkeys import DB, SETTINGS
from server.booking import models as m
from server.booking import queue
from server.cases.models import Case
from signaling.links import case_room, signer_for
from tests.booking.support import person, seed_app
from tests.support import create_staff

Client = TestClient[Any, Any]


def _token(url: str) -> str:
    path = urlsplit(url).path
    assert path.startswith("/live/j/"), url
    return path.removeprefix("/live/j/")


async def _next_event(stream: Any) -> dict[str, Any]:
    while True:
        line = await asyncio.wait_for(stream.content.readline(), 5)
        text = line.decode().strip()
        if text.startswith("data: "):
            return dict(json.loads(text[6:]))


async def _login(client: Client, username: str) -> dict[str, str]:
    r = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": "correct-horse-1"}
    )
    assert r.status == 200, await r.text()
    return {"Authorization": f"Bearer {(await r.json())['token']}"}


async def _walk_in(client: Client, matter_id: int, i: int) -> dict[str, Any]:
    r = await client.post("/api/v1/queue", json={"matter_id": matter_id, "applicant": person(i)})
    assert r.status == 201, await r.text()
    return dict(await r.json())


async def test_served_ticket_leads_applicant_and_staff_into_the_case_room(client: Client) -> None:
    staff_id = await create_staff(client, "clerk")
    cat = await seed_app(client.app, staff_ids=(staff_id,))
    headers = await _login(client, "clerk")
    mine = await _walk_in(client, cat.queue_matter_id, 1)
    other = await _walk_in(client, cat.queue_matter_id, 2)
    assert mine["join_url"] is None
    waiting = await (await client.get(f"/api/v1/queue/{mine['ticket']}")).json()
    assert waiting["status"] == "waiting" and waiting["join_url"] is None
    stream = await client.get(f"/api/v1/queue/{mine['ticket']}/events")
    assert (await _next_event(stream))["join_url"] is None

    served = await client.post("/api/v1/queue/next", headers=headers)
    body = await served.json()
    assert body["kind"] == "ticket" and body["id"] == mine["id"]
    case_id = body["case_id"]
    signer = signer_for(client.app[SETTINGS])

    # The live event, the API and the reloaded page all carry the applicant's link.
    event = await _next_event(stream)
    stream.close()
    assert event["status"] == "serving" and event["join_url"]
    shown = await (await client.get(f"/api/v1/queue/{mine['ticket']}")).json()
    assert shown["status"] == "serving" and shown["case_id"] == case_id
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None
    for url in (event["join_url"], shown["join_url"]):
        grant = signer.verify(_token(url), room=case_room(case_id))
        assert grant.role == "applicant"
        assert grant.participant == f"applicant-{case.applicant_id}"
        assert grant.name == person(1)["name"]
    page = await client.get(f"/book/queue/{mine['ticket']}")
    html = await page.text()
    assert page.status == 200 and 'id="join-video"' in html and "/live/j/" in html
    assert "进入视频" in html

    live = await client.get(urlsplit(shown["join_url"]).path)
    assert live.status == 200 and "live/applicant.js" in await live.text()

    # The other walk-in, still waiting, gets no link; a made-up ticket gets nothing at all.
    still = await (await client.get(f"/api/v1/queue/{other['ticket']}")).json()
    assert still["status"] == "waiting" and still["join_url"] is None
    assert "/live/j/" not in await (await client.get(f"/book/queue/{other['ticket']}")).text()
    assert (await client.get("/api/v1/queue/" + mine["ticket"][:-2] + "xx")).status == 404
    assert (await client.get("/book/queue/not-a-ticket")).status == 404
    forged = await client.get(urlsplit(shown["join_url"]).path[:-4] + "AAAA")
    assert forged.status == 403

    # The staff answer opens the inspector console of the same room.
    console = signer.verify(_token(body["console_url"]), room=case_room(case_id))
    assert console.role == "inspector" and console.participant == f"staff-{staff_id}"
    anonymous = await client.get(urlsplit(body["console_url"]).path, allow_redirects=False)
    assert anonymous.status in (303, 403)  # a console link alone gives nothing
    page = await client.get(urlsplit(body["console_url"]).path, headers=headers)
    assert page.status == 200 and "live/console.js" in await page.text()


async def test_join_link_expires_with_the_call(client: Client) -> None:
    staff_id = await create_staff(client, "clerk")
    cat = await seed_app(client.app, staff_ids=(staff_id,))
    headers = await _login(client, "clerk")
    mine = await _walk_in(client, cat.queue_matter_id, 1)
    assert (await client.post("/api/v1/queue/next", headers=headers)).status == 200
    async with client.app[DB]() as session:
        ticket = await queue.get_ticket(session, mine["ticket"])
    settings = client.app[SETTINGS]
    assert ticket.taken_at is not None
    later = ticket.taken_at + queue.WALK_IN_JOIN_TTL - timedelta(minutes=5)
    assert queue.applicant_join_url(settings, ticket, now=later) is not None
    url = queue.applicant_join_url(settings, ticket)  # reloading never extends the link
    assert url is not None
    grant = signer_for(settings).verify(_token(url))
    assert abs(grant.expires - (ticket.taken_at + queue.WALK_IN_JOIN_TTL).timestamp()) < 5
    gone = ticket.taken_at + queue.WALK_IN_JOIN_TTL
    assert queue.applicant_join_url(settings, ticket, now=gone) is None
    async with client.app[DB].begin() as session:
        row = await session.get(m.QueueTicket, ticket.id)
        assert row is not None
        row.status = "done"
    done = await (await client.get(f"/api/v1/queue/{mine['ticket']}")).json()
    assert done["status"] == "done" and done["join_url"] is None


async def test_staff_day_call_next_opens_the_console(client: Client) -> None:
    staff_id = await create_staff(client, "clerk")
    cat = await seed_app(client.app, staff_ids=(staff_id,))
    headers = await _login(client, "clerk")
    empty = await client.post("/staff/day/next", headers=headers, allow_redirects=False)
    assert empty.status == 303 and empty.headers["Location"] == "/staff/day?empty=1"
    day = await client.get("/staff/day?empty=1", headers=headers)
    assert day.status == 200 and "当前无人排队" in await day.text()
    mine = await _walk_in(client, cat.queue_matter_id, 1)
    r = await client.post("/staff/day/next", headers=headers, allow_redirects=False)
    assert r.status == 303
    location = r.headers["Location"]
    assert location.startswith("/live/j/")
    ticket = await (await client.get(f"/api/v1/queue/{mine['ticket']}")).json()
    grant = signer_for(client.app[SETTINGS]).verify(location.removeprefix("/live/j/"))
    assert grant.room == case_room(ticket["case_id"]) and grant.role == "inspector"
    console = await client.get(location, headers=headers)
    assert console.status == 200 and "live/console.js" in await console.text()
