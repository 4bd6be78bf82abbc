"""Python participant on aiortc: publishes a test pattern or a file, receives and counts.

Transport-agnostic: methods take and return SDP strings; ``yunkan join`` wraps this with
the WebSocket signaling. It mirrors the relay's connection model (``signaling/relay.py``):
one publish connection that *we* offer, and one connection per remote publisher that the
*server* offers::

    client = MediaClient(host_addresses=("127.0.0.1",))
    offer = await client.publish_offer("testsrc")        # or a file path / RTSP URL / None
    await client.accept_publish_answer(answer_from_server)
    answer = await client.accept_subscription("inspector-7", offer_from_server)
    ...
    print(client.summary())   # what was sent and received (frames, resolution, fps)
    await client.close()

With ``decode=False`` (load generation) received frames are counted as encoded packets
without decoding, through the same hook the relay uses. With ``save_dir`` what arrives
from each publisher is also written to ``<save_dir>/<publisher>.webm`` as it is (the
relay's recorder; no transcoding), and video is decoded in-process for the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from recordings.recorder import Recorder, RecordingResult
from signaling.candidates import gather_on
from signaling.packets import install_packet_sink, vp8_dimensions

PATTERN_SIZE = (640, 480)
PATTERN_FPS = 30
# Eight vertical bars (RGB), 80 px each: what a snapshot of the test pattern must show.
PATTERN_BARS: tuple[tuple[int, int, int], ...] = (
    (235, 235, 235),
    (235, 235, 16),
    (16, 235, 235),
    (16, 235, 16),
    (235, 16, 235),
    (235, 16, 16),
    (16, 16, 235),
    (16, 16, 16),
)
_SQUARE = 64  # a moving white square shows that frames change


def _yuv(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = rgb
    y = 16 + (65.738 * r + 129.057 * g + 25.064 * b) / 256
    u = 128 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256
    v = 128 + (112.439 * r - 94.154 * g - 18.285 * b) / 256
    return round(y), round(u), round(v)


def pattern_frame(index: int) -> av.VideoFrame:
    """Colour bars with a white square whose position depends on ``index`` (2 s cycle)."""
    width, height = PATTERN_SIZE
    bar = width // len(PATTERN_BARS)
    yuv = [_yuv(c) for c in PATTERN_BARS]
    y_row = b"".join(bytes([y]) * bar for y, _, _ in yuv)
    u_row = b"".join(bytes([u]) * (bar // 2) for _, u, _ in yuv)
    v_row = b"".join(bytes([v]) * (bar // 2) for _, _, v in yuv)
    luma = bytearray(y_row * height)
    x = (index * 8) % (width - _SQUARE)
    top = (height - _SQUARE) // 2
    for row in range(top, top + _SQUARE):
        luma[row * width + x : row * width + x + _SQUARE] = b"\xeb" * _SQUARE
    u_plane = bytearray(u_row * (height // 2))
    v_plane = bytearray(v_row * (height // 2))
    for row in range(top // 2, (top + _SQUARE) // 2):
        start = row * (width // 2) + x // 2
        u_plane[start : start + _SQUARE // 2] = b"\x80" * (_SQUARE // 2)
        v_plane[start : start + _SQUARE // 2] = b"\x80" * (_SQUARE // 2)
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, data in zip(frame.planes, (luma, u_plane, v_plane), strict=True):
        plane.update(bytes(data))
    return frame


class CountingTrack(MediaStreamTrack):
    """Passes a source's frames on and counts them (what ``summary()`` reports as sent)."""

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self.source = source
        self.frames = 0

    async def recv(self) -> av.frame.Frame | av.Packet[Any]:
        frame = await self.source.recv()
        self.frames += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self.source.stop()


