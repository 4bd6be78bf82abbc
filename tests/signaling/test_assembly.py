"""Frame re-assembly that replaces aiortc's jitter buffer on relay receivers.

The video assembler runs here on a clock the test moves (``FakeTimers``), so the bounded
wait for a lost packet is checked to the millisecond without sleeping.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from signaling.assembly import (
    DEFAULT_REPAIR,
    MAX_KEY_WAIT,
    MAX_SPAN,
    MAX_WAIT,
    MIN_WAIT,
    AudioAssembler,
    VideoAssembler,
)
from signaling.packets import install_packet_sink


class FakeTimers:
    """``time()`` and ``call_later()`` of an event loop, on a clock moved by ``advance``."""

    def __init__(self) -> None:
        self.now = 100.0
        self._due: list[tuple[float, int, _Handle]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], object]) -> _Handle:
        handle = _Handle(callback)
        heapq.heappush(self._due, (self.now + delay, next(self._order), handle))
        return handle

    @property
    def pending(self) -> int:
        return sum(1 for _, _, h in self._due if not h.cancelled)

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._due and self._due[0][0] <= end:
            due, _, handle = heapq.heappop(self._due)
            self.now = max(self.now, due)
            if not handle.cancelled:
                handle.callback()
        self.now = end


class _Handle:
    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Harness:
    """A video assembler with a fake clock that records what it delivers and when."""

    def __init__(self, *, nack: bool = False) -> None:
        self.timers = FakeTimers()
        self.frames: list[tuple[float, int, int]] = []  # (time, RTP timestamp, number)
        self.losses: list[tuple[float, bool]] = []
        self.nacks: list[tuple[float, list[int]]] = []
        self.assembler = VideoAssembler(
            self._frame,
            on_loss=self._loss,
            on_nack=self._nack if nack else None,
            timers=self.timers,
        )

    def _nack(self, missing: list[int]) -> None:
        self.nacks.append((self.timers.now, missing))

    def _frame(self, frame: JitterFrame, number: int) -> None:
        self.frames.append((self.timers.now, frame.timestamp, number))
        self.data = frame.data

    def _loss(self, pli_sent: bool) -> None:
        self.losses.append((self.timers.now, pli_sent))

    def feed(self, packets: list[RtpPacket], every: float = 0.0) -> list[bool]:
        plis = []
        for packet in packets:
            plis.append(self.assembler.add(packet)[0])
            self.timers.advance(every)
        return plis

    @property
    def timestamps(self) -> list[int]:
        return [ts for _, ts, _ in self.frames]


def vp8(seq: int, ts: int, *, start: bool, marker: bool, body: bytes = b"x") -> RtpPacket:
    packet = RtpPacket(payload_type=97, sequence_number=seq % 65536, timestamp=ts)
    packet.marker = int(marker)
    packet.payload = bytes([0x10 if start else 0x00]) + body
    packet._data = body  # type: ignore[attr-defined]  # what aiortc's depayload() sets
    return packet


def frame(seq: int, ts: int, n: int, *, key: bool = False) -> list[RtpPacket]:
    """A frame of ``n`` packets; its data's first byte is the VP8 frame tag (bit 0: delta)."""
    tag = 0x00 if key else 0x01
    return [
        vp8(seq + i, ts, start=i == 0, marker=i == n - 1, body=bytes([i or tag])) for i in range(n)
    ]


def frames(seq: int, ts: int, count: int, n: int = 2) -> list[RtpPacket]:
    """``count`` frames of ``n`` packets each, 30 fps, from ``seq``/``ts`` on."""
    return [p for k in range(count) for p in frame(seq + k * n, ts + k * 3000, n)]


def test_frames_released_on_marker_in_order_and_reordered() -> None:
    h = Harness()
    packets = frame(65534, 1000, 3) + frame(1, 4000, 2)  # crosses the sequence wrap
    packets[0], packets[1] = packets[1], packets[0]  # reordered inside a frame
    assert not any(h.feed(packets))
    assert h.timestamps == [1000, 4000] and h.data == b"\x01\x01"
    assert h.timers.pending == 0 or h.assembler.gaps == 0


def test_mid_frame_join_waits_for_a_frame_start() -> None:
    h = Harness()
    h.feed(frame(10, 1000, 3)[1:] + frame(13, 4000, 2))
    assert h.timestamps == [4000]


