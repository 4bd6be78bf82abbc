"""Video through the relay resumes right after an outage of the publisher's uplink.

Real aiortc peers over loopback; the outage is made on the relay's own sockets of the
publish connection: every datagram that arrives there (SRTP, SRTCP, STUN) is thrown away
for five seconds, as when a phone loses its network. Before the frame assembler gave a
lost packet up by time, the relay waited until 256 sequence numbers had piled up behind
the gap and then released one frame per arriving packet, so the picture came back late
and stayed late.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from signaling.assembly import MAX_WAIT, VideoAssembler
from signaling.client import MediaClient
from signaling.relay import RelayConfig, RelayRoom
from tests.signaling.conftest import LOOPBACK
from tests.signaling.test_relay import publish, subscribe


@pytest.fixture
async def room() -> AsyncIterator[RelayRoom]:
    room = RelayRoom("outage", RelayConfig(host_addresses=LOOPBACK))
    yield room
    await room.close()


class Outage:
    """Drops every datagram the relay receives on ``pid``'s publish connection while on."""

    def __init__(self, room: RelayRoom, pid: str) -> None:
        self.on = False
        self.dropped = 0
        pc = room.publish_connection(pid)
        assert pc is not None
        connection = pc.getTransceivers()[0].receiver.transport.transport._connection
        for protocol in connection._protocols:
            protocol.datagram_received = self._wrap(protocol.datagram_received)

    def _wrap(self, original: Callable[[bytes, Any], None]) -> Callable[[bytes, Any], None]:
        def datagram_received(data: bytes, addr: Any) -> None:
            if self.on:
                self.dropped += 1
                return
            original(data, addr)

        return datagram_received


async def until(predicate: Callable[[], bool], within: float, what: str) -> float:
    """Seconds until ``predicate`` holds (polled every 10 ms)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within:
            raise AssertionError(f"no {what} within {within} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_video_resumes_within_two_seconds_after_a_five_second_outage(
    room: RelayRoom,
) -> None:
    publisher = MediaClient(host_addresses=LOOPBACK)
    viewer = MediaClient(host_addresses=LOOPBACK)
    try:
        await publish(room, publisher, "phone")
        await subscribe(room, viewer, "console", "phone")
        await viewer.wait_for_video("phone", frames=30, within=20)
        outage = Outage(room, "phone")
        publication = room.publication("phone")
        source = publication._video_source
        assert source is not None
        assembler = source[1].assembler
        assert isinstance(assembler, VideoAssembler)
        keyframes = publication.stats.keyframes

        outage.on = True
        await asyncio.sleep(5.0)
        frames = viewer.received["phone"].video_frames
        outage.on = False
        resumed = await until(
            lambda: viewer.received["phone"].video_frames > frames, 5.0, "video after the outage"
        )
        flowing = await until(
            lambda: viewer.received["phone"].video_frames >= frames + 30, 5.0, "30 frames"
        )
        track = room.subscription("console", "phone").tracks["video"]  # type: ignore[union-attr]
        print(
            f"outage 5 s: first frame {resumed:.2f} s after it ended, 30 more {flowing:.2f} s "
            f"later; gaps {assembler.gaps}, late {assembler.late}, resyncs {track.resyncs}, "
            f"key frames {publication.stats.keyframes - keyframes}"
        )
        assert outage.dropped > 200  # the publisher kept sending into the void
        assert resumed < 2.0
        # No backlog drained behind the gap: 30 frames take about a second at 30 fps.
        assert flowing < 3.5
        # The gap was given up by time, with a key frame asked for and delivered.
        assert assembler.gaps >= 1 and assembler.wait() <= MAX_WAIT
        assert publication.stats.keyframes > keyframes
    finally:
        await publisher.close()
        await viewer.close()
