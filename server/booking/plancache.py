"""What slots are made of, read once per process and kept while the database says it holds.

Every booking used to re-read the calendar (holiday overrides, loaded years, every loaded
holiday day), the windows serving the matter, their weekly plans and exceptions, and the
officers qualified for it: six SELECTs and a few hundred ORM rows for data an admin
changes a few times a year. Now each process keeps them, and a transaction reads one
integer instead: ``capacity_version.version``, which every transaction that writes any
of it bumps (in that transaction, so the bump commits exactly when the change does).

- **The same guarantee as reading the rows.** A transaction that read version ``v`` uses
  what was loaded under ``v``: the data it would have read itself at that moment. A
  change committed after the version read is missed exactly as the rows read at that
  moment would have missed it (READ COMMITTED on PostgreSQL, a snapshot on SQLite). No
  bus and no TTL is involved: every node reads the version from the shared database.
- **Who bumps.** An ORM flush that writes an instance of :data:`CONFIG_MODELS` bumps once
  per transaction (:func:`_after_flush`, for every session, the CLI's and tests' too); a
  Core DELETE of one calls :func:`changed`. The bump is an UPDATE of one row, so admin
  edits queue on each other, never on bookings (which only read it).
- **Loads racing a change.** An entry is stored only under the version the storing
  transaction read, and only while that is still the process's newest: a slow load that
  began before a change can never file its old rows under the new version.

The cached values are shared: callers must not mutate them.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from server.accounts.models import User
from server.booking import models as m
from server.booking import seats

T = TypeVar("T")

CONFIG_MODELS: tuple[type[Any], ...] = (
    m.Matter,
    m.Window,
    m.WindowMatter,
    m.StaffQualification,
    m.WorkingPlan,
    m.PlanException,
    m.HolidayOverride,
    m.HolidayYear,
    m.HolidayDay,
    User,
)
"""What slots and seats are made of; a write of any bumps the version (and the sold-out
memos forget, :mod:`soldout`)."""
_BUMPED = "yunkan.plancache.bumped"
_READ = "yunkan.plancache.read"


class _Entries:
    """One process's (one engine's) cache: the values loaded under ``version``."""

    def __init__(self) -> None:
        self.version = -1
        self.values: dict[Any, Any] = {}
        self.hits = 0
        self.loads = 0

    def seen(self, version: int) -> None:
        if version > self.version:
            self.version, self.values = version, {}


_CACHES: weakref.WeakKeyDictionary[Engine, _Entries] = weakref.WeakKeyDictionary()


def entries_of(engine: Engine) -> _Entries:
    """The cache of the process's ``engine`` (one per app; its hits and loads)."""
    return _CACHES.setdefault(engine, _Entries())


def entries(session: AsyncSession) -> _Entries:
    engine = session.sync_session.get_bind()
    assert isinstance(engine, Engine)
    return entries_of(engine)


async def _version(session: AsyncSession) -> int | None:
    """The version this transaction reads (once per transaction): None without the row,
    and None once the transaction changed what is cached itself."""
    info = session.info
    if _READ not in info:
        info[_READ] = await session.scalar(
            select(m.CapacityVersion.version).where(m.CapacityVersion.id == 1)
        )
    value = info[_READ]
    return value if isinstance(value, int) else None


async def cached(session: AsyncSession, key: Any, load: Callable[[], Awaitable[T]]) -> T:
    """``key``'s value as of this transaction's version: from memory, or ``load()`` and kept."""
    version = await _version(session)
    if version is None:  # a database without the row (never migrated to 0013): no cache
        return await load()
    cache = entries(session)
    cache.seen(version)
    if cache.version == version and key in cache.values:
        cache.hits += 1
        return cache.values[key]  # type: ignore[no-any-return]
    value = await load()
    cache.loads += 1
    if cache.version == version:  # not if a newer version came in while we loaded
        cache.values[key] = value
    return value


async def changed(session: AsyncSession) -> None:
    """A Core write of :data:`CONFIG_MODELS` rows (ORM writes bump by themselves)."""
    seats.freed(session)  # the sold-out memos forget too
    if not session.info.get(_BUMPED):
        session.info[_BUMPED] = True
        session.info[_READ] = None  # our own change is not in the cache: read the rows
        await session.execute(_BUMP)


_BUMP = (
    update(m.CapacityVersion)
    .where(m.CapacityVersion.id == 1)
    .values(version=m.CapacityVersion.version + 1)
    .execution_options(synchronize_session=False)
)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: object) -> None:
    if session.info.get(_BUMPED):
        return
    if any(isinstance(o, CONFIG_MODELS) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info[_BUMPED] = True
        session.info[_READ] = None  # our own change is not in the cache: read the rows
        session.connection().execute(_BUMP)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _transaction_over(session: Session) -> None:
    session.info.pop(_BUMPED, None)
    session.info.pop(_READ, None)
