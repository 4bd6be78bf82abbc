"""One participant's published media inside the relay: fan-out, key frames, snapshots.

A :class:`Publication` outlives the participant's publish connections (a reconnect
attaches a new one), so subscriptions to it survive; see ``signaling/relay.py``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import av
from aiortc import RTCRtpReceiver

from signaling.adaptation import LinkPolicy, PublisherCap, clamp_remb
from signaling.inbound import install_inbound
from signaling.negotiation import KINDS
from signaling.packets import (
    PacketSink,
    PacketTrack,
    frame_number,
    install_packet_sink,
    request_keyframe,
    require_private,
)
from signaling.remb import RembEstimator

if TYPE_CHECKING:
    from signaling.relay import RelayRoom

logger = logging.getLogger(__name__)

_REMB_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"  # aiortc 1.16 private
_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
KEYFRAME_RETRY_MAX = 1.0
"""Seconds between repeated key frame requests at most (they start at keyframe_interval)."""

_FRAME_STEP = {"audio": 960, "video": 3000}  # one 20 ms Opus frame / one 30 fps frame
_CLOCK = {"audio": 48000, "video": 90000}


@dataclass
class _Timeline:
    """Keeps forwarded timestamps monotonic when a publisher reconnects (new RTP origin).

    The new origin continues after the time that passed since the last packet, so the
    outage stays visible to subscribers and in the recording (which trusts RTP time for
    packets that are merely late, e.g. a burst after a server stall).
    """

    offset: int = 0
    last: int | None = None
    last_at: float = 0.0
    rebase: bool = False

    def map(self, kind: str, pts: int) -> int:
        now = time.monotonic()
        if self.rebase and self.last is not None:
            elapsed = round((now - self.last_at) * _CLOCK[kind])
            self.offset = self.last + max(_FRAME_STEP[kind], elapsed) - pts
        self.rebase = False
        out = pts + self.offset
        self.last, self.last_at = out, now
        return out


@dataclass
class _Frames:
    """The publication's video frame numbers: the receiver's, continued across reconnects."""

    offset: int = 0
    last: int | None = None
    rebase: bool = False

    def map(self, number: int) -> int:
        if self.rebase and self.last is not None:
            self.offset = self.last + 1 - number
        self.rebase = False
        self.last = number + self.offset
        return self.last


@dataclass
class PublicationStats:
    packets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    keyframes: int = 0
    keyframe_requests: int = 0


class Publication:
    """One participant's media as seen by the relay, stable across its reconnects."""

    def __init__(self, room: RelayRoom, participant: str) -> None:
        self.room = room
        self.participant = participant
        self.stats = PublicationStats()
        self._tracks: dict[str, set[PacketTrack]] = {k: set() for k in KINDS}
        self._timelines = {k: _Timeline() for k in KINDS}
        self._frames = _Frames()
        self._gop: list[av.Packet[Any]] = []
        self._gop_bytes = 0
        self._video_source: tuple[RTCRtpReceiver, PacketSink] | None = None
        self._last_request = 0.0
        self._pending_request: asyncio.TimerHandle | None = None
        self._awaiting_keyframe = False
        self._retries = 0
        self._last_number: int | None = None
        self._keyframe_waiters: list[asyncio.Future[None]] = []
        self._receivers: dict[str, RTCRtpReceiver] = {}
        self._sinks: dict[str, PacketSink] = {}
        self.policies: set[LinkPolicy] = set()
        """The subscribers' link policies (signaling/adaptation.py): their caps bound ours."""
        self.transport_cc = False
        self._aiortc_remb: int | None = None
        self.cap: PublisherCap | None = None

    # -- wiring -------------------------------------------------------------------------
    def attach_source(
        self, receivers: dict[str, RTCRtpReceiver], *, transport_cc: bool = False
    ) -> None:
        """Route a (new) publish connection's receivers into this publication.

        With ``transport_cc`` the publisher estimates its own uplink from our feedback
        (signaling/twcc.py), so aiortc's receive-side REMB estimator is switched off;
        without it, aiortc's REMB is kept and clamped to the subscribers' cap.
        """
        self._video_source = None
        self._receivers = dict(receivers)
        self._sinks = {}
        self.transport_cc = transport_cc
        self._aiortc_remb = None
        for kind, receiver in receivers.items():
            self._timelines[kind].rebase = True
            if kind == "video":
                self._frames.rebase = True
            sink = install_packet_sink(
                receiver,
                kind,
                functools.partial(self.feed, kind),
                self.keyframe_lost if kind == "video" else None,
                self.room.spawn,
            )
            self._sinks[kind] = sink
            if kind == "video":
                self._video_source = (receiver, sink)
                require_private(receiver, (_REMB_ESTIMATOR,))
                if transport_cc:
                    setattr(receiver, _REMB_ESTIMATOR, None)
                else:
                    # aiortc's estimator, same figures for less CPU (signaling/remb.py)
                    setattr(receiver, _REMB_ESTIMATOR, RembEstimator())
                    clamp_remb(receiver, self._clamp)
            install_inbound(receiver, sink)
        if self.cap is None:
            self.cap = PublisherCap(
                self._bounds, self._send_rtcp, self.rtcp_ssrc, self._ssrcs, self.room.spawn
            )

    # -- receiving side's cap (signaling/adaptation.py) ----------------------------------
    def _bounds(self) -> list[int]:
        bounds = [b for b in (p.cap() for p in self.policies) if b is not None]
        if bounds and self._aiortc_remb is not None:
            bounds.append(self._aiortc_remb)  # never above what aiortc's estimator says
        return bounds

    def _clamp(self, estimate: int) -> int | None:
        """aiortc's REMB ``estimate`` towards the publisher, lowered to the cap."""
        self._aiortc_remb = estimate
        bounds = [b for b in (p.cap() for p in self.policies) if b is not None]
        return min(bounds) if bounds else None

    def _receiver(self) -> RTCRtpReceiver | None:
        return self._receivers.get("video") or self._receivers.get("audio")

    async def _send_rtcp(self, packet: Any) -> None:
        receiver = self._receiver()
        if receiver is not None:  # the class's method: not through clamp_remb's wrapper
            await RTCRtpReceiver._send_rtcp(receiver, packet)

    def rtcp_ssrc(self) -> int | None:
        receiver = self._receiver()
        ssrc: int | None = getattr(receiver, _RTCP_SSRC, None)
        return ssrc

    def _ssrcs(self) -> list[int]:
        return [s.assembler.ssrc for s in self._sinks.values() if s.assembler.ssrc is not None]

    def sinks(self) -> dict[str, PacketSink]:
        """The current publish connection's sinks by kind (their ``frames`` feed /metrics)."""
        return dict(self._sinks)

    def add_track(self, track: PacketTrack) -> None:
        self._tracks[track.kind].add(track)

    def remove_track(self, track: PacketTrack) -> None:
        self._tracks[track.kind].discard(track)

    # -- data path ----------------------------------------------------------------------
    def feed(self, kind: str, packet: av.Packet[Any]) -> None:
        assert packet.pts is not None
        packet.pts = packet.dts = self._timelines[kind].map(kind, packet.pts)
        number = frame_number(packet)
        if number is not None:
            number = packet.opaque = self._frames.map(number)
            last, self._last_number = self._last_number, number
            if last is not None and number != last + 1 and not packet.is_keyframe:
                # Frames were lost: this delta refers to a picture subscribers never got
                # (the relay's senders number frames anew, so their decoders cannot tell).
                # Hold their video until the key frame that is being asked for.
                for track in self._tracks[kind]:
                    track.resync()
        self.stats.packets[kind] += 1
        self.stats.bytes[kind] += packet.size
        if kind == "video":
            self._remember(packet)
        for track in self._tracks[kind]:
            track.offer(packet)
        if self.room.on_packet is not None:
            try:
                self.room.on_packet(self.participant, kind, packet)
            except Exception:
                logger.exception("on_packet failed for %s/%s", self.room.room_id, kind)

    def _remember(self, packet: av.Packet[Any]) -> None:
        if packet.is_keyframe:
            self.stats.keyframes += 1
            self._keyframe_arrived()
            self._gop = [packet]
            self._gop_bytes = packet.size
            for waiter in self._keyframe_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._keyframe_waiters.clear()
        elif self._gop:
            self._gop.append(packet)
            self._gop_bytes += packet.size
            if self._gop_bytes > self.room.config.gop_max_bytes:
                self._gop = []
                self._gop_bytes = 0
                self.request_keyframe()

    def latest_video_packets(self) -> list[av.Packet[Any]]:
        """Copies (safe to decode or mux) of the last key frame and the deltas after it."""
        return [copy_packet(p) for p in self._gop]

    async def wait_keyframe(self, within: float) -> list[av.Packet[Any]]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._keyframe_waiters.append(waiter)
        self.request_keyframe()
        await asyncio.wait_for(waiter, within)
        return self.latest_video_packets()

    # -- key frames ---------------------------------------------------------------------
    def request_keyframe(self) -> None:
        """Ask the publisher for a key frame, and again until one arrives.

        At most one PLI per ``keyframe_interval``; repeats start after that interval and
        double up to :data:`KEYFRAME_RETRY_MAX` (a PLI is one RTCP packet that a lossy
        uplink may drop, and a browser answers only the ones it gets).
        """
        if not self._awaiting_keyframe:
            self._awaiting_keyframe, self._retries = True, 0
        if self._pending_request is not None:
            return
        wait = self._last_request + self.room.config.keyframe_interval - time.monotonic()
        if wait <= 0:
            self._repeat()
        else:
            self._pending_request = asyncio.get_running_loop().call_later(wait, self._repeat)

    def keyframe_lost(self, pli_sent: bool) -> None:
        """The frame assembler gave frames up; with ``pli_sent`` aiortc sent the PLI."""
        if not pli_sent:
            self.request_keyframe()
            return
        self.stats.keyframe_requests += 1
        self._last_request = time.monotonic()
        self.request_keyframe()  # no PLI now: only the repeat, should no key frame come

    def _repeat(self) -> None:
        self._pending_request = None
        if not self._awaiting_keyframe or self._video_source is None:
            return
        self._last_request = time.monotonic()
        self._send_pli()
        interval = self.room.config.keyframe_interval
        delay = min(KEYFRAME_RETRY_MAX, interval * 2 ** min(self._retries, 4))
        self._retries += 1
        self._pending_request = asyncio.get_running_loop().call_later(delay, self._repeat)

    def _keyframe_arrived(self) -> None:
        self._awaiting_keyframe = False
        if self._pending_request is not None:
            self._pending_request.cancel()
            self._pending_request = None

    def _send_pli(self) -> None:
        if self._video_source is not None:
            self.stats.keyframe_requests += 1
            self.room.spawn(request_keyframe(*self._video_source))

    def close(self) -> None:
        if self.cap is not None:
            self.cap.close()
        if self._pending_request is not None:
            self._pending_request.cancel()
        for tracks in self._tracks.values():
            for track in list(tracks):
                track.stop()
            tracks.clear()
        for waiter in self._keyframe_waiters:
            waiter.cancel()
        self._video_source = None


def copy_packet(packet: av.Packet[Any]) -> av.Packet[Any]:
    copy = av.Packet(bytes(packet))
    copy.pts = copy.dts = packet.pts
    copy.time_base = packet.time_base
    copy.is_keyframe = packet.is_keyframe
    return copy
