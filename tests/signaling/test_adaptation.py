"""Protecting the receiving side, with real aiortc peers over loopback.

The subscriber's REMB and receiver reports are real RTCP sent on its real connection
(through its receiver's own ``_send_rtcp``, as its estimator would send them), with chosen
figures (its own estimator is silenced) so that the weak and the recovered link are
reproducible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket

from signaling.adaptation import remb_packet
from signaling.client import MediaClient
from signaling.relay import RelayConfig, RelayRoom
from tests.signaling.test_relay import clients, new_client  # noqa: F401 (fixture)

LOOPBACK = ("127.0.0.1",)
CONFIG = RelayConfig(
    host_addresses=LOOPBACK,
    audio_only_below=150_000,
    audio_only_after=0.6,
    video_probe_after=1.5,
)


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def report(pc: RTCPeerConnection, bitrate: int, lost: float = 0.0) -> None:
    """The subscriber reports ``lost`` and ``bitrate`` for the relay's video: a receiver
    report and a REMB, real RTCP on its link."""
    transceivers = pc.getTransceivers()
    video = next(t for t in transceivers if t.kind == "video")
    ssrcs = list(video.receiver._RTCRtpReceiver__remote_streams)  # type: ignore[attr-defined]
    assert ssrcs, "no video received yet"
    ssrc = video.receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
    info = RtcpReceiverInfo(
        ssrc=ssrcs[0],
        fraction_lost=int(lost * 256),
        packets_lost=0,
        highest_sequence=0,
        jitter=0,
        lsr=0,
        dlsr=0,
    )
    await video.receiver._send_rtcp(RtcpRrPacket(ssrc=ssrc, reports=[info]))
    await video.receiver._send_rtcp(remb_packet(ssrc, bitrate, ssrcs))


async def test_weak_subscriber_goes_audio_only_then_video_comes_back(
    clients: list[MediaClient],  # noqa: F811 (the fixture imported above)
) -> None:
    room = RelayRoom("adapt", CONFIG)
    notices: list[tuple[str, dict[str, Any]]] = []
    room.on_notice = lambda pid, message: notices.append((pid, message))
    publisher, viewer = new_client(clients), new_client(clients)
    try:
        answer = await room.add_participant("phone", await publisher.publish_offer("testsrc"))
        await publisher.accept_publish_answer(answer)
        offer = await room.subscribe("desk", "phone")
        answer = await viewer.accept_subscription("phone", offer)
        for transceiver in viewer.subscriptions["phone"].getTransceivers():
            # The viewer's own REMB estimator is silenced: the test chooses the figures.
            receiver = transceiver.receiver
            receiver._RTCRtpReceiver__remote_bitrate_estimator = None
        await room.accept_answer("desk", "phone", answer)
        subscription = room.subscription("desk", "phone")
        assert subscription is not None
        video, audio = subscription.tracks["video"], subscription.tracks["audio"]
        await until(lambda: video.forwarded_packets > 10 and audio.forwarded_packets > 10)
        pc = viewer.subscriptions["phone"]
        publication = room.publication("phone")
        assert publication.cap is not None
        publish_pc = publisher.publish_pc
        assert publish_pc is not None
        encoder_of = publish_pc.getTransceivers()[1].sender
        assert encoder_of.kind == "video"

        # 30 kbit/s but nothing lost (e.g. a receiver whose estimator suffers from its own
        # busy CPU): it is the bottleneck, so the publisher is capped (to the 150 kbit/s
        # floor: aiortc's encoder then goes to its 250 kbit/s minimum), but video stays.
        started = time.monotonic()
        while time.monotonic() - started < 3.5:
            await report(pc, 30_000)
            await asyncio.sleep(0.1)
        # 150 kbit/s, or lower if aiortc's own estimate towards the publisher is lower.
        assert publication.cap.sent and max(publication.cap.sent) <= 150_000
        encoder = encoder_of._RTCRtpSender__encoder  # type: ignore[attr-defined]
        await until(lambda: encoder.target_bitrate == 250_000)
        assert not notices

        # Weak and lossy for 0.6 s: no more video, a notice; audio keeps flowing.
        weak_at = time.monotonic()
        while not notices:
            await report(pc, 30_000, lost=0.2)
            await asyncio.sleep(0.1)
            assert time.monotonic() - weak_at < 5
        assert time.monotonic() - weak_at >= 0.6
        assert notices == [
            (
                "desk",
                {"type": "audio_only", "on": True, "reason": "weak_link", "publisher": "phone"},
            )
        ]
        frozen, sounding = video.forwarded_packets, audio.forwarded_packets
        await asyncio.sleep(0.5)
        assert video.forwarded_packets == frozen
        assert audio.forwarded_packets > sounding + 10
        # An audio-only subscriber no longer bounds the publisher: the cap is lifted.
        await until(lambda: publication.cap is not None and publication.cap.current is None)

        # After the probe wait, video is tried again and starts on a key frame.
        await until(lambda: len(notices) == 2, within=5)
        assert notices[1][1]["on"] is False
        assert time.monotonic() - weak_at >= 0.6 + 1.5
        await until(lambda: video.forwarded_packets > frozen + 5)
        for _ in range(5):
            await report(pc, 1_000_000)
            await asyncio.sleep(0.1)
        assert len(notices) == 2
    finally:
        await room.close()
