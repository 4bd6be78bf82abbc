"""Incremental WebM recording of one participant's forwarded VP8 + Opus packets.

No transcoding: the relay's ``av.Packet`` s are muxed as they are (PyAV ``add_mux_stream``;
no codec is ever opened). What makes such a file play well, learnt the hard way:

* ``container.mux()`` rewrites a packet's time base in place, and the relay shares each
  packet with every subscriber, so we mux a *copy*.
* The file starts on a VP8 key frame (audio before it is dropped), and the video track
  needs width and height, which we read from that key frame's header.
* Audio and video come with unrelated RTP clocks, so each stream is anchored to the wall
  clock of its first packet and then follows its RTP time. A packet that arrives late
  (a burst after a server stall or a network hiccup: many packets with the same arrival
  time) keeps its RTP time, so the file shows what the camera saw when it saw it; only a
  stream more than :data:`LATE_LIMIT` seconds behind the wall clock or
  :data:`REANCHOR_AFTER` ahead of it (an RTP origin that jumped) is re-anchored.
* No frame is ever dropped for its timing: a timestamp that does not increase is moved
  to 1 ms after the previous one (counted as ``retimed``). VP8 inter frames reference the
  frames before them, so dropping one corrupts the picture until the next key frame.
* Frames that really are missing (a jump in the relay's frame number, see
  ``signaling.packets.frame_number``) make the following inter frames undecodable: they are
  skipped (counted) until the next key frame, :attr:`Recorder.on_loss` is called at once
  (the caller asks the publisher for a key frame) and :attr:`Recorder.on_gap` when the
  picture resumes, with the :class:`RecordingGap` (also listed in the result).
* The Opus track carries an ``OpusHead`` as CodecPrivate (strict players insist).
* Matroska clusters are closed every ``cluster_ms`` and the I/O buffer is flushed after
  every packet, so a process killed with SIGKILL leaves a file that demuxes up to the last
  closed cluster (about a second before the kill). Cues and duration are only written on
  :meth:`Recorder.close`.
* Every :data:`recordings.segments.SEGMENT_S` seconds, after a pause of
  :data:`recordings.segments.PAUSE_S` in the stream and when the file is closed the
  recorder *marks* how big its file is (:attr:`Recorder.on_segment`, one ``stat``); the
  hashing of those bytes onto the case chain happens elsewhere (``recordings.segments``).
* While it writes, the recorder holds an exclusive ``flock`` on the file; the kernel drops
  it when the process dies, however it dies. So a file nobody holds is one no recorder
  will finish: ``recordings.recovery`` files such leftovers at start-up, and never touches
  a file that another worker on the same data directory is still writing.

Calls are synchronous and cheap (no codec work); call them from the event loop.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
from av.container import OutputContainer
from av.stream import Stream

from recordings.segments import PAUSE_S, SEGMENT_S, Mark
from signaling.packets import vp8_dimensions

MS = Fraction(1, 1000)
REANCHOR_AFTER = 1.0
"""Seconds a stream's RTP time may run ahead of the wall clock before it is re-anchored."""
LATE_LIMIT = 5.0
"""Seconds a stream may lag the wall clock (late delivery) before it is re-anchored."""
# RFC 7845 §5.1: version 1, 2 channels, pre-skip 312, 48 kHz, gain 0, mapping family 0.
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 312, 48000, 0, 0)


@dataclass(frozen=True)
class RecordingGap:
    """Video the file does not have: ``start`` s into the file, ``length`` s long."""

    start: float
    length: float
    frames_lost: int
    """Frames that never reached the relay (the jump in its frame numbers)."""
    frames_skipped: int
    """Frames that arrived but could not be decoded without the lost ones (not muxed)."""
    cause: str
    """``frames_lost`` (lost on the way in) or ``ended`` (no key frame came before the end)."""

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "start_s": round(self.start, 3),
            "length_s": round(self.length, 3),
            "frames_lost": self.frames_lost,
            "frames_skipped": self.frames_skipped,
            "cause": self.cause,
        }


