"""A per-process memo of sold-out slots, so a surge's refused attempts skip the database.

In a morning surge nine attempts in ten are at a slot that is already full. Each used to
cost its own short transaction (the matter, "already booked?", the windows, the seat
rows); with the memo a process that has answered 409 ``slot_full`` for (matter, start)
answers the next attempts at it from memory, for at most :data:`TTL` seconds.

The database stays the authority: the memo only ever refuses, it never sells. A stale
"sold out" for a seat that was freed is the failure to bound, and it ends by
- the commit of whatever freed capacity: ``seats.give_back`` and ``claims.release``
  (cancellation, reschedule, hand-over, staff change) note it, and so does any ORM write
  of what seats are made of (matters, windows, plans, exceptions, holidays,
  qualifications, staff accounts); after the commit this process forgets every entry and
  tells the others on the bus channel :data:`TOPIC` (Redis across nodes);
- a bus RESYNC (messages may have been lost): forget everything;
- the TTL, for whatever the bus did not carry (a change made by another program, Redis
  down while publishing).

A refusal read before an invalidation must not be remembered after it: :meth:`mark`
takes the :attr:`SoldOutMemo.generation` read before the attempt started and stores
nothing if an invalidation came in between.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from aiohttp import web

from server.accounts import committed
from server.booking import plancache, seats

TTL = 2.0
"""Seconds a process answers "sold out" from memory; also the longest a freed seat can
look full on a process that missed the bus message."""
MAX_ENTRIES = 4096
TOPIC = seats.CAPACITY

Key = tuple[int, datetime]


class SoldOutMemo:
    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[Key, float] = {}
        self.generation = 0
        self.hits = 0

    @staticmethod
    def _key(matter_id: int, start: datetime) -> Key:
        return matter_id, start.astimezone(UTC)

    def sold_out(self, matter_id: int, start: datetime) -> bool:
        key = self._key(matter_id, start)
        until = self._entries.get(key)
        if until is None:
            return False
        if until <= self.clock():
            del self._entries[key]
            return False
        self.hits += 1
        return True

    def mark(self, matter_id: int, start: datetime, generation: int) -> None:
        """Remember a refusal read while :attr:`generation` was ``generation``."""
        if generation != self.generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[self._key(matter_id, start)] = self.clock() + self.ttl

    def forget(self, _values: set[str] | None = None) -> None:
        """Capacity changed somewhere: nothing remembered holds (officers serve several
        matters, so one freed minute can reopen slots of other matters too)."""
        self.generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


SOLD_OUT = web.AppKey("booking_sold_out", SoldOutMemo)

committed.watch(TOPIC, *plancache.CONFIG_MODELS)


async def sold_out_ctx(app: web.Application) -> AsyncIterator[None]:
    from server.appkeys import BUS, DB

    memo = SoldOutMemo()
    app[SOLD_OUT] = memo
    async with committed.linked(app[DB], app[BUS], TOPIC, memo.forget):
        yield
