"""Bad input, floods, requests, removal and ending: the offender is refused, the room goes on."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from server.appkeys import DB
from server.cases.models import CaseEvent
from signaling.handlers import HUB, RELAY
from signaling.protocol import MAX_MESSAGE_BYTES
from tests.signaling.conftest import LiveServer

SDP_LIKE = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"


async def _raw(ws: aiohttp.ClientWebSocketResponse, payload: str) -> dict[str, Any]:
    await ws.send_str(payload)
    message: dict[str, Any] = await ws.receive_json(timeout=5)
    return message


async def test_bad_messages_get_errors_and_the_room_carries_on(live: LiveServer) -> None:
    publisher = live.client("staff-1", "inspector")
    await publisher.connect()
    watcher = live.client("staff-2", "observer", source=None)
    await watcher.connect()
    await watcher.media.wait_for_video("staff-1", frames=5, within=15)

    async with aiohttp.ClientSession() as http, http.ws_connect(live.ws_url) as ws:
        early = await _raw(ws, json.dumps({"type": "offer", "sdp": SDP_LIKE}))
        assert early["code"] == "out_of_order"
        # What a person reads is in their language (zh-CN by default); the English
        # specifics travel as "detail".
        assert early["message"] == "消息顺序不正确。"
        assert early["detail"] == "offer before join"
        await ws.send_json({"type": "join", "token": live.token("guest-9", "expert")})
        assert (await ws.receive_json(timeout=5))["type"] == "welcome"
        while (await ws.receive_json(timeout=5))["type"] != "presence":
            pass
        cases = [
            ("{not json", "malformed"),
            ("[]", "malformed"),
            (json.dumps({"type": "chat", "text": "x" * MAX_MESSAGE_BYTES}), "too_large"),
            ('{"type":"teleport"}', "unknown_type"),
            ('{"type":"offer","sdp":"this is not sdp"}', "bad_sdp"),
            (
                json.dumps({"type": "answer", "publisher": "staff-2", "sdp": SDP_LIKE}),
                "out_of_order",
            ),
            ('{"type":"admit","participant":"staff-2"}', "forbidden"),
            ('{"type":"request","kind":"torch","to":"staff-1"}', "forbidden"),
            ('{"type":"response","id":"nope","ok":true}', "out_of_order"),
        ]
        for payload, code in cases:
            message = await _raw(ws, payload)
            while message["type"] != "error":  # presence etc. may interleave
                message = await ws.receive_json(timeout=5)
            assert message["code"] == code, payload
        # an SDP that looks right but that the relay cannot use
        message = await _raw(ws, json.dumps({"type": "offer", "sdp": SDP_LIKE}))
        while message["type"] != "error":
            message = await ws.receive_json(timeout=5)
        assert message["code"] == "media_failed"
        assert (await _raw(ws, '{"type":"ping"}'))["type"] == "pong"

        # flood: the offender is closed with 4429
        for _ in range(200):
            if ws.closed:
                break
            await ws.send_str('{"type":"ping"}')
        codes = set()
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                codes.add(json.loads(msg.data).get("code"))
        assert "flood" in codes
        assert ws.close_code == 4429

    before = watcher.media.received["staff-1"].video_frames
    await watcher.wait_for(
        lambda: watcher.media.received["staff-1"].video_frames > before + 15,
        within=10,
        what="video after the flood",
    )
    assert publisher.state == "admitted" and watcher.state == "admitted"


async def test_requests_chat_remove_and_end_are_recorded(live: LiveServer) -> None:
    inspector = live.client("staff-1", "inspector", auto_admit=True, source=None)
    await inspector.connect()
    applicant = live.client("applicant-2", "applicant", source=None)
    await applicant.connect()
    await applicant.wait_state("admitted")
    expert = live.client("staff-3", "expert", source=None)
    await expert.connect()
    await expert.wait_state("admitted")  # the join is checked against the database first

    await inspector.send({"type": "request", "kind": "rear_camera", "to": "applicant-2"})
    response = await inspector.wait_message("response")
    assert response["kind"] == "rear_camera" and response["ok"] is False  # a CLI cannot turn
    await applicant.send({"type": "chat", "text": "看得清吗？"})
    chat = await inspector.wait_message("chat")
    assert chat["text"] == "看得清吗？" and chat["from"] == "applicant-2"

    await inspector.send({"type": "remove", "participant": "staff-3"})
    await expert.wait_state("removed")
    await expert.wait_for(lambda: expert.close_code is not None, what="close")
    assert expert.close_code == 4411

    await inspector.send({"type": "end"})
    await applicant.wait_state("ended")
    await applicant.wait_for(lambda: applicant.close_code is not None, what="close")
    assert applicant.close_code == 4410
    assert live.room not in live.app[HUB].rooms
    assert live.app[RELAY].get(live.room) is None

    # a closed room stays closed
    again = live.client("applicant-2", "applicant", source=None)
    await again.connect()
    await again.wait_for(lambda: again.close_code is not None, what="close")
    assert again.errors[-1]["code"] == "room_closed"

    from sqlalchemy import select

    wanted = ("live.request", "live.response", "live.chat", "live.removed", "live.ended")
    # Events are written after the message is delivered, each in its own transaction; on
    # SQLite a writer may wait its turn for the lock behind later ones, so poll a moment.
    for _ in range(50):
        async with live.app[DB]() as session:
            rows = list(
                await session.scalars(
                    select(CaseEvent)
                    .where(CaseEvent.case_id == live.case_id)
                    .order_by(CaseEvent.seq)
                )
            )
        kinds = [e.kind for e in rows]
        if all(kind in kinds for kind in wanted):
            break
        await asyncio.sleep(0.1)
    for kind in wanted:
        assert kind in kinds, kinds
    request = next(e for e in rows if e.kind == "live.request")
    assert request.data["kind"] == "rear_camera" and request.actor_id == 1
    assert request.actor_kind == "staff"


async def test_declined_applicant_is_told_why_and_stays_connected(live: LiveServer) -> None:
    inspector = live.client("staff-1", "inspector", source=None)
    await inspector.connect()
    applicant = live.client("applicant-2", "applicant", source=None)
    await applicant.connect()
    await applicant.wait_state("waiting")
    await inspector.wait_for(
        lambda: any(p["state"] == "waiting" for p in inspector.presence), what="arrival"
    )
    await inspector.send({"type": "decline", "participant": "applicant-2", "reason": "材料不全"})
    await applicant.wait_state("declined")
    declined = next(m for m in applicant.messages if m["type"] == "declined")
    assert declined["reason"] == "材料不全"
    # The seat is still taken: a replayed link cannot push the declined person out.
    again = live.client("applicant-2", "applicant", source=None)
    await again.connect()
    await again.wait_for(lambda: again.close_code is not None, what="close")
    assert again.close_code == 4403
    assert applicant.close_code is None and applicant.state == "declined"


async def test_simultaneous_first_arrivals_share_one_room(live: LiveServer) -> None:
    first = live.client("staff-1", "inspector", source=None)
    second = live.client("staff-2", "expert", source=None)
    await asyncio.gather(first.connect(), second.connect())  # both joins before any welcome
    for client in (first, second):
        await client.wait_for(
            lambda c=client: len(c.presence) == 2,  # type: ignore[misc]
            what="both in presence",
        )
    assert len(live.app[HUB].rooms) == 1


async def test_error_messages_follow_the_language_cookie(live: LiveServer) -> None:
    cookies = {"yk_lang": "en"}
    async with aiohttp.ClientSession(cookies=cookies) as http, http.ws_connect(live.ws_url) as ws:
        error = await _raw(ws, "{not json")
        assert (error["code"], error["message"]) == ("malformed", "The message could not be read.")
        assert error["detail"] == "Message is not valid JSON"
    headers = {"Accept-Language": "en-US,en;q=0.9"}
    async with aiohttp.ClientSession(headers=headers) as http, http.ws_connect(live.ws_url) as ws:
        await ws.send_json({"type": "join", "token": "forged"})
        error = await ws.receive_json(timeout=5)
        assert error["code"] == "bad_token" and error["message"] == "The join link is not valid."


async def test_deep_json_and_bad_text_get_an_error_and_the_socket_stays_open(
    live: LiveServer,
) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(live.ws_url) as ws:
        await ws.send_json({"type": "join", "token": live.token("guest-9", "expert")})
        assert (await ws.receive_json(timeout=5))["type"] == "welcome"
        cases = [
            ("[" * 5000 + "]" * 5000, "malformed"),
            ('{"type":"chat","text":"hi \\ud800"}', "bad_field"),
            ('{"type":"chat","text":"nul \\u0000"}', "bad_field"),
        ]
        for payload, code in cases:
            message = await _raw(ws, payload)
            while message["type"] != "error":  # presence etc. may interleave
                message = await ws.receive_json(timeout=5)
            assert message["code"] == code, payload[:40]
        message = await _raw(ws, '{"type":"ping"}')
        while message["type"] != "pong":
            message = await ws.receive_json(timeout=5)
        assert not ws.closed
