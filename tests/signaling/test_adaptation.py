"""Protecting the receiving side, with real aiortc peers over loopback.

The subscriber's REMB is real RTCP sent on its real connection (through its receiver's
own ``_send_rtcp``, as its estimator would send it), with chosen figures so that the weak
and the recovered link are reproducible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from signaling.adaptation import remb_packet
from signaling.client import MediaClient
from signaling.relay import RelayConfig, RelayRoom

LOOPBACK = ("127.0.0.1",)
CONFIG = RelayConfig(
    host_addresses=LOOPBACK,
    audio_only_below=150_000,
    audio_only_after=0.6,
    video_probe_after=1.5,
)


@pytest.fixture
async def clients() -> AsyncIterator[list[MediaClient]]:
    made: list[MediaClient] = []
    yield made
    for client in made:
        await client.close()


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def send_remb(pc: RTCPeerConnection, bitrate: int) -> None:
    """The subscriber reports ``bitrate`` for the relay's video (real RTCP on its link)."""
    transceivers = pc.getTransceivers()
    video = next(t for t in transceivers if t.kind == "video")
    ssrcs = list(video.receiver._RTCRtpReceiver__remote_streams)  # type: ignore[attr-defined]
    assert ssrcs, "no video received yet"
    ssrc = video.receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
    await video.receiver._send_rtcp(remb_packet(ssrc, bitrate, ssrcs))


async def test_weak_subscriber_goes_audio_only_then_video_comes_back(
    clients: list[MediaClient],
) -> None:
    room = RelayRoom("adapt", CONFIG)
    notices: list[tuple[str, dict[str, Any]]] = []
    room.on_notice = lambda pid, message: notices.append((pid, message))
    publisher, viewer = MediaClient(host_addresses=LOOPBACK), MediaClient(host_addresses=LOOPBACK)
    clients += [publisher, viewer]
    try:
        answer = await room.add_participant("phone", await publisher.publish_offer("testsrc"))
        await publisher.accept_publish_answer(answer)
        offer = await room.subscribe("desk", "phone")
        await room.accept_answer("desk", "phone", await viewer.accept_subscription("phone", offer))
        subscription = room.subscription("desk", "phone")
        assert subscription is not None
        video, audio = subscription.tracks["video"], subscription.tracks["audio"]
        await until(lambda: video.forwarded_packets > 10 and audio.forwarded_packets > 10)
        pc = viewer.subscriptions["phone"]

        # A link of 400 kbit/s: video flows, and the publisher is capped to it.
        for _ in range(3):
            await send_remb(pc, 400_000)
            await asyncio.sleep(0.1)
        publication = room.publication("phone")
        assert publication.cap is not None
        await until(lambda: publication.cap is not None and 400_000 in publication.cap.sent)
        encoder = publisher.publish_pc.getTransceivers()[1].sender._RTCRtpSender__encoder  # type: ignore[union-attr]
        await until(lambda: encoder is not None and encoder.target_bitrate <= 400_000)
        assert not notices

        # Below 150 kbit/s for 0.6 s: no more video, a notice; audio keeps flowing.
        weak_at = time.monotonic()
        while not notices:
            await send_remb(pc, 90_000)
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
        await send_remb(pc, 1_000_000)
        await asyncio.sleep(0.5)
        assert len(notices) == 2
    finally:
        await room.close()
