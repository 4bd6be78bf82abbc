"""Cross-process publish/subscribe: one interface, an in-process and a Redis implementation.

Messages are JSON objects. Delivery is at-most-once and live (like Redis pub/sub): a
subscriber sees what is published after it subscribed. Anything that must not be lost is
written to the database first; the bus only tells others to look.

Usage::

    async with bus.subscribe("queue:3") as messages:
        async for message in messages:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, Protocol

from redis.asyncio import Redis

Message = dict[str, Any]
_QUEUE_LIMIT = 1000  # a subscriber that cannot keep up loses the oldest messages


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
        queue.get_nowait()
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


class RedisBus:
    """Redis pub/sub; one connection per subscription, channels under a key prefix."""

    def __init__(self, redis: Redis, prefix: str = "yunkan:") -> None:
        self._redis = redis
        self._prefix = prefix + "bus:"

    async def publish(self, channel: str, message: Message) -> None:
        await self._redis.publish(self._prefix + channel, json.dumps(message, ensure_ascii=False))

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[Message]]:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._prefix + channel)
        queue: asyncio.Queue[Message] = asyncio.Queue(_QUEUE_LIMIT)

        async def pump() -> None:
            async for raw in pubsub.listen():
                if raw.get("type") == "message":
                    _offer(queue, json.loads(raw["data"]))

        task = asyncio.create_task(pump(), name=f"bus:{channel}")
        try:
            yield _drain(queue)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        return None  # the Redis client belongs to the app, which closes it
