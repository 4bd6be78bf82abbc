"""Arrival times from the kernel, burst-sized buffers and the relay's health on /metrics.

Real sockets and real aiortc peers over loopback. The event loop is stalled with a plain
``time.sleep`` inside a callback: datagrams that arrive meanwhile wait in the kernel, and
only the kernel knows when each came.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.metrics import RATE_WINDOW
from signaling.client import MediaClient
from signaling.relay import RelayConfig, RelayRoom
from signaling.sockets import (
    RECEIVE_BUFFER,
    SO_TIMESTAMPNS,
    SocketTally,
    read_with_kernel_times,
)
from tests.signaling.conftest import LOOPBACK, LiveServer
from tests.signaling.test_relay import publish

STALL = 0.2
PEER_STALL = 0.4
"""The relay's stall with a real publisher: long enough for several video frames to
arrive meanwhile even when the machine is loaded."""


def rmem_max() -> int:
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


class Recorder(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reader: Any = None
        self.seen: list[tuple[int, int]] = []
        """(kernel stamp, time.time_ns() when Python got it) per datagram."""

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen.append((self.reader.arrival_ns, time.time_ns()))


def send_spread(port: int, count: int, gap: float) -> None:
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(count):
            out.sendto(b"x%d" % i, ("127.0.0.1", port))
            time.sleep(gap)
    finally:
        out.close()


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Any, Recorder, SocketTally]]:
    """A loopback datagram endpoint read by a SocketReader: (transport, protocol, tally)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
    tally = SocketTally()
    protocol.reader = read_with_kernel_times(transport, protocol, tally)
    assert protocol.reader is not None
    yield transport, protocol, tally
    transport.close()


async def test_datagrams_of_a_stall_keep_their_kernel_times_and_are_read_in_batches(
    endpoint: tuple[Any, Recorder, SocketTally],
) -> None:
    transport, protocol, tally = endpoint
    port = transport.get_extra_info("sockname")[1]
    sender = threading.Thread(target=send_spread, args=(port, 20, STALL / 20))
    sender.start()
    time.sleep(STALL + 0.05)  # noqa: ASYNC251 -- the stall: every datagram arrives meanwhile
    sender.join()
    for _ in range(50):
        if len(protocol.seen) == 20:
            break
        await asyncio.sleep(0.01)
    assert len(protocol.seen) == 20
    kernel = [k for k, _ in protocol.seen]
    python = [p for _, p in protocol.seen]
    assert all(kernel), "every datagram has a kernel stamp"
    # The kernel's times spread over the stall; Python got them all at its end.
    assert (kernel[-1] - kernel[0]) / 1e9 > STALL * 0.6
    assert (python[-1] - python[0]) / 1e9 < 0.02
    assert kernel == sorted(kernel)
    assert all(p >= k for k, p in protocol.seen)
    assert tally.datagrams == 20 and tally.wakeups <= 2


async def test_datagrams_dropped_for_a_full_buffer_are_counted(
    endpoint: tuple[Any, Recorder, SocketTally],
) -> None:
    transport, protocol, tally = endpoint
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # room for a few
    port = transport.get_extra_info("sockname")[1]
    send_spread(port, 100, 0)  # the loop does not run meanwhile: the buffer overflows
    await asyncio.sleep(0.1)
    kept = len(protocol.seen)
    assert 0 < kept < 100
    # The kernel stamps the drop count on the datagrams queued after the drops.
    assert tally.dropped == 0
    send_spread(port, 1, 0)
    for _ in range(50):
        await asyncio.sleep(0.01)
        if len(protocol.seen) > kept:
            break
    assert tally.dropped == 100 - kept


@pytest.fixture
async def room(request: pytest.FixtureRequest) -> AsyncIterator[RelayRoom]:
    kernel = getattr(request, "param", True)
    room = RelayRoom("arrivals", RelayConfig(host_addresses=LOOPBACK, kernel_timestamps=kernel))
    yield room
    await room.close()


class Arrivals:
    """The arrival_time_ms the publisher's video REMB estimator is handed (on the lean
    receive path, signaling/inbound.py, as on aiortc's)."""

    def __init__(self, room: RelayRoom, pid: str) -> None:
        self.times: list[tuple[float, int]] = []
        receiver = room.publication(pid)._receivers["video"]
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
        assert estimator is not None, "no REMB estimator (transport-cc publisher?)"
        original = estimator.add

        def add(arrival_time_ms: int, *args: Any, **kwargs: Any) -> Any:
            self.times.append((time.monotonic(), arrival_time_ms))
            return original(arrival_time_ms, *args, **kwargs)

        estimator.add = add


class Rembs:
    """REMB bit rates the publisher's video sender receives."""

    def __init__(self, client: MediaClient) -> None:
        from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci

        self.values: list[tuple[float, int]] = []
        assert client.publish_pc is not None
        sender = next(s for s in client.publish_pc.getSenders() if s.kind == "video")
        original = sender._handle_rtcp_packet

        async def handle(packet: Any) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                self.values.append((time.monotonic(), unpack_remb_fci(packet.fci)[0]))
            await original(packet)

        sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


def stall(seconds: float) -> None:
    time.sleep(seconds)


