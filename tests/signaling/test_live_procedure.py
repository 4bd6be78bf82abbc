"""The live session inside the case procedure: who may join as what, hidden roles, console
logins, closed rooms after a restart, the seat's secret, and booking's states."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import DummyCookieJar
from sqlalchemy import select, update

from server.accounts.models import User
from server.appkeys import DB
from server.booking.models import Appointment, Matter
from server.cases.access import set_party
from server.cases.models import Case, CaseEvent
from server.settings import Settings
from signaling.handlers import HUB, SIGNER, LiveOptions
from tests.booking.support import ENTERPRISE, PERSON, seed_app
from tests.signaling.conftest import LOOPBACK, LiveServer, running_live
from tests.support import create_staff, staff_headers


async def _events(live: LiveServer, case_id: int | None = None) -> list[CaseEvent]:
    async with live.app[DB]() as session:
        rows = await session.scalars(
            select(CaseEvent)
            .where(CaseEvent.case_id == (case_id or live.case_id))
            .order_by(CaseEvent.seq)
        )
        return list(rows)


async def _eventually(check: Callable[[], Any], what: str, within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {what} within {within}s")


async def _status(live: LiveServer, appointment_id: int) -> tuple[str, str]:
    async with live.app[DB]() as session:
        appt = await session.get(Appointment, appointment_id)
        assert appt is not None and appt.case_id is not None
        case = await session.get(Case, appt.case_id)
        assert case is not None
        return appt.status, case.status


async def _ws_join(live: LiveServer, token: str, **kw: Any) -> tuple[list[dict[str, Any]], int]:
    """Join on a raw socket: every message until the server closes, and the close code."""
    messages: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(**kw) as http, http.ws_connect(live.ws_url) as ws:
        await ws.send_json({"type": "join", "token": token})
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                messages.append(msg.json())
                if messages[-1]["type"] == "welcome":
                    await ws.close()
        return messages, ws.close_code or 0


class Http:
    """Requests to the live server that, unlike ``TestClient``, leave it running."""

    def __init__(self, live: LiveServer) -> None:
        self.app = live.app
        self.session = aiohttp.ClientSession(
            base_url=str(live.server.make_url("/")), cookie_jar=DummyCookieJar()
        )

    def get(self, path: str, **kw: Any) -> Any:
        return self.session.get(path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.session.post(path, **kw)

    async def __aenter__(self) -> Any:
        return self  # passed where tests.support expects a TestClient (same calls)

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()


class Booked:
    """An appointment booked through the API, its case, and an inspector who is its lead."""

    def __init__(self, appointment_id: int, case_id: int, applicant_token: str, staff: int):
        self.id, self.case_id, self.applicant_token, self.staff = (
            appointment_id,
            case_id,
            applicant_token,
            staff,
        )

    @property
    def room(self) -> str:
        return f"appt-{self.id}"


async def _book(live: LiveServer, *, consultation: bool = False, observed: bool = False) -> Booked:
    async with Http(live) as client:
        staff = await staff_headers(client, "clerk")
        inspector = await create_staff(client, "wang", display_name="王科员")
        cat = await seed_app(client.app)
        matter_id = cat.matter_id if consultation else cat.small_matter_id
        if observed:
            async with live.app[DB].begin() as session:
                await session.execute(
                    update(Matter).where(Matter.id == matter_id).values(observed_notice=True)
                )
        body = {
            "matter_id": matter_id,
            "start": cat.iso("11:00"),
            "applicant": PERSON if consultation else ENTERPRISE,
            "site_address": "某县工业园 3 号",
        }
        booked = await client.post("/api/v1/appointments", json=body, headers=staff)
        assert booked.status == 201, await booked.text()
        appt = await booked.json()
        link = urlsplit(appt["join_url"])
        page = await client.get(f"{link.path}?{link.query}", allow_redirects=False)
        assert page.status == 302
        token = page.headers["Location"].removeprefix("/live/j/")
    async with live.app[DB].begin() as session:
        row = await session.get(Appointment, appt["id"])
        assert row is not None and row.case_id is not None
        await set_party(session, row.case_id, "staff", inspector, "lead")
        return Booked(row.id, row.case_id, token, inspector)


# -- 2: the join endpoints ask the access module ------------------------------------------


async def test_non_party_inspector_gets_404_and_a_party_its_role(live: LiveServer) -> None:
    booked = await _book(live)
    async with Http(live) as client:
        other = await staff_headers(client, "other")  # an inspector, but no party
        for url in (
            f"/api/v1/appointments/{booked.id}/join",
            f"/api/v1/cases/{booked.case_id}/live/join",
        ):
            response = await client.post(url, headers=other)
            assert response.status == 404, url
        response = await client.post(
            f"/api/v1/live/rooms/{booked.room}/invite",
            json={"role": "observer", "name": "x"},
            headers=other,
        )
        assert response.status == 404
        boss = await staff_headers(client, "boss", "supervisor")
        response = await client.post(f"/api/v1/appointments/{booked.id}/join", headers=boss)
        assert (await response.json())["role"] == "supervisor"
        # oversight is read-only: a supervisor who is no party may not invite
        response = await client.post(
            f"/api/v1/live/rooms/{booked.room}/invite",
            json={"role": "observer", "name": "x"},
            headers=boss,
        )
        assert response.status == 403
        async with live.app[DB].begin() as session:
            other_id = await session.scalar(select(User.id).where(User.username == "other"))
            assert other_id is not None
            await set_party(session, booked.case_id, "staff", other_id, "observer")
        response = await client.post(f"/api/v1/appointments/{booked.id}/join", headers=other)
        assert response.status == 200
        grant = live.app[SIGNER].verify((await response.json())["token"])
        assert (grant.role, grant.participant) == ("observer", f"staff-{other_id}")
        # ... and the lead joins as inspector
        async with live.app[DB].begin() as session:
            await set_party(session, booked.case_id, "staff", other_id, "inspector")
        response = await client.post(f"/api/v1/cases/{booked.case_id}/live/join", headers=other)
        assert (await response.json())["role"] == "inspector"


# -- 3: hidden, receive-only roles ----------------------------------------------------------


async def test_supervisor_watches_hidden_and_receive_only(live: LiveServer) -> None:
    inspector = live.client("staff-1", "inspector", auto_admit=True)
    await inspector.connect()
    seen_by_applicant: list[list[dict[str, Any]]] = []
    applicant = live.client(
        "applicant-2",
        "applicant",
        on_message=lambda m: (
            seen_by_applicant.append(m.get("participants", [])) if m["type"] == "presence" else None
        ),
    )
    await applicant.connect()
    await applicant.wait_state("admitted")
    # source="testsrc": this client would publish if it were let; the hub refuses
    boss = live.client("staff-5", "supervisor", source="testsrc")
    await boss.connect()
    await boss.wait_for(lambda: bool(boss.errors), what="refused offer")
    assert boss.errors[0]["code"] == "receive_only"
    welcome = next(m for m in boss.messages if m["type"] == "welcome")
    assert welcome["role"] == "supervisor" and welcome["receive_only"] is True
    await boss.media.wait_for_video("applicant-2", frames=10, within=15)
    await boss.media.wait_for_video("staff-1", frames=10, within=15)
    await inspector.wait_for(
        lambda: any(p["id"] == "staff-5" for p in inspector.presence), what="supervisor"
    )

    await boss.send({"type": "chat", "text": "请注意核对营业执照"})
    await inspector.wait_message("chat")
    await applicant.send({"type": "chat", "text": "好的"})
    await boss.wait_for(
        lambda: any(m["type"] == "chat" and m["from"] == "applicant-2" for m in boss.messages),
        what="the applicant's chat",
    )
    assert not [m for m in applicant.messages if m["type"] == "chat" and m["from"] == "staff-5"]
    assert seen_by_applicant and all(
        p["id"] != "staff-5" for people in seen_by_applicant for p in people
    )
    assert "staff-5" not in applicant.media.received
    assert not [m for m in applicant.messages if m.get("publisher") == "staff-5"]

    await boss.close()  # leaving does not show on the phone either
    await inspector.wait_for(
        lambda: all(p["id"] != "staff-5" for p in inspector.presence), what="departure"
    )
    assert all(m.get("publisher") != "staff-5" for m in applicant.messages)
    joined = [e for e in await _events(live) if e.kind == "live.joined"]
    assert {(e.data["participant"], e.data["role"]) for e in joined} >= {("staff-5", "supervisor")}


async def test_observed_notice_reaches_the_applicant(live: LiveServer) -> None:
    booked = await _book(live, observed=True)
    async with Http(live) as client:
        page = await (await client.get(f"/live/j/{booked.applicant_token}")).text()
        assert "本次视频可能被质量监督人员旁听" in page
        assert 'id="observed" class="notice observed" role="note">' in page  # not hidden
    messages, _ = await _ws_join(live, booked.applicant_token)
    welcome = next(m for m in messages if m["type"] == "welcome")
    assert welcome["observed"] is True and welcome["receive_only"] is False
    # without the matter's flag: no notice
    plain = live.token("applicant-9", "applicant")
    messages, _ = await _ws_join(live, plain)
    assert next(m for m in messages if m["type"] == "welcome")["observed"] is False
    async with Http(live) as client:
        page = await (await client.get(f"/live/j/{plain}")).text()
        assert 'id="observed" class="notice observed" role="note" hidden>' in page


# -- 4: console links need the matching staff login --------------------------------------


async def test_console_link_needs_its_staff_login(live: LiveServer) -> None:
    token = live.token("staff-1", "inspector")
    mine = await live.login(1)
    theirs = await live.login(7)
    async with Http(live) as client:
        page = await client.get(f"/live/j/{token}", allow_redirects=False)
        assert page.status == 303
        assert page.headers["Location"] == f"/login?tab=staff&next=/live/j/{token}"
        page = await client.get(f"/live/j/{token}", headers={"Authorization": f"Bearer {theirs}"})
        assert page.status == 403 and "另一位工作人员" in await page.text()
        page = await client.get(f"/live/j/{token}", headers={"Authorization": f"Bearer {mine}"})
        assert page.status == 200 and "live/console.js" in await page.text()
        # a staff member's observer link is a console link too; the page opens no camera
        watch = live.token("staff-7", "observer")
        page = await client.get(f"/live/j/{watch}", allow_redirects=False)
        assert page.status == 303
        page = await client.get(f"/live/j/{watch}", headers={"Authorization": f"Bearer {theirs}"})
        html = await page.text()
        assert page.status == 200 and 'id="receive-only"' in html and "btn-mic" not in html

    messages, code = await _ws_join(live, token)
    assert (messages[-1]["code"], code) == ("login_required", 4401)
    messages, code = await _ws_join(live, token, headers={"Authorization": f"Bearer {theirs}"})
    assert (messages[-1]["code"], code) == ("wrong_person", 4401)
    # the browser's session cookie works as well as the bearer token
    messages, _ = await _ws_join(live, token, cookies={"yk_session": mine})
    assert messages[0]["type"] == "welcome" and messages[0]["participant"] == "staff-1"
    # guest links stay token-only
    messages, _ = await _ws_join(live, live.token("guest-ab12", "expert"))
    assert messages[0]["type"] == "welcome"


# -- 5: closed stays closed, also after a restart; the seat's secret -----------------------


async def test_cancelled_appointment_and_ended_room_refuse_after_a_restart(
    sqlite_settings: Settings, live_options: LiveOptions
) -> None:
    async with running_live(sqlite_settings, live_options) as first:
        booked = await _book(first)
        inspector = first.client("staff-1", "inspector", source=None)
        await inspector.connect()
        await inspector.wait_state("admitted")
        await inspector.send({"type": "end"})
        await inspector.wait_state("ended")
        case_room = first.room
        async with first.app[DB].begin() as session:
            await session.execute(
                update(Appointment).where(Appointment.id == booked.id).values(status="cancelled")
            )
    async with running_live(sqlite_settings, live_options) as again:  # a fresh process
        assert again.app[SIGNER].verify(booked.applicant_token).room == booked.room
        messages, code = await _ws_join(again, booked.applicant_token)
        assert (messages[-1]["code"], code) == ("room_closed", 4410)
        assert "cancelled" in messages[-1]["detail"]
        messages, code = await _ws_join(
            again, again.token("applicant-2", "applicant", room=case_room)
        )
        assert (messages[-1]["code"], code) == ("room_closed", 4410)
        assert "has ended" in messages[-1]["detail"]
        async with Http(again) as client:
            page = await client.get(f"/live/j/{booked.applicant_token}")
            assert page.status == 410
        # a case that is no longer open refuses its room too
        async with again.app[DB].begin() as session:
            await session.execute(
                update(Case).where(Case.id == again.case_id).values(status="closed")
            )
        messages, code = await _ws_join(again, again.token("applicant-2", "applicant"))
        assert (messages[-1]["code"], code) == ("room_closed", 4410)


async def test_replayed_applicant_token_does_not_take_the_seat(live: LiveServer) -> None:
    inspector = live.client("staff-1", "inspector", auto_admit=False, source=None)
    await inspector.connect()
    applicant = live.client("applicant-2", "applicant")
    await applicant.connect()
    await inspector.wait_for(
        lambda: any(p["state"] == "waiting" for p in inspector.presence), what="arrival"
    )
    await inspector.send({"type": "admit", "participant": "applicant-2"})
    await applicant.wait_state("admitted")
    await inspector.media.wait_for_video("applicant-2", frames=10, within=15)

    replay = live.client("applicant-2", "applicant", source=None)  # same token, no session
    await replay.connect()
    await replay.wait_for(lambda: replay.close_code is not None, what="refusal")
    assert (replay.errors[-1]["code"], replay.close_code) == ("seat_taken", 4403)
    before = inspector.media.received["applicant-2"].video_frames
    await inspector.wait_for(
        lambda: inspector.media.received["applicant-2"].video_frames > before + 10,
        what="the real applicant's video going on",
    )
    assert applicant.state == "admitted" and applicant.close_code is None

    # once the real phone is gone, the replay only reaches the waiting room
    await applicant.drop()
    await inspector.wait_for(
        lambda: any(p["id"] == "applicant-2" and not p["connected"] for p in inspector.presence),
        what="drop",
    )
    later = live.client("applicant-2", "applicant", source=None)
    await later.connect()
    await later.wait_state("waiting")
    await inspector.wait_for(
        lambda: any(
            p["id"] == "applicant-2" and p["state"] == "waiting" for p in inspector.presence
        ),
        what="the replay waiting",
    )


# -- 6: booking moves with the session ----------------------------------------------------


async def test_waiting_checks_in_admit_starts_the_inspection_end_completes(
    live: LiveServer,
) -> None:
    booked = await _book(live)
    assert await _status(live, booked.id) == ("booked", "scheduled")
    inspector = live.client(f"staff-{booked.staff}", "inspector", source=None)
    inspector.token = live.token(f"staff-{booked.staff}", "inspector", room=booked.room)
    await inspector.connect()
    await inspector.wait_state("admitted")
    assert await _status(live, booked.id) == ("booked", "scheduled")  # staff alone: nothing

    from signaling.client import MediaClient
    from signaling.wsclient import SignalingClient

    phone = SignalingClient(
        live.ws_url, booked.applicant_token, media=MediaClient(host_addresses=LOOPBACK)
    )
    live.clients.append(phone)
    await phone.connect()
    await phone.wait_state("waiting")

    async def checked_in() -> bool:
        return (await _status(live, booked.id))[0] == "checked_in"

    await _eventually(checked_in, "check-in")
    await phone.drop()  # joining twice is harmless
    await phone.connect()
    await phone.wait_state("waiting")
    assert await _status(live, booked.id) == ("checked_in", "scheduled")

    who = phone.participant
    await inspector.send({"type": "admit", "participant": who})
    await phone.wait_state("admitted")

    async def started() -> bool:
        return await _status(live, booked.id) == ("in_session", "inspecting")

    await _eventually(started, "in_session + inspecting")
    await inspector.media.wait_for_video(who or "", frames=10, within=15)
    await inspector.send({"type": "end"})
    await phone.wait_state("ended")

    async def completed() -> bool:
        return await _status(live, booked.id) == ("completed", "inspecting")

    await _eventually(completed, "completed")  # an inspection goes on to the decision
    events = await _events(live, booked.case_id)
    kinds = [e.kind for e in events]
    order = [
        "appointment.checked_in",
        "live.admitted",
        "appointment.in_session",
        "case.inspecting",
        "live.ended",
        "appointment.completed",
    ]
    assert [k for k in kinds if k in order] == order, kinds
    by_kind = {e.kind: e for e in events}
    assert by_kind["case.inspecting"].actor_id == booked.staff
    assert by_kind["appointment.completed"].actor_kind == "staff"
    assert kinds.count("appointment.checked_in") == 1


@pytest.mark.parametrize("live_options", [LiveOptions(grace=0.5, host_addresses=LOOPBACK)])
async def test_a_consultation_closes_when_everyone_has_left(live: LiveServer) -> None:
    booked = await _book(live, consultation=True)
    inspector = live.client(f"staff-{booked.staff}", "inspector", auto_admit=True, source=None)
    inspector.token = live.token(f"staff-{booked.staff}", "inspector", room=booked.room)
    await inspector.connect()
    from signaling.client import MediaClient
    from signaling.wsclient import SignalingClient

    phone = SignalingClient(
        live.ws_url, booked.applicant_token, source=None, media=MediaClient(host_addresses=LOOPBACK)
    )
    live.clients.append(phone)
    await phone.connect()
    await phone.wait_state("admitted")

    async def in_session() -> bool:
        return await _status(live, booked.id) == ("in_session", "in_session")

    await _eventually(in_session, "in_session")
    await phone.drop()
    await inspector.drop()  # both gone; the grace runs out

    async def closed() -> bool:
        return await _status(live, booked.id) == ("completed", "closed")

    await _eventually(closed, "completed + closed")
    ended = [e for e in await _events(live, booked.case_id) if e.kind == "live.ended"]
    assert [(e.data["room"], e.data["by"]) for e in ended] == [(booked.room, "idle")]
    messages, code = await _ws_join(live, booked.applicant_token)
    assert (messages[-1]["code"], code) == ("room_closed", 4410)


async def test_recordings_are_filed_when_the_inspector_vanishes_right_after_ending(
    live: LiveServer,
) -> None:
    """The test server cancels a handler whose client disconnects (as aiohttp may): the
    end-of-call filing must still run to its end, never leave a recording on disk only."""
    from recordings.models import Recording

    inspector = live.client("staff-1", "inspector", auto_admit=True)
    await inspector.connect()
    phone = live.client("applicant-2", "applicant")
    await phone.connect()
    await phone.wait_state("admitted")
    await phone.wait_for(
        lambda: (
            phone.media.received.get("staff-1") is not None
            and phone.media.received["staff-1"].video_frames > 30
        ),
        within=15,
        what="video from the inspector",
    )
    await inspector.wait_for(
        lambda: (
            inspector.media.received.get("applicant-2") is not None
            and inspector.media.received["applicant-2"].video_frames > 30
        ),
        within=15,
        what="video from the phone",
    )
    await inspector.send({"type": "end"})
    hub = live.app[HUB]
    # The moment the room starts closing (media, then the filing), the console vanishes.
    for _ in range(400):
        if live.room not in hub.rooms:
            break
        await asyncio.sleep(0.005)
    ws = inspector._ws
    assert ws is not None and ws._response is not None
    assert ws._response.connection is not None
    ws._response.connection.transport.abort()  # gone at once, no close handshake

    async def filed() -> bool:
        async with live.app[DB]() as session:
            rows = await session.scalars(
                select(Recording.participant).where(Recording.case_id == live.case_id)
            )
            return sorted(rows) == ["applicant-2", "staff-1"]

    await _eventually(filed, "both recordings on the case")
    kinds = [e.kind for e in await _events(live)]
    assert kinds.count("recording.finished") == 2 and "live.ended" in kinds
