"""A UDP impairment proxy: a weak phone uplink without kernel modules (no netem, no ifb).

One :class:`ImpairProxy` sits between two WebRTC peers, "a" (the phone) and "b" (the relay,
or the receiving browser of the direct call). It binds two UDP sockets on 127.0.0.1:

* ``port_for_a``: what the phone is told is the other side's only candidate;
* ``port_for_b``: what the other side is told is the phone's only candidate.

:func:`route_through` rewrites an SDP so that every ``a=candidate`` line is replaced by one
host candidate on the proxy (and the ``c=``/``m=`` addresses follow). Given the offer
rewritten to ``port_for_b`` and the answer rewritten to ``port_for_a``, neither ICE agent
knows any address of the other, so every packet — STUN checks, DTLS, SRTP, RTCP — crosses
the proxy; the proxy learns each side's address from the packets it receives there (ICE
checks flow both ways at once, so both are learned within the first round of checks).

The shaping (:class:`Shaping`) applies to what a sends to b (the uplink); an outage
drops both directions. The rate cap is a token bucket (``burst`` bytes, refilled at
``rate_bps``) in front of a FIFO whose delay is bounded by ``queue_s``: a packet that would
wait longer is dropped at the tail, as ``tc tbf latency`` does. Random loss is drawn
before the queue. Packets are sent from the proxy's own event loop (``ProxyThread`` runs it
in a thread so that decoding or a browser's getStats on the bench's loop do not delay it).
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

Address = tuple[str, int]


@dataclass(frozen=True)
class Shaping:
    """What the proxy does to the uplink (a → b) at a moment; the default passes all."""

    rate_bps: float | None = None
    """Token-bucket rate in bit/s (None: no cap)."""
    queue_s: float = 0.3
    """Longest wait in the queue behind the bucket; beyond it packets are dropped."""
    loss: float = 0.0
    """Probability that an uplink packet is dropped (before the queue)."""
    outage: bool = False
    """Drop everything, both ways."""
    burst: int = 8_000
    """Bucket depth in bytes."""

    def describe(self) -> str:
        if self.outage:
            return "full outage (both ways)"
        parts = []
        if self.rate_bps:
            parts.append(f"{self.rate_bps / 1000:g} kbit/s, queue ≤ {self.queue_s * 1000:g} ms")
        if self.loss:
            parts.append(f"{self.loss * 100:g} % loss")
        return " + ".join(parts) or "no impairment"


@dataclass
class Counters:
    up_packets: int = 0
    up_bytes: int = 0
    """Forwarded a → b (after shaping)."""
    down_packets: int = 0
    down_bytes: int = 0
    lost: int = 0
    """Dropped by random loss."""
    overflow: int = 0
    """Dropped because the queue delay would exceed ``queue_s``."""
    outage: int = 0
    """Dropped (either way) during an outage."""
    unrouted: int = 0
    """Arrived before the other side's address was known."""
    max_queue_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(self).items()}


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.on_datagram(data, addr)


