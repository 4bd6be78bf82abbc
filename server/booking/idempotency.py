"""``Idempotency-Key``: a repeated POST gets the first answer and books nothing more.

The key's row is inserted at the *start* of the booking transaction. A concurrent twin
with the same key then blocks on the unique index (PostgreSQL) or on the write lock
(SQLite) until the first commits — and fails, so it reads the stored answer — or rolls
back, so it goes ahead itself. Only successful answers are stored: a refused booking
changes nothing, so repeating it simply asks again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.booking.errors import IdempotencyConflict
from server.booking.models import IdempotencyRecord

PENDING = 0


class KeyInFlight(Exception):
    """Another request holding the same key committed first: read its answer."""


def request_hash(body: Any) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()


async def stored(
    session: AsyncSession, scope: str, key: str, digest: str
) -> tuple[int, dict[str, Any]] | None:
    """The first answer for this key, or None; a different body under the same key is an error."""
    record = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
        )
    )
    if record is None or record.status == PENDING:
        return None
    if record.request_hash != digest:
        raise IdempotencyConflict(fields={"Idempotency-Key": IdempotencyConflict.message})
    return record.status, record.response


async def reserve(
    session: AsyncSession, scope: str, key: str, digest: str, now: datetime
) -> IdempotencyRecord:
    record = IdempotencyRecord(
        scope=scope, key=key, request_hash=digest, status=PENDING, response={}, created_at=now
    )
    session.add(record)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise KeyInFlight() from exc
    return record


def finish(record: IdempotencyRecord, status: int, response: dict[str, Any]) -> None:
    record.status = status
    record.response = response
