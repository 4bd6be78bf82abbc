"""The recorder: real relayed packets in, a WebM that PyAV opens out, even after SIGKILL."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from recordings.recorder import OPUS_HEAD, Recorder
from signaling.client import MediaClient
from signaling.relay import RelayConfig, RelayRoom

LOOPBACK = ("127.0.0.1",)
ROOT = Path(__file__).resolve().parents[2]


def media_durations(path: Path) -> dict[str, float]:
    """Seconds of media per stream type, from the packets actually in the file."""
    spans: dict[str, list[float]] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None or not packet.size:
                continue
            t = float(packet.pts * packet.time_base)
            span = spans.setdefault(packet.stream.type, [t, t])
            span[0], span[1] = min(span[0], t), max(span[1], t)
    return {kind: end - start for kind, (start, end) in spans.items()}


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[tuple[RelayRoom, Recorder, MediaClient]]:
    recorder = Recorder(tmp_path / "rec" / "applicant.webm")
    room = RelayRoom(
        "rec",
        RelayConfig(host_addresses=LOOPBACK),
        on_packet=lambda _pid, kind, packet: recorder.write(kind, packet),
    )
    client = MediaClient(host_addresses=LOOPBACK)
    yield room, recorder, client
    await client.close()
    await room.close()


async def test_session_is_recorded_without_transcoding(
    session: tuple[RelayRoom, Recorder, MediaClient],
) -> None:
    room, recorder, client = session
    answer = await room.add_participant("applicant", await client.publish_offer("testsrc"))
    await client.accept_publish_answer(answer)
    seconds = 6.0
    await asyncio.sleep(seconds)
    result = recorder.close()

    data = result.path.read_bytes()
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert seconds - 1.0 < result.duration < seconds + 0.5
    stats = room.publication("applicant").stats
    # Every forwarded video packet after the first key frame is in the file, byte for byte.
    assert result.video_packets >= stats.packets["video"] - 2

    with av.open(str(result.path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert (video.codec_context.name, video.width, video.height) == ("vp8", 640, 480)
        assert audio.codec_context.name == "opus"
        assert audio.codec_context.extradata == OPUS_HEAD
        assert container.duration is not None
        assert abs(container.duration / 1_000_000 - result.duration) < 0.5
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == result.video_packets
    durations = media_durations(result.path)
    assert durations["video"] > seconds - 1.0
    assert durations["audio"] > seconds - 1.0


def make_packet(data: bytes, pts: int, rate: int, key: bool) -> av.Packet[Any]:
    packet = av.Packet(data)
    packet.pts = pts
    packet.time_base = Fraction(1, rate)
    packet.is_keyframe = key
    return packet


def test_waits_for_key_frame_and_drops_non_increasing(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "x.webm")
    delta = b"\x31" + bytes(20)
    key = bytes([0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]) + bytes(20)
    recorder.write("audio", make_packet(b"\xfc" * 10, 0, 48000, True), arrival=100.0)
    recorder.write("video", make_packet(delta, 0, 90000, False), arrival=100.0)
    assert not recorder.started  # nothing before the first key frame
    recorder.write("video", make_packet(key, 3000, 90000, True), arrival=100.1)
    assert recorder.started
    recorder.write("video", make_packet(delta, 3000, 90000, False), arrival=100.13)
    recorder.write("video", make_packet(delta, 6000, 90000, False), arrival=100.14)
    recorder.write("audio", make_packet(b"\xfc" * 10, 960, 48000, True), arrival=100.11)
    recorder.write("audio", make_packet(b"\xfc" * 10, 960, 48000, True), arrival=100.12)
    assert recorder.dropped == 4
    result = recorder.close()
    assert (result.video_packets, result.audio_packets) == (2, 1)
    with av.open(str(result.path)) as container:
        assert container.streams.video[0].width == 640


def test_sigkilled_recording_keeps_all_but_the_last_seconds(tmp_path: Path) -> None:
    path = tmp_path / "killed.webm"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "recordings" / "record_child.py"), str(path)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"recording"
        recorded = 5.0
        time.sleep(recorded)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    durations = media_durations(path)
    assert durations["video"] > recorded - 2.0
    assert durations["audio"] > recorded - 2.0
    with av.open(str(path)) as container:
        assert container.streams.video[0].width == 640
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded > (recorded - 2.0) * 25


def test_outage_keeps_wall_clock_time(tmp_path: Path) -> None:
    """After a 10 s outage (a reconnect rebases RTP time to continue seamlessly) the file
    shows the gap instead of squeezing it out."""
    recorder = Recorder(tmp_path / "gap.webm", audio=False)
    key = bytes([0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]) + bytes(20)
    for i in range(30):
        recorder.write("video", make_packet(key, i * 3000, 90000, True), arrival=10 + i / 30)
    for i in range(30, 60):  # RTP time continues, the wall clock jumped by 10 s
        recorder.write("video", make_packet(key, i * 3000, 90000, True), arrival=20 + i / 30)
    result = recorder.close()
    assert 11.9 < result.duration < 12.0  # 0-0.97 s, then 11-11.97 s
    assert media_durations(result.path)["video"] > 11.9
