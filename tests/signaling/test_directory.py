from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from signaling.directory import Directory, MemoryDirectory, Node, RedisDirectory

REDIS_URL = os.environ.get("YUNKAN_TEST_REDIS", "redis://127.0.0.1:6379/15")
A = Node("node-a", "http://127.0.0.1:1")
B = Node("node-b", "http://127.0.0.1:2")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def directory(request: pytest.FixtureRequest) -> AsyncIterator[Directory]:
    if request.param == "memory":
        d: Directory = MemoryDirectory(ttl=0.3)
    else:
        d = RedisDirectory.from_url(REDIS_URL, ttl=0.3, prefix=f"test-{uuid.uuid4().hex}:")
    yield d
    await d.close()


async def test_first_claim_wins_and_others_are_told(directory: Directory) -> None:
    assert await directory.claim("r1", A) == A
    assert await directory.claim("r1", B) == A
    assert await directory.lookup("r1") == A
    assert await directory.claim("r1", A) == A


async def test_only_holder_refreshes_and_releases(directory: Directory) -> None:
    await directory.claim("r1", A)
    assert not await directory.refresh("r1", B)
    await directory.release("r1", B)
    assert await directory.lookup("r1") == A
    await directory.release("r1", A)
    assert await directory.lookup("r1") is None
    assert await directory.claim("r1", B) == B


async def test_claims_expire_unless_refreshed(directory: Directory) -> None:
    await directory.claim("r1", A)
    await directory.claim("r2", A)
    for _ in range(3):
        await asyncio.sleep(0.15)
        assert await directory.refresh("r1", A)
    assert await directory.lookup("r1") == A
    assert await directory.lookup("r2") is None
