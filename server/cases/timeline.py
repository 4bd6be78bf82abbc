"""The case timeline: append-only and hash-chained.

Each event's hash is SHA-256 over the canonical JSON of the event and the previous event's
hash, so changing, removing or reordering any row breaks every hash after it. The case row
holds the head (seq, hash); appending locks that row, so appends to one case are ordered,
and the unique (case_id, seq) constraint turns a lost race into an error, never a fork.

Blobs referenced by an event (``data["blobs"] = [{"key", "sha256"}]``) are checked too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.cases.models import GENESIS_HASH, Case, CaseEvent
from server.db.types import utcnow

if TYPE_CHECKING:
    from recordings.blobs import BlobStore


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def event_hash(
    *,
    case_number: str,
    seq: int,
    kind: str,
    actor: Mapping[str, Any] | None,
    data: Mapping[str, Any],
    created_at: dt.datetime,
    prev_hash: str,
) -> str:
    body = {
        "case": case_number,
        "seq": seq,
        "kind": kind,
        "actor": dict(actor) if actor else None,
        "data": dict(data),
        # Microseconds are dropped: PostgreSQL and SQLite store them, but not every export
        # reader does, and a second is precise enough for a timeline.
        "at": created_at.astimezone(dt.UTC).replace(microsecond=0).isoformat(),
        "prev": prev_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _actor(event: CaseEvent) -> dict[str, Any] | None:
    if event.actor_kind is None:
        return None
    return {"kind": event.actor_kind, "id": event.actor_id, "name": event.actor_name}


def hash_of(event: CaseEvent, case_number: str) -> str:
    return event_hash(
        case_number=case_number,
        seq=event.seq,
        kind=event.kind,
        actor=_actor(event),
        data=event.data,
        created_at=event.created_at,
        prev_hash=event.prev_hash,
    )


def chained_event(
    case_number: str,
    seq: int,
    prev_hash: str,
    *,
    kind: str,
    actor: Principal | None = None,
    data: Mapping[str, Any] | None = None,
) -> CaseEvent:
    """The event after ``prev_hash`` with its hash, not yet tied to a case row (no I/O)."""
    payload = json.loads(canonical_json(dict(data or {})))  # what the JSON column gives back
    event = CaseEvent(
        seq=seq,
        kind=kind,
        actor_kind=actor.kind if actor else None,
        actor_id=actor.id if actor else None,
        actor_name=actor.name if actor else None,
        data=payload,
        created_at=utcnow().replace(microsecond=0),
        prev_hash=prev_hash,
    )
    event.hash = hash_of(event, case_number)
    return event


async def append_event(
    session: AsyncSession,
    case: Case | int,
    *,
    kind: str,
    actor: Principal | None = None,
    data: Mapping[str, Any] | None = None,
) -> CaseEvent:
    """Append an event inside the caller's transaction (the caller commits)."""
    case_id = case if isinstance(case, int) else case.id
    locked = (
        await session.execute(
            select(Case)
            .where(Case.id == case_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    event = chained_event(
        locked.number, locked.head_seq + 1, locked.head_hash, kind=kind, actor=actor, data=data
    )
    event.case_id = locked.id
    locked.head_seq = event.seq
    locked.head_hash = event.hash
    session.add(event)
    await session.flush()
    return event


@dataclass(slots=True)
class Break:
    seq: int
    event_id: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "event_id": self.event_id, "reason": self.reason}


@dataclass(slots=True)
class VerifyReport:
    case_number: str
    events: int = 0
    blobs: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> Break | None:
        return self.breaks[0] if self.breaks else None

    def as_dict(self) -> dict[str, Any]:
        first = self.first_break
        return {
            "case_number": self.case_number,
            "ok": self.ok,
            "events": self.events,
            "blobs": self.blobs,
            "first_break": first.as_dict() if first else None,
        }


def verify_events(
    case_number: str, events: Sequence[CaseEvent], head_hash: str | None = None
) -> VerifyReport:
    """Check the chain of already-loaded events (ordered by seq)."""
    report = VerifyReport(case_number=case_number, events=len(events))
    prev = GENESIS_HASH
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            report.breaks.append(Break(expected_seq, event.id, "event missing or out of order"))
            return report
        if event.prev_hash != prev:
            report.breaks.append(Break(event.seq, event.id, "previous-hash link broken"))
            return report
        if hash_of(event, case_number) != event.hash:
            report.breaks.append(Break(event.seq, event.id, "event content changed"))
            return report
        prev = event.hash
    if head_hash is not None and prev != head_hash:
        report.breaks.append(Break(len(events) + 1, None, "events removed from the end"))
    return report


async def load_events(session: AsyncSession, case_id: int) -> list[CaseEvent]:
    rows = await session.execute(
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)
    )
    return list(rows.scalars())


async def verify_loaded(
    case_number: str,
    head_hash: str | None,
    events: Sequence[CaseEvent],
    blobs: BlobStore | None = None,
) -> VerifyReport:
    """Check the chain of loaded events and, given a blob store, every blob they reference.

    Needs no database session: load the events in a short session, close it, then call
    this — hashing an hour of recordings must not hold SQLite's write lock meanwhile.
    """
    report = verify_events(case_number, events, head_hash)
    if blobs is None:
        return report
    for event in events:
        for ref in event.data.get("blobs", []) if isinstance(event.data, dict) else []:
            report.blobs += 1
            problem = await blobs.check(str(ref.get("key")), str(ref.get("sha256")))
            if problem:
                report.breaks.append(
                    Break(event.seq, event.id, f"blob {ref.get('key')}: {problem}")
                )
    return report


async def verify_case(
    session: AsyncSession, case: Case, blobs: BlobStore | None = None
) -> VerifyReport:
    """Load and check a case's timeline (and blobs) inside ``session``."""
    events = await load_events(session, case.id)
    return await verify_loaded(case.number, case.head_hash, events, blobs)
