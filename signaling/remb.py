"""aiortc's receive-side bandwidth estimator (REMB), computing the same figures for less.

A publisher without transport-cc (aiortc clients, old browsers) gets its delay-based
bandwidth signal from aiortc 1.16's ``RemoteBitrateEstimator`` (``aiortc/rate.py``), which
the receiver feeds with every video packet. Three of its parts cost far more than their
arithmetic:

* ``RateCounter`` keeps the incoming bitrate in 1 ms buckets (``RateBucket`` objects) and
  clears them one millisecond at a time, in Python, twice per packet: ~10 loop steps per
  packet at 100 packets/s, and 1000 objects built whenever it resets (the first packet, and
  after every pause of over a second).
* ``OveruseEstimator.update_min_frame_period`` walks its 60-entry history in Python per
  timestamp group (about one per frame).
* ``InterArrival`` builds a ``TimestampGroup`` per group and calls ``uint32_add`` helpers
  per packet.

:class:`RembEstimator` keeps aiortc's classes for everything else (the Kalman filter, the
detector, AIMD rate control) and replaces those three with code that does the same
arithmetic in the same order on the same state, so every estimate and every REMB decision
is aiortc's (``tests/signaling/test_remb.py`` feeds both the same traces and compares every
return value). ``Publication.attach_source`` swaps it in on each relay video receiver.
"""

from __future__ import annotations

from aiortc.rate import (
    INTER_ARRIVAL_SHIFT,
    MIN_FRAME_PERIOD_HISTORY_LENGTH,
    TIMESTAMP_GROUP_LENGTH_MS,
    TIMESTAMP_TO_MS,
    BandwidthUsage,
    OveruseEstimator,
    RateCounter,
    RemoteBitrateEstimator,
)

_GROUP_LENGTH = (TIMESTAMP_GROUP_LENGTH_MS << INTER_ARRIVAL_SHIFT) // 1000
_BURST_DELTA_THRESHOLD_MS = 5
_OVERUSING = BandwidthUsage.OVERUSING


class RateWindow(RateCounter):
    """aiortc's ``RateCounter`` (same ring of 1 ms buckets, same results) with the buckets
    as two lists of ints, cleared by slices instead of one bucket per loop step."""

    def __init__(self, window_size: int, scale: int = 8000) -> None:
        self._counts: list[int] = []
        self._values: list[int] = []
        self._total_count = 0
        self._total_value = 0
        super().__init__(window_size, scale)

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        index = (self._origin_index + now_ms - self._origin_ms) % self._window_size
        self._counts[index] += 1
        self._values[index] += value
        self._total_count += 1
        self._total_value += value

    def rate(self, now_ms: int) -> int | None:
        if self._origin_ms is not None:
            self._erase_old(now_ms)
            active_window_size = now_ms - self._origin_ms + 1
            if self._total_count > 0 and active_window_size > 1:
                return round(self._scale * self._total_value / active_window_size)
        return None

    def reset(self) -> None:
        self._counts = [0] * self._window_size
        self._values = [0] * self._window_size
        self._origin_index = 0
        self._origin_ms = None
        self._total_count = 0
        self._total_value = 0

    def _erase_old(self, now_ms: int) -> None:
        origin = self._origin_ms
        assert origin is not None
        steps = now_ms - self._window_size + 1 - origin
        if steps <= 0:
            return
        size = self._window_size
        start = self._origin_index
        if steps >= size:  # every bucket cleared (aiortc clears some several times)
            self._counts = [0] * size
            self._values = [0] * size
            self._total_count = 0
            self._total_value = 0
        else:
            counts, values = self._counts, self._values
            end = start + steps
            if end <= size:
                self._total_count -= sum(counts[start:end])
                self._total_value -= sum(values[start:end])
                counts[start:end] = values[start:end] = [0] * steps
            else:
                end -= size
                self._total_count -= sum(counts[start:]) + sum(counts[:end])
                self._total_value -= sum(values[start:]) + sum(values[:end])
                counts[start:] = values[start:] = [0] * (size - start)
                counts[:end] = values[:end] = [0] * end
        self._origin_index = (start + steps) % size
        self._origin_ms = origin + steps


