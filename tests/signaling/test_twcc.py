"""Transport-cc feedback: the encoder against pion's and libwebrtc's format, round trips."""

from __future__ import annotations

import random
import struct

import pytest
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket, pack_header_extensions

from signaling.packets import PacketSink, split_red
from signaling.twcc import (
    LARGE_DELTA,
    NOT_RECEIVED,
    SMALL_DELTA,
    encode_feedback,
    parse_feedback,
    transport_sequence,
)

# pion/rtcp transport_layer_cc_test.go, TestTransportLayerCC_Unmarshal "example1": one
# packet, seq 153, received 37 ms after reference time 4057090 (x 64 ms), fb count 23.
PION_EXAMPLE1 = bytes(
    [
        0xAF, 0xCD, 0x00, 0x05,
        0xFA, 0x17, 0xFA, 0x17,
        0x43, 0x03, 0x2F, 0xA0,
        0x00, 0x99, 0x00, 0x01,
        0x3D, 0xE8, 0x02, 0x17,
        0x20, 0x01, 0x94, 0x01,
    ]
)  # fmt: skip


def test_encoder_writes_pions_example_byte_for_byte() -> None:
    arrival = 4057090 * 64_000 + 37_000
    data, used = encode_feedback(0xFA17FA17, 0x43032FA0, 23, 153, [(153, arrival)])
    assert used == 1
    assert data == PION_EXAMPLE1
    parsed = parse_feedback(PION_EXAMPLE1)
    assert (parsed.base_sequence, parsed.reference_time, parsed.count) == (153, 4057090, 23)
    assert parsed.statuses == [SMALL_DELTA]
    assert parsed.arrivals_us == [arrival]


def test_parses_pions_example3_run_lengths_and_large_deltas() -> None:
    # pion "example3" (from a browser): run-length(large, 2), run-length(small, 4).
    data = bytes(
        [
            0xAF, 0xCD, 0x00, 0x07, 0xFA, 0x17, 0xFA, 0x17, 0x19, 0x3D, 0xD8, 0xBB,
            0x01, 0x74, 0x00, 0x06, 0x45, 0xB1, 0x5A, 0x40, 0x40, 0x02, 0x20, 0x04,
            0x1F, 0xFE, 0x1F, 0x9A, 0xD0, 0x00, 0xD0, 0x00,
        ]
    )  # fmt: skip
    parsed = parse_feedback(data)
    assert (parsed.sender_ssrc, parsed.media_ssrc) == (4195875351, 423483579)
    assert (parsed.base_sequence, parsed.reference_time, parsed.count) == (372, 4567386, 64)
    assert parsed.statuses == [LARGE_DELTA] * 2 + [SMALL_DELTA] * 4
    deltas = [2047500, 2022500, 52000, 0, 52000, 0]  # pion's expected RecvDeltas
    expected, now = [], 4567386 * 64_000
    for delta in deltas:
        now += delta
        expected.append(now)
    assert parsed.arrivals_us == expected


def test_run_length_chunks_as_pions_recorder_builds_them() -> None:
    # pion/interceptor twcc_test.go TestBuildFeedbackPacket: 7 packets 250 µs apart, then
    # one 64 ms later -> run-length(small, 7), run-length(large, 1), padded to 36 bytes.
    times = [64_000 + 250 * i for i in range(7)] + [64_000 + 250 * 6 + 250 * 256]
    data, used = encode_feedback(5000, 5000, 0, 0, list(enumerate(times)))
    assert used == 8
    assert len(data) == 36 and data[0] & 0x20  # length 8, padding bit
    assert data[2:4] == (8).to_bytes(2, "big")
    assert data[16:20] == bytes([0, 0, 1, 0])  # reference time 1, fb count 0
    assert data[20:22] == ((SMALL_DELTA << 13) | 7).to_bytes(2, "big")
    assert data[22:24] == ((LARGE_DELTA << 13) | 1).to_bytes(2, "big")
    assert data[24:31] == bytes([0, 1, 1, 1, 1, 1, 1])
    assert data[31:33] == (256).to_bytes(2, "big")
    assert data[33:] == bytes([0, 0, 3])
    assert parse_feedback(data).arrivals_us == times


