"""Room directory: which node hosts which room.

A room's media relay and state live in one process ("node"), like LiveKit. When several
processes or hosts serve the same public URL, a participant may reach the wrong one; the
directory tells that node where the room lives so it can answer ``wrong_node`` with the
right URL, and the client reconnects there.

Two implementations, one interface:

* ``MemoryDirectory`` for one process (the embedded default);
* ``RedisDirectory`` (``REDIS_URL``): ``SET NX`` claims a room for a node, with a TTL the
  owning node refreshes while the room is open, so a crashed node's rooms become free again
  after ``ttl`` seconds rather than never.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    url: str
    """Base URL participants use to reach this node (``https://node2.example.cn``)."""


class Directory(Protocol):
    async def claim(self, room: str, node: Node) -> Node:
        """Host ``room`` on ``node`` unless another node holds it; returns the holder."""

    async def lookup(self, room: str) -> Node | None: ...

    async def refresh(self, room: str, node: Node) -> bool:
        """Extend ``node``'s claim; False if it no longer holds the room."""

    async def release(self, room: str, node: Node) -> None:
        """Give the room up (only if ``node`` holds it)."""

    async def close(self) -> None: ...


class MemoryDirectory:
    """Directory for one process; claims expire like Redis ones so behaviour matches."""

    def __init__(self, *, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._rooms: dict[str, tuple[Node, float]] = {}

    def _live(self, room: str) -> Node | None:
        entry = self._rooms.get(room)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            del self._rooms[room]
            return None
        return entry[0]

    async def claim(self, room: str, node: Node) -> Node:
        holder = self._live(room)
        if holder is None or holder.id == node.id:
            self._rooms[room] = (node, time.monotonic() + self.ttl)
            return node
        return holder

    async def lookup(self, room: str) -> Node | None:
        return self._live(room)

    async def refresh(self, room: str, node: Node) -> bool:
        holder = self._live(room)
        if holder is None or holder.id != node.id:
            return False
        self._rooms[room] = (node, time.monotonic() + self.ttl)
        return True

    async def release(self, room: str, node: Node) -> None:
        holder = self._live(room)
        if holder is not None and holder.id == node.id:
            del self._rooms[room]

    async def close(self) -> None:
        self._rooms.clear()


# Compare-and-set scripts: only the holder may refresh or release its claim.
_REFRESH = """
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['id'] == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['id'] == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""


class RedisDirectory:
    """Directory shared by all nodes through Redis keys ``<prefix>room:<id>``."""

    def __init__(
        self, redis: Redis, *, ttl: float = 30.0, prefix: str = "yunkan:", owns: bool = True
    ) -> None:
        self.redis = redis
        self.owns = owns
        """Close the client on ``close`` (False when the app shares it)."""
        self.ttl = ttl
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisDirectory:
        return cls(Redis.from_url(url, decode_responses=True), **kwargs)

    def _key(self, room: str) -> str:
        return f"{self.prefix}room:{room}"

    @staticmethod
    def _decode(value: Any) -> Node | None:
        if value is None:
            return None
        data = json.loads(value)
        return Node(str(data["id"]), str(data["url"]))

    async def claim(self, room: str, node: Node) -> Node:
        value = json.dumps({"id": node.id, "url": node.url})
        ms = int(self.ttl * 1000)
        # Two attempts: the holder's key may expire between our SET NX and GET.
        for _ in range(2):
            if await self.redis.set(self._key(room), value, nx=True, px=ms):
                return node
            holder = self._decode(await self.redis.get(self._key(room)))
            if holder is not None:
                if holder.id == node.id:
                    await self.refresh(room, node)
                return holder
        return node

    async def lookup(self, room: str) -> Node | None:
        return self._decode(await self.redis.get(self._key(room)))

    async def refresh(self, room: str, node: Node) -> bool:
        result = await self.redis.eval(  # type: ignore[misc]
            _REFRESH, 1, self._key(room), node.id, str(int(self.ttl * 1000))
        )
        return bool(result)

    async def release(self, room: str, node: Node) -> None:
        await self.redis.eval(_RELEASE, 1, self._key(room), node.id)  # type: ignore[misc]

    async def close(self) -> None:
        if self.owns:
            await self.redis.aclose()