async def stalled_span(room: RelayRoom, arrivals: Arrivals) -> tuple[float, int]:
    """Stall the loop; (span of the stalled packets' arrival times in s, how many)."""
    await asyncio.sleep(0.5)
    asyncio.get_running_loop().call_soon(stall, PEER_STALL)
    await asyncio.sleep(0)  # the stall runs in this turn
    woke = time.monotonic()
    await asyncio.sleep(0.3)
    # Packets handled right after the stall: those the kernel held during it.
    held = [ms for at, ms in arrivals.times if woke <= at < woke + 0.1]
    return (max(held) - min(held)) / 1000 if held else 0.0, len(held)


class PeerThread:
    """A publisher on its own event loop in a thread: it keeps sending while ours stalls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def run(self, coro: Any) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def _new_client() -> MediaClient:
    return MediaClient(host_addresses=LOOPBACK)


@pytest.mark.parametrize("room", [True, False], ids=["kernel", "python"], indirect=True)
async def test_the_remb_estimator_gets_the_kernel_arrival_times(room: RelayRoom) -> None:
    peer = PeerThread()
    publisher: MediaClient = await peer.run(_new_client())
    try:
        offer = await peer.run(publisher.publish_offer("testsrc"))
        answer = await room.add_participant("phone", offer)
        await peer.run(publisher.accept_publish_answer(answer))
        rembs = Rembs(publisher)
        # aiortc's estimator settles on the incoming rate after its first 5 s.
        await asyncio.sleep(6.5)
        arrivals = Arrivals(room, "phone")
        paths = room.receive_paths["phone"]
        kernel = room.config.kernel_timestamps
        assert bool(paths[0].readers) is kernel
        before = [b for at, b in rembs.values if at >= time.monotonic() - 2.5]
        span, held = await stalled_span(room, arrivals)
        assert held >= 3, "video packets arrived during the stall"
        if kernel:
            assert span > PEER_STALL * 0.5, f"stalled packets stamped within {span * 1000:.0f} ms"
            # The estimate holds after the stall: every REMB of the next 3 s stays within
            # 10 % of the median before it.
            start = time.monotonic()
            await asyncio.sleep(3)
            after = [b for at, b in rembs.values if at >= start]
            assert before and after
            assert min(after) >= 0.9 * statistics.median(before), (before, after)
        else:
            # All stamped when Python got to them (as before issue 18).
            assert span < PEER_STALL * 0.5
    finally:
        await peer.run(publisher.close())
        peer.stop()


async def test_the_relay_sockets_get_burst_sized_buffers_and_kernel_stamps(
    room: RelayRoom,
) -> None:
    publisher = MediaClient(host_addresses=LOOPBACK)
    try:
        await publish(room, publisher, "phone")
        pc = room.publish_connection("phone")
        assert pc is not None
        connection = pc.getTransceivers()[0].receiver.transport.transport._connection
        sockets = [p.transport.get_extra_info("socket") for p in connection._protocols]
        assert sockets
        expected = min(RECEIVE_BUFFER, rmem_max())
        for sock in sockets:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2 >= expected
            assert sock.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS) == 1
        assert room.sockets.receive_buffer >= expected
    finally:
        await publisher.close()


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_metrics_show_loop_lag_drops_fps_and_feedback_after_a_short_call(
    live: LiveServer,
) -> None:
    inspector = live.client("staff-1", "inspector", auto_admit=True)
    await inspector.connect()
    applicant = live.client("applicant-2", "applicant")
    await applicant.connect()
    await applicant.wait_state("admitted")
    await inspector.media.wait_for_video("applicant-2", frames=20, within=15)
    await asyncio.sleep(2 * RATE_WINDOW + 0.5)
    async with aiohttp.ClientSession() as http:
        response = await http.get(live.server.make_url("/metrics"))
        assert response.status == 200
        metrics = families(await response.text())
    lag = {s.name: s.value for s in metrics["yunkan_event_loop_lag_seconds"].samples}
    assert lag["yunkan_event_loop_lag_seconds_count"] > 10
    assert 0 <= metrics["yunkan_event_loop_lag_max_seconds"].samples[0].value < 5
    assert metrics["yunkan_udp_datagrams_dropped"].samples[0].value == 0
    assert metrics["yunkan_udp_datagrams_read"].samples[0].value > 100
    buffer = metrics["yunkan_udp_receive_buffer_bytes"].samples[0].value
    assert buffer >= min(RECEIVE_BUFFER, rmem_max())
    fps = {
        (s.labels["participant"], s.labels["kind"]): s.value
        for s in metrics["yunkan_relay_track_fps"].samples
    }
    # The test pattern is 30 fps (a loaded test machine may lose some).
    assert 10 < fps[("applicant-2", "video")] < 40
    assert 10 < fps[("staff-1", "video")] < 40
    assert fps[("applicant-2", "audio")] > 20  # 50 Opus frames a second
    (room_fps,) = metrics["yunkan_relay_room_fps"].samples
    assert room_fps.labels["room"] == live.room
    assert room_fps.value == min(fps[("applicant-2", "video")], fps[("staff-1", "video")])
    feedback = {
        (s.labels["participant"], s.labels["kind"]): s.value
        for s in metrics["yunkan_relay_feedback_per_second"].samples
    }
    # aiortc publishers get aiortc's REMB: about two a second (every 500 ms, or on overuse).
    assert 0.3 < feedback[("applicant-2", "remb")] < 20
