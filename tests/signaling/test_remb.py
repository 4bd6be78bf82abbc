"""The relay's REMB estimator gives aiortc's figures: both are fed the same packet traces."""

from __future__ import annotations

import random

import pytest
from aiortc.rate import RateCounter, RemoteBitrateEstimator

from signaling.remb import RateWindow, RembEstimator

Trace = list[tuple[int, int, int, int]]  # arrival ms, abs-send-time, payload size, ssrc


def video_trace(
    seed: int,
    seconds: float,
    *,
    start_ms: int = 1_000_000,
    send_offset: float = 0.0,
    congest: tuple[float, float] | None = None,
    pause: tuple[float, float] | None = None,
    reorder: float = 0.0,
) -> Trace:
    """~1 Mbit/s of 30 fps video (bursts of 1200-byte packets per frame) with jitter;
    ``congest`` = (from, to) s: a queue builds up (arrival delay grows 20 ms per second);
    ``pause`` = (from, to) s: nothing is sent; ``send_offset`` shifts abs-send-time (wrap)."""
    rng = random.Random(seed)
    trace: Trace = []
    delay = 20.0
    frame = 0
    while frame / 30 < seconds:
        t = frame / 30
        frame += 1
        if pause and pause[0] <= t < pause[1]:
            continue
        if congest and congest[0] <= t < congest[1]:
            delay += 20 / 30
        elif delay > 20:
            delay = max(20.0, delay - 40 / 30)
        packets = rng.choice((2, 3, 4, 5)) if frame % 300 else 30  # key frame now and then
        for i in range(packets):
            sent = t + i * 0.0005 + send_offset
            abs_send_time = int(sent * (1 << 18)) & 0xFFFFFF
            arrival = start_ms + int((t + i * 0.0005) * 1000 + delay + rng.uniform(0, 4))
            size = rng.randint(900, 1200)
            trace.append((arrival, abs_send_time, size, 0x1234))
    if reorder:
        for i in range(1, len(trace) - 1):
            if rng.random() < reorder:
                trace[i], trace[i + 1] = trace[i + 1], trace[i]
    return trace


def run(estimator: RemoteBitrateEstimator, trace: Trace) -> list[tuple[int, list[int]] | None]:
    return [
        estimator.add(arrival_time_ms=a, abs_send_time=s, payload_size=n, ssrc=x)
        for a, s, n, x in trace
    ]


TRACES = {
    "steady": video_trace(1, 20),
    "congested": video_trace(2, 30, congest=(8, 14)),
    "pause over a second": video_trace(3, 20, pause=(6, 8.5)),
    "abs-send-time wraps": video_trace(4, 20, send_offset=60.0),
    "reordered": video_trace(5, 20, reorder=0.03, congest=(5, 9)),
}


@pytest.mark.parametrize("name", sorted(TRACES))
def test_same_estimates_as_aiortc(name: str) -> None:
    trace = TRACES[name]
    ours, theirs = RembEstimator(), RemoteBitrateEstimator()
    assert run(ours, trace) == run(theirs, trace)
    assert ours.rate_control.current_bitrate == theirs.rate_control.current_bitrate
    assert ours.estimator._offset == theirs.estimator._offset
    assert ours.detector.threshold == theirs.detector.threshold


def test_traces_exercise_the_estimator() -> None:
    """The comparison above means something: REMBs come out, and congestion lowers them."""
    estimates = [r[0] for r in run(RemoteBitrateEstimator(), TRACES["congested"]) if r]
    assert len(estimates) > 20
    peak = max(estimates[: len(estimates) // 3])
    assert min(estimates[len(estimates) // 3 :]) < 0.9 * peak


def test_rate_window_matches_rate_counter_on_random_times() -> None:
    rng = random.Random(7)
    ours, theirs = RateWindow(1000, 8000), RateCounter(1000, 8000)
    now = 5000
    for _ in range(5000):
        now += rng.choice((0, 0, 1, 3, 10, 40, 999, 1000, 1001, 2500))
        if rng.random() < 0.01:
            ours.reset()
            theirs.reset()
        value = rng.randint(0, 1500)
        ours.add(value, now)
        theirs.add(value, now)
        probe = now + rng.choice((0, 1, 500, 1200))
        assert ours.rate(probe) == theirs.rate(probe)
