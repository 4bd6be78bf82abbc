"""bench/impair.py's UDP proxy over real loopback sockets: cap, queue bound, loss, outage."""

from __future__ import annotations

import asyncio
import time

from bench.impair import ImpairProxy, Shaping, route_through

Address = tuple[str, int]


class Peer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[tuple[float, bytes]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.received.append((time.monotonic(), data))
        self.arrived.set()


async def peers(shaping: Shaping) -> tuple[ImpairProxy, Peer, Peer]:
    loop = asyncio.get_running_loop()
    proxy = ImpairProxy(Shaping(burst=shaping.burst))
    await proxy.start()
    a, b = Peer(), Peer()
    await loop.create_datagram_endpoint(lambda: a, local_addr=("127.0.0.1", 0))
    await loop.create_datagram_endpoint(lambda: b, local_addr=("127.0.0.1", 0))
    assert a.transport and b.transport
    # Each side learns the other from the first packet it receives (as with ICE checks).
    b.transport.sendto(b"hello-b", ("127.0.0.1", proxy.port_for_b))
    a.transport.sendto(b"hello-a", ("127.0.0.1", proxy.port_for_a))
    await asyncio.wait_for(b.arrived.wait(), 2)
    b.transport.sendto(b"hello-b", ("127.0.0.1", proxy.port_for_b))
    await asyncio.wait_for(a.arrived.wait(), 2)
    a.received.clear()
    b.received.clear()
    proxy.set_shaping(shaping)
    return proxy, a, b


def close(proxy: ImpairProxy, *sides: Peer) -> None:
    proxy.close()
    for side in sides:
        if side.transport is not None:
            side.transport.close()


async def settle(peer: Peer, quiet: float = 0.4) -> None:
    count = -1
    while count != len(peer.received):
        count = len(peer.received)
        await asyncio.sleep(quiet)


async def test_rate_cap_serialises_and_bounds_the_queue() -> None:
    proxy, a, b = await peers(Shaping(rate_bps=400_000, queue_s=0.3, burst=2_000))
    assert a.transport
    for _ in range(100):  # 100 kB at once into a 50 kB/s link with a 0.3 s queue
        a.transport.sendto(b"x" * 1000, ("127.0.0.1", proxy.port_for_a))
    await settle(b)
    times = [t for t, _ in b.received]
    # burst (2 kB) + 0.3 s of queue at 50 kB/s = about 17 packets; the rest overflows.
    assert 14 <= len(times) <= 20, len(times)
    # (the kernel may drop a few of the 100 at the proxy's socket buffer itself)
    assert 60 <= proxy.counters.overflow <= 100 - len(times)
    rate = (len(times) - 2) * 1000 / (times[-1] - times[1])
    assert 40_000 < rate < 60_000, rate
    assert proxy.counters.max_queue_s <= 0.3
    close(proxy, a, b)


async def test_loss_is_random_and_only_on_the_uplink() -> None:
    proxy, a, b = await peers(Shaping(loss=0.5))
    assert a.transport and b.transport
    for i in range(400):
        a.transport.sendto(b"up%d" % i, ("127.0.0.1", proxy.port_for_a))
        b.transport.sendto(b"down%d" % i, ("127.0.0.1", proxy.port_for_b))
        if i % 10 == 9:  # paced, so no socket buffer overflows on the way
            await asyncio.sleep(0.005)
    await settle(b)
    await settle(a)
    assert 150 < len(b.received) < 250, len(b.received)
    assert len(a.received) == 400
    assert proxy.counters.lost == 400 - len(b.received)
    close(proxy, a, b)


async def test_outage_drops_both_ways_and_ends() -> None:
    proxy, a, b = await peers(Shaping(outage=True))
    assert a.transport and b.transport
    for _ in range(10):
        a.transport.sendto(b"up", ("127.0.0.1", proxy.port_for_a))
        b.transport.sendto(b"down", ("127.0.0.1", proxy.port_for_b))
    await asyncio.sleep(0.2)
    assert not a.received and not b.received and proxy.counters.outage == 20
    proxy.set_shaping(Shaping())
    b.arrived.clear()
    a.transport.sendto(b"again", ("127.0.0.1", proxy.port_for_a))
    await asyncio.wait_for(b.arrived.wait(), 2)
    assert b.received[-1][1] == b"again"
    close(proxy, a, b)


def test_route_through_leaves_only_the_proxy_candidate() -> None:
    sdp = (
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
        "m=audio 50000 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 192.0.2.2\r\na=mid:0\r\n"
        "a=candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host\r\n"
        "a=candidate:2 1 tcp 1518280447 192.0.2.2 9 typ host tcptype active\r\n"
        "a=end-of-candidates\r\n"
        "m=video 50000 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 192.0.2.2\r\na=mid:1\r\n"
        "a=rtcp:9 IN IP4 0.0.0.0\r\n"
        "a=candidate:3 1 udp 2122260223 abc.local 50001 typ host\r\n"
    )
    out = route_through(sdp, 40000)
    candidates = [line for line in out.splitlines() if line.startswith("a=candidate")]
    assert candidates == ["a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"] * 2
    assert "192.0.2.2" not in out and ".local" not in out and "a=rtcp:" not in out
    assert out.count("m=audio 40000 ") == 1 and out.count("m=video 40000 ") == 1
    assert out.count("c=IN IP4 127.0.0.1") == 2
