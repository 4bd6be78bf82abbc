"""Cross-process publish/subscribe: one interface, an in-process and a Redis implementation.

Messages are JSON objects. Delivery is at-most-once and live (like Redis pub/sub): a
subscriber sees what is published after it subscribed. Anything that must not be lost is
written to the database first; the bus only tells others to look. When a subscriber may
have missed messages (it fell behind, or Redis restarted) it receives :data:`RESYNC`.

Usage::

    async with bus.subscribe("queue:3") as messages:
        async for message in messages:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("yunkan.bus")
Message = dict[str, Any]
_QUEUE_LIMIT = 1000  # a subscriber that cannot keep up loses the oldest messages
RESYNC: Message = {"type": "bus.resync"}
"""Delivered when messages may have been lost (the subscriber fell behind, or the Redis
connection was rebuilt): re-read the current state rather than trusting the last update."""
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0


class Bus(Protocol):
    async def publish(self, channel: str, message: Message) -> None: ...

    def subscribe(
        self, channel: str
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[Message]]: ...

    async def close(self) -> None: ...


async def _drain(queue: asyncio.Queue[Message]) -> AsyncIterator[Message]:
    while True:
        yield await queue.get()


def _offer(queue: asyncio.Queue[Message], message: Message) -> None:
    if queue.full():
        # Drop the two oldest and say so: the subscriber re-reads instead of trusting a gap.
        queue.get_nowait()
        queue.get_nowait()
        queue.put_nowait(RESYNC)
    queue.put_nowait(message)


class InProcessBus:
    """The embedded default: one process, so a dict of queues is the whole bus."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Message]]] = defaultdict(set)

    async def publish(self, channel: str, message: Message) -> None:
        # Round-trip through JSON so both implementations deliver the same shapes.
        payload = json.loads(json.dumps(message))
        for queue in list(self._subscribers.get(channel, ())):
            _offer(queue, payload)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[Message]]:
        queue: asyncio.Queue[Message] = asyncio.Queue(_QUEUE_LIMIT)
        self._subscribers[channel].add(queue)
        try:
            yield _drain(queue)
        finally:
            self._subscribers[channel].discard(queue)
            if not self._subscribers[channel]:
                del self._subscribers[channel]

    async def close(self) -> None:
        self._subscribers.clear()


class _Subscription:
    """One channel's pump: a PubSub connection that is rebuilt with backoff when Redis goes
    away, and a RESYNC marker in the queue whenever messages may have been missed."""

    def __init__(self, redis: Redis, name: str) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue(_QUEUE_LIMIT)
        self.first_attempt = asyncio.Event()
        self.reconnects = 0
        self._redis = redis
        self._name = name

    def _reconnected(self, connection: object) -> None:
        # redis-py's own retry rebuilt the socket and resubscribed (PubSub.on_connect runs
        # first); whatever was published in between is gone.
        self.reconnects += 1
        _offer(self.queue, RESYNC)

    async def run(self) -> None:
        delay, lost = BACKOFF_MIN, False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._name)
                assert pubsub.connection is not None
                # A method, because redis-py keeps connect callbacks as weak methods.
                pubsub.connection.register_connect_callback(self._reconnected)
                if lost:
                    self.reconnects += 1
                    _offer(self.queue, RESYNC)
                    log.info("bus: resubscribed to %s", self._name)
                delay, lost = BACKOFF_MIN, False
                self.first_attempt.set()
                async for raw in pubsub.listen():
                    if raw.get("type") != "message":
                        continue
                    with contextlib.suppress(ValueError):
                        _offer(self.queue, json.loads(raw["data"]))
            except (RedisError, OSError) as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # redis-py turned our cancellation into a connection error while it was
                    # connecting; looping on would keep shutdown waiting for this task.
                    raise asyncio.CancelledError from exc
                if not lost:
                    log.warning("bus: lost %s (%s); retrying", self._name, type(exc).__name__)
                lost = True
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            self.first_attempt.set()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(BACKOFF_MAX, delay * 2)


class RedisBus:
    """Redis pub/sub; one connection per subscription, channels under a key prefix.

    A subscription outlives Redis restarts: its pump reconnects with exponential backoff
    (``BACKOFF_MIN`` to ``BACKOFF_MAX`` seconds, jittered) and resubscribes, and the
    subscriber receives :data:`RESYNC` once it is back, so it re-reads the state it shows
    instead of going silently stale. ``subscribe`` does not fail while Redis is down: it
    returns after the first attempt and keeps trying in the background. ``publish`` raises
    the client's error (callers treat publishing as best effort)."""

    def __init__(self, redis: Redis, prefix: str = "yunkan:") -> None:
        self._redis = redis
        self._prefix = prefix + "bus:"

    async def publish(self, channel: str, message: Message) -> None:
        await self._redis.publish(self._prefix + channel, json.dumps(message, ensure_ascii=False))

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[Message]]:
        subscription = _Subscription(self._redis, self._prefix + channel)
        task = asyncio.create_task(subscription.run(), name=f"bus:{channel}")
        try:
            # Once subscribed, a message published after ``subscribe`` returned is seen.
            await subscription.first_attempt.wait()
            yield _drain(subscription.queue)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        return None  # the Redis client belongs to the app, which closes it
