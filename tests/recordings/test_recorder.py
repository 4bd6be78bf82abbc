"""The recorder: real relayed packets in, a WebM that PyAV opens out, even after SIGKILL."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import av
import pytest
from PIL import ImageChops, ImageStat

from recordings.recorder import OPUS_HEAD, Recorder, RecordingGap
from signaling.archive import RoomRecording
from signaling.client import MediaClient, pattern_frame
from signaling.packets import frame_number
from signaling.relay import RelayConfig, RelayRoom
from tests.recordings.pattern import encode_moving, moving_pattern

LOOPBACK = ("127.0.0.1",)
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


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
async def session(
    tmp_path: Path,
) -> AsyncIterator[tuple[RelayRoom, Recorder, MediaClient, list[int | None]]]:
    recorder = Recorder(tmp_path / "rec" / "applicant.webm")
    numbers: list[int | None] = []

    def record(_pid: str, kind: str, packet: av.Packet[Any]) -> None:
        if kind == "video":
            numbers.append(frame_number(packet))
        recorder.write(kind, packet, frame=frame_number(packet))

    room = RelayRoom("rec", RelayConfig(host_addresses=LOOPBACK), on_packet=record)
    client = MediaClient(host_addresses=LOOPBACK)
    yield room, recorder, client, numbers
    await client.close()
    await room.close()


async def test_session_is_recorded_without_transcoding(
    session: tuple[RelayRoom, Recorder, MediaClient, list[int | None]],
) -> None:
    room, recorder, client, numbers = session
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
    # The relay numbers frames consecutively when none is lost: no gap, nothing skipped.
    assert numbers and numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert (result.skipped, result.gaps, result.retimed) == (0, (), 0)

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


def test_waits_for_key_frame_and_retimes_non_increasing(tmp_path: Path) -> None:
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
    assert recorder.dropped == 2  # the two packets before the key frame
    result = recorder.close()
    # A timestamp that does not increase moves 1 ms on: the packet is kept.
    assert (result.video_packets, result.audio_packets, result.retimed) == (3, 2, 2)
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


def decoded_matches_source(path: Path, numbers: list[int]) -> None:
    """Every frame in the file decodes, in order, to the picture that was encoded."""
    with av.open(str(path)) as container:
        assert container.streams.video[0].width == 320
        demuxed = [p for p in container.demux(video=0) if p.size]
    assert len(demuxed) == len(numbers)
    decoder = av.CodecContext.create("vp8", "r")
    pts = [p.pts for p in demuxed]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    for packet, number in zip(demuxed, numbers, strict=True):
        frames = decoder.decode(packet)
        assert len(frames) == 1, f"frame {number} did not decode"
        difference = ImageChops.difference(frames[0].to_image(), moving_pattern(number))
        error = sum(ImageStat.Stat(difference).mean) / 3
        assert error < 4.0, f"frame {number} differs from its source by {error:.1f} levels"


def test_burst_after_a_stall_keeps_every_frame(tmp_path: Path) -> None:
    """A 2 s server stall: the frames captured meanwhile arrive at once (equal arrival
    times, then later ones arriving 'before' their capture time). None is dropped, the
    file plays them at their capture times, and each decodes to its picture."""
    video = encode_moving(0, 150)
    video[100].pts = video[99].pts  # a publisher stamping two frames alike: re-timed, kept
    recorder = Recorder(tmp_path / "burst.webm")
    t0 = 1000.0
    audio_pts = 0
    for number, packet in enumerate(video):
        captured = t0 + number / 30
        if 30 <= number < 90:
            arrival = t0 + 3.0  # the stall: everything since 1.0 s arrives at 3.0 s
        elif number >= 90:
            arrival = captured - 0.004 * (number % 3)  # decreasing now and then
        else:
            arrival = captured
        recorder.write("video", packet, arrival, frame=number)
        for _ in range(2):  # two audio packets per video frame, in the same burst
            recorder.write("audio", make_packet(b"\xfc" * 10, audio_pts, 48000, True), arrival)
            audio_pts += 800
    result = recorder.close()
    assert result.video_packets == 150
    assert result.audio_packets == 300
    assert result.retimed == 1 and result.skipped == 0 and result.gaps == ()
    assert 4.9 < result.duration < 5.1  # the capture span, not squeezed or stretched
    with av.open(str(result.path)) as container:
        audio = [p for p in container.demux(audio=0) if p.size]
    assert len(audio) == 300
    decoded_matches_source(result.path, list(range(150)))


def test_lost_frames_are_skipped_to_the_next_key_frame_and_reported(tmp_path: Path) -> None:
    """Frames 40-44 never reach the relay: the inter frames after them are not muxed (they
    would decode to garbage), a key frame is asked for at once, and the gap is reported when
    the picture resumes on the next key frame."""
    video = encode_moving(0, 60) + encode_moving(60, 30)  # a key frame again at 60
    recorder = Recorder(tmp_path / "loss.webm", audio=False)
    asked: list[float] = []
    gaps: list[RecordingGap] = []
    recorder.on_loss = lambda: asked.append(time.monotonic())
    recorder.on_gap = gaps.append
    for number, packet in enumerate(video):
        if 40 <= number < 45:
            continue
        recorder.write("video", packet, 1000.0 + number / 30, frame=number)
    result = recorder.close()
    assert len(asked) == 1
    assert len(gaps) == 1 and result.gaps == tuple(gaps)
    gap = gaps[0]
    assert (gap.frames_lost, gap.frames_skipped, gap.cause) == (5, 15, "frames_lost")
    assert abs(gap.start - 39 / 30) < 0.002 and abs(gap.length - 21 / 30) < 0.002
    assert result.skipped == 15 and result.video_packets == 70
    decoded_matches_source(result.path, list(range(40)) + list(range(60, 90)))


def test_a_loss_without_a_new_key_frame_is_a_gap_to_the_end(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "ended.webm", audio=False)
    for number, packet in enumerate(encode_moving(0, 30)):
        if number != 20:
            recorder.write("video", packet, 1000.0 + number / 30, frame=number)
    result = recorder.close()
    assert [(g.cause, g.frames_lost, g.frames_skipped) for g in result.gaps] == [("ended", 1, 9)]
    decoded_matches_source(result.path, list(range(20)))


def test_room_recording_asks_for_a_key_frame_and_reports_the_gap(tmp_path: Path) -> None:
    """The room's tape reads the relay's frame numbers off the packets (as the relay's
    publication stamps them), asks that publisher for a key frame at the loss and reports
    the gap when the picture resumes."""
    asked: list[str] = []
    reported: list[tuple[str, RecordingGap]] = []
    tape = RoomRecording(
        tmp_path / "room",
        request_keyframe=asked.append,
        on_gap=lambda who, gap: reported.append((who, gap)),
    )
    for number, packet in enumerate(encode_moving(0, 40) + encode_moving(40, 20)):
        packet.opaque = number
        if number not in (10, 11, 12):
            tape.feed("applicant-1", "video", packet)
    ((who, result),) = tape.close()
    assert who == "applicant-1" and asked == ["applicant-1"]
    assert [(w, g.frames_lost, g.frames_skipped) for w, g in reported] == [("applicant-1", 3, 27)]
    assert result.gaps == (reported[0][1],) and result.skipped == 27
    decoded_matches_source(result.path, list(range(10)) + list(range(40, 60)))


async def test_a_stalled_relay_records_what_was_sent_and_its_gap(tmp_path: Path) -> None:
    """The relay's event loop stalls for 2 s (what a stopped server looks like from the
    network) while a real aiortc publisher in another thread keeps sending: the packets pile
    up in the socket buffer and arrive as a burst (should the buffer overflow, what could not
    be decoded must be a reported gap). Every frame is kept (the old recorder dropped about
    30 here) and decodes to the picture sent: the square where the publisher drew it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def there(coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def new_client() -> MediaClient:
        return MediaClient(host_addresses=LOOPBACK)

    room: RelayRoom | None = None
    gaps: list[RecordingGap] = []
    tape = RoomRecording(
        tmp_path / "stall",
        request_keyframe=lambda pid: room.publication(pid).request_keyframe() if room else None,
        on_gap=lambda _pid, gap: gaps.append(gap),
    )
    room = RelayRoom("stall", RelayConfig(host_addresses=LOOPBACK), on_packet=tape.feed)
    phone = await there(new_client())
    try:
        answer = await room.add_participant("applicant", await there(phone.publish_offer()))
        await there(phone.accept_publish_answer(answer))
        await asyncio.sleep(3.0)
        time.sleep(2.0)  # noqa: ASYNC251 - the stall: this loop stops, the publisher goes on
        await asyncio.sleep(4.0)
        stats = room.publication("applicant").stats
    finally:
        ((_, result),) = tape.close()
        await room.close()
        await there(phone.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

    with av.open(str(result.path)) as container:
        demuxed = [p for p in container.demux(video=0) if p.size]
    assert len(demuxed) == result.video_packets
    assert result.video_packets + result.skipped >= stats.packets["video"] - 2  # none dropped
    assert result.gaps == tuple(gaps) or len(result.gaps) == len(gaps) + 1  # + one to the end
    first = demuxed[0].pts
    decoder = av.CodecContext.create("vp8", "r")
    for packet in demuxed:
        (frame,) = decoder.decode(packet)
        assert packet.pts is not None and first is not None
        index = round((packet.pts - first) * 30 / 1000)  # the file keeps the RTP (capture) time
        got = frame.to_image()
        want = pattern_frame(index % 60).to_image()
        error = sum(ImageStat.Stat(ImageChops.difference(got, want)).mean) / 3
        assert error < 6.0, f"frame at {packet.pts} ms (#{index}) is off by {error:.1f} levels"
    assert demuxed[-1].pts is not None and demuxed[-1].pts > 8000  # it resumed after the stall
    for gap in result.gaps:
        assert gap.frames_lost > 0 and gap.cause == "frames_lost"


async def test_publisher_reconnect_leaves_its_outage_in_the_file(
    session: tuple[RelayRoom, Recorder, MediaClient, list[int | None]],
) -> None:
    """A reconnect gives the relay a new RTP origin; the publication continues it after the
    time that passed, so the file keeps the outage (the recorder trusts RTP time for late
    packets and no longer re-anchors them) and the frames after it are not squeezed in."""
    room, recorder, first, numbers = session
    answer = await room.add_participant("applicant", await first.publish_offer("testsrc"))
    await first.accept_publish_answer(answer)
    await asyncio.sleep(2.0)
    await first.close()  # the phone drops; 2.5 s later it is back on a new connection
    await asyncio.sleep(2.5)
    second = MediaClient(host_addresses=LOOPBACK)
    try:
        answer = await room.add_participant("applicant", await second.publish_offer("testsrc"))
        await second.accept_publish_answer(answer)
        await asyncio.sleep(2.0)
    finally:
        await second.close()
    result = recorder.close()
    assert (result.skipped, result.gaps) == (0, ())  # the numbering continued
    assert numbers and numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    with av.open(str(result.path)) as container:
        pts = [p.pts for p in container.demux(video=0) if p.size and p.pts is not None]
    jumps = [b - a for a, b in itertools.pairwise(pts)]
    assert max(jumps) > 2500  # ms: the outage is there, where it happened
    assert 5.5 < result.duration < 7.5