@dataclass
class ImpairProxy:
    """See the module docstring. Create, ``await start()`` in the loop that will run it."""

    shaping: Shaping = field(default_factory=Shaping)
    seed: int = 15
    counters: Counters = field(default_factory=Counters)
    a_address: Address | None = None
    b_address: Address | None = None

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._a = _Side(self._from_a)
        self._b = _Side(self._from_b)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Token bucket state, in the loop's clock: tokens at the departure of the last
        # packet queued, and that departure time.
        self._tokens = 0.0
        self._last_departure = 0.0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._loop.create_datagram_endpoint(lambda: self._a, local_addr=("127.0.0.1", 0))
        await self._loop.create_datagram_endpoint(lambda: self._b, local_addr=("127.0.0.1", 0))
        self._tokens = float(self.shaping.burst)
        self._last_departure = self._loop.time()

    @property
    def port_for_a(self) -> int:
        assert self._a.transport is not None
        return int(self._a.transport.get_extra_info("sockname")[1])

    @property
    def port_for_b(self) -> int:
        assert self._b.transport is not None
        return int(self._b.transport.get_extra_info("sockname")[1])

    def set_shaping(self, shaping: Shaping) -> None:
        """Change the impairment now (call from the proxy's loop; see ``ProxyThread``)."""
        self.shaping = shaping

    def close(self) -> None:
        for side in (self._a, self._b):
            if side.transport is not None:
                side.transport.close()

    # -- forwarding ---------------------------------------------------------------------
    def _from_a(self, data: bytes, addr: Address) -> None:
        self.a_address = addr
        shaping = self.shaping
        if shaping.outage:
            self.counters.outage += 1
            return
        if self.b_address is None or self._b.transport is None:
            self.counters.unrouted += 1
            return
        if shaping.loss and self._random.random() < shaping.loss:
            self.counters.lost += 1
            return
        if not shaping.rate_bps:
            self._send_up(data)
            return
        assert self._loop is not None
        now = self._loop.time()
        rate = shaping.rate_bps / 8  # bytes per second
        start = max(now, self._last_departure)
        tokens = min(float(shaping.burst), self._tokens + (start - self._last_departure) * rate)
        departure = start + max(0.0, (len(data) - tokens) / rate)
        if departure - now > shaping.queue_s:
            self.counters.overflow += 1
            return
        self._tokens = max(0.0, tokens - len(data)) if departure == start else 0.0
        self._last_departure = departure
        self.counters.max_queue_s = max(self.counters.max_queue_s, departure - now)
        if departure <= now:
            self._send_up(data)
        else:
            self._loop.call_at(departure, self._send_up, data)

    def _send_up(self, data: bytes) -> None:
        if self.shaping.outage:  # the outage began while the packet was queued
            self.counters.outage += 1
            return
        assert self._b.transport is not None and self.b_address is not None
        self._b.transport.sendto(data, self.b_address)
        self.counters.up_packets += 1
        self.counters.up_bytes += len(data)

    def _from_b(self, data: bytes, addr: Address) -> None:
        self.b_address = addr
        if self.shaping.outage:
            self.counters.outage += 1
            return
        if self.a_address is None or self._a.transport is None:
            self.counters.unrouted += 1
            return
        self._a.transport.sendto(data, self.a_address)
        self.counters.down_packets += 1
        self.counters.down_bytes += len(data)


class ProxyThread:
    """An :class:`ImpairProxy` on its own event loop in a daemon thread."""

    def __init__(self, shaping: Shaping | None = None, seed: int = 15) -> None:
        self.proxy = ImpairProxy(shaping or Shaping(), seed=seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(5)
        self.changes: list[tuple[float, Shaping]] = [(time.time(), self.proxy.shaping)]
        """Wall time (``time.time()``) of every shaping change, the first at start."""

    def set_shaping(self, shaping: Shaping) -> float:
        """Apply ``shaping`` on the proxy's loop; the wall time it took effect."""
        done: Future[float] = Future()

        def apply() -> None:
            self.proxy.set_shaping(shaping)
            done.set_result(time.time())

        self._loop.call_soon_threadsafe(apply)
        at = done.result(5)
        self.changes.append((at, shaping))
        return at

    def counters(self) -> dict[str, Any]:
        done: Future[dict[str, Any]] = Future()
        self._loop.call_soon_threadsafe(lambda: done.set_result(self.proxy.counters.as_dict()))
        return done.result(5)

    def close(self) -> None:
        async def shut() -> None:
            self.proxy.close()
            # A datagram transport closes its socket in a callback of the next turn of
            # the loop: let it run before the loop stops, or the sockets leak.
            await asyncio.sleep(0)
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


_CANDIDATE = re.compile(r"^a=(candidate:|end-of-candidates)")


def route_through(sdp: str, port: int, address: str = "127.0.0.1") -> str:
    """``sdp`` with its candidates replaced by one UDP host candidate ``address:port`` in
    every media section (rtcp-mux and BUNDLE: one component is enough)."""
    out: list[str] = []
    in_media = False

    def close_section() -> None:
        if in_media:
            out.append(f"a=candidate:1 1 udp 2130706431 {address} {port} typ host")
            out.append("a=end-of-candidates")

    for line in sdp.splitlines():
        if line.startswith("m="):
            close_section()
            in_media = True
            parts = line.split(" ")
            parts[1] = str(port)
            line = " ".join(parts)
        elif line.startswith("c=IN "):
            line = f"c=IN IP4 {address}"
        elif _CANDIDATE.match(line) or line.startswith("a=rtcp:"):
            continue
        out.append(line)
    close_section()
    return "\r\n".join(out) + "\r\n"
