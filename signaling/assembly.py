"""Frame re-assembly for relay receivers, replacing aiortc's ``JitterBuffer``.

aiortc 1.16's ``JitterBuffer.add`` re-walks every buffered packet of the current frame on
each arrival (quadratic in packets per frame: a 100 kB key frame is ~80 packets, ~3 000
steps) and only releases a frame when a packet of the *next* one arrives (video: one
frame of delay; audio: ``prefetch=4``, i.e. 80 ms). A relay only has to put packets back
into whole frames, so on relay receivers (see :func:`signaling.packets.install_packet_sink`)
the private ``_RTCRtpReceiver__jitter_buffer`` is replaced by:

* :class:`VideoAssembler`: a cursor walks the contiguous packets once; a frame is handed to
  ``deliver`` as soon as its marker-bit packet is contiguous with the frame's first packet,
  and *every* frame that is complete is handed on at once (aiortc's interface returns at
  most one frame per received packet, which after a loss kept the picture behind live for
  as long as the backlog took to drain). A missing packet is waited for (NACK/RTX may bring
  it) for a bounded *time*, :meth:`VideoAssembler.wait`: the longer of the repair time seen
  last and the link's current queueing delay + :data:`MIN_WAIT`, plus 3 frame intervals;
  at least :data:`MIN_WAIT`, at most :data:`MAX_WAIT`. While it waits it NACKs what is
  still missing again, one repair time after the last ask (aiortc NACKs a hole once; a
  lost retransmission was never asked for again). The queueing delay is how much later than
  its best the newest frame arrived (arrival − capture timestamp, against the minimum of the
  last 5–10 s): a retransmission has to come through the same queue, so when a phone's
  uplink fills a 300 ms buffer, a wait learnt on the empty link (0.1 s) gave every loss up
  before its repair could arrive, and each give-up asked for a key frame that came through
  the same queue (bench/weaklink.py, weak_500k: five give-ups in 2 s, a 2–3 s freeze). A
  gap inside a *key frame* is waited for twice as long (at most :data:`MAX_KEY_WAIT`): giving
  it up costs another key frame, larger than any repair. A hole's wait counts from when it
  was first known (the arrival of the first packet beyond it), so the holes of one burst
  of losses are waited for together, not one full wait after another. After a give-up,
  until a key frame is released, a hole in a delta frame is waited for only
  :data:`MIN_WAIT`: those frames reference a lost one and no decoder can use them. Then
  the frames in the gap are given
  up, the next frame start is sought, everything complete behind the gap is released, a key
  frame is asked for, and packets of the given-up frames that still arrive are dropped. The
  wait is measured by a timer (``call_later``), so it ends even when no packet arrives
  (an outage); one timer per receiver, armed only while a gap is open. :data:`MAX_SPAN`
  remains as a bound on buffered packets. Every released frame gets a number,
  :attr:`VideoAssembler.frame_seq`, that skips the frames known to be lost (from the VP8
  picture ID when the publisher sends one, else one per give-up), so whoever reads the
  frames (the recorder) can tell a real loss from a late one.
* :class:`AudioAssembler`: an Opus packet is a frame; it is released at once unless it is
  older than the last released one. It keeps aiortc's interface,
  ``add(packet) -> (pli_flag, JitterFrame | None)``; the video assembler's ``add`` returns
  ``(pli_flag, None)`` and delivers frames itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

MAX_SPAN = 256
"""Sequence numbers buffered behind a missing packet before its frame is given up at once."""
MIN_WAIT = 0.1
"""Seconds a missing packet is always waited for (reordering, a NACK round trip on a LAN)."""
MAX_WAIT = 1.0
"""Seconds a missing packet is waited for at most, however slow the link's repairs are."""
MAX_KEY_WAIT = 1.5
"""The same for a packet of a key frame (its loss costs a new key frame)."""
FLOOR_WINDOW = 5.0
"""Seconds per bucket of the arrival-delay minimum (the floor is the min of two buckets)."""
DEFAULT_REPAIR = 0.1
"""Assumed time for NACK + RTX to bring a missing packet, until one was seen."""
DEFAULT_INTERVAL = 1 / 30
NACK_RETRY = True
"""Whether missing packets are NACKed again while they are waited for (``on_nack``)."""
MIN_RETRY = 0.05
"""Seconds between two NACKs of the same missing packets at least."""
MAX_NACK = 64
"""Sequence numbers per repeated NACK at most (oldest first: the cursor waits on them)."""


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """What the assembler needs of a clock: ``asyncio``'s event loop, or a test's."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Cancellable: ...


FrameHandler = Callable[[JitterFrame, int], None]
"""Receives each released video frame and its number (:attr:`VideoAssembler.frame_seq`)."""
NackHandler = Callable[[list[int]], None]
"""Asked to NACK these sequence numbers (again): their repair has not come in time."""
LossHandler = Callable[[bool], None]
"""Told that frames were given up; the argument says whether a PLI is already on its way
(``add`` returned ``pli_flag``, which aiortc sends) or still needs sending (the timer)."""


def _data(packet: RtpPacket) -> bytes:
    data: bytes = getattr(packet, "_data", b"")  # set by aiortc's depayload()
    return data


def vp8_picture_id(payload: bytes) -> tuple[int, int] | None:
    """RFC 7741 §4.2: the picture ID and its modulus (2**7 or 2**15), if the descriptor has one."""
    if len(payload) < 3 or not payload[0] & 0x80 or not payload[1] & 0x80:
        return None
    if payload[2] & 0x80:
        if len(payload) < 4:
            return None
        return ((payload[2] & 0x7F) << 8) | payload[3], 1 << 15
    return payload[2] & 0x7F, 1 << 7


def _is_keyframe(first: RtpPacket) -> bool:
    """The first packet of a VP8 key frame (RFC 6386 §9.1: bit 0 of the frame tag is 0)."""
    data = _data(first)
    return bool(data) and not data[0] & 0x01 and vp8_frame_start(first)


def vp8_frame_start(packet: RtpPacket) -> bool:
    """RFC 7741 payload descriptor: S=1 and partition id 0 begins a frame."""
    payload = packet.payload
    return bool(payload) and bool(payload[0] & 0x10) and payload[0] & 0x07 == 0


class VideoAssembler:
    """VP8 frames out of RTP packets, waiting for a missing packet a bounded time.

    ``deliver(frame, number)`` is called for every released frame, in order, from ``add``
    or from the give-up timer; ``on_loss(pli_sent)`` when frames were given up. ``timers``
    defaults to the running event loop (looked up when first needed).
    """

    def __init__(
        self,
        deliver: FrameHandler,
        *,
        on_loss: LossHandler | None = None,
        on_nack: NackHandler | None = None,
        timers: Timers | None = None,
    ) -> None:
        self._deliver = deliver
        self._on_loss = on_loss
        self.on_nack = on_nack
        """Sends a NACK for what is still missing when a repair is overdue (may be set later)."""
        self.nack_retries = 0
        """NACKs sent again by the assembler (the first NACK of a hole is aiortc's)."""
        self._retry_due = 0.0
        self._retried_at = float("-inf")  # the last repeated NACK (covers every open hole)
        self._timers = timers
        self._packets: dict[int, RtpPacket] = {}
        self._origin: int | None = None  # first sequence number of the frame being built
        self._cursor: int | None = None  # next sequence number to check for contiguity
        self.frames = 0
        self.gaps = 0
        """Times frames were given up behind a missing packet."""
        self.late = 0
        """Packets dropped because their frame was released or given up already."""
        self.lost = 0
        """Frames known to be missing (picture ID jumps, or frames given up without one)."""
        self.frame_seq = -1
        """Number of the frame delivered last: +1 per frame, + every lost frame."""
        self._picture: tuple[int, int] | None = None  # last released (picture ID, modulus)
        self._given_up = 0  # frames given up since the last release (without picture IDs)
        self.ssrc: int | None = None
        """Media SSRC of the last packet (RTX already unwrapped): where a PLI must go."""
        self.last_seq: int | None = None
        self.repair = DEFAULT_REPAIR
        """Seconds a missing packet took to arrive (rises at once, falls slowly)."""
        self.interval = DEFAULT_INTERVAL
        """Seconds between frames, from their RTP timestamps (smoothed)."""
        self._last_timestamp: int | None = None
        self._blocked_at: int | None = None  # the missing sequence number the cursor waits on
        self._blocked_since = 0.0
        self._abandoned: tuple[int, int, float] | None = None  # (first, end, since) given up
        self._timer: Cancellable | None = None
        self._timer_due = 0.0
        self._closed = False
        self.queue = 0.0
        """Seconds the newest frames arrived later than the link's best (rises at once)."""
        self._marker_ts: int | None = None  # RTP timestamp of the last frame-ending packet
        self._media = 0.0  # its capture time, seconds from the first (unwrapped)
        self._floor = (float("inf"), float("inf"))  # arrival-delay minimum: (older, current)
        self._floor_until = 0.0
        self._arrivals: dict[int, float] = {}  # seq -> arrival time, while a gap is open
        self._need_key = False  # frames were given up and no key frame released since

    def wait(self) -> float:
        """How long a missing packet is waited for before its frames are given up."""
        base = max(self.repair, self.queue + MIN_WAIT) + 3 * self.interval
        if self._blocked_on_keyframe():
            return min(MAX_KEY_WAIT, max(MIN_WAIT, 2 * base))
        if self._need_key:
            return MIN_WAIT  # a delta frame after a loss: undecodable until the key frame
        return min(MAX_WAIT, max(MIN_WAIT, base))

    def _blocked_on_keyframe(self) -> bool:
        origin = self._origin
        first = self._packets.get(origin) if origin is not None else None
        return first is not None and _is_keyframe(first)

    def _arrived(self, timestamp: int, now: float) -> None:
        """A frame's last packet arrived ``now``: update the queueing delay (per frame)."""
        if self._marker_ts is not None:
            delta = (timestamp - self._marker_ts) & 0xFFFFFFFF
            if delta >= 0x80000000:
                return  # an older frame's marker (reordered or retransmitted)
            self._media += delta / 90000
        self._marker_ts = timestamp
        delay = now - self._media
        older, current = self._floor
        if now >= self._floor_until:
            older, current, self._floor_until = current, delay, now + FLOOR_WINDOW
        else:
            current = min(current, delay)
        self._floor = (older, current)
        queue = delay - min(older, current)
        self.queue = max(queue, 0.9 * self.queue + 0.1 * queue)

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        seq = packet.sequence_number
        self.ssrc, self.last_seq = packet.ssrc, seq
        if self._origin is None:
            # Joined mid-frame (or after giving up): keep packets until a frame starts.
            self._packets[seq] = packet
            if not vp8_frame_start(packet):
                if len(self._packets) > MAX_SPAN:
                    self._packets.clear()
                return False, None
            self._origin = self._cursor = seq
            for older in [s for s in self._packets if uint16_gt(seq, s)]:
                del self._packets[older]
        elif not uint16_gt(seq, uint16_add(self._origin, -1)):
            # Older than what was released or given up: late (or a duplicate). Dropped; if
            # it belongs to a gap that was given up, it says how slow repairs really are.
            self.late += 1
            if self._abandoned is not None:
                self._repaired_late(seq)
            return False, None
        if packet.marker or self._blocked_at is not None:
            now = self._clock().time()
            if packet.marker:
                self._arrived(packet.timestamp, now)
            if self._blocked_at is not None:
                self._arrivals[seq] = now
        self._packets[seq] = packet
        pli = self._advance()
        origin = self._origin
        if origin is not None and uint16_gt(seq, origin) and uint16_add(seq, -origin) >= MAX_SPAN:
            pli = self._skip_gap() or pli
            if self._origin is not None:
                self._advance()
        self._watch()
        if pli and self._on_loss is not None:
            self._on_loss(True)
        return pli, None

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the gap timer --------------------------------------------------------------------
    def _clock(self) -> Timers:
        if self._timers is None:
            self._timers = asyncio.get_running_loop()
        return self._timers

    def _watch(self) -> None:
        """Note when the cursor starts (or stops) waiting on a missing packet.

        Per packet this is two comparisons; the clock is read only when a gap opens or
        closes. Packets beyond the cursor mean the one at the cursor is missing.
        """
        cursor, origin = self._cursor, self._origin
        if (
            cursor is not None
            and origin is not None
            and len(self._packets) > (cursor - origin) & 0xFFFF
        ):
            if self._blocked_at != cursor:
                now = self._clock().time()
                if self._blocked_at is not None:
                    self._note_repair(now - self._asked_since())
                since = self._missing_since(cursor, now)
                self._blocked_at, self._blocked_since = cursor, since
                due = since + self.wait()
                if self._retrying():
                    self._retry_due = max(self._retry_due, since + self._retry_interval())
                    due = min(due, self._retry_due)
                self._arm(due)
            return
        if self._blocked_at is not None:
            self._note_repair(self._clock().time() - self._asked_since())
            self._blocked_at = None
            self._arrivals.clear()

    def _missing_since(self, cursor: int, now: float) -> float:
        """When ``cursor`` was first known missing: the arrival of the first packet beyond it.

        A burst of losses leaves several holes; the cursor reaches the second only when the
        first is repaired or given up, and waiting for it afresh then made the waits add up
        (four holes, four full waits in a row: bench/weaklink.py, weak_500k). Arrival times
        are kept only while a gap is open.
        """
        arrivals = self._arrivals
        for seq in [s for s in arrivals if not uint16_gt(s, cursor)]:
            del arrivals[seq]
        return min(arrivals.values(), default=now)

    def _arm(self, due: float) -> None:
        if self._closed or (self._timer is not None and self._timer_due <= due):
            return  # the pending timer fires first and re-arms for the real deadline
        if self._timer is not None:
            self._timer.cancel()
        timers = self._clock()
        self._timer_due = due
        self._timer = timers.call_later(max(0.0, due - timers.time()), self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._blocked_at is None or self._closed:
            return
        due = self._blocked_since + self.wait()
        now = self._clock().time()
        if now < due:
            if self._retrying():
                if now >= self._retry_due:
                    self._nack_missing()
                    self._retried_at = now
                    self._retry_due = now + self._retry_interval()
                due = min(due, self._retry_due)
            self._arm(due)
            return
        self._skip_gap()
        if self._origin is not None:
            self._advance()  # everything complete behind the gap goes out now
        self._watch()
        if self._on_loss is not None:
            self._on_loss(False)

    def _asked_since(self) -> float:
        """When the repair of the hole at the cursor was last asked for: a repair's time
        counts from the NACK that brought it, so retries do not inflate the estimate."""
        return max(self._blocked_since, self._retried_at)

    def _retrying(self) -> bool:
        return NACK_RETRY and self.on_nack is not None

    def _retry_interval(self) -> float:
        """A repair is overdue one repair time (plus a frame) after it was asked for.

        aiortc's ``NackGenerator`` NACKs a hole once, when it is first seen, and again only
        when some later loss opens another hole; a retransmission lost on the way (2 % loss,
        or dropped by a phone's full uplink queue at the onset of congestion) was then
        waited for until the give-up and cost a key frame. Browsers re-send NACKs every
        round trip; so does this.
        """
        return max(MIN_RETRY, self.repair + self.interval)

    def _nack_missing(self) -> None:
        """NACK the sequence numbers between the cursor and the newest buffered packet."""
        cursor = self._cursor
        if cursor is None or self.on_nack is None:
            return
        packets = self._packets
        # Packets of the frame being built sit just before the cursor (offsets near 2**16).
        offsets = ((s - cursor) & 0xFFFF for s in packets)
        span = max((o for o in offsets if o < MAX_SPAN), default=0)
        missing = [
            seq for seq in (uint16_add(cursor, i) for i in range(span)) if seq not in packets
        ][:MAX_NACK]
        if missing:
            self.nack_retries += 1
            self.on_nack(missing)

    def _note_repair(self, seconds: float) -> None:
        self.repair = max(seconds, 0.8 * self.repair + 0.2 * seconds)

    def _repaired_late(self, seq: int) -> None:
        assert self._abandoned is not None
        first, end, since = self._abandoned
        if (seq - first) & 0xFFFF < (end - first) & 0xFFFF:
            self._note_repair(self._clock().time() - since)
            self._abandoned = None

    # -- frames ---------------------------------------------------------------------------
    def _advance(self) -> bool:
        """Move the cursor over newly contiguous packets, releasing complete frames."""
        assert self._cursor is not None and self._origin is not None
        broken = False
        while (packet := self._packets.get(self._cursor)) is not None:
            if self._cursor != self._origin and vp8_frame_start(packet):
                # A new frame starts but the previous one never saw its marker bit.
                self._drop_until(self._cursor)
                self._given_up += 1
                self._need_key = broken = True
            if packet.marker:
                self._release(self._cursor)
            self._cursor = uint16_add(self._cursor, 1)
        return broken

    def _release(self, last: int) -> None:
        assert self._origin is not None
        timestamp = self._packets[last].timestamp
        first = self._packets[self._origin]
        picture = vp8_picture_id(first.payload)
        if self._need_key and _is_keyframe(first):
            self._need_key = False
        step = 1 + self._given_up
        if picture is not None and self._picture is not None and picture[1] == self._picture[1]:
            step = (picture[0] - self._picture[0]) % picture[1] or 1
        self._picture, self._given_up = picture, 0
        self.lost += step - 1
        if self._last_timestamp is not None:
            delta = (timestamp - self._last_timestamp) & 0xFFFFFFFF
            if 0 < delta < 45000 * step:
                self.interval += (delta / step / 90000 - self.interval) / 8
        self._last_timestamp = timestamp
        parts = []
        seq = self._origin
        while True:
            parts.append(_data(self._packets.pop(seq)))
            if seq == last:
                break
            seq = uint16_add(seq, 1)
        self.frames += 1
        self._origin = uint16_add(last, 1)
        self.frame_seq += step
        self._deliver(JitterFrame(data=b"".join(parts), timestamp=timestamp), self.frame_seq)

    def _drop_until(self, seq: int) -> None:
        assert self._origin is not None
        while self._origin != seq:
            self._packets.pop(self._origin, None)
            self._origin = uint16_add(self._origin, 1)

    def _skip_gap(self) -> bool:
        """Give up the frames behind a gap: restart at the oldest buffered frame start."""
        assert self._origin is not None
        self.gaps += 1
        self._given_up += 1
        self._need_key = True
        missing = self._cursor if self._cursor is not None else self._origin
        since = self._blocked_since if self._blocked_at is not None else self._clock().time()
        self._blocked_at = None
        starts = sorted(
            (uint16_add(s, -self._origin), s)
            for s, p in self._packets.items()
            if vp8_frame_start(p) and s != self._origin
        )
        if not starts:
            newest = max(self._packets, key=lambda s: (s - missing) & 0xFFFF, default=missing)
            end = uint16_add(newest, 1)
            self._abandoned = (missing, end, since)
            self._packets.clear()
            self._origin = None
            self._cursor = None
            return True
        start = starts[0][1]
        self._abandoned = (missing, start, since)
        for s in [s for s in self._packets if uint16_gt(start, s)]:
            del self._packets[s]
        self._origin = self._cursor = start
        return True


class AudioAssembler:
    def __init__(self) -> None:
        self._last: int | None = None
        self.frames = 0
        self.ssrc: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        self.ssrc = packet.ssrc
        if self._last is not None and not uint16_gt(seq, self._last):
            return False, None
        self._last = seq
        self.frames += 1
        return False, JitterFrame(data=_data(packet), timestamp=packet.timestamp)