class _Estimator(OveruseEstimator):
    def update_min_frame_period(self, ts_delta: float) -> float:
        history = self.ts_delta_hist
        if len(history) >= MIN_FRAME_PERIOD_HISTORY_LENGTH:
            history.pop(0)
        # aiortc: min(old, current) over the history, starting from ts_delta.
        smallest = min(history, default=ts_delta)
        result = ts_delta if not smallest < ts_delta else smallest
        history.append(ts_delta)
        return result


class RembEstimator(RemoteBitrateEstimator):
    """aiortc's ``RemoteBitrateEstimator.add``, same results, cheaper (see the module doc).

    The inter-arrival filter's two groups are kept as plain numbers (first and last send
    timestamp, last arrival, size) instead of ``TimestampGroup`` objects.
    """

    def __init__(self) -> None:
        super().__init__()
        self.incoming_bitrate = RateWindow(1000, 8000)
        self.estimator = _Estimator()
        # InterArrival's current group (None until the first packet) and previous one.
        self._current: list[int] | None = None  # [first ts, last ts, arrival, size]
        self._previous: list[int] | None = None

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        timestamp = abs_send_time << 8
        self.ssrcs[ssrc] = arrival_time_ms

        incoming = self.incoming_bitrate
        if incoming.rate(arrival_time_ms) is not None:
            self.incoming_bitrate_initialized = True
        elif self.incoming_bitrate_initialized:
            incoming.reset()
            self.incoming_bitrate_initialized = False
        incoming.add(payload_size, arrival_time_ms)

        deltas = self._compute_deltas(timestamp, arrival_time_ms, payload_size)
        detector = self.detector
        if deltas is not None:
            estimator = self.estimator
            timestamp_delta_ms = deltas[0] * TIMESTAMP_TO_MS
            estimator.update(
                deltas[1], timestamp_delta_ms, deltas[2], detector.hypothesis, arrival_time_ms
            )
            detector.detect(
                estimator._offset,
                timestamp_delta_ms,
                estimator._num_of_deltas,
                arrival_time_ms,
            )

        last = self.last_update_ms
        rate_control = self.rate_control
        if (
            last is None
            or arrival_time_ms - last > rate_control.feedback_interval()
            or detector.hypothesis is _OVERUSING
        ):
            target_bitrate = rate_control.update(
                detector.hypothesis, incoming.rate(arrival_time_ms), arrival_time_ms
            )
            if target_bitrate is not None:
                self.last_update_ms = arrival_time_ms
                return target_bitrate, list(self.ssrcs.keys())
        return None

    def _compute_deltas(
        self, timestamp: int, arrival_time: int, size: int
    ) -> tuple[int, int, int] | None:
        """aiortc's ``InterArrival.compute_deltas``: (timestamp, arrival, size) deltas
        between the last two complete groups, when a new group starts."""
        current = self._current
        deltas = None
        if current is None:
            current = self._current = [timestamp, timestamp, 0, 0]
        elif (timestamp - current[0]) & 0xFFFFFFFF >= 0x80000000:
            return None  # out of order
        else:
            last_timestamp = current[1]
            timestamp_delta = (timestamp - last_timestamp) & 0xFFFFFFFF
            timestamp_delta_ms = round(TIMESTAMP_TO_MS * timestamp_delta)
            arrival_delta = arrival_time - current[2]
            burst = timestamp_delta_ms == 0 or (
                arrival_delta - timestamp_delta_ms < 0
                and arrival_delta <= _BURST_DELTA_THRESHOLD_MS
            )
            if not burst and (timestamp - current[0]) & 0xFFFFFFFF > _GROUP_LENGTH:
                previous = self._previous
                if previous is not None:
                    deltas = (
                        (last_timestamp - previous[1]) & 0xFFFFFFFF,
                        current[2] - previous[2],
                        current[3] - previous[3],
                    )
                self._previous = current
                current = self._current = [timestamp, timestamp, 0, 0]
            elif 0 < timestamp_delta < 0x80000000:  # uint32_gt(timestamp, last)
                current[1] = timestamp
        current[3] += size
        current[2] = arrival_time
        return deltas
