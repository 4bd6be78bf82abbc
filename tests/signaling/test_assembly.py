"""Frame re-assembly that replaces aiortc's jitter buffer on relay receivers."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from signaling.assembly import MAX_SPAN, AudioAssembler, VideoAssembler


def vp8(seq: int, ts: int, *, start: bool, marker: bool, body: bytes = b"x") -> RtpPacket:
    packet = RtpPacket(payload_type=97, sequence_number=seq % 65536, timestamp=ts)
    packet.marker = int(marker)
    packet.payload = bytes([0x10 if start else 0x00]) + body
    packet._data = body  # type: ignore[attr-defined]  # what aiortc's depayload() sets
    return packet


def frame(seq: int, ts: int, n: int) -> list[RtpPacket]:
    return [vp8(seq + i, ts, start=i == 0, marker=i == n - 1, body=bytes([i])) for i in range(n)]


def test_frames_released_on_marker_in_order_and_reordered() -> None:
    assembler = VideoAssembler()
    released = []
    packets = frame(65534, 1000, 3) + frame(1, 4000, 2)  # crosses the sequence wrap
    packets[0], packets[1] = packets[1], packets[0]  # reordered inside a frame
    for packet in packets:
        pli, out = assembler.add(packet)
        assert not pli
        if out is not None:
            released.append((out.timestamp, out.data))
    assert released == [(1000, b"\x00\x01\x02"), (4000, b"\x00\x01")]


def test_mid_frame_join_waits_for_a_frame_start() -> None:
    assembler = VideoAssembler()
    packets = frame(10, 1000, 3)[1:] + frame(13, 4000, 2)
    out = [assembler.add(p)[1] for p in packets]
    assert [f.timestamp for f in out if f is not None] == [4000]


def test_lost_packet_is_given_up_with_a_keyframe_request() -> None:
    assembler = VideoAssembler()
    first = frame(0, 0, 3)
    del first[1]  # never arrives, not even by RTX
    plis, frames = [], []
    seq, ts = 3, 3000
    for packet in first:
        assembler.add(packet)
    while seq < MAX_SPAN + 10:
        for packet in frame(seq, ts, 2):
            pli, out = assembler.add(packet)
            plis.append(pli)
            if out is not None:
                frames.append(out.timestamp)
        seq, ts = seq + 2, ts + 3000
    assert any(plis)
    assert 0 not in frames and frames  # the broken frame is dropped, later ones flow
    assert frames == sorted(frames)


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


def released_numbers(assembler: VideoAssembler, packets: list[RtpPacket]) -> list[int]:
    numbers = []
    for packet in packets:
        if assembler.add(packet)[1] is not None:
            numbers.append(assembler.frame_seq)
    return numbers


def test_frame_numbers_skip_frames_lost_whole_by_picture_id() -> None:
    """A frame whose every packet is lost leaves no trace in the sequence numbers of the
    frames around it except the gap; the picture ID says exactly how many frames went."""
    packets: list[RtpPacket] = []
    seq = 0
    for n in range(MAX_SPAN):
        picture = (32760 + n) % 32768  # crosses the 15-bit wrap
        for i in range(2):
            if n not in (5, 6):  # frames 5 and 6 never arrive
                packets.append(vp8_pic(seq, n * 3000, picture, start=i == 0, marker=i == 1))
            seq += 1
    assembler = VideoAssembler()
    numbers = released_numbers(assembler, packets)
    assert numbers[:5] == [0, 1, 2, 3, 4]
    assert numbers[5:8] == [7, 8, 9]  # two numbers skipped: what the recorder sees as loss
    assert assembler.lost == 2


def test_frame_numbers_without_picture_ids_count_frames_given_up() -> None:
    packets = frame(0, 0, 2) + [p for i, p in enumerate(frame(2, 3000, 3)) if i != 1]
    seq, ts = 5, 6000
    while seq < MAX_SPAN + 10:
        packets += frame(seq, ts, 2)
        seq, ts = seq + 2, ts + 3000
    assembler = VideoAssembler()
    numbers = released_numbers(assembler, packets)
    assert numbers[:2] == [0, 2]  # the frame given up left its number out
    assert numbers == [0, *range(2, len(numbers) + 1)]
    assert assembler.lost == 1
