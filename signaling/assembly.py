"""Frame re-assembly for relay receivers, replacing aiortc's ``JitterBuffer``.

aiortc 1.16's ``JitterBuffer.add`` re-walks every buffered packet of the current frame on
each arrival (quadratic in packets per frame: a 100 kB key frame is ~80 packets, ~3 000
steps) and only releases a frame when a packet of the *next* one arrives (video: one
frame of delay; audio: ``prefetch=4``, i.e. 80 ms). A relay only has to put packets back
into whole frames, so on relay receivers (see :func:`signaling.packets.install_packet_sink`)
the private ``_RTCRtpReceiver__jitter_buffer`` is replaced by:

* :class:`VideoAssembler`: a cursor walks the contiguous packets once; a frame is released
  as soon as its marker-bit packet is contiguous with the frame's first packet. Lost packets
  are waited for (NACK/RTX may bring them) until :data:`MAX_SPAN` sequence numbers pile up;
  then the frames in the gap are given up, the next frame start is sought, and the returned
  ``pli_flag`` makes aiortc ask the publisher for a key frame. Every released frame gets a
  number, :attr:`VideoAssembler.frame_seq`, that skips the frames known to be lost (from
  the VP8 picture ID when the publisher sends one, else one per give-up), so whoever reads
  the frames (the recorder) can tell a real loss from a late one.
* :class:`AudioAssembler`: an Opus packet is a frame; it is released at once unless it is
  older than the last released one.

Both keep aiortc's interface: ``add(packet) -> (pli_flag, JitterFrame | None)``.
"""

from __future__ import annotations

from collections import deque

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

MAX_SPAN = 256
"""Sequence numbers buffered behind a missing packet before its frame is given up."""


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


def vp8_frame_start(packet: RtpPacket) -> bool:
    """RFC 7741 payload descriptor: S=1 and partition id 0 begins a frame."""
    payload = packet.payload
    return bool(payload) and bool(payload[0] & 0x10) and payload[0] & 0x07 == 0


class VideoAssembler:
    def __init__(self) -> None:
        self._packets: dict[int, RtpPacket] = {}
        self._origin: int | None = None  # first sequence number of the frame being built
        self._cursor: int | None = None  # next sequence number to check for contiguity
        self._ready: deque[tuple[JitterFrame, int]] = deque()
        self.frames = 0
        self.gaps = 0
        self.lost = 0
        """Frames known to be missing (picture ID jumps, or frames given up without one)."""
        self.frame_seq = -1
        """Number of the frame ``add`` returned last: +1 per frame, + every lost frame."""
        self._picture: tuple[int, int] | None = None  # last released (picture ID, modulus)
        self._given_up = 0  # frames given up since the last release (without picture IDs)
        self.ssrc: int | None = None
        """Media SSRC of the last packet (RTX already unwrapped): where a PLI must go."""
        self.last_seq: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
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
            return False, None  # older than what was already released: late or duplicate
        self._packets[seq] = packet
        pli = self._advance()
        origin = self._origin
        if origin is not None and uint16_gt(seq, origin) and uint16_add(seq, -origin) >= MAX_SPAN:
            pli = self._skip_gap() or pli
            if self._origin is not None:
                self._advance()
        if not self._ready:
            return pli, None
        released, self.frame_seq = self._ready.popleft()
        return pli, released

    def _advance(self) -> bool:
        """Move the cursor over newly contiguous packets, releasing complete frames."""
        assert self._cursor is not None and self._origin is not None
        broken = False
        while (packet := self._packets.get(self._cursor)) is not None:
            if self._cursor != self._origin and vp8_frame_start(packet):
                # A new frame starts but the previous one never saw its marker bit.
                self._drop_until(self._cursor)
                self._given_up += 1
                broken = True
            if packet.marker:
                self._release(self._cursor)
            self._cursor = uint16_add(self._cursor, 1)
        return broken

    def _release(self, last: int) -> None:
        assert self._origin is not None
        timestamp = self._packets[last].timestamp
        picture = vp8_picture_id(self._packets[self._origin].payload)
        step = 1 + self._given_up
        if picture is not None and self._picture is not None and picture[1] == self._picture[1]:
            step = (picture[0] - self._picture[0]) % picture[1] or 1
        self._picture, self._given_up = picture, 0
        self.lost += step - 1
        number = (self._ready[-1][1] if self._ready else self.frame_seq) + step
        parts = []
        seq = self._origin
        while True:
            parts.append(_data(self._packets.pop(seq)))
            if seq == last:
                break
            seq = uint16_add(seq, 1)
        self._ready.append((JitterFrame(data=b"".join(parts), timestamp=timestamp), number))
        self.frames += 1
        self._origin = uint16_add(last, 1)

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
        starts = sorted(
            (uint16_add(s, -self._origin), s)
            for s, p in self._packets.items()
            if vp8_frame_start(p) and s != self._origin
        )
        if not starts:
            self._packets.clear()
            self._origin = None
            self._cursor = None
            return True
        start = starts[0][1]
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
