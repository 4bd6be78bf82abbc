"""Weak-uplink benchmark (issue 15): what the inspector sees when the phone's link is bad.

    .venv/bin/python bench/weaklink.py                      # full profiles, about 9 minutes
    .venv/bin/python bench/weaklink.py --seconds 20         # each impairment 20 s
    .venv/bin/python bench/weaklink.py --profiles weak_500k --publishers chromium,aiortc

Everything binds 127.0.0.1. For each profile two calls run one after the other, each
through its own :class:`bench.impair.ImpairProxy` with the same shaping on the phone's
uplink:

* **relay**: the phone (Chromium, fake camera from a generated y4m file) publishes to a real
  ``signaling.relay.RelayRoom`` (recording with live's ``RoomRecording``); an aiortc
  ``MediaClient`` subscribes over loopback, decodes, and reads the counter;
* **direct** (the anchor): the same phone page calls a second Chromium page directly, which
  reads the counter from its ``<video>`` (canvas, ``requestVideoFrameCallback``).

With ``--publishers chromium,aiortc`` the relay call also runs with the aiortc client as
the phone (``relay_aiortc``: a Python test pattern with the same counter).

The phone reaches the other side only through the proxy: both SDPs are rewritten by
``route_through`` so that each side's only remote candidate is a proxy port (see
bench/impair.py). Timeline of a call: ``--warm`` seconds unimpaired, the profile's
impairment for its duration, ``--restore`` seconds unimpaired again.

Every frame of the y4m file carries its number (mod the file's length; Chromium loops the
file) in a band of 24 black/white blocks at the top (16 bits + 8 check bits). The phone
page reads the counter from its own preview as it is captured, which gives each frame's
capture wall time (Date.now(), the same clock as Python's time.time()); the receiver
notes the wall time at which each counter value is decoded. Figures per call, over the
impairment and restore windows:

* ``longest_freeze_s``: the longest time without a new counter value;
* ``lag_median_s``, ``lag_max_s``: receive time − capture time of each new frame;
* ``time_to_live_s``: from the end of the impairment to the first frame with lag ≤ 0.5 s
  (null if none within ``--restore``);
* ``sent_bitrate_ratio``: the phone's outbound-rtp bytesSent + headerBytesSent (getStats)
  over the impairment, divided by the cap (null without a cap);
* ``audio_gap_max_s``: the longest gap between Opus packet arrivals at the receiver (relay:
  each packet at the aiortc subscriber; direct: inbound-rtp packetsReceived polled every
  50 ms);
* ``recording_gap_max_s`` (relay only): the longest gap between consecutive video
  timestamps of the relay's WebM.

The last line is one JSON object: ``{"profiles": {...}, "load_average": {...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import fractions
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import av
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402

from bench.impair import ProxyThread, Shaping, route_through  # noqa: E402
from signaling import assembly  # noqa: E402
from signaling.archive import RoomRecording  # noqa: E402
from signaling.assembly import VideoAssembler  # noqa: E402
from signaling.client import MediaClient, ToneTrack  # noqa: E402
from signaling.relay import RelayConfig, RelayRoom  # noqa: E402

LOOPBACK = ("127.0.0.1",)
JS = (Path(__file__).with_name("weaklink.js")).read_text()

# -- the counter ------------------------------------------------------------------------
COLS, ROWS, BITS, BAND = 12, 2, 24, 8  # as in weaklink.js
BLACK, WHITE = 16, 235


def check_bits(n: int) -> int:
    return (n ^ (n >> 8) ^ 0xA5) & 0xFF


def counter_band(width: int, height: int, n: int) -> bytes:
    """The top ``height // BAND`` luma rows carrying ``n`` (16 bits) and its check byte."""
    band = height // BAND
    value = ((n & 0xFFFF) << 8) | check_bits(n & 0xFFFF)
    rows = []
    for row in range(ROWS):
        line = bytearray()
        for col in range(COLS):
            bit = (value >> (BITS - 1 - (row * COLS + col))) & 1
            x0, x1 = col * width // COLS, (col + 1) * width // COLS
            line += bytes([WHITE if bit else BLACK]) * (x1 - x0)
        y0, y1 = row * band // ROWS, (row + 1) * band // ROWS
        rows.append(bytes(line) * (y1 - y0))
    return b"".join(rows)


