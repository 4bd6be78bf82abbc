"""The pre-call media test (signaling/echo.py, signaling/precall.py) with a real aiortc peer:
its own video comes back through the relay; forged, foreign or closed links, unknown tests
and junk SDP are refused with their codes and leave nothing open."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from signaling.echo import EchoTests
from signaling.handlers import RELAY
from signaling.precall import ECHO_TESTS
from tests.signaling.conftest import LiveServer


def _echo_rooms(live: LiveServer) -> list[str]:
    return [r for r in live.app[RELAY]._rooms if r.startswith("echo-")]


async def test_own_video_comes_back_through_the_relay(live: LiveServer) -> None:
    token = live.token("applicant-2", "applicant", "张三")
    base = live.server.make_url(f"/api/v1/live/echo/{token}")
    up, down = RTCPeerConnection(), RTCPeerConnection()
    back: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @down.on("track")
    def _track(track: Any) -> None:
        if track.kind == "video" and not back.done():
            back.set_result(track)

    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(base, json={}) as r:
                assert r.status == 201, await r.text()
                started = await r.json()
            assert started["seconds"] == 20.0 and isinstance(started["ice_servers"], list)
            url = f"{base}/{started['echo']}"
            up.addTransceiver(VideoStreamTrack(), direction="sendonly")
            await up.setLocalDescription(await up.createOffer())
            async with http.post(url + "/offer", json={"sdp": up.localDescription.sdp}) as r:
                assert r.status == 200, await r.text()
                sdp = await r.json()
            await up.setRemoteDescription(RTCSessionDescription(sdp["answer"], "answer"))
            await down.setRemoteDescription(RTCSessionDescription(sdp["offer"], "offer"))
            await down.setLocalDescription(await down.createAnswer())
            async with http.post(url + "/answer", json={"sdp": down.localDescription.sdp}) as r:
                assert r.status == 200, await r.text()
            track = await asyncio.wait_for(back, 10)
            frame = await asyncio.wait_for(track.recv(), 10)
            assert frame.width == 640 and frame.height == 480
            assert len(_echo_rooms(live)) == 1

            # someone else's link cannot touch this test
            other = live.token("applicant-3", "applicant", "李四")
            foreign = live.server.make_url(f"/api/v1/live/echo/{other}/{started['echo']}")
            async with http.delete(foreign) as r:
                assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
            async with http.delete(url) as r:
                assert r.status == 204
            assert _echo_rooms(live) == []
            async with http.post(url + "/answer", json={"sdp": "v=0"}) as r:
                assert r.status == 404
    finally:
        await up.close()
        await down.close()


async def test_refusals(live: LiveServer) -> None:
    applicant = live.token("applicant-2", "applicant", "张三")
    console = live.token("staff-1", "inspector", "王科员")
    async with aiohttp.ClientSession() as http:

        async def post(path: str, body: Any) -> tuple[int, dict[str, Any]]:
            async with http.post(live.server.make_url(path), json=body) as r:
                return r.status, await r.json()

        status, body = await post("/api/v1/live/echo/forged.token", {})
        assert (status, body["error"]["code"]) == (403, "link_refused")
        assert body["error"]["message"] == "视频链接无效或已过期"
        status, body = await post(f"/api/v1/live/echo/{console}", {})
        assert (status, body["error"]["code"]) == (401, "unauthenticated")
        status, body = await post(f"/api/v1/live/echo/{applicant}", {})
        assert status == 201
        echo = body["echo"]
        status, body = await post(f"/api/v1/live/echo/{applicant}/{echo}/offer", {"sdp": 5})
        assert status == 422
        status, body = await post(
            f"/api/v1/live/echo/{applicant}/{echo}/offer", {"sdp": "v=0\r\nnot sdp"}
        )
        assert status == 422 and body["error"]["code"] == "validation_failed", body
        # a second start replaces the first: one test per participant
        status, again = await post(f"/api/v1/live/echo/{applicant}", {})
        assert status == 201 and again["echo"] != echo
        assert len(_echo_rooms(live)) == 1
        status, body = await post(f"/api/v1/live/echo/{applicant}/{echo}/offer", {"sdp": "v=0"})
        assert status == 404

        # a full node says so instead of opening more rooms
        tests: EchoTests = live.app[ECHO_TESTS]
        tests.limit = 1
        status, body = await post(f"/api/v1/live/echo/{live.token('guest-1', 'expert')}", {})
        assert (status, body["error"]["code"]) == (503, "echo_busy")
        assert len(_echo_rooms(live)) == 1


async def test_a_test_ends_by_itself(live: LiveServer) -> None:
    tests: EchoTests = live.app[ECHO_TESTS]
    tests.lifetime = 0.2
    test = await tests.start("case-1/applicant-2")
    assert _echo_rooms(live) == [test.room.room_id]
    for _ in range(50):
        if not _echo_rooms(live):
            break
        await asyncio.sleep(0.05)
    assert _echo_rooms(live) == [] and len(tests) == 0
