"""Fixed-window rate limits, in memory (one process) or in Redis (shared by all workers).

Two ways to use a :class:`Limit`: :func:`enforce` counts every attempt (SMS sent, joins);
:func:`check` before and :func:`fail` after count only the attempts that went wrong (wrong
passwords and codes), so the owner's own successful logins never add up, and
:meth:`RateLimiter.clear` forgets a key (a successful login clears its account's failures).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from server.errors import RateLimitedError


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    count: int
    seconds: int


class RateLimiter(Protocol):
    async def hit(self, limit: Limit, key: str) -> int | None:
        """Count one attempt; return seconds to wait if the limit is exceeded, else None."""
        ...

    async def peek(self, limit: Limit, key: str) -> int | None:
        """Seconds to wait if ``limit.count`` attempts were already counted, else None."""
        ...

    async def clear(self, limit: Limit, key: str) -> None:
        """Forget the attempts counted for ``key`` in the current window."""
        ...


def _window(limit: Limit, now: float) -> tuple[int, int]:
    """(window number, seconds until it ends)."""
    window = int(now // limit.seconds)
    return window, max(1, int((window + 1) * limit.seconds - now))


class MemoryRateLimiter:
    """Counters keyed by limit and key, each kept until its own window ends.

    Expired counters are swept when the table has doubled since the last sweep, so a hit
    costs O(1) amortised however many keys there are; a sweep drops only counters whose
    window is over (a minute limit's traffic never wipes a day limit's counts)."""

    MIN_SWEEP = 10_000

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int, float]] = {}  # name -> (window, count, ends)
        self._sweep_at = self.MIN_SWEEP

    def _current(self, limit: Limit, key: str, now: float) -> tuple[str, int, int]:
        window, _ = _window(limit, now)
        name = f"{limit.name}:{key}"
        entry = self._counts.get(name)
        count = entry[1] if entry is not None and entry[0] == window else 0
        return name, window, count

    async def hit(self, limit: Limit, key: str) -> int | None:
        now = time.time()
        name, window, count = self._current(limit, key, now)
        count += 1
        self._counts[name] = (window, count, (window + 1) * limit.seconds)
        if len(self._counts) >= self._sweep_at:
            self._sweep(now)
        return _window(limit, now)[1] if count > limit.count else None

    async def peek(self, limit: Limit, key: str) -> int | None:
        now = time.time()
        _, _, count = self._current(limit, key, now)
        return _window(limit, now)[1] if count >= limit.count else None

    async def clear(self, limit: Limit, key: str) -> None:
        self._counts.pop(f"{limit.name}:{key}", None)

    def _sweep(self, now: float) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[2] > now}
        self._sweep_at = max(self.MIN_SWEEP, 2 * len(self._counts))

    def __len__(self) -> int:
        return len(self._counts)


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str = "yunkan:") -> None:
        self._redis = redis
        self._prefix = prefix + "rl:"

    def _name(self, limit: Limit, key: str, window: int) -> str:
        return f"{self._prefix}{limit.name}:{key}:{window}"

    async def hit(self, limit: Limit, key: str) -> int | None:
        window, wait = _window(limit, time.time())
        name = self._name(limit, key, window)
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(name)
        pipe.expire(name, limit.seconds + 1)
        count, _ = await pipe.execute()
        return wait if int(count) > limit.count else None

    async def peek(self, limit: Limit, key: str) -> int | None:
        window, wait = _window(limit, time.time())
        count = await self._redis.get(self._name(limit, key, window))
        return wait if int(count or 0) >= limit.count else None

    async def clear(self, limit: Limit, key: str) -> None:
        window, _ = _window(limit, time.time())
        await self._redis.delete(self._name(limit, key, window))


async def enforce(limiter: RateLimiter, *checks: tuple[Limit, str]) -> None:
    """Count every check (so each key sees the attempt) and raise on the longest wait."""
    waits = [wait for limit, key in checks if (wait := await limiter.hit(limit, key))]
    if waits:
        raise RateLimitedError(max(waits))


async def check(limiter: RateLimiter, *checks: tuple[Limit, str]) -> None:
    """Raise if any key already used up its failures; counts nothing."""
    waits = [wait for limit, key in checks if (wait := await limiter.peek(limit, key))]
    if waits:
        raise RateLimitedError(max(waits))


async def fail(limiter: RateLimiter, *checks: tuple[Limit, str]) -> None:
    """Count one failed attempt against each key."""
    for limit, key in checks:
        await limiter.hit(limit, key)