def test_one_bit_vector_for_mixed_small_and_lost() -> None:
    # 15 statuses alternating received/lost with small deltas: one one-bit status vector.
    packets = [(seq, 1_000_000 + seq * 1000) for seq in range(0, 16, 2)]
    data, _ = encode_feedback(1, 2, 7, 0, packets)
    word = int.from_bytes(data[20:22], "big")
    assert word >> 14 == 0b10  # status vector, one-bit symbols
    parsed = parse_feedback(data)
    assert parsed.statuses == [SMALL_DELTA, NOT_RECEIVED] * 7 + [SMALL_DELTA]


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_with_loss_reordering_and_jumps(seed: int) -> None:
    rng = random.Random(seed)
    now = rng.randrange(10**9, 10**12)
    packets: list[tuple[int, int]] = []
    seq = rng.randrange(0, 60_000)
    base = seq
    for _ in range(rng.randrange(1, 400)):
        seq += 1 if rng.random() > 0.1 else rng.randrange(2, 40)
        now += rng.choice([0, 250, 1000, 20_000, 70_000, -3000, 500_000])
        packets.append((seq, now))
    left = packets
    start = base
    seen: list[tuple[int, int]] = []
    while left:
        data, used = encode_feedback(9, 10, 0, start, left)
        assert used >= 1 and len(data) % 4 == 0
        parsed = parse_feedback(data)
        assert parsed.base_sequence == start & 0xFFFF
        for offset, (status, arrival) in enumerate(
            zip(parsed.statuses, parsed.arrivals_us, strict=True)
        ):
            if status != NOT_RECEIVED:
                assert arrival is not None
                seen.append((start + offset, arrival))
        start = left[used - 1][0] + 1
        left = left[used:]
    assert [s for s, _ in seen] == [s for s, _ in packets]
    for (_, got), (_, sent) in zip(seen, packets, strict=True):
        assert abs(got - sent) <= 125  # 250 µs rounding, never accumulating


def test_deltas_do_not_accumulate_rounding() -> None:
    packets = [(i, 5_000_000 + i * 333) for i in range(300)]
    data, used = encode_feedback(1, 1, 0, 0, packets)
    assert used == 300
    arrivals = parse_feedback(data).arrivals_us
    for (_, sent), got in zip(packets, arrivals, strict=True):
        assert got is not None and abs(got - sent) <= 125


def test_a_stall_over_eight_seconds_splits_the_feedback() -> None:
    packets = [(0, 64_000), (1, 64_000 + 9_000_000)]
    data, used = encode_feedback(1, 1, 0, 0, packets)
    assert used == 1
    data, used = encode_feedback(1, 1, 1, 1, packets[1:])
    assert used == 1 and parse_feedback(data).arrivals_us == [64_000 + 9_000_000]


def test_rejects_what_is_not_feedback() -> None:
    for bad in (b"", b"\x80\xc8\x00\x01" + bytes(4), PION_EXAMPLE1[:-4], bytes(24)):
        with pytest.raises(ValueError):
            parse_feedback(bad)


@pytest.mark.parametrize("two_byte", [False, True])
def test_transport_sequence_from_header_bytes(two_byte: bool) -> None:
    elements = [(1, b"0"), (3, b"\x01\x02\x03"), (5, (0xBEEF).to_bytes(2, "big"))]
    if two_byte:
        elements.append((4, bytes(20)))  # longer than 16 bytes: two-byte elements
    profile, value = pack_header_extensions(elements)
    header = struct.pack("!BBHLLL", 0x91, 96, 1, 2, 3, 7)  # extension bit, one CSRC
    data = header + struct.pack("!HH", profile, len(value) // 4) + value + b"x" * 10
    assert RtpPacket.parse(data).csrc == [7]  # aiortc reads the same layout
    assert transport_sequence(data, 5) == 0xBEEF
    assert transport_sequence(data, 9) is None
    plain = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3).serialize()
    assert transport_sequence(plain, 5) is None


def red_payload(pt: int, blocks: list[tuple[int, bytes]], primary: bytes) -> bytes:
    """RFC 2198 §3: 4-byte headers (F, PT, offset, length), then a 1-byte one."""
    head = b"".join(
        ((1 << 31) | (pt << 24) | (offset << 10) | len(block)).to_bytes(4, "big")
        for offset, block in blocks
    )
    return head + bytes([pt]) + b"".join(block for _, block in blocks) + primary


def test_red_unwrapped_and_a_lost_frame_recovered_from_redundancy() -> None:
    got: list[tuple[int, bytes]] = []
    sink = PacketSink("audio", lambda p: got.append((p.pts, bytes(p))))
    red = RTCRtpCodecParameters(mimeType="audio/red", clockRate=48000, channels=2, payloadType=63)
    frames = {ts: bytes([ts // 960]) * 5 for ts in range(0, 960 * 6, 960)}

    def put(ts: int) -> None:
        previous = [(960, frames[ts - 960])] if ts else []
        sink.put((red, JitterFrame(red_payload(111, previous, frames[ts]), ts)))

    for ts in (0, 960, 2880, 3840):  # 1920 lost; 2880 carries it as redundancy
        put(ts)
    assert got == [(ts, frames[ts]) for ts in (0, 960, 1920, 2880, 3840)]
    assert sink.recovered == 1 and sink.skipped == 0
    assert split_red(b"\x80\x00") is None  # a block header cut short
    assert split_red(red_payload(111, [(960, b"abc")], b"")[:-1]) is None
