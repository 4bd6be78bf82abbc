"""The relay senders' RTP loop: aiortc's bytes, aiortc's retransmissions, less Python."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc import RTCPeerConnection, clock
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx, wrap_rtx

from signaling.client import MediaClient
from signaling.packets import PacketTrack
from signaling.relay import RelayConfig, RelayRoom
from signaling.sending import (
    PacketSender,
    RtpLayout,
    abs_send_time_now,
    install_packet_sender,
    ntp_now,
    vp8_payloads,
)

LOOPBACK = ("127.0.0.1",)
MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def extensions_map(**ids: int) -> HeaderExtensionsMap:
    uris = {"mid": MID, "abs_send_time": ABS_SEND_TIME}
    parameters = RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=x_id, uri=uris[name]) for name, x_id in ids.items()
        ]
    )
    extensions = HeaderExtensionsMap()
    extensions.configure(parameters)
    return extensions


def ids_of(extensions: HeaderExtensionsMap) -> Any:
    return extensions._HeaderExtensionsMap__ids  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "ids",
    [
        {"mid": 1, "abs_send_time": 2},  # what aiortc negotiates with itself and Chrome
        {"abs_send_time": 3, "mid": 9},
        {"mid": 4},  # no abs-send-time negotiated
        {"abs_send_time": 2},  # no mid
        {"mid": 15, "abs_send_time": 20},  # ids above 14: two-byte elements
        {},  # no extensions at all
    ],
)
@pytest.mark.parametrize("marker", [0, 1])
def test_packets_are_byte_identical_to_aiortc(ids: dict[str, int], marker: int) -> None:
    extensions = extensions_map(**ids)
    layout = RtpLayout(96, 0x11223344, "1", ids_of(extensions))
    payload = bytes(range(256)) * 3
    wire = layout.packet(65535, 0xFFFFFFF0, marker, payload)

    parsed = RtpPacket.parse(wire, extensions)
    assert (parsed.payload_type, parsed.sequence_number, parsed.timestamp) == (
        96,
        65535,
        0xFFFFFFF0,
    )
    assert (parsed.ssrc, parsed.marker, parsed.payload) == (0x11223344, marker, payload)
    assert parsed.extensions.mid == ("1" if "mid" in ids else None)
    if "abs_send_time" in ids:
        assert parsed.extensions.abs_send_time is not None
        expected = (clock.current_ntp_time() >> 14) & 0xFFFFFF
        assert abs(parsed.extensions.abs_send_time - expected) < 1 << 10  # < 4 ms apart
    else:
        assert parsed.extensions.abs_send_time is None

    # aiortc serialising the same fields gives the same bytes.
    reference = RtpPacket(payload_type=96, marker=marker, sequence_number=65535)
    reference.timestamp, reference.ssrc, reference.payload = 0xFFFFFFF0, 0x11223344, payload
    reference.extensions.mid = "1"
    reference.extensions.abs_send_time = parsed.extensions.abs_send_time
    assert reference.serialize(extensions) == wire


@pytest.mark.parametrize("ids", [{"mid": 1, "abs_send_time": 2}, {"mid": 15}, {}])
def test_retransmission_matches_aiortc_wrap_rtx(ids: dict[str, int]) -> None:
    extensions = extensions_map(**ids)
    layout = RtpLayout(96, 1234, "0", ids_of(extensions))
    wire = layout.packet(4000, 777, 1, b"\x90\x80payload")
    rtx = layout.rtx(wire, payload_type=97, sequence_number=9, ssrc=5678)

    original = RtpPacket.parse(wire, extensions)
    assert rtx == wrap_rtx(original, 97, 9, 5678).serialize(extensions)
    recovered = unwrap_rtx(RtpPacket.parse(rtx, extensions), payload_type=96, ssrc=1234)
    assert recovered.serialize(extensions) == wire


@pytest.mark.parametrize("size", [1, 1297, 1298, 1299, 2596, 2597, 40_000])
@pytest.mark.parametrize("picture_id", [0, 127, 128, 32767])
def test_vp8_payloads_match_aiortc(size: int, picture_id: int) -> None:
    data = bytes(i % 251 for i in range(size))
    assert vp8_payloads(data, picture_id) == Vp8Encoder._packetize(data, picture_id)


def test_clock_readings_match_aiortc() -> None:
    assert abs(ntp_now() - clock.current_ntp_time()) < (1 << 32) // 100  # 10 ms
    assert abs(abs_send_time_now() - ((clock.current_ntp_time() >> 14) & 0xFFFFFF)) < 1 << 12


async def test_refuses_a_running_sender_or_one_without_a_packet_track() -> None:
    pc = RTCPeerConnection()
    with pytest.raises(RuntimeError, match="PacketTrack"):
        install_packet_sender(pc.addTransceiver("video").sender)
    sender = pc.addTransceiver(PacketTrack("video", 4, lambda: None)).sender
    install_packet_sender(sender)
    sender._RTCRtpSender__started = True  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="already runs"):
        install_packet_sender(sender)
    sender._RTCRtpSender__started = False  # type: ignore[attr-defined]  # (it never ran)
    await pc.close()


async def test_relay_senders_only_are_replaced_and_a_lost_packet_comes_back_as_rtx() -> None:
    room = RelayRoom("send-room", RelayConfig(host_addresses=LOOPBACK))
    publisher = MediaClient(host_addresses=LOOPBACK)
    viewer = MediaClient(host_addresses=LOOPBACK)
    try:
        answer = await room.add_participant("phone", await publisher.publish_offer("testsrc"))
        await publisher.accept_publish_answer(answer)
        offer = await room.subscribe("desk", "phone")
        subscription = room.subscription("desk", "phone")
        assert subscription is not None
        video: PacketSender = subscription.senders["video"]

        # The relay's senders run PacketSender; the clients' senders are aiortc's own.
        for transceiver in subscription.pc.getTransceivers():
            hooked = subscription.senders[transceiver.kind]
            assert transceiver.sender._run_rtp == hooked.run
            assert transceiver.sender._retransmit == hooked.retransmit
        assert publisher.publish_pc is not None
        for transceiver in publisher.publish_pc.getTransceivers():
            assert "_run_rtp" not in vars(transceiver.sender)

        # The viewer is a stock aiortc receiver: NACK generator, RTX unwrapping, decoder.
        rtx_seen: list[RtpPacket] = []
        answer = await viewer.accept_subscription("phone", offer)
        receiver = next(
            t.receiver for t in viewer.subscriptions["phone"].getTransceivers() if t.kind == "video"
        )
        handle = receiver._handle_rtp_packet

        async def spy(packet: RtpPacket, arrival_time_ms: int) -> None:
            if packet.ssrc == video.sender._rtx_ssrc:
                rtx_seen.append(packet)
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = spy  # type: ignore[method-assign]
        await room.accept_answer("desk", "phone", answer)

        # Lose the 40th video packet on its way out of the relay (before SRTP).
        for _ in range(1000):  # video.send is set when the sender starts, before media flows
            if video.send is not None:
                break
            await asyncio.sleep(0.001)
        send = video.send
        assert send is not None
        dropped: list[bytes] = []
        count = 0

        def lossy(data: bytes) -> None:
            nonlocal count
            count += 1
            if count == 40:
                dropped.append(data)
                return
            send(data)

        video.send = lossy  # type: ignore[assignment]
        await viewer.wait_for_video("phone", frames=45, within=10)

        assert len(dropped) == 1 and video.retransmissions >= 1
        lost = RtpPacket.parse(dropped[0])
        recovered = [
            unwrap_rtx(p, payload_type=lost.payload_type, ssrc=lost.ssrc) for p in rtx_seen
        ]
        assert any(
            (p.sequence_number, p.timestamp, p.payload)
            == (lost.sequence_number, lost.timestamp, lost.payload)
            for p in recovered
        )
        media = viewer.received["phone"]
        assert (media.width, media.height) == (640, 480)

        # RTCP sender reports are fed by the same counters aiortc's loop keeps.
        stats = await video.sender.getStats()
        outbound = next(s for s in stats.values() if s.type == "outbound-rtp")
        assert outbound.packetsSent >= 40
        assert outbound.bytesSent > 0
        transport = next(
            s for s in (await subscription.pc.getStats()).values() if s.type == "transport"
        )
        assert transport.packetsSent >= outbound.packetsSent  # DirectSend keeps aiortc's counters

        # Once the connection is closed, sending refuses as aiortc's _send_rtp does.
        await room.unsubscribe("desk", "phone")
        with pytest.raises(ConnectionError):
            send(dropped[0])
        await asyncio.sleep(0)
    finally:
        await viewer.close()
        await publisher.close()
        await room.close()
