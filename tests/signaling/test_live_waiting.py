"""The waiting room over real sockets: previews reach only those who may admit, bad
previews are refused without closing the socket, and a declined applicant waits on and is
re-admitted into the call (events, procedure, media)."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import aiohttp
from PIL import Image

from signaling.client import MediaClient
from signaling.protocol import MAX_PREVIEW_BYTES, PREVIEW_PREFIX
from signaling.wsclient import SignalingClient
from tests.signaling.conftest import LOOPBACK, LiveServer
from tests.signaling.test_live_procedure import _book, _events, _eventually, _status


def jpeg(size: tuple[int, int] = (160, 120), quality: int = 60) -> str:
    """A real 160x120 JPEG still as the phone's canvas makes it."""
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buf, "JPEG", quality=quality)
    return PREVIEW_PREFIX + base64.b64encode(buf.getvalue()).decode()


def _previews(client: SignalingClient) -> list[dict[str, object]]:
    return [m for m in client.messages if m["type"] == "preview"]


async def test_preview_reaches_only_staff_of_the_room_who_may_admit(live: LiveServer) -> None:
    inspector = live.client("staff-1", "inspector", source=None)
    expert = live.client("staff-3", "expert", source=None)
    observer = live.client("staff-4", "observer", source=None)
    other_room = live.client("staff-5", "inspector", source=None)
    other_room.token = live.token("staff-5", "inspector", room="case-elsewhere")
    for client in (inspector, expert, observer, other_room):
        await client.connect()
        await client.wait_state("admitted")
    first = live.client("applicant-2", "applicant", source=None)
    await first.connect()
    await first.wait_state("waiting")
    await inspector.send({"type": "admit", "participant": "applicant-2"})
    await first.wait_state("admitted")
    waiting = live.client("applicant-7", "applicant", source=None)
    await waiting.connect()
    await waiting.wait_state("waiting")

    image = jpeg()
    await waiting.send({"type": "preview", "image": image})
    await inspector.wait_for(lambda: bool(_previews(inspector)), what="preview")
    got = _previews(inspector)[0]
    assert got["participant"] == "applicant-7" and got["image"] == image
    # Everyone else gets a round trip to prove the preview would have arrived by now.
    for client in (expert, observer, other_room, first, waiting):
        before = len(client.messages)
        await client.send({"type": "ping"})
        await client.wait_for(
            lambda c=client, n=before: any(m["type"] == "pong" for m in c.messages[n:]),
            what="pong",
        )
        assert _previews(client) == [], client.participant
    # Nothing of it is written down: a preview is not evidence.
    assert not any("image" in json.dumps(e.data) for e in await _events(live))


async def test_bad_previews_get_stable_codes_and_the_socket_stays_open(live: LiveServer) -> None:
    inspector = live.client("staff-1", "inspector", source=None)
    await inspector.connect()
    phone = live.client("applicant-2", "applicant", source=None)
    await phone.connect()
    await phone.wait_state("waiting")

    # Over the still's own cap (24 KB) but under the message cap (64 KB).
    padded = b"\xff\xd8\xff" + b"\0" * MAX_PREVIEW_BYTES
    png = io.BytesIO()
    Image.new("RGB", (16, 16)).save(png, "PNG")
    cases = [
        ({"image": "https://example.org/me.jpg"}, "bad_preview"),
        ({"image": "data:image/svg+xml;base64,PHN2Zz4="}, "bad_preview"),
        ({"image": PREVIEW_PREFIX + "not base64!!"}, "bad_preview"),
        ({"image": PREVIEW_PREFIX + base64.b64encode(png.getvalue()).decode()}, "bad_preview"),
        ({"image": PREVIEW_PREFIX + base64.b64encode(padded).decode()}, "preview_too_large"),
        ({"image": 42}, "bad_field"),
        ({}, "bad_field"),
    ]
    async with aiohttp.ClientSession() as http, http.ws_connect(live.ws_url) as ws:
        await ws.send_json({"type": "join", "token": live.token("applicant-9", "applicant")})
        assert (await ws.receive_json(timeout=5))["type"] == "welcome"
        for fields, code in cases:
            await ws.send_str(json.dumps({"type": "preview", **fields}))
            message = await ws.receive_json(timeout=5)
            while message["type"] != "error":
                message = await ws.receive_json(timeout=5)
            assert message["code"] == code, (fields.keys(), message)
        await ws.send_json({"type": "preview", "image": jpeg()})
        await ws.send_json({"type": "preview", "image": jpeg()})  # faster than one per 2 s
        message = await ws.receive_json(timeout=5)
        while message["type"] != "error":
            message = await ws.receive_json(timeout=5)
        assert message["code"] == "preview_too_fast"
        await ws.send_json({"type": "ping"})
        while (await ws.receive_json(timeout=5))["type"] != "pong":
            pass
        assert not ws.closed
    # Admitted people publish video; a still from them is refused.
    await inspector.send({"type": "admit", "participant": "applicant-2"})
    await phone.wait_state("admitted")
    await phone.send({"type": "preview", "image": jpeg()})
    await phone.wait_for(lambda: bool(phone.errors), what="error")
    assert phone.errors[-1]["code"] == "not_waiting"
    # Only the one good still went through: not the bad ones, not the one too soon, not
    # the admitted phone's.
    assert [m["participant"] for m in _previews(inspector)] == ["applicant-9"]