class TestPatternTrack(MediaStreamTrack):
    """640x480 colour bars at 30 fps; frames are pre-rendered so publishing is cheap."""

    kind = "video"

    def __init__(self, fps: int = PATTERN_FPS) -> None:
        super().__init__()
        self._fps = fps
        self._frames = [pattern_frame(i) for i in range(2 * fps)]
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index / self._fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = self._frames[self._index % len(self._frames)]
        frame.pts = self._index * (90000 // self._fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self._index += 1
        return frame


class ToneTrack(AudioStreamTrack):
    """A 440 Hz tone, 48 kHz mono s16, 20 ms frames."""

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        rate, samples = 48000, 960
        cycle = [
            int(8000 * math.sin(2 * math.pi * frequency * n / rate)) for n in range(rate // 10)
        ]
        pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in cycle)
        self._chunks = [pcm[i : i + samples * 2] for i in range(0, len(pcm), samples * 2)]
        self._count = 0
        self._t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        await asyncio.sleep(max(0.0, self._t0 + self._count * 0.02 - time.monotonic()))
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(self._chunks[self._count % len(self._chunks)])
        frame.sample_rate = 48000
        frame.pts = self._count * 960
        frame.time_base = fractions.Fraction(1, 48000)
        self._count += 1
        return frame


@dataclass
class ReceivedMedia:
    """What arrived from one remote publisher."""

    video_frames: int = 0
    audio_frames: int = 0
    video_bytes: int = 0
    """Encoded video bytes received (only counted when packets are taken, not decoded)."""
    width: int | None = None
    height: int | None = None
    subscribed_at: float = field(default_factory=time.monotonic)
    first_video_at: float | None = None
    last_video_at: float | None = None
    last_frame: av.VideoFrame | None = None

    @property
    def fps(self) -> float:
        if self.first_video_at is None or self.last_video_at is None or self.video_frames < 2:
            return 0.0
        span = self.last_video_at - self.first_video_at
        return (self.video_frames - 1) / span if span > 0 else 0.0

    @property
    def time_to_first_frame(self) -> float | None:
        if self.first_video_at is None:
            return None
        return self.first_video_at - self.subscribed_at

    def note_video(self, width: int | None, height: int | None) -> None:
        now = time.monotonic()
        if self.first_video_at is None:
            self.first_video_at = now
        self.last_video_at = now
        self.video_frames += 1
        if width is not None and height is not None:
            self.width, self.height = width, height

    def as_dict(self) -> dict[str, Any]:
        return {
            "video_frames": self.video_frames,
            "audio_frames": self.audio_frames,
            "resolution": f"{self.width}x{self.height}" if self.width else None,
            "fps": round(self.fps, 1),
            "time_to_first_frame": self.time_to_first_frame,
        }


class MediaClient:
    """One participant's peer connections (see module docstring)."""

    def __init__(
        self,
        *,
        ice_servers: tuple[RTCIceServer, ...] = (),
        host_addresses: tuple[str, ...] | None = None,
        decode: bool = True,
        save_dir: Path | None = None,
        keep_last_frame: bool = False,
        relay_only: bool = False,
        observer: Callable[[str, str, Any], None] | None = None,
    ) -> None:
        self._ice_servers = ice_servers
        self.relay_only = relay_only
        """Use TURN relay candidates only (WebRTC's iceTransportPolicy "relay")."""
        self._host_addresses = host_addresses
        self._decode = decode
        self._save_dir = save_dir
        self._keep_last_frame = keep_last_frame
        self._observer = observer
        """Called on arrival with ``(publisher, "audio", packet)`` for every audio packet and
        ``(publisher, "video", frame)`` for every decoded video frame (bench/weaklink.py reads
        the frame counter burnt into the picture); implies decoding packets ourselves."""
        self.publish_pc: RTCPeerConnection | None = None
        self.sent_tracks: list[MediaStreamTrack] = []
        self._sent_earlier = 0
        self._player: MediaPlayer | None = None
        self.subscriptions: dict[str, RTCPeerConnection] = {}
        self.received: dict[str, ReceivedMedia] = {}
        self._recorders: dict[str, Recorder] = {}
        self.saved: dict[str, RecordingResult] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def ice_servers(self) -> tuple[RTCIceServer, ...]:
        return self._ice_servers

    def use_ice_servers(self, servers: Sequence[Mapping[str, Any]]) -> None:
        """Take the ICE servers the signaling server offers (``welcome.ice_servers``, the
        browser's ``RTCIceServer`` JSON shape) for the peer connections made from now on."""
        out: list[RTCIceServer] = []
        for server in servers:
            urls = server.get("urls")
            if isinstance(urls, str):
                urls = [urls]
            if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                raise ValueError(f"ice server without urls: {server!r}")
            out.append(RTCIceServer(urls, server.get("username"), server.get("credential")))
        self._ice_servers = tuple(out)

    def _new_pc(self) -> RTCPeerConnection:
        return RTCPeerConnection(
            RTCConfiguration(
                iceServers=list(self._ice_servers),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
                iceTransportPolicy=(
                    RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
                ),
            )
        )

    async def _set_local(self, pc: RTCPeerConnection, description: RTCSessionDescription) -> str:
        with gather_on(self._host_addresses):
            await pc.setLocalDescription(description)
        return str(pc.localDescription.sdp)

    # -- publishing ---------------------------------------------------------------------
    async def publish_offer(
        self, source: str | Sequence[MediaStreamTrack] | None = "testsrc"
    ) -> str:
        """Offer our upstream: ``"testsrc"`` (pattern + tone), a media file/URL (anything
        FFmpeg opens, RTSP included), ready-made tracks, or None (receive only)."""
        if self.publish_pc is not None:
            await self.publish_pc.close()
        self._sent_earlier += self._current_sent_frames()  # a re-publish keeps counting
        pc = self.publish_pc = self._new_pc()
        tracks: list[MediaStreamTrack] = []
        if source == "testsrc":
            tracks = [ToneTrack(), TestPatternTrack()]
        elif isinstance(source, str):
            options = {}
            if source.startswith(("rtsp://", "rtsps://")):
                # Site cameras: interleaved TCP survives NAT and loss better than RTP over
                # UDP, and a dead camera fails after 10 s instead of hanging the join.
                options = {"rtsp_transport": "tcp", "timeout": "10000000"}
            self._player = MediaPlayer(source, options=options)
            tracks = [t for t in (self._player.audio, self._player.video) if t is not None]
            tracks = [CountingTrack(t) if t.kind == "video" else t for t in tracks]
        elif source is not None:
            tracks = list(source)
        for track in tracks:
            pc.addTransceiver(track, direction="sendonly")
        self.sent_tracks = tracks
        return await self._set_local(pc, await pc.createOffer())

    async def accept_publish_answer(self, answer_sdp: str) -> None:
        assert self.publish_pc is not None, "publish_offer() first"
        await self.publish_pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer_sdp, type="answer")
        )

    def sent_video_frames(self) -> int:
        """Video frames sent, over every publish connection of this client."""
        return self._sent_earlier + self._current_sent_frames()

    def _current_sent_frames(self) -> int:
        for track in self.sent_tracks:
            if isinstance(track, TestPatternTrack):
                return track._index
            if isinstance(track, CountingTrack):
                return track.frames
        return 0

    # -- subscribing --------------------------------------------------------------------
    async def accept_subscription(self, publisher: str, offer_sdp: str) -> str:
        """Answer the server's offer for ``publisher``'s media; receiving starts at once."""
        old = self.subscriptions.pop(publisher, None)
        if old is not None:
            await old.close()
        pc = self.subscriptions[publisher] = self._new_pc()
        media = self.received.setdefault(publisher, ReceivedMedia())
        media.subscribed_at = time.monotonic()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for transceiver in pc.getTransceivers():
            track = transceiver.receiver.track
            if track is None:
                continue
            if self._save_dir is not None or not self._decode or self._observer is not None:
                self._take_packets(transceiver.receiver, track.kind, publisher, media)
            else:
                self._spawn(self._consume(track, media))
        return await self._set_local(pc, await pc.createAnswer())

    def _take_packets(
        self, receiver: RTCRtpReceiver, kind: str, publisher: str, media: ReceivedMedia
    ) -> None:
        """Receive encoded packets: count them, save them (WebM, no transcoding) and, when
        decoding, decode video ourselves for the frame and resolution figures."""
        recorder = self._recorders.get(publisher)
        if recorder is None and self._save_dir is not None:
            recorder = Recorder(self._save_dir / f"{publisher}.webm")
            self._recorders[publisher] = recorder
        decoder = av.CodecContext.create("libvpx", "r") if self._decode else None

        def take(packet: av.Packet[Any]) -> None:
            if recorder is not None:
                recorder.write(kind, packet)
            if kind == "video":
                media.video_bytes += packet.size
            if kind == "audio":
                media.audio_frames += 1
                if self._observer is not None:
                    self._observer(publisher, kind, packet)
            elif decoder is not None:
                try:
                    frames = decoder.decode(packet)
                except av.FFmpegError:
                    return
                for frame in frames:
                    assert isinstance(frame, av.VideoFrame)
                    media.note_video(frame.width, frame.height)
                    if self._keep_last_frame:
                        media.last_frame = frame
                    if self._observer is not None:
                        self._observer(publisher, kind, frame)
            else:
                size = vp8_dimensions(bytes(packet)) if packet.is_keyframe else None
                media.note_video(*(size or (None, None)))

        install_packet_sink(receiver, kind, take, spawn=self._spawn)

    async def _consume(self, track: MediaStreamTrack, media: ReceivedMedia) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    media.note_video(frame.width, frame.height)
                    if self._keep_last_frame:
                        media.last_frame = frame
                else:
                    media.audio_frames += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- results ------------------------------------------------------------------------
    async def wait_for_video(self, publisher: str, frames: int = 1, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while True:
            media = self.received.get(publisher)
            if media is not None and media.video_frames >= frames:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {frames} video frames from {publisher}")
            await asyncio.sleep(0.01)

    def summary(self) -> dict[str, Any]:
        return {
            "sent": {
                "tracks": [t.kind for t in self.sent_tracks],
                "video_frames": self.sent_video_frames(),
            },
            "received": {p: m.as_dict() for p, m in self.received.items()},
            "saved": {
                p: {"path": str(r.path), "duration": r.duration, "size": r.size}
                for p, r in self.saved.items()
            },
        }

    async def reset(self) -> None:
        """Close every peer connection but keep what was received (and keep recording):
        after a drop the client builds new connections (aiortc has no ICE restart)."""
        await self._close_connections()

    async def close(self) -> None:
        for publisher, recorder in self._recorders.items():
            self.saved[publisher] = recorder.close()
        await self._close_connections()

    async def _close_connections(self) -> None:
        pcs = [*self.subscriptions.values()]
        if self.publish_pc is not None:
            pcs.append(self.publish_pc)
        await asyncio.gather(*(pc.close() for pc in pcs))
        if self._player is not None:
            for track in (self._player.audio, self._player.video):
                if track is not None:
                    track.stop()
            self._player = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.subscriptions.clear()
        self.publish_pc = None