def test_a_lost_packet_is_given_up_within_the_bound_and_every_frame_behind_it_at_once() -> None:
    h = Harness()
    h.feed(frame(0, 0, 2))
    broken = frame(2, 3000, 3)
    del broken[1]  # never arrives, not even by RTX
    after = frames(5, 6000, 5)  # five complete frames behind the gap (a burst)
    h.feed(broken)
    gap_opened = h.timers.now
    h.feed(after, every=0.005)
    assert h.timestamps == [0]  # held behind the gap (NACK/RTX may still bring it)
    bound = h.assembler.wait()
    assert MIN_WAIT <= bound <= MAX_WAIT
    h.timers.advance(gap_opened + bound - h.timers.now - 0.001)
    assert h.timestamps == [0] and not h.losses
    h.timers.advance(0.002)
    # All five released in the same instant, the broken one not at all.
    assert h.timestamps == [0, 6000, 9000, 12000, 15000, 18000]
    [released_at] = {t for t, _, _ in h.frames[1:]}
    assert released_at == pytest.approx(gap_opened + bound)
    assert h.losses == [(released_at, False)]  # no packet to answer: the owner sends the PLI
    # The frame given up leaves its number out (what the recorder reports as a gap).
    assert [n for _, _, n in h.frames] == [0, 2, 3, 4, 5, 6]
    assert h.assembler.gaps == 1 and h.assembler.lost == 1


def test_give_up_needs_no_further_packet_an_outage() -> None:
    """The uplink dies right after a loss: nothing else arrives, the timer still ends it."""
    h = Harness()
    packets = frames(0, 0, 4)
    del packets[2]  # the first packet of the second frame
    h.feed(packets)
    assert h.timestamps == [0]
    h.timers.advance(MAX_WAIT)
    assert h.timestamps == [0, 6000, 9000]
    assert len(h.losses) == 1 and h.timers.pending == 0


def test_after_an_outage_the_stream_resumes_within_the_bound() -> None:
    h = Harness()
    h.feed(frames(0, 0, 3), every=1 / 30)
    # 5 s of packets lost; what comes after starts in the middle of a frame.
    resumed = frames(3 + 300, 3000 * (3 + 150), 10)[1:]
    h.feed(resumed[:6], every=1 / 30)
    restored = h.timers.now
    h.timers.advance(MAX_WAIT)
    assert len(h.timestamps) == 3 + 2  # the two complete frames after the broken first one
    assert max(t for t, _, _ in h.frames) - restored <= MAX_WAIT
    h.feed(resumed[6:])
    assert len(h.timestamps) == 3 + 2 + 7  # and from then on every frame as it completes


def test_a_late_packet_is_dropped_and_teaches_the_wait() -> None:
    h = Harness()
    h.feed(frame(0, 0, 2))
    wait_before = h.assembler.wait()
    lost = vp8(3, 3000, start=False, marker=True)
    h.feed([vp8(2, 3000, start=True, marker=False, body=b"\x01"), *frames(4, 6000, 3)])
    h.timers.advance(MAX_WAIT)
    assert h.timestamps == [0, 6000, 9000, 12000]
    # Until a key frame comes, the frames after the loss are undecodable: no long waits.
    assert h.assembler.wait() == MIN_WAIT
    h.timers.advance(0.3)  # the retransmission comes 0.3 s after the gap opened + the wait
    h.feed([lost])
    assert h.timestamps == [0, 6000, 9000, 12000]  # late: never queued, never released
    assert h.assembler.late == 1
    h.feed(frame(10, 15000, 2, key=True))  # the key frame the give-up asked for
    assert h.assembler.wait() > wait_before  # the next gap is waited for longer
    assert h.assembler.wait() <= MAX_WAIT


def test_a_packet_repaired_in_time_completes_its_frame() -> None:
    h = Harness()
    packets = frames(0, 0, 3)
    missing = packets.pop(3)
    h.feed(packets)
    h.timers.advance(0.05)  # RTX, one round trip later
    h.feed([missing])
    assert h.timestamps == [0, 3000, 6000] and not h.losses
    h.timers.advance(1.0)
    # A repair faster than assumed lowers the estimate, slowly (one sample is not a trend).
    assert h.assembler.gaps == 0 and 0.05 < h.assembler.repair < DEFAULT_REPAIR


