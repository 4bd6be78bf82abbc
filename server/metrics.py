"""Prometheus metrics. Each app has its own registry, so tests can build many apps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from signaling.relay import Relay


@dataclass(slots=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    outages: Counter
    unfiled: Gauge
    # ---- admission control (issue 18, signaling.admission) ----
    rooms_refused: Counter
    rooms_placed: Counter
    admission_busy: Gauge

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "yunkan_http_requests",
                "HTTP requests handled",
                ["method", "route", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "yunkan_http_request_seconds",
                "HTTP request latency",
                ["method", "route"],
                registry=registry,
            ),
            outages=Counter(
                "yunkan_dependency_unavailable",
                "Requests answered 503 because the database or Redis was unreachable",
                ["code"],
                registry=registry,
            ),
            unfiled=Gauge(
                "yunkan_unfiled_files",
                "Evidence files on disk that no case holds, at the last periodic check",
                ["place"],
                registry=registry,
            ),
            # ---- admission control (issue 18, signaling.admission) ----
            rooms_refused=Counter(
                "yunkan_live_rooms_refused",
                "New rooms refused with node_busy: this node had no headroom and no other did",
                registry=registry,
            ),
            rooms_placed=Counter(
                "yunkan_live_rooms_placed_elsewhere",
                "New rooms this node had no headroom for, placed on another node (wrong_node)",
                registry=registry,
            ),
            admission_busy=Gauge(
                "yunkan_admission_busy",
                "1 while this node takes no new room (over a YUNKAN_ADMIT_* limit)",
                registry=registry,
            ),
        )


# ---------------------------------------------------------------------------------------
# Relay health (issue 18): event-loop lag, datagrams the kernel dropped, per-room and
# per-track fps, REMB and transport-cc feedback sent to publishers. One object per relay,
# registered on the app's registry by the live signaling's cleanup context
# (signaling/handlers.py). Nothing here runs per packet: the figures are read from the
# relay's own counters every RATE_WINDOW seconds and at scrape time.
# ---------------------------------------------------------------------------------------

LAG_PROBE = 0.1
"""Seconds between two event-loop lag probes (a timer; its lateness is the lag)."""
RATE_WINDOW = 2.0
"""Seconds over which fps and feedback rates are computed."""
LAG_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RelayMetrics:
    """Loop lag, kernel drops, fps and feedback rates of one ``signaling.relay.Relay``."""

    def __init__(self, registry: CollectorRegistry, relay: Relay) -> None:
        self.relay = relay
        self.loop_lag = Histogram(
            "yunkan_event_loop_lag_seconds",
            f"How late a {LAG_PROBE * 1000:.0f} ms timer of the event loop fires",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.track_fps: dict[tuple[str, str, str], float] = {}
        self.feedback_rate: dict[tuple[str, str, str], float] = {}
        self.lag_max = 0.0
        """Worst lag in the last window."""
        self._window_lag = 0.0
        self._last: dict[tuple[str, str, str], tuple[object, int]] = {}
        self._task: asyncio.Task[None] | None = None
        registry.register(self)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        window_end = loop.time() + RATE_WINDOW
        while True:
            due = loop.time() + LAG_PROBE
            await asyncio.sleep(LAG_PROBE)
            now = loop.time()
            lag = max(0.0, now - due)
            self.loop_lag.observe(lag)
            self._window_lag = max(self._window_lag, lag)
            if now >= window_end:
                self.sample(now - window_end + RATE_WINDOW)
                window_end = now + RATE_WINDOW

    def _delta(self, key: tuple[str, str, str], source: object, value: int) -> int:
        previous = self._last.get(key)
        # A new source (a reconnect's new sink or transport) counts from zero.
        return value - previous[1] if previous and previous[0] is source else value

    def sample(self, seconds: float) -> None:
        """Turn the relay's counters since the last sample into rates over ``seconds``."""
        fps: dict[tuple[str, str, str], float] = {}
        feedback: dict[tuple[str, str, str], float] = {}
        last: dict[tuple[str, str, str], tuple[object, int]] = {}
        for room in self.relay.rooms():
            for participant in room.publishers:
                publication = room.publication(participant)
                for kind, sink in publication.sinks().items():
                    key = (room.room_id, participant, kind)
                    fps[key] = self._delta(key, sink, sink.frames) / seconds
                    last[key] = (sink, sink.frames)
                for path in room.receive_paths.get(participant, []):
                    sources: list[tuple[str, object, int]] = [("remb", path, path.rembs)]
                    if path.feedback is not None:
                        sources.append(("transport_cc", path.feedback, path.feedback.feedbacks))
                    for kind, source, value in sources:
                        key = (room.room_id, participant, kind)
                        rate = self._delta(key, source, value) / seconds
                        feedback[key] = feedback.get(key, 0.0) + rate
                        last[key] = (source, value)
        self.track_fps, self.feedback_rate, self._last = fps, feedback, last
        self.lag_max, self._window_lag = self._window_lag, 0.0

    def collect(self) -> Iterator[Metric]:
        tally = self.relay.sockets
        yield CounterMetricFamily(
            "yunkan_udp_datagrams_dropped",
            "Datagrams the kernel dropped on the relay's sockets for a full receive buffer "
            "(SO_RXQ_OVFL)",
            value=tally.dropped,
        )
        yield CounterMetricFamily(
            "yunkan_udp_datagrams_read",
            "Datagrams read from the relay's sockets with kernel receive times",
            value=tally.datagrams,
        )
        yield GaugeMetricFamily(
            "yunkan_udp_receive_buffer_bytes",
            "SO_RCVBUF the kernel granted the relay's last socket (net.core.rmem_max caps it)",
            value=tally.receive_buffer,
        )
        yield GaugeMetricFamily(
            "yunkan_event_loop_lag_max_seconds",
            f"Worst event-loop lag in the last {RATE_WINDOW:.0f} s",
            value=self.lag_max,
        )
        tracks = GaugeMetricFamily(
            "yunkan_relay_track_fps",
            f"Frames per second received from each publisher's track (last {RATE_WINDOW:.0f} s)",
            labels=["room", "participant", "kind"],
        )
        rooms: dict[str, float] = {}
        for (room, participant, kind), value in self.track_fps.items():
            tracks.add_metric([room, participant, kind], value)
            if kind == "video":
                rooms[room] = min(rooms.get(room, value), value)
        yield tracks
        room_fps = GaugeMetricFamily(
            "yunkan_relay_room_fps",
            "The lowest video frame rate among a room's publishers",
            labels=["room"],
        )
        for room, value in rooms.items():
            room_fps.add_metric([room], value)
        yield room_fps
        rates = GaugeMetricFamily(
            "yunkan_relay_feedback_per_second",
            "REMB and transport-cc feedback packets per second sent to each publisher",
            labels=["room", "participant", "kind"],
        )
        for (room, participant, kind), value in self.feedback_rate.items():
            rates.add_metric([room, participant, kind], value)
        yield rates
