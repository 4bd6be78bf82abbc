"""The lean receive path reads packets as aiortc does and keeps aiortc's receiver state."""

from __future__ import annotations

import asyncio
import random
import struct
from typing import Any

import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, pack_header_extensions

from signaling.client import MediaClient
from signaling.inbound import Inbound, Malformed, parse_rtp, vp8_descriptor_size
from signaling.relay import RelayRoom
from signaling.remb import RembEstimator
from tests.signaling.test_relay import clients, new_client, publish, room, subscribe

__all__ = ["clients", "room"]  # the fixtures, shared with test_relay.py
URIS = {
    1: "urn:ietf:params:rtp-hdrext:sdes:mid",
    2: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    3: "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    17: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",  # two-byte ids
}


def extensions_map(abs_id: int) -> HeaderExtensionsMap:
    ids = [1, abs_id, 3]
    parameters = RTCRtpParameters(
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=URIS[i]) for i in ids]
    )
    extensions = HeaderExtensionsMap()
    extensions.configure(parameters)
    return extensions


def random_packet(rng: random.Random, abs_id: int) -> bytes:
    elements: list[tuple[int, bytes]] = []
    if rng.random() < 0.8:
        elements.append((1, b"0"))
    if rng.random() < 0.8:
        elements.append((abs_id, rng.randbytes(3)))
    if rng.random() < 0.5:
        elements.append((3, rng.randbytes(2)))
    rng.shuffle(elements)
    profile, value = pack_header_extensions(elements)
    csrcs = rng.choice((0, 0, 0, 2))
    padding = rng.choice((0, 0, 0, 1, 7))
    first = 0x80 | (0x20 if padding else 0) | (0x10 if value else 0) | csrcs
    data = struct.pack("!BBHLL", first, rng.randrange(256), rng.randrange(1 << 16), 7, 99)
    data += rng.randbytes(4 * csrcs)
    if value:
        data += struct.pack("!HH", profile, len(value) // 4) + value
    data += rng.randbytes(rng.choice((0, 1, 30, 1200)))
    if padding:
        data += bytes(padding - 1) + bytes((padding,))
    if rng.random() < 0.15:  # damage it: truncate anywhere, or break the version
        data = data[: rng.randrange(len(data))] if rng.random() < 0.7 else b"\x40" + data[1:]
    return data


@pytest.mark.parametrize("abs_id", [2, 17])
def test_parser_agrees_with_aiortcs(abs_id: int) -> None:
    rng = random.Random(abs_id)
    extensions = extensions_map(abs_id)
    refused = 0
    for _ in range(3000):
        data = random_packet(rng, abs_id)
        try:
            theirs: RtpPacket | None = RtpPacket.parse(data, extensions)
        except (ValueError, struct.error):
            theirs = None
        try:
            ours, abs_send_time = parse_rtp(data, abs_id)
        except Malformed:
            assert theirs is None, data.hex()
            refused += 1
            continue
        assert theirs is not None, data.hex()
        for name in ("payload_type", "marker", "sequence_number", "timestamp", "ssrc"):
            assert getattr(ours, name) == getattr(theirs, name)
        assert (ours.payload, ours.padding_size) == (theirs.payload, theirs.padding_size)
        assert abs_send_time == theirs.extensions.abs_send_time
    assert refused > 100


def test_vp8_descriptor_size_agrees_with_aiortc() -> None:
    rng = random.Random(3)
    for _ in range(5000):
        payload = rng.randbytes(rng.choice((0, 1, 2, 3, 4, 5, 6, 20)))
        try:
            _, rest = VpxPayloadDescriptor.parse(payload)
            expected = len(payload) - len(rest)
        except ValueError:
            expected = -1
        assert vp8_descriptor_size(payload) == expected, payload.hex()


def inbound_of(room: RelayRoom, pid: str) -> tuple[Inbound, Any]:
    pc = room.publish_connection(pid)
    assert pc is not None
    receiver = next(t.receiver for t in pc.getTransceivers() if t.kind == "video")
    inbound = getattr(receiver.transport._handle_rtp_data, "__self__", None)
    assert isinstance(inbound, Inbound)
    return inbound, receiver


async def test_relay_receivers_take_the_lean_path_and_keep_aiortcs_state(
    room: RelayRoom, clients: list[MediaClient]
) -> None:
    """Real peers: packets go through the lean path, RTX through aiortc's; the receiver's
    statistics, sources, REMB estimator and receiver reports are aiortc's as before."""
    publisher = new_client(clients)
    await publish(room, publisher, "phone")
    viewer = new_client(clients)
    await subscribe(room, viewer, "desk", "phone")
    await viewer.wait_for_video("phone", frames=20, within=10)
    inbound, receiver = inbound_of(room, "phone")
    assert inbound.packets > 20
    estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
    assert isinstance(estimator, RembEstimator)  # aiortc publisher: no transport-cc
    assert estimator.ssrcs  # fed by the lean path
    # A NACK makes the publisher retransmit on RTX: aiortc's path unwraps it.
    sink = receiver._RTCRtpReceiver__decoder_queue
    before = inbound.fallbacks
    for _ in range(50):
        last = sink.assembler.last_seq
        await receiver._send_rtcp_nack(sink.assembler.ssrc, [last - 2, last - 1])
        await asyncio.sleep(0.02)
        if inbound.fallbacks > before:
            break
    assert inbound.fallbacks > before
    # Statistics per SSRC as aiortc keeps them (its getStats() lists only the last
    # SSRC's): the media stream counted by the lean path, the RTX one by aiortc's.
    streams = receiver._RTCRtpReceiver__remote_streams
    media = streams[sink.assembler.ssrc]
    assert media.packets_received > 20 and media.packets_lost == 0
    assert len(streams) == 2  # and the RTX SSRC's
    sources = {s.source for s in receiver.getSynchronizationSources()}
    assert sink.assembler.ssrc in sources
    # The publisher's sender hears receiver reports about its stream (RTCP from the
    # lean path's statistics): its remote-inbound stats appear.
    pc = publisher.publish_pc
    assert pc is not None
    for _ in range(40):
        sent = await pc.getStats()
        if any(s.type == "remote-inbound-rtp" for s in sent.values()):
            break
        await asyncio.sleep(0.1)
    assert any(s.type == "remote-inbound-rtp" for s in sent.values())
    frames = viewer.received["phone"].video_frames
    await asyncio.sleep(0.5)
    assert viewer.received["phone"].video_frames > frames + 5
