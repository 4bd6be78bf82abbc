"""Prometheus metrics. Each app has its own registry, so tests can build many apps."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
