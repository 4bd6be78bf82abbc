"""SMS that are sent because something happened, exactly once: a transactional outbox.

The message row is written in the transaction of the change it tells about (a reminder
falling due, a cancellation), so it exists if and only if the change committed. Workers
(one per process, in the scheduler loop) deliver due rows:

1. **lease**: a conditional UPDATE (``status = 'pending'``, due, no live lease) sets
   ``lease_until``, ``claimed_by`` and counts the attempt, and commits; exactly one
   worker sees "one row changed", so two workers never send the same row (on PostgreSQL
   the candidates are read ``FOR UPDATE SKIP LOCKED`` so workers split the work);
2. **send** to the provider outside any transaction (a slow gateway holds no lock);
3. **record**: ``sent`` with the provider's answer, or the error as the answer and the
   next attempt after a backoff (30 s, 1, 2, 4 … min, at most 30 min), ``failed`` after
   :data:`MAX_ATTEMPTS`.

A crash between 2 and 3 leaves the lease to expire and the row is sent again: delivery is
at least once across crashes and exactly once otherwise; the provider gets the row's
``key`` as its idempotency key where it supports one. Texts are written in the
recipient's language (zh-CN by default), one language per text.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.booking import models as m

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=2)


class Provider(Protocol):
    """What sends an SMS: the accounts package's sender (``app[SMS]``) fits."""

    async def send(self, mobile: str, body: str, *, kind: str) -> object: ...


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 1800))


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    kind: str,
    mobile: str,
    body: str,
    now: datetime,
    appointment_id: int | None = None,
    due: datetime | None = None,
) -> None:
    """Write one message in the caller's transaction; a second write of ``key`` is nothing."""
    values = {
        "key": key[:120],
        "kind": kind,
        "mobile": mobile,
        "body": body,
        "appointment_id": appointment_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": due or now,
        "answer": "",
        "created_at": now,
    }
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    await session.execute(insert(m.OutboxMessage).values(**values).on_conflict_do_nothing())


def _available(now: datetime) -> ColumnElement[bool]:
    return (
        (m.OutboxMessage.status == "pending")
        & (m.OutboxMessage.next_attempt_at <= now)
        & or_(m.OutboxMessage.lease_until.is_(None), m.OutboxMessage.lease_until < now)
    )


async def _lease(
    db: async_sessionmaker[AsyncSession], worker: str, now: datetime, limit: int
) -> list[m.OutboxMessage]:
    async with db() as session, session.begin():
        query = (
            select(m.OutboxMessage.id)
            .where(_available(now))
            .order_by(m.OutboxMessage.next_attempt_at, m.OutboxMessage.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        leased = []
        for message_id in list(await session.scalars(query)):
            result = await session.execute(
                update(m.OutboxMessage)
                .where(m.OutboxMessage.id == message_id, _available(now))
                .values(
                    lease_until=now + LEASE,
                    claimed_by=worker,
                    attempts=m.OutboxMessage.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                row = await session.get(m.OutboxMessage, message_id)
                assert row is not None
                await session.refresh(row)
                leased.append(row)
        session.expunge_all()
    return leased


async def deliver_due(
    db: async_sessionmaker[AsyncSession],
    provider: Provider,
    *,
    worker: str,
    now: datetime | None = None,
    limit: int = 20,
) -> int:
    """One pass of one worker; the number of messages it delivered."""
    now = now or datetime.now(UTC)
    delivered = 0
    for message in await _lease(db, worker, now, limit):
        values: dict[str, object]
        try:
            answer = await provider.send(message.mobile, message.body, kind=message.kind)
        except Exception as exc:  # the provider refused or is down: try again later
            failed = message.attempts >= MAX_ATTEMPTS
            values = {
                "answer": f"{type(exc).__name__}: {exc}"[:500],
                "status": "failed" if failed else "pending",
                "next_attempt_at": now + backoff(message.attempts),
                "lease_until": None,
            }
            log.warning("SMS %d attempt %d failed: %s", message.id, message.attempts, exc)
        else:
            values = {
                "answer": str(answer if answer is not None else "accepted")[:500],
                "status": "sent",
                "sent_at": now,
                "lease_until": None,
            }
            delivered += 1
        async with db() as session, session.begin():
            await session.execute(
                update(m.OutboxMessage)
                .where(m.OutboxMessage.id == message.id, m.OutboxMessage.claimed_by == worker)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
    return delivered