def test_a_span_of_packets_behind_a_gap_gives_up_at_once_with_a_pli() -> None:
    h = Harness()
    first = frame(0, 0, 3)
    del first[1]
    plis = h.feed(first + frames(3, 3000, MAX_SPAN // 2 + 5))  # no time passes
    assert any(plis) and (h.timers.now, True) in h.losses  # aiortc sends this PLI
    assert 0 not in h.timestamps and h.timestamps == sorted(h.timestamps)
    assert len(h.timestamps) == MAX_SPAN // 2 + 5


def test_close_cancels_the_timer() -> None:
    h = Harness()
    packets = frames(0, 0, 3)
    del packets[2]
    h.feed(packets)
    assert h.timers.pending == 1
    h.assembler.close()
    h.timers.advance(1.0)
    assert h.timestamps == [0] and not h.losses


def test_audio_passes_through_and_drops_late_packets() -> None:
    assembler = AudioAssembler()
    out = []
    for seq in (5, 6, 4, 8, 7):
        packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 960)
        packet._data = b"opus"  # type: ignore[attr-defined]
        result = assembler.add(packet)[1]
        out.append(result.timestamp // 960 if result is not None else None)
    assert out == [5, 6, None, 8, None]


def vp8_pic(seq: int, ts: int, picture: int, *, start: bool, marker: bool) -> RtpPacket:
    """A VP8 packet whose payload descriptor carries a 15-bit picture ID (RFC 7741 §4.2)."""
    packet = RtpPacket(payload_type=97, sequence_number=seq % 65536, timestamp=ts)
    packet.marker = int(marker)
    descriptor = bytes([0x90 if start else 0x80, 0x80, 0x80 | (picture >> 8), picture & 0xFF])
    packet.payload = descriptor + b"x"
    packet._data = b"x"  # type: ignore[attr-defined]
    return packet


def test_frame_numbers_skip_frames_lost_whole_by_picture_id() -> None:
    """A frame whose every packet is lost leaves no trace in the sequence numbers of the
    frames around it except the gap; the picture ID says exactly how many frames went."""
    packets: list[RtpPacket] = []
    seq = 0
    for n in range(40):
        picture = (32760 + n) % 32768  # crosses the 15-bit wrap
        for i in range(2):
            if n not in (5, 6):  # frames 5 and 6 never arrive
                packets.append(vp8_pic(seq, n * 3000, picture, start=i == 0, marker=i == 1))
            seq += 1
    h = Harness()
    h.feed(packets, every=1 / 60)
    h.timers.advance(MAX_WAIT)
    numbers = [n for _, _, n in h.frames]
    assert numbers[:5] == [0, 1, 2, 3, 4]
    assert numbers[5:8] == [7, 8, 9]  # two numbers skipped: what the recorder sees as loss
    assert h.assembler.lost == 2 and len(numbers) == 38


def test_a_filling_queue_lengthens_the_wait_so_the_repair_through_it_still_counts() -> None:
    """A phone's uplink buffer fills to 300 ms (weak_500k): its retransmissions come
    through the same queue, so the wait learnt on the empty link would give them up."""
    h = Harness()
    seq, ts = 0, 0
    for _ in range(30):  # one second on an empty link, a frame every 1/30 s
        h.feed(frame(seq, ts, 2))
        h.timers.advance(1 / 30)
        seq, ts = seq + 2, ts + 3000
    empty = h.assembler.wait()
    assert h.assembler.queue == pytest.approx(0.0, abs=1e-6)
    for _ in range(15):  # the queue grows by 20 ms per frame, to 0.3 s
        h.timers.advance(0.02)
        h.feed(frame(seq, ts, 2))
        h.timers.advance(1 / 30)
        seq, ts = seq + 2, ts + 3000
    assert h.assembler.queue == pytest.approx(0.3, abs=0.01)
    assert h.assembler.wait() >= 0.3 + MIN_WAIT > empty
    broken = frame(seq, ts, 2)
    missing = broken.pop(1)
    h.feed(broken + frame(seq + 2, ts + 3000, 2))
    h.timers.advance(0.35)  # the retransmission, 0.3 s of queue + 50 ms later
    h.feed([missing])
    assert h.assembler.gaps == 0 and not h.losses
    assert h.timestamps[-2:] == [ts, ts + 3000]


def test_a_gap_in_a_key_frame_is_waited_for_longer_than_in_a_delta_frame() -> None:
    delta, key = Harness(), Harness()
    for h, is_key in ((delta, False), (key, True)):
        h.feed(frame(0, 0, 2))
        broken = frame(2, 3000, 4, key=is_key)
        del broken[2]
        h.feed(broken + frames(6, 6000, 2))
    assert MIN_WAIT <= delta.assembler.wait() <= MAX_WAIT
    assert key.assembler.wait() == pytest.approx(2 * delta.assembler.wait())
    assert key.assembler.wait() <= MAX_KEY_WAIT
    delta.timers.advance(delta.assembler.wait() + 0.001)
    key.timers.advance(delta.assembler.wait() + 0.001)
    assert delta.assembler.gaps == 1 and key.assembler.gaps == 0
    key.timers.advance(key.assembler.wait())
    assert key.assembler.gaps == 1 and key.timestamps == [0, 6000, 9000]


def test_the_holes_of_one_burst_are_waited_for_together() -> None:
    """Three frames each lose a packet in one burst: the wait counts from when each hole
    was first known, so all three are given up one wait after the burst, not three."""
    h = Harness()
    h.feed(frame(0, 0, 2))
    packets = frames(2, 3000, 3, n=3)
    for index in (7, 4, 1):  # the middle packet of each frame
        del packets[index]
    burst = h.timers.now
    h.feed(packets + frames(11, 12000, 2))
    wait = h.assembler.wait()
    h.timers.advance(wait + 0.001)
    assert h.assembler.gaps >= 1
    h.timers.advance(2 * MIN_WAIT)  # the later holes: already as old as the first
    assert h.timestamps == [0, 12000, 15000]
    assert max(t for t, _, _ in h.frames) - burst <= wait + 0.01


def test_a_repair_that_does_not_come_is_nacked_again_until_the_give_up() -> None:
    """aiortc NACKs a hole once; the retransmission can be lost too. The assembler asks
    again one repair time (+ a frame) after the last ask, for every hole it still waits on,
    until the hole is filled or given up."""
    h = Harness(nack=True)
    h.feed(frames(0, 0, 2))
    packets = frames(4, 6000, 6)
    lost = [packets.pop(1), packets.pop(3)]  # seq 5 and 8: two holes of one burst
    h.feed(packets[:1])
    opened = h.timers.now
    h.feed(packets[1:], every=0.005)
    retry = h.assembler.repair + h.assembler.interval
    assert retry < h.assembler.wait()  # a retry fits before the give-up
    h.timers.advance(opened + retry - h.timers.now - 0.001)
    assert h.nacks == []
    h.timers.advance(0.002)
    assert h.nacks == [(pytest.approx(opened + retry), [5, 8])]
    h.timers.advance(0.03)  # both retransmissions of that NACK arrive
    h.feed(lost)
    assert h.timestamps == [0, 3000, 6000, 9000, 12000, 15000, 18000, 21000]
    # The repair counts from the NACK that brought it, not from the hole's first NACK.
    assert h.assembler.repair < DEFAULT_REPAIR
    h.timers.advance(MAX_WAIT)
    assert len(h.nacks) == 1 and h.assembler.gaps == 0 and not h.losses

    # A hole nothing repairs: asked for again and again, then given up; then quiet.
    h.feed(frames(16, 24000, 1))
    packets = frames(18, 27000, 4)
    del packets[0]
    h.feed(packets)
    opened, wait = h.timers.now, h.assembler.wait()
    h.timers.advance(MAX_WAIT)
    again = [t for t, missing in h.nacks[1:] if missing == [18]]
    assert len(again) >= 2 and all(opened < t < opened + wait for t in again)
    assert h.assembler.gaps == 1 and len(h.losses) == 1
    assert h.assembler.nack_retries == len(h.nacks)
    h.timers.advance(MAX_WAIT)
    assert len(h.nacks) == 1 + len(again)


def test_without_a_nack_sender_nothing_is_retried_and_the_give_up_is_unchanged() -> None:
    h = Harness()
    packets = frames(0, 0, 4)
    del packets[2]
    h.feed(packets)
    wait = h.assembler.wait()
    h.timers.advance(wait - 0.001)
    assert h.timers.pending == 1 and not h.losses
    h.timers.advance(0.002)
    assert len(h.losses) == 1 and h.assembler.nack_retries == 0


async def test_the_sink_runs_its_repeated_nacks_as_tasks_of_its_owner() -> None:
    """install_packet_sink wires the assembler's NACKs to the spawn it is given (the room's
    or the client's); without one, holes are NACKed once by aiortc alone."""
    pc = RTCPeerConnection()
    try:
        spawned: list[Any] = []
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        sink = install_packet_sink(receiver, "video", lambda _packet: None, spawn=spawned.append)
        assert isinstance(sink.assembler, VideoAssembler) and sink.assembler.on_nack is not None
        sink.assembler.on_nack([7, 8])
        assert len(spawned) == 1
        assert await spawned[0] is False  # nothing arrived yet: no SSRC to NACK to
        bare = pc.addTransceiver("video", direction="recvonly").receiver
        plain = install_packet_sink(bare, "video", lambda _packet: None)
        assert isinstance(plain.assembler, VideoAssembler) and plain.assembler.on_nack is None
    finally:
        await pc.close()
