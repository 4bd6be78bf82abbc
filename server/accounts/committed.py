"""Telling in-memory caches what a transaction changed, once it has committed.

A cache that answers without the database (the session cache here, booking's sold-out
memo) must forget an entry when the row behind it changes — but only once the change is
visible to everyone, i.e. after the commit, and never for a transaction that rolled back.
Domain code calls :func:`note` (``topic``, a value such as a token digest) while it works;
:func:`watch` notes a topic whenever the flush writes an instance of some model classes.
After the outermost commit, each topic's callback installed for the app's engine
(:func:`install`) receives the set of values noted for it; a rollback drops the notes.

Sessions made by other factories (tests' own, the CLI) carry no callbacks: their changes
reach the caches only through the caches' TTL, which is why every such cache has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from signaling.bus import Bus

log = logging.getLogger("yunkan.committed")
Callback = Callable[[set[Hashable]], None]
AnySession = AsyncSession | Session
ALL = "*"
"""The value a :func:`watch` notes, and what a lost or unreadable bus message means:
forget everything."""
_NOTES = "yunkan.committed.notes"
_CALLBACKS: weakref.WeakKeyDictionary[Engine, dict[str, Callback]] = weakref.WeakKeyDictionary()
"""Engine → topic → callback (each app has its engine; weak, so a disposed app's go)."""
_WATCHED: dict[type[Any], set[str]] = {}
"""Model class → topics noted when an instance of it is inserted, changed or deleted (a
registration made at import, like a mapper event; no live object lives here)."""


def note(session: AnySession, topic: str, value: str = ALL) -> None:
    notes: dict[str, set[Hashable]] = session.info.setdefault(_NOTES, {})
    notes.setdefault(topic, set()).add(value)


def watch(topic: str, *classes: type[Any]) -> None:
    for cls in classes:
        _WATCHED.setdefault(cls, set()).add(topic)


def install(factory: async_sessionmaker[AsyncSession], topic: str, callback: Callback) -> None:
    """Run ``callback`` after every commit, by a session bound to ``factory``'s engine,
    that noted ``topic``.

    The callback runs synchronously inside the commit (in SQLAlchemy's greenlet, on the
    event loop's thread): it must not block; schedule any I/O as a task. Keyed by the
    engine (weakly), not by the factory's ``info``, which other packages configure too."""
    engine: AsyncEngine = factory.kw["bind"]
    _CALLBACKS.setdefault(engine.sync_engine, {})[topic] = callback


def uninstall(factory: async_sessionmaker[AsyncSession], topic: str) -> None:
    engine: AsyncEngine = factory.kw["bind"]
    _CALLBACKS.get(engine.sync_engine, {}).pop(topic, None)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: object) -> None:
    if not _WATCHED:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        for topic in _WATCHED.get(type(obj), ()):
            note(session, topic)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    notes = session.info.pop(_NOTES, None)
    callbacks = _CALLBACKS.get(session.bind) if notes else None  # type: ignore[arg-type]
    if not notes or not callbacks:
        return
    for topic, values in notes.items():
        callback = callbacks.get(topic)
        if callback is not None:
            callback(values)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_NOTES, None)


@contextlib.asynccontextmanager
async def linked(
    factory: async_sessionmaker[AsyncSession],
    bus: Bus,
    topic: str,
    forget: Callable[[set[str]], None],
) -> AsyncIterator[None]:
    """Keep one process's cache in step with every process's commits.

    After a commit (by ``factory``) that noted ``topic``, ``forget`` gets the noted values
    at once, and they go on the bus channel ``topic`` to the other processes, whose
    ``forget`` gets them on arrival. A bus RESYNC (messages may be lost) forgets
    :data:`ALL`. Publishing is best effort: a cache whose message was lost forgets by its
    TTL."""
    pending: set[asyncio.Task[None]] = set()

    async def tell(values: list[str]) -> None:
        try:
            await bus.publish(topic, {"forget": values})
        except Exception:
            log.exception("could not publish an invalidation on %s", topic)

    def on_commit(noted: set[Hashable]) -> None:
        values = {str(v) for v in noted}
        forget(values)
        task = asyncio.get_running_loop().create_task(tell(sorted(values)))
        pending.add(task)
        task.add_done_callback(pending.discard)

    ready = asyncio.Event()

    async def listen() -> None:
        async with bus.subscribe(topic) as messages:
            ready.set()
            async for message in messages:
                values = message.get("forget")
                if isinstance(values, list) and all(isinstance(v, str) for v in values):
                    forget(set(values))
                else:
                    forget({ALL})

    install(factory, topic, on_commit)
    listener = asyncio.create_task(listen(), name=f"invalidations:{topic}")
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([waiter, listener], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    try:
        yield
    finally:
        uninstall(factory, topic)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
