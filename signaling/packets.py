"""Encoded-packet plumbing for aiortc: receive without decoding, send without encoding.

aiortc (pinned: 1.16.0) is built around decoded frames, but two of its internals let a
server forward media as it arrives:

* ``RTCRtpReceiver`` hands every re-assembled encoded frame to
  ``self.__decoder_queue.put((codec, JitterFrame))`` on the event loop, and a decoder
  thread reads that queue. :func:`install_packet_sink` replaces that queue, *on one receiver
  instance only*, by a :class:`PacketSink` that turns the frame into an ``av.Packet[Any]`` right
  there and hands it to a callback. Nothing is decoded, no thread hop happens, and every
  other receiver in the process (e.g. a Python client in the same test) decodes normally.
* The same receiver's jitter buffer is swapped for :mod:`signaling.assembly`, which
  re-assembles frames in linear time, without aiortc's extra frame of delay, and gives a
  lost packet up after a bounded time.
* ``RTCRtpSender._next_encoded_frame`` packs an ``av.Packet[Any]`` coming out of a track with
  ``encoder.pack()`` instead of encoding it. :class:`PacketTrack` is such a track, with a
  bounded queue that drops rather than grows.
* A subscriber's PLI/FIR ends in ``RTCRtpSender._send_keyframe()``, which for packets would
  only set an encoder flag nobody reads. :func:`route_keyframe_requests` overrides it on one
  sender instance so the request travels to the publisher instead.

These hooks are private aiortc API, so :func:`check_aiortc` refuses any other version and
``tests/signaling/test_relay.py`` exercises each of them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable
from fractions import Fraction
from typing import Any

import aiortc
import av
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver, TimestampMapper
from aiortc.rtcrtpsender import RTCRtpSender

from signaling.assembly import AudioAssembler, LossHandler, VideoAssembler

PINNED_AIORTC = "1.16.0"

# Name-mangled private attributes of aiortc 1.16.0 that the hooks rely on.
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_SEND_KEYFRAME = "_send_keyframe"

PacketHandler = Callable[["av.Packet[Any]"], None]
Spawn = Callable[[Coroutine[Any, Any, Any]], Any]
"""Runs a coroutine as a task its owner keeps (``Room.spawn``, the client's task set)."""
_VIDEO_TIME_BASE = Fraction(1, 90000)


def check_aiortc() -> None:
    """Refuse to run the private hooks against an aiortc they were not written for."""
    if aiortc.__version__ != PINNED_AIORTC:
        raise RuntimeError(
            f"signaling.packets needs aiortc {PINNED_AIORTC} (private hooks), "
            f"found {aiortc.__version__}"
        )


def require_private(obj: object, names: Iterable[str]) -> None:
    """Refuse an aiortc/aioice object that lacks a private name one of the hooks relies on."""
    for name in names:
        if not hasattr(obj, name):
            owner = type(obj)
            raise RuntimeError(f"{owner.__module__.split('.')[0]} {owner.__name__} has no {name}")


def vp8_is_keyframe(data: bytes) -> bool:
    """RFC 6386 §9.1: bit 0 of the frame tag is 0 for a key frame."""
    return bool(data) and not data[0] & 0x01


def vp8_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame header (start code 9d 01 2a at offset 3)."""
    if len(data) < 10 or not vp8_is_keyframe(data) or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height


def frame_number(packet: av.Packet[Any]) -> int | None:
    """The relay's number of a forwarded video frame (see :class:`PacketSink`), if any.

    Consecutive frames have consecutive numbers; a jump means frames were lost on the way
    in (the publication keeps the numbering across reconnects). Copies do not carry it.
    """
    value = packet.opaque
    return value if isinstance(value, int) else None


def split_red(payload: bytes) -> tuple[list[tuple[int, bytes]], bytes] | None:
    """RFC 2198 audio redundancy: ([(timestamp offset, block), …] oldest first, primary).

    None when the block headers do not fit the payload.
    """
    pos, size, headers = 0, len(payload), []
    while pos < size and payload[pos] & 0x80:
        if pos + 4 > size:
            return None
        word = int.from_bytes(payload[pos : pos + 4], "big")
        headers.append(((word >> 10) & 0x3FFF, word & 0x3FF))
        pos += 4
    if pos >= size:
        return None
    pos += 1  # the primary's one-byte header
    redundant = []
    for offset, length in headers:
        if pos + length > size:
            return None
        redundant.append((offset, payload[pos : pos + length]))
        pos += length
    return redundant, payload[pos:]


class PacketSink:
    """Stands in for a receiver's decoder input queue (a ``queue.Queue``).

    Audio: ``put`` is called on the event loop for each frame aiortc's receiver gets from
    the assembler. Video: the :class:`~signaling.assembly.VideoAssembler` hands every
    complete frame here itself (also from its give-up timer), with its frame number as the
    packet's ``opaque`` (:func:`frame_number`). ``put(None)`` comes at stop; ``get`` is
    called by aiortc's (now idle) decoder thread, which we keep parked until the receiver
    stops so that aiortc's shutdown path runs unchanged.
    """

    def __init__(
        self, kind: str, deliver: PacketHandler, on_loss: LossHandler | None = None
    ) -> None:
        self.kind = kind
        self._deliver = deliver
        self.assembler: VideoAssembler | AudioAssembler = (
            VideoAssembler(self._video_frame, on_loss=on_loss)
            if kind == "video"
            else AudioAssembler()
        )
        self._stopped = threading.Event()
        # Video frames come straight from the assembler (all that are complete, also from
        # its timer), not through the receiver, so they are mapped here as aiortc would.
        self._timestamps = TimestampMapper()
        # Per-codec facts, worked out once per codec object rather than once per frame
        # (the receiver hands the same RTCRtpCodecParameters for every frame of a stream).
        self._codec: RTCRtpCodecParameters | None = None
        self._forward = False
        self._is_opus = False
        self._is_red = False
        self._last_audio: int | None = None
        self._time_base = Fraction(1, 90000)
        self.frames = 0
        self.bytes = 0
        self.skipped = 0
        self.recovered = 0
        """Opus frames taken from a RED packet's redundancy (their own packet was lost)."""

    def _video_frame(self, frame: JitterFrame, number: int) -> None:
        # The relay negotiates VP8 only for video (negotiation.prefer_relay_codecs), and the
        # receiver drops packets of any payload type it did not negotiate.
        data = frame.data
        if not data or self._stopped.is_set():
            self.skipped += 1
            return
        packet = av.Packet(data)
        packet.pts = packet.dts = self._timestamps.map(frame.timestamp)
        packet.time_base = _VIDEO_TIME_BASE
        packet.is_keyframe = vp8_is_keyframe(data)
        packet.opaque = number
        self.frames += 1
        self.bytes += len(data)
        self._deliver(packet)

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            self._stopped.set()
            if isinstance(self.assembler, VideoAssembler):
                self.assembler.close()
            return
        codec, frame = item
        if codec is not self._codec:
            name = codec.name.lower()
            self._codec = codec
            self._forward = name in ("vp8", "opus", "red")
            self._is_red = name == "red"
            self._is_opus = name in ("opus", "red")
            self._time_base = Fraction(1, codec.clockRate)
        data = frame.data
        if not self._forward or not data:
            self.skipped += 1
            return
        timestamp = frame.timestamp
        if self._is_opus:
            if self._is_red:  # RFC 2198: forward and record plain Opus
                blocks = split_red(data)
                if blocks is None:
                    self.skipped += 1
                    return
                redundant, data = blocks
                last = self._last_audio
                for offset, block in redundant:  # oldest first
                    if last is not None and block and timestamp - offset > last:
                        self.recovered += 1
                        self._emit(block, timestamp - offset)
                if not data:
                    return
            self._last_audio = timestamp
        self._emit(data, timestamp)

    def _emit(self, data: bytes, timestamp: int) -> None:
        packet = av.Packet(data)
        packet.pts = packet.dts = timestamp
        packet.time_base = self._time_base
        packet.is_keyframe = self._is_opus or vp8_is_keyframe(data)
        self.frames += 1
        self.bytes += len(data)
        self._deliver(packet)

    def get(self) -> None:
        self._stopped.wait()
        return None


def install_packet_sink(
    receiver: RTCRtpReceiver,
    kind: str,
    deliver: PacketHandler,
    on_loss: LossHandler | None = None,
    spawn: Spawn | None = None,
) -> PacketSink:
    """Make ``receiver`` (of media ``kind``) deliver encoded packets to ``deliver``;
    ``on_loss`` hears of video frames given up (see :class:`~signaling.assembly.VideoAssembler`).

    Also swaps aiortc's jitter buffer for the relay's frame assembler
    (:mod:`signaling.assembly`). Must be called before the receiver starts, i.e. right
    after ``setRemoteDescription``/``addTransceiver``, before the connection is up.
    ``spawn`` runs the assembler's repeated NACKs (:func:`request_nack`) as tasks of the
    caller's (the room's, the client's); without it holes are NACKed once, by aiortc.
    """
    check_aiortc()
    require_private(receiver, (_DECODER_QUEUE, _JITTER_BUFFER))
    if getattr(receiver, _DECODER_THREAD, None) is not None:
        raise RuntimeError("install_packet_sink() called on a receiver that already runs")
    sink = PacketSink(kind, deliver, on_loss)
    setattr(receiver, _DECODER_QUEUE, sink)
    setattr(receiver, _JITTER_BUFFER, sink.assembler)
    if isinstance(sink.assembler, VideoAssembler) and spawn is not None:
        run = spawn
        sink.assembler.on_nack = lambda missing: run(request_nack(receiver, sink, missing))
    return sink


def route_keyframe_requests(sender: RTCRtpSender, request: Callable[[], None]) -> None:
    """Send a subscriber's PLI/FIR for this sender to ``request`` (the publisher)."""
    check_aiortc()
    if not callable(getattr(sender, _SEND_KEYFRAME, None)):
        raise RuntimeError("aiortc RTCRtpSender has no _send_keyframe to override")
    setattr(sender, _SEND_KEYFRAME, request)


async def request_keyframe(receiver: RTCRtpReceiver, sink: PacketSink) -> bool:
    """Send a PLI for the media SSRC ``sink`` last saw; False if nothing arrived yet.

    Not ``getSynchronizationSources()``: it also lists the RTX SSRC once a retransmission
    arrived, and a PLI addressed to that SSRC is ignored by the publisher.
    """
    ssrc = sink.assembler.ssrc
    if ssrc is None:
        return False
    await receiver._send_rtcp_pli(ssrc)
    return True


async def request_nack(receiver: RTCRtpReceiver, sink: PacketSink, missing: list[int]) -> bool:
    """NACK ``missing`` sequence numbers to the media SSRC ``sink`` last saw (never the
    RTX one); False if nothing arrived yet."""
    ssrc = sink.assembler.ssrc
    if ssrc is None:
        return False
    await receiver._send_rtcp_nack(ssrc, missing)
    return True


class PacketTrack(MediaStreamTrack):
    """A track that yields forwarded ``av.Packet[Any]`` s to one subscriber's sender.

    It stays *inactive* (drops everything) until :meth:`activate` is called when the
    subscriber's connection is up: before that nobody drains the queue. Video then starts
    on a key frame. When the queue is full the packet is dropped, and for video the track
    waits for the next key frame (asking for one) so the subscriber never decodes garbage.
    """

    def __init__(self, kind: str, maxsize: int, on_keyframe_needed: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[av.Packet[Any] | None] = asyncio.Queue(maxsize)
        self._on_keyframe_needed = on_keyframe_needed
        self._consumer: PacketHandler | None = None
        self._active = False
        self._need_keyframe = kind == "video"
        self.offered = 0
        self.dropped = 0
        self.overflows = 0
        self.resyncs = 0
        self.forwarded_packets = 0
        self.forwarded_bytes = 0

    @property
    def active(self) -> bool:
        return self._active

    def activate(self) -> None:
        if self._active:
            return
        self._active = True
        if self.kind == "video":
            self._need_keyframe = True
            self._on_keyframe_needed()

    def restart(self) -> None:
        """Start again on a key frame (video resumed after a pause, see signaling/adaptation)."""
        if self.kind == "video" and self._active:
            self._need_keyframe = True

    def resync(self) -> None:
        """Frames were lost upstream: drop video until the next key frame (asking for one)."""
        if self._active and self.kind == "video" and not self._need_keyframe:
            self._need_keyframe = True
            self.resyncs += 1
            self._on_keyframe_needed()

    def deliver_to(self, consumer: PacketHandler | None) -> None:
        """Hand packets straight to ``consumer`` (the relay's sender) instead of queueing
        them for :meth:`recv`; None goes back to queueing."""
        self._consumer = consumer
        while consumer is not None and not self._queue.empty():
            queued = self._queue.get_nowait()
            if queued is not None:
                self._count(queued)
                consumer(queued)

    def _count(self, packet: av.Packet[Any]) -> None:
        self.forwarded_packets += 1
        self.forwarded_bytes += packet.size

    def offer(self, packet: av.Packet[Any]) -> None:
        """Hand ``packet`` to the subscriber's sender, or queue it for :meth:`recv`;
        never blocks, never grows past maxsize."""
        if not self._active or self.readyState != "live":
            return
        self.offered += 1
        if self._need_keyframe:
            if not packet.is_keyframe:
                self.dropped += 1
                self._on_keyframe_needed()
                return
            self._need_keyframe = False
        if self._consumer is not None:
            self._count(packet)
            self._consumer(packet)
            return
        try:
            self._queue.put_nowait(packet)
        except asyncio.QueueFull:
            self.dropped += 1
            self.overflows += 1
            if self.kind == "video":
                self._need_keyframe = True
                self._on_keyframe_needed()

    async def recv(self) -> av.Packet[Any]:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            raise MediaStreamError
        self._count(packet)
        return packet

    def stop(self) -> None:
        if self.readyState == "live":
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)
        super().stop()
