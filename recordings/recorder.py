"""Incremental WebM recording of one participant's forwarded VP8 + Opus packets.

No transcoding: the relay's ``av.Packet`` s are muxed as they are (PyAV ``add_mux_stream``;
no codec is ever opened). What makes such a file play well, learnt the hard way:

* ``container.mux()`` rewrites a packet's time base in place, and the relay shares each
  packet with every subscriber, so we mux a *copy*.
* The file starts on a VP8 key frame (audio before it is dropped), and the video track
  needs width and height, which we read from that key frame's header.
* Audio and video come with unrelated RTP clocks, so each stream is anchored to the wall
  clock of its first packet; timestamps that do not increase are dropped, and a stream
  whose RTP time strays more than :data:`REANCHOR_AFTER` seconds from the wall clock (a
  publisher reconnect, a long outage) is re-anchored instead of being squeezed.
* The Opus track carries an ``OpusHead`` as CodecPrivate (strict players insist).
* Matroska clusters are closed every ``cluster_ms`` and the I/O buffer is flushed after
  every packet, so a process killed with SIGKILL leaves a file that demuxes up to the last
  closed cluster (about a second before the kill). Cues and duration are only written on
  :meth:`Recorder.close`.

Calls are synchronous and cheap (no codec work); call them from the event loop.
"""

from __future__ import annotations

import hashlib
import io
import struct
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.container import OutputContainer
from av.stream import Stream

from signaling.packets import vp8_dimensions

MS = Fraction(1, 1000)
REANCHOR_AFTER = 1.0
# RFC 7845 §5.1: version 1, 2 channels, pre-skip 312, 48 kHz, gain 0, mapping family 0.
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 312, 48000, 0, 0)


@dataclass(frozen=True)
class RecordingResult:
    path: Path
    duration: float
    """Seconds from the first to the last muxed packet (0 if nothing was recorded)."""
    size: int
    sha256: str
    video_packets: int
    audio_packets: int
    started_at: float | None
    """Wall-clock time (epoch seconds) of the first muxed packet."""


@dataclass
class _Anchor:
    first_pts: int
    time_base: Fraction
    first_offset: float  # seconds since the recording started (moves on re-anchoring)
    last_ms: int = -1
    start_ms: int = -1  # the stream's first muxed timestamp


class Recorder:
    """Writes ``path`` incrementally; see the module docstring. One participant per file."""

    def __init__(
        self, path: Path, *, video: bool = True, audio: bool = True, cluster_ms: int = 1000
    ) -> None:
        if not (video or audio):
            raise ValueError("a recording needs audio, video or both")
        self.path = Path(path)
        self._want = {"video": video, "audio": audio}
        self._cluster_ms = cluster_ms
        self._container: OutputContainer | None = None
        self._streams: dict[str, Stream] = {}
        self._anchors: dict[str, _Anchor] = {}
        self._t0: float | None = None
        self._counts = {"video": 0, "audio": 0}
        self.dropped = 0
        self.closed = False

    @property
    def started(self) -> bool:
        return self._container is not None

    def write(self, kind: str, packet: av.Packet[Any], arrival: float | None = None) -> None:
        """Mux ``packet`` (``kind`` "audio" or "video") that arrived at ``arrival`` (epoch s)."""
        if self.closed or not self._want.get(kind) or packet.pts is None:
            return
        if packet.time_base is None:
            raise ValueError("packet without time base")
        now = time.time() if arrival is None else arrival
        if self._container is None and not self._start(kind, packet, now):
            self.dropped += 1
            return
        assert self._t0 is not None and self._container is not None
        offset = now - self._t0
        anchor = self._anchors.get(kind)
        if anchor is None:
            anchor = self._anchors[kind] = _Anchor(packet.pts, packet.time_base, offset)
        seconds = anchor.first_offset + float((packet.pts - anchor.first_pts) * anchor.time_base)
        if abs(seconds - offset) > REANCHOR_AFTER:
            anchor.first_pts, anchor.first_offset = packet.pts, offset
            anchor.time_base = packet.time_base
            seconds = offset
        ms = round(seconds * 1000)
        if ms <= anchor.last_ms:
            self.dropped += 1
            return
        anchor.last_ms = ms
        if anchor.start_ms < 0:
            anchor.start_ms = ms
        copy = av.Packet(bytes(packet))
        copy.pts = copy.dts = ms
        copy.time_base = MS
        copy.is_keyframe = packet.is_keyframe
        copy.stream = self._streams[kind]
        self._container.mux(copy)
        self._counts[kind] += 1

    def _start(self, kind: str, packet: av.Packet[Any], now: float) -> bool:
        size: tuple[int, int] | None = None
        if self._want["video"]:
            if kind != "video" or not packet.is_keyframe:
                return False
            size = vp8_dimensions(bytes(packet))
            if size is None:
                return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(
            str(self.path),
            "w",
            format="webm",
            container_options={
                "cluster_time_limit": str(self._cluster_ms),
                "flush_packets": "1",
                "max_interleave_delta": "1000000",
            },
        )
        if size is not None:
            video = container.add_mux_stream("vp8", width=size[0], height=size[1])
            video.time_base = MS
            self._streams["video"] = video
        if self._want["audio"]:
            self._streams["audio"] = _add_opus_stream(container)
        container.start_encoding()
        self._container = container
        self._t0 = now
        return True

    def close(self) -> RecordingResult:
        """Finish the file (cues, duration) and hash it. Safe to call twice."""
        if not self.closed:
            self.closed = True
            if self._container is not None:
                self._container.close()
        last = max((a.last_ms for a in self._anchors.values()), default=-1)
        first = min((a.start_ms for a in self._anchors.values() if a.start_ms >= 0), default=0)
        size, digest = 0, hashlib.sha256()
        if self.path.exists():
            with self.path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
        return RecordingResult(
            path=self.path,
            duration=max(0, last - first) / 1000 if last >= 0 else 0.0,
            size=size,
            sha256=digest.hexdigest(),
            video_packets=self._counts["video"],
            audio_packets=self._counts["audio"],
            started_at=self._t0,
        )


def _add_opus_stream(container: OutputContainer) -> Stream:
    """An Opus stream whose CodecPrivate is :data:`OPUS_HEAD`.

    ``add_mux_stream`` cannot set extradata, so the stream is made from a template: its
    codec context is marked template-initialised and is never opened (no encoder runs);
    PyAV copies its parameters, extradata included, into the stream when writing the header.
    """
    scratch = av.open(io.BytesIO(), "w", format="ogg")
    template = scratch.add_stream("libopus", rate=48000)
    stream = container.add_stream_from_template(template)
    scratch.close()
    stream.codec_context.extradata = OPUS_HEAD
    stream.time_base = MS
    return stream
