"""Transport-wide congestion control feedback on the relay's receiving side.

aiortc 1.16 has no transport-cc (its issue #780): a browser publishing to it can only use
REMB from aiortc's receive-side estimator, which does not track a mobile uplink. With
``transport-cc`` negotiated (see :func:`signaling.negotiation.enable_transport_cc`) the
browser numbers every RTP packet of the connection with a transport-wide sequence number
(header extension ``draft-holmer-rmcat-transport-wide-cc-extensions-01``) and runs its own
send-side estimator (GCC) on the arrival times we report back.

* :class:`TransportFeedback` records, for every RTP datagram of one publish connection
  (called from :class:`signaling.receiving.PacketReceiver` on the socket callback, after
  SRTP), the transport-wide sequence number and its arrival time (the kernel's receive
  stamp, see :mod:`signaling.sockets`), and every
  :data:`FEEDBACK_INTERVAL` sends RTCP transport-cc feedback for what arrived since the
  last one, through the connection's SRTCP.
* :func:`encode_feedback` / :func:`parse_feedback`: the RTPFB (PT=205) FMT=15 packet of the
  draft's §3.1 — base sequence number, packet status count, 24-bit reference time in 64 ms,
  feedback packet count, packet status chunks (run-length and one/two-bit status vectors,
  chosen as libwebrtc and pion/interceptor choose them) and receive deltas in 250 µs
  (one byte when 0..63.75 ms, else two bytes signed). Padding as libwebrtc writes it: the
  P bit set, zeros, the last byte the count.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTCP_RTPFB = 205
FMT_TWCC = 15
FEEDBACK_INTERVAL = 0.05
"""Seconds between two feedback packets while packets arrive (libwebrtc: 50–250 ms)."""
MAX_STATUS_PER_PACKET = 1000
"""Packet statuses per feedback packet; more are split (keeps a packet well under the MTU
for reasonable loss patterns, like libwebrtc's limit on its feedback size)."""

NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2
DELTA_US = 250
REFERENCE_US = 64_000
_RUN_MAX = 0x1FFF
_ONE_BIT = 14
_TWO_BIT = 7
_HEAD = struct.Struct("!BBHLLHHL")  # header, ssrcs, base, count, ref time << 8 | fb count


@dataclass
class Feedback:
    """One parsed feedback packet; ``arrivals_us`` is None for a packet not received."""

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    reference_time: int
    """In 64 ms units (24 bits)."""
    count: int
    """Feedback packet count (8 bits)."""
    statuses: list[int] = field(default_factory=list)
    arrivals_us: list[int | None] = field(default_factory=list)
    """Per status: reference time + the cumulative deltas, in µs."""


class _Chunk:
    """The chunk being filled (pion/interceptor ``chunk``, after libwebrtc's LastChunk)."""

    __slots__ = ("large", "mixed", "symbols")

    def __init__(self) -> None:
        self.symbols: list[int] = []
        self.large = False
        self.mixed = False

    def can_add(self, symbol: int) -> bool:
        n = len(self.symbols)
        if n < _TWO_BIT:
            return True
        if n < _ONE_BIT and not self.large and symbol != LARGE_DELTA:
            return True
        return n < _RUN_MAX and not self.mixed and symbol == self.symbols[0]

    def add(self, symbol: int) -> None:
        if self.symbols and symbol != self.symbols[0]:
            self.mixed = True
        if symbol == LARGE_DELTA:
            self.large = True
        self.symbols.append(symbol)

    def encode(self) -> int:
        symbols = self.symbols
        if not self.mixed:
            word = (symbols[0] << 13) | len(symbols)
            self.symbols, self.large = [], False
            return word
        if len(symbols) == _ONE_BIT and not self.large:
            word = 0x8000
            for i, s in enumerate(symbols):
                word |= s << (13 - i)
            self.symbols, self.mixed = [], False
            return word
        word = 0xC000
        head = symbols[:_TWO_BIT]
        for i, s in enumerate(head):
            word |= s << (12 - 2 * i)
        rest = self.symbols = symbols[_TWO_BIT:]
        self.large = LARGE_DELTA in rest
        self.mixed = any(s != rest[0] for s in rest) if rest else False
        return word


def encode_feedback(
    sender_ssrc: int,
    media_ssrc: int,
    count: int,
    base_sequence: int,
    packets: list[tuple[int, int]],
) -> tuple[bytes, int]:
    """One feedback packet for ``packets`` (unwrapped sequence number, arrival µs), sorted
    by sequence number, all ≥ ``base_sequence``; earlier sequence numbers in the range
    that are absent are reported as not received.

    Returns the packet and how many of ``packets`` it covers: it stops before a packet
    whose delta does not fit in 16 bits (a stall of over 8 s) or beyond
    :data:`MAX_STATUS_PER_PACKET` statuses; the caller starts the next packet there.
    """
    if not packets:
        raise ValueError("no packets to report")
    reference = packets[0][1] // REFERENCE_US
    last_us = reference * REFERENCE_US
    chunk = _Chunk()
    chunks: list[int] = []
    deltas = bytearray()
    next_seq = base_sequence
    used = 0
    for seq, arrival in packets:
        if seq - base_sequence >= MAX_STATUS_PER_PACKET and used:
            break
        delta_us = arrival - last_us
        delta = (delta_us + 125) // DELTA_US if delta_us >= 0 else -((125 - delta_us) // DELTA_US)
        if not -0x8000 <= delta <= 0x7FFF:
            if used:
                break
            raise ValueError("the first arrival is always within 64 ms of the reference")
        while next_seq < seq:
            if not chunk.can_add(NOT_RECEIVED):
                chunks.append(chunk.encode())
            chunk.add(NOT_RECEIVED)
            next_seq += 1
        if 0 <= delta <= 0xFF:
            symbol = SMALL_DELTA
            deltas.append(delta)
        else:
            symbol = LARGE_DELTA
            deltas += (delta & 0xFFFF).to_bytes(2, "big")
        if not chunk.can_add(symbol):
            chunks.append(chunk.encode())
        chunk.add(symbol)
        last_us += delta * DELTA_US
        next_seq = seq + 1
        used += 1
    while chunk.symbols:
        chunks.append(chunk.encode())
    body = b"".join(c.to_bytes(2, "big") for c in chunks) + bytes(deltas)
    size = _HEAD.size + len(body)
    padding = -size % 4
    if padding:
        body += bytes(padding - 1) + bytes((padding,))
    first = 0x80 | (0x20 if padding else 0) | FMT_TWCC
    head = _HEAD.pack(
        first,
        RTCP_RTPFB,
        (size + padding) // 4 - 1,
        sender_ssrc,
        media_ssrc,
        base_sequence & 0xFFFF,
        next_seq - base_sequence,
        ((reference & 0xFFFFFF) << 8) | (count & 0xFF),
    )
    return head + body, used


def parse_feedback(data: bytes) -> Feedback:
    """Parse one transport-cc feedback packet (raises ValueError on anything else)."""
    if len(data) < _HEAD.size or data[0] >> 6 != 2 or data[0] & 0x1F != FMT_TWCC:
        raise ValueError("not an RTCP transport-cc feedback packet")
    first, pt, length, sender, media, base, status_count, ref = _HEAD.unpack_from(data)
    end = (length + 1) * 4
    if pt != RTCP_RTPFB or end > len(data):
        raise ValueError("bad RTCP header")
    if first & 0x20:
        end -= data[end - 1]
    reference = ref >> 8
    feedback = Feedback(sender, media, base, reference, ref & 0xFF)
    pos = _HEAD.size
    statuses = feedback.statuses
    while len(statuses) < status_count:
        if pos + 2 > end:
            raise ValueError("truncated packet chunks")
        word = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if not word & 0x8000:
            statuses.extend([(word >> 13) & 0x3] * (word & _RUN_MAX))
        elif not word & 0x4000:
            statuses.extend((word >> (13 - i)) & 1 for i in range(_ONE_BIT))
        else:
            statuses.extend((word >> (12 - 2 * i)) & 3 for i in range(_TWO_BIT))
    del statuses[status_count:]
    now = reference * REFERENCE_US
    for symbol in statuses:
        if symbol == NOT_RECEIVED:
            feedback.arrivals_us.append(None)
            continue
        if symbol == SMALL_DELTA:
            if pos + 1 > end:
                raise ValueError("truncated receive deltas")
            now += data[pos] * DELTA_US
            pos += 1
        elif symbol == LARGE_DELTA:
            if pos + 2 > end:
                raise ValueError("truncated receive deltas")
            now += int.from_bytes(data[pos : pos + 2], "big", signed=True) * DELTA_US
            pos += 2
        else:
            raise ValueError("reserved packet status symbol")
        feedback.arrivals_us.append(now)
    return feedback


def transport_sequence(data: bytes, ext_id: int) -> int | None:
    """The transport-wide sequence number in an RTP packet's header extension ``ext_id``."""
    b0 = data[0]
    if not b0 & 0x10:
        return None
    pos = 12 + (b0 & 0x0F) * 4
    end = pos + 4 + ((data[pos + 2] << 8) | data[pos + 3]) * 4 if len(data) > pos + 3 else 0
    if end > len(data):
        return None
    profile = (data[pos] << 8) | data[pos + 1]
    pos += 4
    if profile == 0xBEDE:  # one-byte elements (RFC 8285 §4.2)
        while pos < end:
            b = data[pos]
            if b == 0:
                pos += 1
                continue
            xid = b >> 4
            if xid == ext_id:
                return (data[pos + 1] << 8) | data[pos + 2] if pos + 2 < end else None
            if xid == 15:
                return None
            pos += (b & 0x0F) + 2
    elif profile & 0xFFF0 == 0x1000:  # two-byte elements (§4.3)
        while pos + 1 < end:
            xid = data[pos]
            if xid == 0:
                pos += 1
                continue
            if xid == ext_id:
                return (data[pos + 2] << 8) | data[pos + 3] if pos + 3 < end else None
            pos += data[pos + 1] + 2
    return None


class TransportFeedback:
    """Arrival times of one connection's packets and the feedback sent about them.

    ``record`` is the per-packet part (a few list appends); the timer that builds the
    feedback runs only while packets arrive. ``send`` takes the plain RTCP packet (it is
    SRTCP-protected and sent by the caller), ``sender_ssrc`` is read when sending (aiortc
    sets the receiver's RTCP SSRC once the transceivers are negotiated).
    """

    def __init__(
        self,
        ext_id: int,
        send: Callable[[bytes], None],
        sender_ssrc: Callable[[], int | None],
        interval: float = FEEDBACK_INTERVAL,
    ) -> None:
        self.ext_id = ext_id
        self._send = send
        self._sender_ssrc = sender_ssrc
        self.interval = interval
        self._loop = asyncio.get_running_loop()
        self._seqs: list[int] = []
        self._times: list[int] = []
        self._media_ssrc = 0
        self._highest: int | None = None
        self._next: int | None = None
        """Lowest unwrapped sequence number not yet reported."""
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.packets = 0
        self.feedbacks = 0
        self.late = 0

    def record(self, data: bytes, arrival_us: int | None = None) -> None:
        """Note one plain RTP packet's arrival (socket callback, after SRTP unprotect).

        ``arrival_us``: its arrival in µs on any clock, the same for every packet of the
        connection (the relay passes the kernel's receive stamp, signaling/sockets.py);
        None reads the loop's clock now.
        """
        seq = transport_sequence(data, self.ext_id)
        if seq is None:
            return
        self._seqs.append(seq)
        self._times.append(int(self._loop.time() * 1_000_000) if arrival_us is None else arrival_us)
        if not self._media_ssrc:
            self._media_ssrc = int.from_bytes(data[8:12], "big")
        if self._timer is None and not self.closed:
            self._timer = self._loop.call_later(self.interval, self.flush)

    def _unwrap(self, seq: int) -> int:
        highest = self._highest
        if highest is None:
            self._highest = seq
            return seq
        delta = ((seq - highest) + 0x8000) % 0x10000 - 0x8000
        value = highest + delta
        if value > highest:
            self._highest = value
        return value

    def flush(self) -> None:
        """Send feedback for everything recorded since the last one."""
        self._timer = None
        seqs, times = self._seqs, self._times
        self._seqs, self._times = [], []
        ssrc = self._sender_ssrc()
        if self.closed or not seqs or ssrc is None:
            return
        arrivals: dict[int, int] = {}
        unwrap = self._unwrap
        for seq, at in zip(seqs, times, strict=True):
            arrivals.setdefault(unwrap(seq), at)
        start = self._next
        packets = sorted(arrivals.items())
        if start is not None:
            kept = [p for p in packets if p[0] >= start]
            self.late += len(packets) - len(kept)
            packets = kept
        if not packets:
            return
        base = packets[0][0] if start is None else max(start, packets[0][0] - 0x7FFE)
        try:
            while packets:
                data, used = encode_feedback(ssrc, self._media_ssrc, self._count, base, packets)
                self._count = (self._count + 1) & 0xFF
                self._send(data)
                self.feedbacks += 1
                self.packets += used
                base = packets[used - 1][0] + 1
                packets = packets[used:]
        except ConnectionError:
            pass
        finally:
            self._next = base

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
