"""Real aiortc participants through the real server: relay, waiting room, reconnect, events."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from sqlalchemy import select

from recordings.recovery import RECORDINGS
from server.appkeys import BLOBS, BUS, DB, SETTINGS
from server.cases.models import Case, CaseEvent
from server.cases.timeline import verify_case
from server.settings import Settings
from signaling.handlers import HUB, RELAY, LiveOptions
from tests.signaling.conftest import LOOPBACK, LiveServer, start_live


async def _events(live: LiveServer) -> list[CaseEvent]:
    async with live.app[DB]() as session:
        rows = await session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == live.case_id).order_by(CaseEvent.seq)
        )
        return list(rows)


async def test_publisher_reaches_two_subscribers_at_640x480(live: LiveServer) -> None:
    inspector = live.client("staff-1", "inspector", auto_admit=True)
    await inspector.connect()
    applicant = live.client("applicant-2", "applicant")
    await applicant.connect()
    await applicant.wait_state("admitted")
    expert = live.client("staff-3", "expert", source=None)  # watches only
    await expert.connect()

    for subscriber in (inspector, expert):
        await subscriber.media.wait_for_video("applicant-2", frames=20, within=15)
        got = subscriber.media.received["applicant-2"]
        assert (got.width, got.height) == (640, 480)
    await applicant.media.wait_for_video("staff-1", frames=20, within=15)
    assert applicant.media.received["staff-1"].width == 640
    # the expert publishes nothing, so nobody receives anything from them
    assert "staff-3" not in inspector.media.received

    kinds = [e.kind for e in await _events(live)]
    assert "live.admitted" in kinds and kinds.count("live.joined") == 3
    async with live.app[DB]() as session:
        case = await session.get(Case, live.case_id)
        assert case is not None
        report = await verify_case(session, case)
    assert report.ok


async def test_late_joiner_gets_a_keyframe_quickly(live: LiveServer) -> None:
    publisher = live.client("staff-1", "inspector")
    await publisher.connect()
    watcher = live.client("staff-2", "observer", source=None)
    await watcher.connect()
    await watcher.media.wait_for_video("staff-1", frames=30, within=15)
    # aiortc's encoder sends a key frame only every 100 s by itself: without the relay's
    # key frame request the late joiner would decode nothing for a long time.
    late = live.client("staff-3", "observer", source=None)
    started = time.monotonic()
    await late.connect()
    await late.media.wait_for_video("staff-1", frames=1, within=5)
    assert time.monotonic() - started < 2.0
    assert late.media.received["staff-1"].width == 640


async def test_killed_client_resumes_the_same_session(live: LiveServer) -> None:
    inspector = live.client("staff-1", "inspector", auto_admit=True, source=None)
    await inspector.connect()
    applicant = live.client("applicant-2", "applicant")
    await applicant.connect()
    await applicant.wait_state("admitted")
    await inspector.media.wait_for_video("applicant-2", frames=10, within=15)
    session = applicant.session_id

    await applicant.drop()  # socket and peer connections gone, no "leave"
    await inspector.wait_for(
        lambda: any(p["id"] == "applicant-2" and not p["connected"] for p in inspector.presence),
        what="reconnecting presence",
    )
    before = inspector.media.received["applicant-2"].video_frames
    await asyncio.sleep(0.5)

    await applicant.connect()  # rejoin with the session id and a new peer connection
    await applicant.wait_state("admitted")
    welcome = next(m for m in reversed(applicant.messages) if m["type"] == "welcome")
    assert welcome["resumed"] is True and welcome["session"] == session
    await inspector.wait_for(
        lambda: inspector.media.received["applicant-2"].video_frames > before + 10,
        within=10,
        what="video after the reconnect",
    )
    assert any(p["id"] == "applicant-2" and p["connected"] for p in inspector.presence)
    joined = [e for e in await _events(live) if e.kind == "live.joined"]
    assert len(joined) == 2  # the resume is not a new arrival


async def test_forged_and_expired_tokens_are_refused_before_media(live: LiveServer) -> None:
    good = live.token("applicant-2", "applicant")
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    for token, code in ((forged, "bad_token"), ("nonsense", "bad_token")):
        async with aiohttp.ClientSession() as http, http.ws_connect(live.ws_url) as ws:
            await ws.send_json({"type": "join", "token": token})
            message = await ws.receive_json(timeout=5)
            assert message["code"] == code
            await ws.receive(timeout=5)
            assert ws.close_code == 4401
    assert live.app[RELAY].get(live.room) is None
    assert live.room not in live.app[HUB].rooms


async def test_arrivals_are_announced_on_the_bus(live: LiveServer) -> None:
    inspector = live.client("staff-1", "inspector", source=None)
    await inspector.connect()
    async with live.app[BUS].subscribe("live:arrivals") as messages:
        applicant = live.client("applicant-2", "applicant", source=None)
        await applicant.connect()
        message = await asyncio.wait_for(anext(aiter(messages)), 5)
    assert message["participant"] == "applicant-2" and message["room"] == live.room


@pytest.mark.parametrize("live_options", [LiveOptions(grace=0.5, host_addresses=LOOPBACK)])
async def test_a_participant_gone_longer_than_the_grace_period_leaves(live: LiveServer) -> None:
    inspector = live.client("staff-1", "inspector", auto_admit=True, source=None)
    await inspector.connect()
    applicant = live.client("applicant-2", "applicant")
    await applicant.connect()
    await inspector.media.wait_for_video("applicant-2", frames=5, within=15)
    await applicant.drop()
    gone = await inspector.wait_message("unpublished", within=5)
    assert gone["publisher"] == "applicant-2"
    await inspector.wait_for(
        lambda: all(p["id"] != "applicant-2" for p in inspector.presence), what="departure"
    )
    assert "applicant-2" not in live.app[RELAY].get(live.room).publishers  # type: ignore[union-attr]


async def test_four_participants_each_publishing_audio_and_video(live: LiveServer) -> None:
    from signaling.client import MediaClient

    people = [
        ("staff-1", "inspector"),
        ("applicant-2", "applicant"),
        ("staff-3", "expert"),
        ("staff-4", "expert"),
    ]
    clients = []
    for pid, role in people:
        client = live.client(pid, role, auto_admit=role == "inspector")  # type: ignore[arg-type]
        # count packets without decoding: 12 decoders would measure the test machine
        client.media = MediaClient(host_addresses=LOOPBACK, decode=False)
        await client.connect()
        clients.append(client)
    for client, (me, _) in zip(clients, people, strict=True):
        for other, _ in people:
            if other != me:  # not client.participant: its welcome may still be on the way
                await client.media.wait_for_video(other, frames=30, within=20)
                got = client.media.received[other]
                assert got.audio_frames > 0 and got.width == 640
    assert len(live.app[RELAY].get(live.room).subscriptions()) == 12  # type: ignore[union-attr]


async def test_session_is_recorded_per_participant_and_filed_in_the_case(
    live: LiveServer,
) -> None:
    import av

    inspector = live.client("staff-1", "inspector", auto_admit=True, source=None)
    await inspector.connect()
    applicant = live.client("applicant-2", "applicant")
    await applicant.connect()
    await inspector.media.wait_for_video("applicant-2", frames=45, within=15)
    await inspector.send({"type": "end"})
    await applicant.wait_state("ended")
    await inspector.wait_state("ended")

    # Filed as evidence (server.evidence.recording): in the blob store, hash on the event.
    recorded = [e for e in await _events(live) if e.kind == "recording.finished"]
    assert [e.data["participant"] for e in recorded] == ["applicant-2"]
    info = recorded[0].data
    (blob,) = info["blobs"]
    path = live.app[BLOBS].path(blob["key"])
    assert path.stat().st_size == info["size"] and info["duration_s"] > 1.0
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (640, 480)
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 30


async def test_a_call_everyone_left_files_its_recordings_after_the_grace(
    live: LiveServer,
) -> None:
    """No "end": the inspector leaves (the leave button), the phone loses its network.
    When the last one's grace (5 s here) runs out the room closes and the recordings are
    filed on the case: blob stored, hash on the chain, nothing left in the live folder."""
    inspector = live.client("staff-1", "inspector", auto_admit=True, source=None)
    await inspector.connect()
    applicant = live.client("applicant-2", "applicant")
    await applicant.connect()
    await inspector.media.wait_for_video("applicant-2", frames=30, within=15)
    await inspector.close()
    await applicant.drop()
    left = asyncio.get_running_loop().time()

    async def filed() -> list[CaseEvent]:
        return [e for e in await _events(live) if e.kind == "recording.finished"]

    for _ in range(200):
        if await filed():
            break
        await asyncio.sleep(0.1)
    (recorded,) = await filed()
    took = asyncio.get_running_loop().time() - left
    assert 4.0 < took < 15.0, took  # after the grace, not before, and not much later
    (blob,) = recorded.data["blobs"]
    assert live.app[BLOBS].path(blob["key"]).stat().st_size == recorded.data["size"]
    folder = live.app[SETTINGS].data_dir / RECORDINGS
    assert folder.is_dir()  # the recorder wrote there during the call
    leftovers = [p for p in folder.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


async def test_shutdown_closes_live_sockets_quickly_without_ending_the_session(
    sqlite_settings: Settings,
) -> None:
    server, case_id = await start_live(sqlite_settings, LiveOptions(host_addresses=LOOPBACK))
    live = LiveServer(server, case_id, [])
    client = live.client("staff-1", "inspector")
    try:
        await client.connect()
        await client.wait_message("answer")
        started = time.monotonic()
        await server.close()
        assert time.monotonic() - started < 5
        await client.wait_for(lambda: client.close_code is not None, what="close")
        assert client.close_code == 1001 and client.state == "disconnected"
    finally:
        await client.close()


async def test_the_relays_audio_only_notice_reaches_the_subscribers_socket(
    live: LiveServer,
) -> None:
    publisher = live.client("staff-1", "inspector")
    await publisher.connect()
    watcher = live.client("staff-2", "observer", source=None)
    await watcher.connect()
    await watcher.media.wait_for_video("staff-1", frames=5, within=15)
    room = live.app[RELAY].get(live.room)
    assert room is not None
    subscription = room.subscription("staff-2", "staff-1")
    assert subscription is not None
    notice = subscription.policy.message(True)  # what the policy sends on a weak link
    room.notify("staff-2", notice)
    await watcher.wait_for(
        lambda: any(m.get("type") == "audio_only" for m in watcher.messages), what="notice"
    )
    assert [m for m in watcher.messages if m.get("type") == "audio_only"] == [notice]
    assert not any(m.get("type") == "audio_only" for m in publisher.messages)
