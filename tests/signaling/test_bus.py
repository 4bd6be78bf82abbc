"""One contract for both bus implementations, the Redis one against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from signaling.bus import Bus, InProcessBus, RedisBus


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        yield InProcessBus()
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    redis = Redis.from_url(url, decode_responses=True)
    yield RedisBus(redis, prefix)
    await redis.aclose()


async def _next(messages: AsyncIterator[dict[str, object]]) -> dict[str, object]:
    return await asyncio.wait_for(anext(messages), 2)


async def test_subscriber_receives_in_order(bus: Bus) -> None:
    async with bus.subscribe("room:1") as messages:
        for n in range(3):
            await bus.publish("room:1", {"n": n, "text": "排队"})
        assert [await _next(messages) for _ in range(3)] == [
            {"n": 0, "text": "排队"},
            {"n": 1, "text": "排队"},
            {"n": 2, "text": "排队"},
        ]


async def test_channels_are_separate_and_fan_out(bus: Bus) -> None:
    async with (
        bus.subscribe("a") as first,
        bus.subscribe("a") as second,
        bus.subscribe("b") as other,
    ):
        await bus.publish("a", {"to": "a"})
        await bus.publish("b", {"to": "b"})
        assert await _next(first) == {"to": "a"}
        assert await _next(second) == {"to": "a"}
        assert await _next(other) == {"to": "b"}


async def test_nothing_after_unsubscribe(bus: Bus) -> None:
    async with bus.subscribe("gone") as messages:
        pass
    await bus.publish("gone", {"x": 1})  # must not raise or leak
    async with bus.subscribe("gone") as messages:
        await bus.publish("gone", {"x": 2})
        assert await _next(messages) == {"x": 2}


@pytest.mark.redis
async def test_redis_bus_crosses_clients(redis_url: str, redis_prefix: str) -> None:
    one = Redis.from_url(redis_url, decode_responses=True)
    two = Redis.from_url(redis_url, decode_responses=True)
    try:
        async with RedisBus(one, redis_prefix).subscribe("node") as messages:
            await RedisBus(two, redis_prefix).publish("node", {"from": "two"})
            assert await _next(messages) == {"from": "two"}
    finally:
        await one.aclose()
        await two.aclose()