async def test_declined_applicant_waits_on_and_is_readmitted_into_the_call(
    live: LiveServer,
) -> None:
    booked = await _book(live)
    inspector = live.client(f"staff-{booked.staff}", "inspector")
    inspector.token = live.token(f"staff-{booked.staff}", "inspector", room=booked.room)
    await inspector.connect()
    await inspector.wait_state("admitted")
    phone = SignalingClient(
        live.ws_url, booked.applicant_token, media=MediaClient(host_addresses=LOOPBACK)
    )
    live.clients.append(phone)
    await phone.connect()
    await phone.wait_state("waiting")
    who = phone.participant or ""

    await inspector.send({"type": "decline", "participant": who, "reason": "材料不全"})
    await phone.wait_state("declined")
    assert next(m for m in phone.messages if m["type"] == "declined")["reason"] == "材料不全"
    await inspector.wait_for(
        lambda: any(p["id"] == who and p["state"] == "declined" for p in inspector.presence),
        what="declined in presence",
    )
    listed = next(p for p in inspector.presence if p["id"] == who)
    assert listed["reason"] == "材料不全" and listed["connected"] is True
    # Still connected, and still allowed to send a still for the inspector.
    await phone.send({"type": "preview", "image": jpeg()})
    await inspector.wait_for(lambda: bool(_previews(inspector)), what="preview")
    assert phone.close_code is None
    assert await _status(live, booked.id) == ("checked_in", "scheduled")

    # A drop and a fresh join (no session id) keeps the decline: no queue-jumping.
    await phone.drop()
    phone.session_id = None
    await phone.connect()
    await phone.wait_for(
        lambda: sum(m["type"] == "welcome" for m in phone.messages) == 2, what="rejoin"
    )
    await phone.wait_state("declined")
    assert [m for m in phone.messages if m["type"] == "declined"][-1]["reason"] == "材料不全"

    # Admit is for the waiting; a declined person is re-admitted.
    await inspector.send({"type": "admit", "participant": who})
    await inspector.wait_for(lambda: bool(inspector.errors), what="error")
    assert inspector.errors[-1]["code"] == "not_waiting"
    await inspector.send({"type": "readmit", "participant": who})
    await phone.wait_state("admitted")
    await inspector.media.wait_for_video(who, frames=10, within=15)
    await phone.media.wait_for_video(inspector.participant or "", frames=5, within=15)

    async def started() -> bool:
        return await _status(live, booked.id) == ("in_session", "inspecting")

    await _eventually(started, "in_session + inspecting")
    await inspector.send({"type": "readmit", "participant": who})
    await inspector.wait_for(lambda: len(inspector.errors) == 2, what="error")
    assert inspector.errors[-1]["code"] == "not_declined"

    # Remove stays final: the same link is refused.
    await inspector.send({"type": "remove", "participant": who})
    await phone.wait_state("removed")
    again = SignalingClient(
        live.ws_url, booked.applicant_token, media=MediaClient(host_addresses=LOOPBACK)
    )
    live.clients.append(again)
    await again.connect()
    await again.wait_for(lambda: again.close_code is not None, what="close")
    assert again.close_code == 4403

    kinds = [e.kind for e in await _events(live, booked.case_id)]
    order = ["live.declined", "live.readmitted", "case.inspecting", "live.removed"]
    assert [k for k in kinds if k in order] == order, kinds
    await asyncio.sleep(0)
