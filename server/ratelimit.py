"""Fixed-window rate limits, in memory (one process) or in Redis (shared by all workers)."""

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


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    async def hit(self, limit: Limit, key: str) -> int | None:
        now = time.time()
        window = int(now // limit.seconds)
        name = f"{limit.name}:{key}"
        current_window, count = self._windows.get(name, (window, 0))
        if current_window != window:
            count = 0
        count += 1
        self._windows[name] = (window, count)
        if len(self._windows) > 100_000:  # drop stale windows rather than grow for ever
            self._windows = {k: v for k, v in self._windows.items() if v[0] >= window - 1}
        if count > limit.count:
            return max(1, int((window + 1) * limit.seconds - now))
        return None


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str = "yunkan:") -> None:
        self._redis = redis
        self._prefix = prefix + "rl:"

    async def hit(self, limit: Limit, key: str) -> int | None:
        now = time.time()
        window = int(now // limit.seconds)
        name = f"{self._prefix}{limit.name}:{key}:{window}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(name)
        pipe.expire(name, limit.seconds + 1)
        count, _ = await pipe.execute()
        if int(count) > limit.count:
            return max(1, int((window + 1) * limit.seconds - now))
        return None


async def enforce(limiter: RateLimiter, *checks: tuple[Limit, str]) -> None:
    """Count every check (so each key sees the attempt) and raise on the longest wait."""
    waits = [wait for limit, key in checks if (wait := await limiter.hit(limit, key))]
    if waits:
        raise RateLimitedError(max(waits))
