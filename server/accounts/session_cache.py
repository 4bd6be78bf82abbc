"""A per-process memory of who a session token belongs to, so most requests skip the
database before their own work.

Every authenticated request used to read ``auth_sessions`` and the user or applicant row
(two SELECTs on a connection of its own) before its handler ran; in a booking surge that
was a third of a refused attempt's cost. The cache keeps a *valid* session's principal for
:data:`TTL` seconds (never past the session's expiry); unknown, expired and revoked
tokens are not cached, so a guessed token always costs the lookup.

Invalidation, so that a logout or a deactivated account stops working everywhere:
- ``revoke`` notes the token's digest; after its commit this process forgets it and
  publishes it on the bus channel :data:`TOPIC`, and every process forgets it;
- any write of a ``User`` row through the ORM (deactivation, role change) and any
  applicant account touched by a booking (which may fill its name) clears the entries of
  that principal (``User``: all entries) the same way;
- anything else (a change made by another program, a bus message lost while Redis was
  away) ends within :data:`TTL`; a bus RESYNC clears the whole cache.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from server.accounts import committed
from server.accounts.models import User
from server.accounts.principal import Principal

TTL = 5.0
"""Seconds a cached session answers without the database: the longest a revocation that
missed the bus keeps working on another process."""
MAX_ENTRIES = 20_000
TOPIC = "accounts.sessions"
"""The after-commit topic and the bus channel of the invalidations."""


def applicant_key(applicant_id: int) -> str:
    return f"applicant:{applicant_id}"


class SessionCache:
    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, tuple[float, Principal]] = {}
        self.generation = 0
        """Bumped by every invalidation: a lookup that started before one does not store
        what it read (it may be the state the invalidation was about)."""

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[digest]
            return None
        return entry[1]

    def put(
        self, digest: str, principal: Principal, expires_at: dt.datetime, generation: int
    ) -> None:
        if generation != self.generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        left = (expires_at - dt.datetime.now(dt.UTC)).total_seconds()
        self._entries[digest] = (self.clock() + min(self.ttl, left), principal)

    def forget(self, values: set[str]) -> None:
        """Token digests, :func:`applicant_key` values, or :data:`committed.ALL`."""
        self.generation += 1
        if committed.ALL in values:
            self._entries.clear()
            return
        applicants = {v for v in values if v.startswith("applicant:")}
        for digest in values:
            self._entries.pop(digest, None)
        if applicants:
            for digest, (_, principal) in list(self._entries.items()):
                if principal.kind == "applicant" and applicant_key(principal.id) in applicants:
                    del self._entries[digest]

    def __len__(self) -> int:
        return len(self._entries)


SESSION_CACHE = web.AppKey("session_cache", SessionCache)

committed.watch(TOPIC, User)  # a staff account written through the ORM: forget them all


async def session_cache_ctx(app: web.Application) -> AsyncIterator[None]:
    """The cache and its invalidations (a ``cleanup_ctx`` after the database and the bus)."""
    from server.appkeys import BUS, DB

    cache = SessionCache()
    app[SESSION_CACHE] = cache
    async with committed.linked(app[DB], app[BUS], TOPIC, cache.forget):
        yield
