"""A snapshot through the API of a real aiortc participant publishing through the relay."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from server.evidence.live import RelayRoomVideo
from signaling.client import PATTERN_BARS, MediaClient
from signaling.relay import RelayConfig, RelayRoom
from tests.cases.conftest import SESSIONS_KEY, Client, new_case
from tests.recordings.pattern import close
from tests.support import applicant_headers, staff_headers

LOOPBACK = ("127.0.0.1",)


@pytest.fixture
async def room() -> AsyncIterator[RelayRoom]:
    room = RelayRoom("room-live", RelayConfig(host_addresses=LOOPBACK))
    yield room
    await room.close()


@pytest.fixture
async def phone() -> AsyncIterator[MediaClient]:
    client = MediaClient(host_addresses=LOOPBACK)
    yield client
    await client.close()


async def test_snapshot_of_a_live_relayed_stream(
    client: Client, room: RelayRoom, phone: MediaClient
) -> None:
    inspector = await staff_headers(client, "inspector", "inspector")
    await applicant_headers(client, "13800138000")
    case_id = await new_case(client, applicant_mobile="13800138000", staff=["inspector"])

    client.app[SESSIONS_KEY]["room-live"] = RelayRoomVideo(room, case_id, "applicant-1")

    # Before the phone publishes anything: a clear error, not a black picture.
    r = await client.post("/api/v1/sessions/room-live/snapshots", json={}, headers=inspector)
    assert r.status == 409 and (await r.json())["error"]["code"] == "no_video"

    answer = await room.add_participant("applicant-1", await phone.publish_offer("testsrc"))
    await phone.accept_publish_answer(answer)
    for _ in range(100):
        if room.latest_video_packets("applicant-1"):
            break
        await asyncio.sleep(0.05)
    assert room.latest_video_packets("applicant-1"), "no video reached the relay"

    r = await client.post(
        "/api/v1/sessions/room-live/snapshots", json={"checklist_item": "厂房"}, headers=inspector
    )
    assert r.status == 201, await r.text()
    shot = await r.json()
    assert (shot["width"], shot["height"]) == (640, 480)
    image = Image.open(
        io.BytesIO(await (await client.get(shot["original"]["url"], headers=inspector)).read())
    )
    rgb = image.convert("RGB")
    # Centre of each colour bar, above the moving square.
    for index, colour in enumerate(PATTERN_BARS):
        assert close(rgb.getpixel((index * 80 + 40, 60)), colour, 30), (
            index,
            rgb.getpixel((index * 80 + 40, 60)),
        )
    r = await client.get(f"/api/v1/cases/{case_id}/verify", headers=inspector)
    assert (await r.json())["ok"] is True
