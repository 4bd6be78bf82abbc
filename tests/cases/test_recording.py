"""A live session through the relay is recorded without transcoding and filed on the case."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from recordings.cli_verify import verify_case_number
from recordings.segments import SegmentLog, append_segment
from server.appkeys import BLOBS, DB, SETTINGS
from server.evidence.recording import file_room_recordings
from signaling.archive import RoomRecording
from signaling.client import MediaClient
from signaling.relay import RelayConfig, RelayRoom
from tests.cases.conftest import Client, new_case
from tests.recordings.pattern import encode_moving
from tests.support import applicant_headers, staff_headers

LOOPBACK = ("127.0.0.1",)
SECONDS = 4.0


@pytest.fixture
async def phone() -> AsyncIterator[MediaClient]:
    client = MediaClient(host_addresses=LOOPBACK)
    yield client
    await client.close()


async def test_session_recording_is_filed_and_plays_with_ranges(
    client: Client, phone: MediaClient, tmp_path: Path
) -> None:
    inspector = await staff_headers(client, "inspector", "inspector")
    applicant = await applicant_headers(client, "13800138000")
    case_id = await new_case(client, applicant_mobile="13800138000", staff=["inspector"])
    # What live's close_media does: record the relay room, close it, file the files.
    tape = RoomRecording(tmp_path / "recordings")
    room = RelayRoom(f"case-{case_id}", RelayConfig(host_addresses=LOOPBACK), on_packet=tape.feed)
    try:
        answer = await room.add_participant("applicant-1", await phone.publish_offer("testsrc"))
        await phone.accept_publish_answer(answer)
        await asyncio.sleep(SECONDS)
    finally:
        await room.close()
    ids = await file_room_recordings(client.app, room.room_id, case_id, tape.close())
    assert len(ids) == 1

    r = await client.get(f"/api/v1/cases/{case_id}", headers=inspector)
    case = await r.json()
    (rec,) = case["recordings"]
    assert rec["participant"] == "applicant-1" and rec["status"] == "finished"
    assert SECONDS - 1.5 < rec["duration_s"] <= SECONDS + 0.5
    kinds = [e["kind"] for e in case["timeline"]]
    assert kinds[-1] == "recording.finished"

    # The <video> element seeks with Range requests.
    r = await client.get(rec["url"], headers={**inspector, "Range": "bytes=0-99"})
    assert r.status == 206 and len(await r.read()) == 100
    r = await client.get(rec["url"], headers=inspector)
    assert r.status == 200 and r.content_type == "video/webm"
    path = tmp_path / "rec.webm"
    path.write_bytes(await r.read())
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "vp8" and (
            video.codec_context.width,
            video.codec_context.height,
        ) == (640, 480)
        assert container.streams.audio[0].codec_context.name == "opus"
        frames = sum(1 for p in container.demux(video) if p.size)
    assert frames > (SECONDS - 1.5) * 25

    # Recordings are staff-only.
    r = await client.get(rec["url"], headers=applicant)
    assert r.status == 403
    r = await client.get(f"/api/v1/cases/{case_id}/verify", headers=inspector)
    assert (await r.json())["ok"] is True


async def test_recording_gap_is_on_the_case_api_and_page(client: Client, tmp_path: Path) -> None:
    """A file with lost frames is filed with its gap (on the chain, in the API, on the page)."""
    inspector = await staff_headers(client, "inspector", "inspector")
    applicant = await applicant_headers(client, "13800138000")
    assert applicant
    case_id = await new_case(client, applicant_mobile="13800138000", staff=["inspector"])
    tape = RoomRecording(tmp_path / "recordings")
    for number, packet in enumerate(encode_moving(0, 40) + encode_moving(40, 20)):
        packet.opaque = number  # the relay's frame number
        if number not in (10, 11):
            tape.feed("applicant-1", "video", packet)
    ids = await file_room_recordings(client.app, f"case-{case_id}", case_id, tape.close())
    assert len(ids) == 1

    r = await client.get(f"/api/v1/cases/{case_id}", headers=inspector)
    case = await r.json()
    (rec,) = case["recordings"]
    (gap,) = rec["gaps"]
    assert (gap["frames_lost"], gap["frames_skipped"], gap["cause"]) == (2, 28, "frames_lost")
    assert rec["skipped"] == 28  # fed faster than real time: some frames are re-timed
    finished = [e for e in case["timeline"] if e["kind"] == "recording.finished"]
    assert finished[-1]["data"]["gaps"] == [gap]

    r = await client.get(f"/staff/cases/{case_id}", headers=inspector)
    page = await r.text()
    assert r.status == 200 and "缺失画面" in page and "丢失 2 帧，跳过 28 帧" in page


# 22 s of real call: SQLite only (the segment log itself runs on PostgreSQL in
# tests/recordings/test_segments.py); parametrized, not skipped, so CI skips nothing.
@pytest.mark.parametrize("evidence_settings", ["sqlite"], indirect=True)
async def test_a_call_over_twenty_seconds_is_proven_segment_by_segment(
    client: Client, phone: MediaClient, tmp_path: Path
) -> None:
    """A real aiortc call, recorded as live records it: segments every 10 s, verify OK;
    one flipped byte in the stored file and verify names the segment it is in."""
    inspector = await staff_headers(client, "inspector", "inspector")
    case_id = await new_case(client, staff=["inspector"])
    room_id = f"case-{case_id}"
    log = SegmentLog(functools.partial(append_segment, client.app[DB], case_id, room_id))
    tape = RoomRecording(tmp_path / room_id / "20261202T000000.000000Z", on_segment=log.mark)
    room = RelayRoom(room_id, RelayConfig(host_addresses=LOOPBACK), on_packet=tape.feed)
    try:
        answer = await room.add_participant("applicant-1", await phone.publish_offer("testsrc"))
        await phone.accept_publish_answer(answer)
        await asyncio.sleep(21.5)
    finally:
        await room.close()
    results = tape.close()
    await log.drain()
    assert len(await file_room_recordings(client.app, room_id, case_id, results)) == 1

    r = await client.get(f"/api/v1/cases/{case_id}", headers=inspector)
    case = await r.json()
    segments = [e["data"] for e in case["timeline"] if e["kind"] == "recording.segment"]
    assert [s["reason"] for s in segments] == ["interval", "interval", "ended"]
    assert segments[0]["media_s"][0] is not None and segments[1]["frames"][0] > 200
    (rec,) = case["recordings"]
    assert rec["take"] == {"segments": 3, "ended": "ended", "interruptions": []}
    r = await client.get(f"/staff/cases/{case_id}", headers=inspector)
    assert "连续录制证明：3 个片段的哈希已记入时间线" in await r.text()
    r = await client.get(f"/api/v1/cases/{case_id}/verify", headers=inspector)
    assert (await r.json())["ok"] is True
    cli = await verify_case_number(client.app[SETTINGS], case["number"])
    assert cli is not None and cli["breaks"] == []

    blob = client.app[BLOBS].path(
        next(e for e in case["timeline"] if e["kind"] == "recording.finished")["data"]["blobs"][0][
            "key"
        ]
    )
    second = segments[1]
    data = bytearray(blob.read_bytes())
    data[second["bytes"][0] + 100] ^= 0x01
    blob.write_bytes(bytes(data))
    r = await client.get(f"/api/v1/cases/{case_id}/verify", headers=inspector)
    report = await r.json()
    assert not report["ok"]
    named = [b["reason"] for b in report["breaks"] if "segment 1 " in b["reason"]]
    assert len(named) == 1 and f"bytes {second['bytes'][0]}–{second['bytes'][1]}" in named[0]
    cli = await verify_case_number(client.app[SETTINGS], case["number"])
    assert cli is not None and any("segment 1 " in b for b in cli["breaks"])