def read_counter(frame: av.VideoFrame) -> int | None:
    """The counter in a decoded frame (any size: the band scales), None if unreadable."""
    plane = frame.planes[0]
    stride, width, height = plane.line_size, frame.width, frame.height
    band = height // BAND
    data = bytes(plane)
    value = 0
    for bit in range(BITS):
        row, col = divmod(bit, COLS)
        x = int((col + 0.5) * width / COLS)
        y = int((row + 0.5) * band / ROWS)
        if data[y * stride + x] > 128:
            value |= 1 << (BITS - 1 - bit)
    n = value >> 8
    return n if value & 0xFF == check_bits(n) else None


class Picture:
    """Camera-like luma below the band: a random texture panning 3 px a frame, with 32 rows
    of fresh noise a frame at a moving place (so the encoder always wants more bits)."""

    def __init__(self, width: int, height: int, seed: int = 15) -> None:
        import random

        self.width, self.height = width, height
        self.band = height // BAND
        self.rows = height - self.band
        rnd = random.Random(seed)
        table = bytes(40 + (i * 175) // 255 for i in range(256))
        self.texture = [
            rnd.randbytes(width * 2).translate(table) for _ in range(self.rows)
        ]  # each row twice the width so it can pan
        self._rnd = rnd
        self._table = table
        self.chroma = bytes([128]) * ((width // 2) * (height // 2))

    def luma(self, n: int) -> bytes:
        shift = (3 * n) % self.width
        body = bytearray(b"".join(row[shift : shift + self.width] for row in self.texture))
        fresh = min(32, self.rows)
        top = ((n * 16) % max(1, self.rows - fresh)) * self.width
        body[top : top + fresh * self.width] = os.urandom(fresh * self.width).translate(self._table)
        return counter_band(self.width, self.height, n) + bytes(body)

    def frame(self, n: int) -> bytes:
        """One yuv420p frame."""
        return self.luma(n) + self.chroma + self.chroma


def write_y4m(path: Path, width: int, height: int, fps: int, frames: int) -> Path:
    """The phone's camera: ``frames`` numbered frames; kept and reused if already there."""
    if path.exists() and path.stat().st_size > 0:
        return path
    picture = Picture(width, height)
    partial = path.with_suffix(".part")
    with partial.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for n in range(frames):
            out.write(b"FRAME\n")
            out.write(picture.frame(n))
    partial.rename(path)
    return path


# -- profiles ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    name: str
    shaping: Shaping
    seconds: float

    @property
    def cap_bps(self) -> float | None:
        return self.shaping.rate_bps


PROFILES = {
    "weak_500k": Profile("weak_500k", Shaping(rate_bps=500_000, queue_s=0.3, loss=0.02), 60),
    "cap_1m": Profile("cap_1m", Shaping(rate_bps=1_000_000, queue_s=0.3), 60),
    "outage_30s": Profile("outage_30s", Shaping(outage=True), 30),
}

GOALS = {
    "longest_freeze_s": ("≤", 2.0),
    "lag_median_s": ("≤", 1.5),
    "lag_max_s": ("≤", 1.5),
    "time_to_live_s": ("≤", 5.0),
    "sent_bitrate_ratio": ("≥", 0.6),
    "audio_gap_max_s": ("≤", 0.5),
    "recording_gap_max_s": ("≤", 2.0),
}
HIGHER_IS_BETTER = {"sent_bitrate_ratio"}


@dataclass(frozen=True)
class Options:
    width: int = 640
    height: int = 480
    fps: int = 20
    loop_s: int = 90
    warm_s: float = 10.0
    restore_s: float = 20.0

    @property
    def loop_frames(self) -> int:
        return self.fps * self.loop_s


# -- what one call produced, and its figures ----------------------------------------------


@dataclass
class Call:
    """Raw observations of one call (wall times, ``time.time()`` seconds)."""

    loop_frames: int
    fps: float
    local: list[tuple[float, int]] = field(default_factory=list)
    """(capture time, counter) as the phone saw its own frames."""
    frames: list[tuple[float, int]] = field(default_factory=list)
    """(receive time, counter) of every decoded frame at the receiver."""
    audio: list[float] = field(default_factory=list)
    sent: list[tuple[float, int]] = field(default_factory=list)
    """(time, bytes the phone has sent, payload + RTP headers)."""
    impaired_at: float = 0.0
    restored_at: float = 0.0
    ended_at: float = 0.0
    recording: Path | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def capture_times(self) -> tuple[list[int], list[float]]:
        """The phone's frames unwrapped to a running index ``k``, with capture times."""
        ks: list[int] = []
        ts: list[float] = []
        k = -1
        for t, n in sorted(self.local):
            if ks:
                step = (n - ks[-1] % self.loop_frames) % self.loop_frames
                if step == 0:
                    continue
                k = ks[-1] + step
            else:
                k = n
            ks.append(k)
            ts.append(t)
        return ks, ts

    def received(self) -> list[tuple[float, float]]:
        """(receive time, lag) of every *new* frame (counter beyond all before it)."""
        ks, ts = self.capture_times()
        if not ks:
            return []
        slack = int(self.fps * 0.5)
        out: list[tuple[float, float]] = []
        newest = -1
        for t, n in sorted(self.frames):
            i = bisect.bisect_right(ts, t) - 1
            if i < 0:
                continue
            limit = ks[i] + slack
            k = limit - ((limit - n) % self.loop_frames)
            if k <= newest or k < ks[0]:
                continue
            newest = k
            j = bisect.bisect_left(ks, k)
            if j < len(ks) and ks[j] == k:
                captured = ts[j]
            elif 0 < j < len(ks):  # between two preview readings
                k0, k1, t0, t1 = ks[j - 1], ks[j], ts[j - 1], ts[j]
                captured = t0 + (t1 - t0) * (k - k0) / (k1 - k0)
            else:
                captured = ts[min(j, len(ks) - 1)] + (k - ks[min(j, len(ks) - 1)]) / self.fps
            out.append((t, t - captured))
        return out

    def figures(self, cap_bps: float | None, recording: bool) -> dict[str, float | None]:
        start, restore, end = self.impaired_at, self.restored_at, self.ended_at
        new = [(t, lag) for t, lag in self.received() if start <= t <= end]
        times = [start, *(t for t, _ in new), end]
        lags = [lag for _, lag in new]
        live = next((t - restore for t, lag in new if t >= restore and lag <= 0.5), None)
        out: dict[str, float | None] = {
            "longest_freeze_s": max(b - a for a, b in itertools.pairwise(times)),
            "lag_median_s": statistics.median(lags) if lags else None,
            "lag_max_s": max(lags) if lags else None,
            "time_to_live_s": live,
            "sent_bitrate_ratio": self.sent_ratio(cap_bps),
            "audio_gap_max_s": max_gap(self.audio, start, end),
        }
        if recording:
            out["recording_gap_max_s"] = recording_gap(self.recording)
        return {k: None if v is None else round(v, 3) for k, v in out.items()}

    def longest_freeze_at(self) -> list[float] | None:
        """[start, end] of the longest freeze, seconds after the impairment began."""
        start, end = self.impaired_at, self.ended_at
        times = [start, *(t for t, _ in self.received() if start <= t <= end), end]
        if len(times) < 2:
            return None
        a, b = max(itertools.pairwise(times), key=lambda ab: ab[1] - ab[0])
        return [round(a - start, 2), round(b - start, 2)]

    def sent_ratio(self, cap_bps: float | None) -> float | None:
        if not cap_bps or len(self.sent) < 2:
            return None
        at_start = interpolate(self.sent, self.impaired_at)
        at_end = interpolate(self.sent, self.restored_at)
        seconds = self.restored_at - self.impaired_at
        return (at_end - at_start) * 8 / seconds / cap_bps


def interpolate(series: list[tuple[float, int]], t: float) -> float:
    times = [s[0] for s in series]
    i = bisect.bisect_left(times, t)
    if i <= 0:
        return float(series[0][1])
    if i >= len(series):
        return float(series[-1][1])
    (t0, v0), (t1, v1) = series[i - 1], series[i]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else float(v1)


def max_gap(times: list[float], start: float, end: float) -> float:
    inside = [start, *sorted(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(inside))


def recording_gap(path: Path | None) -> float | None:
    """Longest gap between consecutive video timestamps of a WebM (None: no file)."""
    if path is None or not path.exists():
        return None
    with av.open(str(path)) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        pts = sorted(
            float(p.pts * p.time_base)
            for p in container.demux(stream)
            if p.pts is not None and p.time_base is not None
        )
    return max((b - a for a, b in itertools.pairwise(pts)), default=None)


# -- the phones -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def blank_site() -> AsyncIterator[str]:
    """A blank page on 127.0.0.1 (a secure context for getUserMedia)."""
    app = web.Application()

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>weaklink</title>", content_type="text/html")

    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


def chromium_args(y4m: Path) -> list[str]:
    return [
        f"--use-file-for-fake-video-capture={y4m}",
        "--force-webrtc-ip-handling-policy=default_public_interface_only",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
    ]


class BrowserPhone:
    """The phone: a Chromium page publishing the y4m camera."""

    def __init__(self, page: Any, opts: Options) -> None:
        self.page, self.opts = page, opts

    async def offer(self) -> str:
        sdp: str = await self.page.evaluate(
            "([w, h, f]) => wl.publish(w, h, f)",
            [self.opts.width, self.opts.height, self.opts.fps],
        )
        return sdp

    async def accept(self, sdp: str) -> None:
        await self.page.evaluate("(sdp) => wl.accept(sdp)", sdp)

    async def republish(self) -> str:
        """A new publish connection with the same tracks (the page's rejoin); its offer."""
        sdp: str = await self.page.evaluate("() => wl.republish()")
        return sdp

    async def restart(self) -> str:
        """An ICE-restart offer on the same connection (the direct call's rejoin)."""
        sdp: str = await self.page.evaluate("() => wl.restart()")
        return sdp

    async def collect(self, call: Call) -> None:
        state = await self.page.evaluate("() => wl.state")
        call.local = [(t / 1000, n) for t, n in state["local"]]
        call.sent = [(row[0] / 1000, row[1]) for row in state["sent"]]
        last = state["sent"][-1] if state["sent"] else None
        call.detail["phone_last_stats"] = (
            dict(
                zip(
                    ["t", "bytes", "available_outgoing_bps", "width", "fps", "limitation"],
                    last,
                    strict=False,
                )
            )
            if last
            else None
        )
        call.detail["phone_estimate_bps"] = [
            (round(row[0] / 1000 - call.impaired_at, 1), row[2])
            for row in state["sent"][::10]
            if row[2] is not None
        ]
        if state["errors"]:
            call.detail["phone_errors"] = state["errors"]

    async def close(self) -> None:
        await self.page.close()


class CounterTrack(MediaStreamTrack):
    """The aiortc phone's camera: the same numbered pictures as the y4m, made live."""

    kind = "video"

    def __init__(self, opts: Options, local: list[tuple[float, int]]) -> None:
        super().__init__()
        self.opts, self.local = opts, local
        self.picture = Picture(opts.width, opts.height)
        self.index = 0
        self.start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.index / self.opts.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        n = self.index % self.opts.loop_frames
        data = await asyncio.to_thread(self.picture.frame, n)
        frame = av.VideoFrame(self.opts.width, self.opts.height, "yuv420p")
        luma = self.opts.width * self.opts.height
        chroma = luma // 4
        planes = (data[:luma], data[luma : luma + chroma], data[luma + chroma :])
        for plane, part in zip(frame.planes, planes, strict=True):
            plane.update(part)
        frame.pts = self.index * (90000 // self.opts.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self.local.append((time.time(), n))
        self.index += 1
        return frame


class AiortcPhone:
    """The phone as ``signaling.client.MediaClient`` publishing the counter and a tone."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.local: list[tuple[float, int]] = []
        self.client = MediaClient(host_addresses=LOOPBACK)
        self.sent: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def offer(self) -> str:
        return await self.client.publish_offer([ToneTrack(), CounterTrack(self.opts, self.local)])

    async def accept(self, sdp: str) -> None:
        await self.client.accept_publish_answer(sdp)
        self._task = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        pc = self.client.publish_pc
        assert pc is not None
        while True:
            total = 0
            for sender in pc.getSenders():
                for stats in (await sender.getStats()).values():
                    if getattr(stats, "type", "") == "outbound-rtp":
                        total += stats.bytesSent + 12 * stats.packetsSent
            self.sent.append((time.time(), total))
            await asyncio.sleep(0.5)

    async def collect(self, call: Call) -> None:
        call.local, call.sent = list(self.local), list(self.sent)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()


Phone = BrowserPhone | AiortcPhone


# -- the calls --------------------------------------------------------------------------


async def run_timeline(
    proxy: ProxyThread, profile: Profile, opts: Options, call: Call, first: Callable[[], bool]
) -> None:
    """Wait for the first counter at the receiver, then warm, impair, restore."""
    deadline = time.monotonic() + 30
    while not first():
        if time.monotonic() > deadline:
            raise RuntimeError("no readable frame at the receiver within 30 s")
        await asyncio.sleep(0.05)
    await asyncio.sleep(opts.warm_s)
    call.impaired_at = proxy.set_shaping(profile.shaping)
    await asyncio.sleep(profile.seconds)
    call.restored_at = proxy.set_shaping(Shaping())
    await asyncio.sleep(opts.restore_s)
    call.ended_at = time.time()
    call.detail["proxy"] = proxy.counters()


HEARTBEAT_S = 3.0
"""The phone page's WebSocket heartbeat timeout (web/static/live/live.js)."""


def backoff_s(attempt: int) -> float:
    """live.js ``scheduleReconnect``: 1 s × 1.6^attempt, at most 5 s."""
    return min(1.0 * 1.6**attempt, 5.0)


async def rejoin_like_the_page(
    profile: Profile, call: Call, rejoin: Callable[[], Awaitable[None]]
) -> None:
    """The signalling that the bench's calls otherwise lack, modelled on the phone page.

    A full outage also cuts the page's WebSocket. The page notices within its heartbeat
    timeout, retries with live.js's backoff, and each attempt fails while the link is down
    (here: at once; a real TCP connect may hang longer). The first attempt after the link is
    back gets through and the page rejoins: a new publish connection to the relay (whose
    ``Publication`` and subscriptions survive), or an ICE restart of the direct call. The
    shaped profiles never cut signalling, so nothing happens there.
    """
    if not profile.shaping.outage:
        return
    while True:
        await asyncio.sleep(0.05)
        if call.impaired_at:  # set by run_timeline when the impairment starts
            break
    t = call.impaired_at + HEARTBEAT_S
    attempt = 0
    while True:
        t += backoff_s(attempt)
        attempt += 1
        await asyncio.sleep(max(0.0, t - time.time()))
        if call.restored_at:
            break
    began = time.time()
    await rejoin()
    call.detail["rejoined_s"] = [round(began - call.restored_at, 3), round(time.time() - began, 3)]


@contextlib.asynccontextmanager
async def background(coro: Awaitable[None]) -> AsyncIterator[None]:
    task = asyncio.ensure_future(coro)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # re-raises what the task failed with


def watch_assembler(room: RelayRoom, call: Call) -> None:
    """Note when the relay's frame assembler gives frames up (relative to impairment start)."""
    sink = room.publication("phone").sinks().get("video")
    assembler = getattr(sink, "assembler", None)
    if not isinstance(assembler, VideoAssembler):
        return
    skip_gap = assembler._skip_gap
    gaps: list[float] = call.detail.setdefault("_gap_times", [])

    def noted() -> bool:
        gaps.append(time.time())
        return skip_gap()

    assembler._skip_gap = noted  # type: ignore[method-assign]


def assembler_figures(room: RelayRoom, call: Call) -> dict[str, Any]:
    """The relay assembler's counters: frames given up, late packets, repair time, key frames."""
    publication = room.publication("phone")
    sink = publication.sinks().get("video")
    assembler = getattr(sink, "assembler", None)
    out: dict[str, Any] = {
        "keyframes": publication.stats.keyframes,
        "keyframe_requests": publication.stats.keyframe_requests,
        "max_wait_s": assembly.MAX_WAIT,
        "nack_retry": assembly.NACK_RETRY,
    }
    if isinstance(assembler, VideoAssembler):
        out |= {
            "frames": assembler.frames,
            "gaps": assembler.gaps,
            "late": assembler.late,
            "lost": assembler.lost,
            "repair_s": round(assembler.repair, 3),
            "wait_s": round(assembler.wait(), 3),
            "nack_retries": assembler.nack_retries,
        }
    start = call.impaired_at
    out["gap_at_s"] = [round(t - start, 2) for t in call.detail.pop("_gap_times", [])]
    return out


async def relay_call(
    phone: Phone, profile: Profile, opts: Options, folder: Path, console: Any | None = None
) -> tuple[Call, Call | None]:
    """The phone → proxy → relay (recording) → aiortc subscriber reading the counter; with
    ``console`` (a Chromium page) also → that page, as the inspector's console sees it.

    The console's link to the relay goes through a proxy of its own that is never impaired
    (a Chromium page needs a routed candidate, as in the direct call). Both viewers watch the
    same call, so the aiortc viewer (frames shown on arrival) and the browser (its own
    jitter buffer and playout delay, like the direct call's receiver) are compared on the
    same packets.
    """
    call = Call(opts.loop_frames, opts.fps)

    def observe(_publisher: str, kind: str, item: Any) -> None:
        now = time.time()
        if kind == "audio":
            call.audio.append(now)
        else:
            n = read_counter(item)
            if n is not None:
                call.frames.append((now, n))

    recordings = RoomRecording(folder)
    room = RelayRoom("weaklink", RelayConfig(host_addresses=LOOPBACK), on_packet=recordings.feed)
    proxy = ProxyThread()
    console_proxy = ProxyThread() if console is not None else None
    viewer = MediaClient(host_addresses=LOOPBACK, observer=observe)
    try:
        offer = await phone.offer()
        answer = await room.add_participant("phone", route_through(offer, proxy.proxy.port_for_b))
        await phone.accept(route_through(answer, proxy.proxy.port_for_a))
        watch_assembler(room, call)
        sub_offer = await room.subscribe("viewer", "phone")
        await room.accept_answer(
            "viewer", "phone", await viewer.accept_subscription("phone", sub_offer)
        )
        if console is not None and console_proxy is not None:
            sub_offer = await room.subscribe("console", "phone")
            answer = await console.evaluate(
                "(sdp) => wl.receive(sdp)", route_through(sub_offer, console_proxy.proxy.port_for_b)
            )
            await room.accept_answer(
                "console", "phone", route_through(answer, console_proxy.proxy.port_for_a)
            )

        async def rejoin() -> None:
            assert isinstance(phone, BrowserPhone)
            offer = await phone.republish()
            answer = await room.add_participant(
                "phone", route_through(offer, proxy.proxy.port_for_b)
            )
            await phone.accept(route_through(answer, proxy.proxy.port_for_a))

        rejoining = (
            rejoin_like_the_page(profile, call, rejoin)
            if isinstance(phone, BrowserPhone)
            else asyncio.sleep(0)
        )
        async with background(rejoining):
            await run_timeline(proxy, profile, opts, call, lambda: bool(call.frames))
        await phone.collect(call)
        call.detail["assembler"] = assembler_figures(room, call)
        seen = None
        if console is not None:
            state = await console.evaluate("() => wl.state")
            seen = replace(
                call,
                frames=[(t / 1000, n) for t, n in state["frames"]],
                audio=[t / 1000 for t in state["audio"]],
                detail={"proxy": call.detail.get("proxy")},
            )
    finally:
        await viewer.close()
        await room.close()
        proxy.close()
        if console_proxy is not None:
            console_proxy.close()
        results = await asyncio.to_thread(recordings.close)
        call.recording = results[0][1].path if results else None
    return call, seen


async def direct_call(phone: BrowserPhone, receiver: Any, profile: Profile, opts: Options) -> Call:
    """The anchor: the phone page → proxy → a receiving Chromium page."""
    call = Call(opts.loop_frames, opts.fps)
    proxy = ProxyThread()
    try:
        offer = await phone.offer()
        answer = await receiver.evaluate(
            "(sdp) => wl.receive(sdp)", route_through(offer, proxy.proxy.port_for_b)
        )
        await phone.accept(route_through(answer, proxy.proxy.port_for_a))
        seen = {"n": 0}

        async def count() -> None:
            while True:
                seen["n"] = await receiver.evaluate("() => wl.state.frames.length")
                await asyncio.sleep(0.1)

        async def rejoin() -> None:
            offer = await phone.restart()
            answer = await receiver.evaluate(
                "(sdp) => wl.reoffer(sdp)", route_through(offer, proxy.proxy.port_for_b)
            )
            await phone.accept(route_through(answer, proxy.proxy.port_for_a))

        async with background(count()), background(rejoin_like_the_page(profile, call, rejoin)):
            await run_timeline(proxy, profile, opts, call, lambda: seen["n"] > 0)
        state = await receiver.evaluate("() => wl.state")
        call.frames = [(t / 1000, n) for t, n in state["frames"]]
        call.audio = [t / 1000 for t in state["audio"]]
        await phone.collect(call)
    finally:
        proxy.close()
    return call


async def new_page(browser: Any, site: str) -> Any:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(site)
    await page.add_script_tag(content=JS)
    return page


def use_nack_retry(mode: str) -> None:
    """Experiment: ``off`` (no repeated NACKs: the old code) or ``on`` (the default)."""
    assembly.NACK_RETRY = mode == "on"


async def run_profile(
    browser: Any,
    site: str,
    profile: Profile,
    opts: Options,
    publishers: list[str],
    folder: Path,
    retry_modes: Sequence[str | None] = (None,),
) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    details: dict[str, Any] = {}
    for publisher, retry in itertools.product(publishers, retry_modes):
        if retry is not None:
            use_nack_retry(retry)
        phone: Phone = (
            BrowserPhone(await new_page(browser, site), opts)
            if publisher == "chromium"
            else AiortcPhone(opts)
        )
        name = f"{profile.name}-{publisher}" + (f"-{retry}" if retry else "")
        console = await new_page(browser, site) if publisher == "chromium" else None
        try:
            call, seen = await relay_call(phone, profile, opts, folder / name, console)
        finally:
            await phone.close()
            if console is not None:
                await console.close()
        key = "relay" if publisher == "chromium" else f"relay_{publisher}"
        suffix = f"_nack_{retry}" if len(retry_modes) > 1 else ""
        out[key + suffix] = call.figures(profile.cap_bps, recording=True)
        details[key + suffix] = {**call.detail, "longest_freeze_at_s": call.longest_freeze_at()}
        if seen is not None:
            out["relay_console" + suffix] = seen.figures(profile.cap_bps, recording=False)
            details["relay_console" + suffix] = {
                **seen.detail,
                "longest_freeze_at_s": seen.longest_freeze_at(),
            }
    phone_page = BrowserPhone(await new_page(browser, site), opts)
    receiver = await new_page(browser, site)
    try:
        call = await direct_call(phone_page, receiver, profile, opts)
    finally:
        await phone_page.close()
        await receiver.close()
    out["direct"] = call.figures(profile.cap_bps, recording=False)
    details["direct"] = {**call.detail, "longest_freeze_at_s": call.longest_freeze_at()}
    print(json.dumps({"profile": profile.name, "detail": details}, default=str), flush=True)
    return out


def verdict(metric: str, value: float | None, direct: float | None) -> str:
    sign, goal = GOALS[metric]
    if value is None:
        return "n/a" if metric == "sent_bitrate_ratio" else "MISSED (none)"
    ok = value >= goal if sign == "≥" else value <= goal
    parts = [f"goal {sign} {goal:g}: {'ok' if ok else 'MISSED'}"]
    if metric == "sent_bitrate_ratio" and value > 1.2:
        parts.append("overshoot: the proxy's queue dropped the excess")
    if direct is not None and metric != "recording_gap_max_s":
        # 50 ms of slack: the resolution of the readings
        near = value * 1.5 >= direct if metric in HIGHER_IS_BETTER else value <= 1.5 * direct + 0.05
        parts.append(f"within 1.5x of direct: {'ok' if near else 'MISSED'}")
    return "; ".join(parts)


def report(results: dict[str, dict[str, dict[str, float | None]]]) -> None:
    for name, calls in results.items():
        print(f"\n== {name}: {PROFILES[name].shaping.describe()} for {PROFILES[name].seconds:g} s")
        direct = calls.get("direct", {})
        for metric in GOALS:
            for key, figures in calls.items():
                if metric not in figures:
                    continue
                value = figures[metric]
                shown = "—" if value is None else f"{value:g}"
                note = verdict(metric, value, direct.get(metric)) if key != "direct" else ""
                print(f"  {metric:22} {key:13} {shown:>8}   {note}")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from tests.browser import ARGS, CHROMIUM

    opts = Options(
        width=args.width,
        height=args.height,
        fps=args.fps,
        loop_s=args.loop,
        warm_s=args.warm,
        restore_s=args.restore,
    )
    cache = Path(tempfile.gettempdir())
    name = f"yunkan-weaklink-{opts.width}x{opts.height}-{opts.fps}-{opts.loop_frames}.y4m"
    y4m = await asyncio.to_thread(
        write_y4m, cache / name, opts.width, opts.height, opts.fps, opts.loop_frames
    )
    profiles = [PROFILES[p] for p in args.profiles.split(",")]
    if args.seconds:
        profiles = [Profile(p.name, p.shaping, args.seconds) for p in profiles]
        PROFILES.update({p.name: p for p in profiles})
    load_before = load_average()
    results: dict[str, dict[str, dict[str, float | None]]] = {}
    with tempfile.TemporaryDirectory(prefix="weaklink-") as tmp:
        async with async_playwright() as pw, blank_site() as site:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=ARGS + chromium_args(y4m)
            )
            try:
                for profile in profiles:
                    results[profile.name] = await run_profile(
                        browser,
                        site,
                        profile,
                        opts,
                        args.publishers.split(","),
                        Path(tmp),
                        args.nack_retry.split(",") if args.nack_retry else (None,),
                    )
            finally:
                await browser.close()
    report(results)
    return {
        "profiles": results,
        "load_average": {"before": load_before, "after": load_average()},
        "command": " ".join(sys.argv),
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--seconds", type=float, help="shorten every impairment to this")
    parser.add_argument("--warm", type=float, default=10.0, help="unimpaired seconds before")
    parser.add_argument("--restore", type=float, default=20.0, help="unimpaired seconds after")
    parser.add_argument("--publishers", default="chromium", help="chromium and/or aiortc")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=20)
    parser.add_argument("--loop", type=int, default=90, help="seconds of y4m before it loops")
    parser.add_argument(
        "--max-wait",
        type=float,
        help="experiment: signaling.assembly.MAX_WAIT (seconds a missing packet is waited for)",
    )
    parser.add_argument(
        "--nack-retry",
        type=_nack_modes,
        help="experiment, comma-separated, one relay call each in the same run: off (no"
        " repeated NACKs: the old code), on (the default)",
    )
    return parser.parse_args(argv)


def _nack_modes(value: str) -> str:
    """``--nack-retry``: comma-separated off/on (argparse reports anything else)."""
    if not value or any(mode not in ("off", "on") for mode in value.split(",")):
        raise argparse.ArgumentTypeError(f"{value!r}: give off, on or off,on")
    return value


def main() -> None:
    args = parse()
    if args.max_wait is not None:
        assembly.MAX_WAIT = args.max_wait
    out = asyncio.run(main_async(args))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