@dataclass
class _OpenGap:
    start_ms: int
    frames_lost: int
    frames_skipped: int = 0


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
    retimed: int = 0
    """Packets muxed 1 ms after the previous one because their own time did not increase."""
    skipped: int = 0
    """Video frames not muxed because frames before them were lost (see ``gaps``)."""
    gaps: tuple[RecordingGap, ...] = ()


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
        self._lock: BinaryIO | None = None
        self._streams: dict[str, Stream] = {}
        self._anchors: dict[str, _Anchor] = {}
        self._t0: float | None = None
        self._counts = {"video": 0, "audio": 0}
        self.dropped = 0
        """Packets before the first key frame (a WebM file must start on one)."""
        self.retimed = 0
        self.skipped = 0
        self.gaps: list[RecordingGap] = []
        self._gap: _OpenGap | None = None
        self._frame: int | None = None  # the relay's number of the last video frame seen
        self.on_loss: Callable[[], None] | None = None
        self.on_gap: Callable[[RecordingGap], None] | None = None
        self.on_segment: Callable[[Mark], None] | None = None
        self.segment_s = SEGMENT_S
        self._next_mark = 0.0
        self._last_arrival = 0.0
        self.closed = False

    @property
    def started(self) -> bool:
        return self._container is not None

    def write(
        self,
        kind: str,
        packet: av.Packet[Any],
        arrival: float | None = None,
        *,
        frame: int | None = None,
    ) -> None:
        """Mux ``packet`` (``kind`` "audio" or "video") that arrived at ``arrival`` (epoch s).

        ``frame`` is the relay's number of a video frame (consecutive unless frames were
        lost); without it no loss can be seen.
        """
        if self.closed or not self._want.get(kind) or packet.pts is None:
            return
        if packet.time_base is None:
            raise ValueError("packet without time base")
        now = time.time() if arrival is None else arrival
        if kind == "video" and not self._continues(packet, frame):
            return
        if self._container is None and not self._start(kind, packet, now):
            self.dropped += 1
            return
        assert self._t0 is not None and self._container is not None
        if self.on_segment is not None and (
            now >= self._next_mark or now - self._last_arrival >= PAUSE_S
        ):
            self._mark(now)
        self._last_arrival = now
        offset = now - self._t0
        anchor = self._anchors.get(kind)
        if anchor is None:
            anchor = self._anchors[kind] = _Anchor(packet.pts, packet.time_base, offset)
        seconds = anchor.first_offset + float((packet.pts - anchor.first_pts) * anchor.time_base)
        if offset - seconds > LATE_LIMIT or seconds - offset > REANCHOR_AFTER:
            anchor.first_pts, anchor.first_offset = packet.pts, offset
            anchor.time_base = packet.time_base
            seconds = offset
        ms = round(seconds * 1000)
        if ms <= anchor.last_ms:
            ms = anchor.last_ms + 1
            self.retimed += 1
        if kind == "video" and self._gap is not None:
            self._close_gap(ms, "frames_lost")
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

    def _mark(self, now: float) -> None:
        """A segment ends here: at the interval, or (before this packet) at a pause."""
        pause = now - self._last_arrival
        if self._next_mark:  # not at the file's first packet
            assert self.on_segment is not None
            network = pause >= PAUSE_S
            self.on_segment(
                Mark(
                    end=self.path.stat().st_size,
                    wall=self._last_arrival if network else now,
                    reason="network" if network else "interval",
                    pause_s=pause if network else None,
                )
            )
        self._next_mark = now + self.segment_s

    def _continues(self, packet: av.Packet[Any], frame: int | None) -> bool:
        """False for a video frame that cannot be decoded because frames before it are lost."""
        if frame is not None:
            lost = frame - self._frame - 1 if self._frame is not None else 0
            self._frame = frame
            if lost > 0 and self._container is not None:
                if self._gap is None:
                    last = self._anchors["video"].last_ms if "video" in self._anchors else 0
                    self._gap = _OpenGap(start_ms=max(last, 0), frames_lost=lost)
                    if self.on_loss is not None:
                        self.on_loss()
                else:
                    self._gap.frames_lost += lost
        if self._gap is not None and not packet.is_keyframe:
            self._gap.frames_skipped += 1
            self.skipped += 1
            return False
        return True

    def _close_gap(self, resumed_ms: int, cause: str) -> None:
        assert self._gap is not None
        gap = RecordingGap(
            start=self._gap.start_ms / 1000,
            length=max(0, resumed_ms - self._gap.start_ms) / 1000,
            frames_lost=self._gap.frames_lost,
            frames_skipped=self._gap.frames_skipped,
            cause=cause,
        )
        self._gap = None
        self.gaps.append(gap)
        if self.on_gap is not None:
            self.on_gap(gap)

    def _start(self, kind: str, packet: av.Packet[Any], now: float) -> bool:
        size: tuple[int, int] | None = None
        if self._want["video"]:
            if kind != "video" or not packet.is_keyframe:
                return False
            size = vp8_dimensions(bytes(packet))
            if size is None:
                return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = hold(self.path)
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
        last = max((a.last_ms for a in self._anchors.values()), default=-1)
        if not self.closed:
            self.closed = True
            if self._gap is not None:  # the picture never came back before the end
                self._close_gap(max(last, self._gap.start_ms), "ended")
            if self._container is not None:
                self._container.close()
                if self.on_segment is not None:  # before the flock goes: nobody moves it yet
                    self.on_segment(
                        Mark(self.path.stat().st_size, time.time(), "ended", final=True)
                    )
            if self._lock is not None:
                self._lock.close()  # releases the flock
                self._lock = None
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
            retimed=self.retimed,
            skipped=self.skipped,
            gaps=tuple(self.gaps),
        )


def hold(path: Path) -> BinaryIO:
    """Open ``path`` (created if need be) with an exclusive flock; BlockingIOError if held."""
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        handle.close()
        raise
    return handle


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
