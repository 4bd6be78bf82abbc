"""Admission control: a node that has no headroom left refuses *new* rooms, never people.

Issue 18: under CPU contention the relay used to accept every room and then lose them all
(0 fps, connections closed). Each node now measures its own headroom and, beyond its
limits, stops opening rooms; rooms it already hosts keep admitting participants (under
overload they lose frames, not connections).

* ``LoadSampler`` measures: event-loop lag from a timer that should fire every
  ``interval`` seconds (how late it fires, mean over ``window`` seconds) and the process's
  CPU (user + system of all its threads, as a percentage of one core, over the same
  window). Forwarded streams are counted by the caller (the hub knows them).
* ``Admission`` compares that with ``AdmissionLimits`` (``YUNKAN_ADMIT_*``) and, with
  Redis, publishes the node's load every second under ``<prefix>node:<id>`` with a TTL of
  a few seconds: a node that stops publishing (killed, stalled) drops out of placement.
* ``AdmittingDirectory`` wraps the room directory. A room somebody holds is the holder's
  (as before). A room nobody holds is claimed by this node if it has headroom; if not, it
  is *placed*: claimed on behalf of the least-loaded live node with headroom, and the hub
  answers ``wrong_node`` with that node's URL, which the browser and the Python client
  follow. With no such node the join is refused with ``node_busy`` (close 4503).

Placement claims expire like any claim (the directory TTL) when the participant never
arrives; the node refreshes them once it hosts the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from signaling.directory import Directory, Node
from signaling.errors import NodeBusyError

log = logging.getLogger(__name__)
LOAD_TTL = 5.0
"""Seconds a published load stays valid: about five missed publications."""
PUBLISH_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """0 turns a check off; with all three off a node admits every room (the default)."""

    max_lag_ms: float = 0.0
    max_cpu: float = 0.0
    """Percent of one core."""
    max_streams: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.max_lag_ms or self.max_cpu or self.max_streams)


@dataclass(frozen=True, slots=True)
class Load:
    lag_ms: float
    cpu: float
    streams: int
    rooms: int

    def over(self, limits: AdmissionLimits) -> str | None:
        """Why this load leaves no headroom under ``limits`` (None: there is headroom)."""
        if limits.max_lag_ms and self.lag_ms > limits.max_lag_ms:
            return f"event loop {self.lag_ms:.0f} ms late (limit {limits.max_lag_ms:.0f} ms)"
        if limits.max_cpu and self.cpu > limits.max_cpu:
            return f"CPU {self.cpu:.0f} % of a core (limit {limits.max_cpu:.0f} %)"
        if limits.max_streams and self.streams >= limits.max_streams:
            return f"{self.streams} forwarded streams (limit {limits.max_streams})"
        return None

    def score(self, limits: AdmissionLimits) -> float:
        """How full the node is: the largest share of a limit used (CPU of a core when no
        limit is set), so placement can compare nodes with different limits."""
        shares = [self.cpu / 100.0]
        if limits.max_lag_ms:
            shares.append(self.lag_ms / limits.max_lag_ms)
        if limits.max_cpu:
            shares.append(self.cpu / limits.max_cpu)
        if limits.max_streams:
            shares.append(self.streams / limits.max_streams)
        return max(shares)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class LoadSampler:
    """Loop lag and process CPU over a sliding window, sampled by a timer on the loop.

    The timer is the measurement: a loop busy with packets (or stalled by anything) runs it
    late, and that lateness is what every other callback on the loop suffers too."""

    def __init__(self, *, interval: float = 0.1, window: float = 3.0) -> None:
        self.interval = interval
        self.window = window
        self._lags: deque[tuple[float, float]] = deque()
        self._cpu: deque[tuple[float, float]] = deque()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._cpu.append((time.monotonic(), time.process_time()))
        self._task = asyncio.create_task(self._run(), name="admission-sampler")

    async def close(self) -> None:
        await _cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.add(max(0.0, loop.time() - due))

    def add(self, lag: float) -> None:
        now = time.monotonic()
        self._lags.append((now, lag))
        self._cpu.append((now, time.process_time()))
        horizon = now - self.window
        while self._lags and self._lags[0][0] < horizon:
            self._lags.popleft()
        while len(self._cpu) > 2 and self._cpu[0][0] < horizon:
            self._cpu.popleft()

    @property
    def lag_ms(self) -> float:
        if not self._lags:
            return 0.0
        return 1000.0 * sum(lag for _, lag in self._lags) / len(self._lags)

    @property
    def cpu(self) -> float:
        if len(self._cpu) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self._cpu[0], self._cpu[-1]
        return 100.0 * (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


class RedisLoads:
    """Every node's last published load, in Redis keys that expire (``LOAD_TTL``)."""

    def __init__(self, redis: Redis, prefix: str = "yunkan:") -> None:
        self.redis = redis
        self.prefix = prefix + "node:"

    async def publish(self, node: Node, load: Load, limits: AdmissionLimits) -> None:
        value = {
            "id": node.id,
            "url": node.url,
            "lag_ms": round(load.lag_ms, 1),
            "cpu": round(load.cpu, 1),
            "streams": load.streams,
            "rooms": load.rooms,
            "busy": load.over(limits),
            "score": round(load.score(limits), 3),
        }
        await self.redis.set(self.prefix + node.id, json.dumps(value), px=int(LOAD_TTL * 1000))

    async def nodes(self) -> list[dict[str, Any]]:
        keys = [key async for key in self.redis.scan_iter(match=self.prefix + "*", count=200)]
        if not keys:
            return []
        out = []
        for raw in await self.redis.mget(keys):
            if raw is not None:
                with contextlib.suppress(ValueError, KeyError):
                    data = json.loads(raw)
                    if isinstance(data["id"], str) and isinstance(data["url"], str):
                        out.append(data)
        return out


