"""One contract for both bus implementations, the Redis one against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from signaling.bus import RESYNC, Bus, InProcessBus, RedisBus
from tests.private_redis import PrivateRedis


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


async def _until_resync(messages: AsyncIterator[dict[str, object]]) -> None:
    while await asyncio.wait_for(anext(messages), 20) != RESYNC:
        pass


async def _published_until_seen(
    redis: Redis, bus: RedisBus, messages: AsyncIterator[dict[str, object]]
) -> dict[str, object]:
    """Publish until the subscriber sees it: right after a restart the resubscription
    may land a moment after the publisher's reconnect."""
    for attempt in range(50):
        try:
            await bus.publish("queue", {"n": attempt})
        except RedisConnectionError:  # the publisher's pooled socket died with the server
            continue
        try:
            while (got := await asyncio.wait_for(anext(messages), 0.2)) == RESYNC:
                pass  # a second marker: both redis-py's retry and the pump reconnected
            return got
        except TimeoutError:
            continue
    raise AssertionError("no message arrived after Redis came back")


async def test_redis_bus_subscription_survives_a_restart(private_redis: PrivateRedis) -> None:
    redis = Redis.from_url(private_redis.url, decode_responses=True)
    bus = RedisBus(redis, "yktest:")
    try:
        async with bus.subscribe("queue") as messages:
            await bus.publish("queue", {"n": "before"})
            assert await _next(messages) == {"n": "before"}
            private_redis.kill()
            await asyncio.sleep(0.3)  # the pump notices, backs off
            private_redis.start()
            await _until_resync(messages)
            got = await _published_until_seen(redis, bus, messages)
            assert isinstance(got["n"], int)
    finally:
        await redis.aclose()


async def test_redis_bus_subscribes_once_redis_is_up(private_redis: PrivateRedis) -> None:
    private_redis.kill()
    redis = Redis.from_url(private_redis.url, decode_responses=True)
    bus = RedisBus(redis, "yktest:")
    try:
        async with asyncio.timeout(15), bus.subscribe("queue") as messages:
            # subscribe() returned although Redis is down; the pump keeps trying.
            private_redis.start()
            await _until_resync(messages)
            assert isinstance((await _published_until_seen(redis, bus, messages))["n"], int)
    finally:
        await redis.aclose()


async def test_a_subscriber_that_falls_behind_is_told_to_resync() -> None:
    bus = InProcessBus()
    async with bus.subscribe("busy") as messages:
        for n in range(1005):
            await bus.publish("busy", {"n": n})
        received = [await _next(messages) for _ in range(1000)]
    assert RESYNC in received
    assert received[-1] == {"n": 1004}
