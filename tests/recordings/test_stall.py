"""A 2 s SIGSTOP of the server process mid-call: the recording filed on the case decodes,
frame by frame, to the test pattern the phone sent (no smeared frames), and whatever the
stall cost is on the case as a ``recording.gap`` event or nothing was lost at all."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from PIL import ImageChops, ImageStat

from server.settings import Settings
from signaling.client import MediaClient, pattern_frame
from signaling.wsclient import SignalingClient
from tests.booking.servers import free_port

LOOPBACK = ("127.0.0.1",)
ROOT = Path(__file__).resolve().parents[2]
CYCLE = 60  # the test pattern repeats every 2 s at 30 fps
WANT = [pattern_frame(i).to_image() for i in range(CYCLE)]


def error(got: Any, index: int) -> float:
    """Mean difference in levels between a decoded frame and pattern frame ``index``."""
    return float(sum(ImageStat.Stat(ImageChops.difference(got, WANT[index % CYCLE])).mean) / 3)


@pytest.fixture
async def server(
    tmp_path: Path, sqlite_settings: Settings
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, Any], str]]:
    port = free_port()
    data = sqlite_settings.data_dir  # with the migrated template database
    log = (tmp_path / "server.log").open("wb")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests" / "recordings" / "live_child.py"),
        str(data),
        str(port),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "YUNKAN_LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        assert line, (tmp_path / "server.log").read_text(errors="replace")[-3000:]
        yield child, json.loads(line), f"http://127.0.0.1:{port}"
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGCONT)
            child.terminate()
            try:
                await asyncio.wait_for(child.wait(), 15)
            except TimeoutError:
                child.kill()
                await child.wait()
        log.close()


async def test_a_stopped_server_leaves_a_clean_recording_and_its_gap(
    server: tuple[asyncio.subprocess.Process, dict[str, Any], str], tmp_path: Path
) -> None:
    child, info, url = server
    ws = url.replace("http://", "ws://") + "/live/ws"
    inspector = SignalingClient(
        ws,
        info["inspector"],
        source=None,
        media=MediaClient(host_addresses=LOOPBACK),
        auto_admit=True,
        login_token=info["login"],
    )
    phone = SignalingClient(
        ws, info["applicant"], source="testsrc", media=MediaClient(host_addresses=LOOPBACK)
    )
    http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {info['login']}"})
    case = f"{url}/api/v1/cases/{info['case_id']}"
    try:
        await inspector.connect()
        await phone.connect()
        await phone.wait_state("admitted", within=20)
        await inspector.media.wait_for_video("applicant-1", frames=30, within=20)
        await asyncio.sleep(2.0)
        os.kill(child.pid, signal.SIGSTOP)  # the whole server stops; the phone keeps sending
        stopped = time.monotonic()
        await asyncio.sleep(2.0)
        os.kill(child.pid, signal.SIGCONT)
        await asyncio.sleep(4.0)
        sent = phone.media.sent_video_frames()
        await inspector.send({"type": "end"})
        await phone.wait_state("ended", within=20)
        for _ in range(200):
            body = await (await http.get(case)).json()
            if body["recordings"]:
                break
            await asyncio.sleep(0.1)
        (recording,) = body["recordings"]
        async with http.get(f"{url}{recording['url']}") as r:
            assert r.status == 200
            (tmp_path / "filed.webm").write_bytes(await r.read())
        verified = await (await http.get(f"{case}/verify")).json()
    finally:
        for client in (inspector, phone):
            await client.close()
        await http.close()
    assert time.monotonic() - stopped > 2.0
    assert verified["ok"] is True, verified

    with av.open(str(tmp_path / "filed.webm")) as container:
        demuxed = [p for p in container.demux(video=0) if p.size]
    decoder = av.CodecContext.create("vp8", "r")
    first = demuxed[0].pts
    assert first is not None
    offset: int | None = None
    pts: list[int] = []
    for packet in demuxed:
        (frame,) = decoder.decode(packet)
        assert packet.pts is not None
        got = frame.to_image()
        if offset is None:  # which pattern frame the recording starts on
            offset = min(range(CYCLE), key=lambda i: error(got, i))
        index = offset + round((packet.pts - first) * 30 / 1000)  # the file keeps capture time
        off = error(got, index)
        assert off < 6.0, f"frame at {packet.pts} ms (#{index}) is off by {off:.1f} levels"
        pts.append(packet.pts)

    steps = [b - a for a, b in itertools.pairwise(pts)]
    gaps = [e["data"] for e in body["timeline"] if e["kind"] == "recording.gap"]
    print(
        f"sent {sent} frames, recorded {len(demuxed)}, skipped {recording['skipped']}, "
        f"gaps {recording['gaps']}, chain gaps {gaps}, longest step {max(steps)} ms"
    )
    assert pts[-1] - first > 7500  # it recorded on after the stall (ends ~5 s in), to the end
    if recording["gaps"]:
        # Frames were lost in the stall: each hole is a gap event on the chain, with its
        # length where the file's pictures jump.
        assert len(gaps) >= len([g for g in recording["gaps"] if g["cause"] == "frames_lost"])
        for gap in recording["gaps"]:
            assert gap["frames_lost"] > 0
        assert max(steps) > 100
    else:
        # Nothing lost: the burst was re-timed to capture time, not dropped; every frame
        # the phone sent while the server was stopped is in the file, at 30 fps.
        assert recording["skipped"] == 0 and gaps == []
        assert max(steps) < 100, steps
        assert len(demuxed) >= sent - 45  # before the first key frame / after "end"