class Admission:
    """This node's headroom, and its load published for the others."""

    def __init__(
        self,
        limits: AdmissionLimits,
        node: Node,
        usage: Callable[[], tuple[int, int]],
        loads: RedisLoads | None = None,
        sampler: LoadSampler | None = None,
    ) -> None:
        self.limits = limits
        self.node = node
        self.usage = usage
        """``(rooms, forwarded streams)`` hosted here now."""
        self.loads = loads
        self.sampler = sampler or LoadSampler()
        self._publisher: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.limits.enabled or self.loads is not None

    async def start(self) -> None:
        if not self.active:
            return  # the embedded default without limits: nothing runs, as before
        self.sampler.start()
        if self.loads is not None:
            self._publisher = asyncio.create_task(self._publish(), name="admission-publish")

    async def close(self) -> None:
        if self._publisher is not None:
            await _cancel(self._publisher)
            self._publisher = None
            with contextlib.suppress(RedisError, OSError):  # gone now, not in LOAD_TTL
                assert self.loads is not None
                await self.loads.redis.delete(self.loads.prefix + self.node.id)
        await self.sampler.close()

    def load(self) -> Load:
        rooms, streams = self.usage()
        return Load(self.sampler.lag_ms, self.sampler.cpu, streams, rooms)

    def busy(self) -> str | None:
        """Why this node takes no new room now (None: it does)."""
        return self.load().over(self.limits) if self.limits.enabled else None

    async def _publish(self) -> None:
        assert self.loads is not None
        while True:
            try:
                await self.loads.publish(self.node, self.load(), self.limits)
            except (RedisError, OSError) as exc:  # placement just skips us meanwhile
                log.warning("admission: could not publish the load (%s)", type(exc).__name__)
            await asyncio.sleep(PUBLISH_EVERY)

    async def elsewhere(self) -> Node | None:
        """The least-loaded other live node with headroom, if any."""
        if self.loads is None:
            return None
        try:
            nodes = await self.loads.nodes()
        except (RedisError, OSError):
            return None
        free = [n for n in nodes if n["id"] != self.node.id and not n.get("busy")]
        if not free:
            return None
        best = min(free, key=lambda n: (float(n.get("score", 0)), int(n.get("rooms", 0))))
        return Node(str(best["id"]), str(best["url"]))


class AdmittingDirectory:
    """The room directory with admission in front of a first claim (see module doc)."""

    def __init__(
        self,
        inner: Directory,
        admission: Admission,
        *,
        hosted: Callable[[str], bool],
        on_refused: Callable[[], None] | None = None,
        on_placed: Callable[[], None] | None = None,
    ) -> None:
        self.inner = inner
        self.admission = admission
        self.hosted = hosted
        self.on_refused = on_refused
        self.on_placed = on_placed

    @property
    def ttl(self) -> float:  # the hub refreshes claims every ttl / 3
        return float(getattr(self.inner, "ttl", 30.0))

    async def claim(self, room: str, node: Node) -> Node:
        if not self.admission.limits.enabled:
            return await self.inner.claim(room, node)
        if self.hosted(room) or await self.inner.lookup(room) is not None:
            return await self.inner.claim(room, node)  # an existing room: never refused
        reason = self.admission.busy()
        if reason is None:
            return await self.inner.claim(room, node)
        other = await self.admission.elsewhere()
        if other is None:
            if self.on_refused is not None:
                self.on_refused()
            log.warning("admission: room %s refused: %s", room, reason)
            raise NodeBusyError(
                f"node {node.id} takes no new room ({reason}) and no other node has headroom"
            )
        holder = await self.inner.claim(room, other)
        if holder.id != node.id and self.on_placed is not None:
            self.on_placed()
        log.info("admission: room %s placed on %s (%s)", room, holder.id, reason)
        return holder

    async def lookup(self, room: str) -> Node | None:
        return await self.inner.lookup(room)

    async def refresh(self, room: str, node: Node) -> bool:
        return await self.inner.refresh(room, node)

    async def release(self, room: str, node: Node) -> None:
        await self.inner.release(room, node)

    async def close(self) -> None:
        await self.inner.close()
