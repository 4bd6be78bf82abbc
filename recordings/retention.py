"""Retention: recordings older than their matter's retention period are removed.

A recording is kept for the matter's ``retention_days`` after it ended; a case under legal
hold keeps everything regardless. The purge removes the *file* and marks the row
``purged``; the row, its hash and the timeline event that recorded it stay, and a
``recording.purged`` event says when and why the file went, so the record still shows what
existed. Snapshots, letters and the timeline are not purged here: they are the case record.

:func:`is_expired` is the rule, pure and tested on its own; :func:`purge_recordings` applies
it to the database, one case transaction at a time. The row and the event are committed
first and the file is unlinked after: a crash in between leaves a file on disk for a row
marked purged (harmless), never a missing file without an event that explains it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import column, inspect, select, table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings.blobs import BlobError, BlobStore
from recordings.models import STORED, Recording
from server.cases.models import Case
from server.cases.timeline import append_event

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 365 * 3

# The matters table belongs to booking; we read only its retention column, through a
# lightweight table clause so this module does not depend on booking's models.
_matters = table("matters", column("id"), column("retention_days"))


@dataclass(frozen=True, slots=True)
class PurgedRecording:
    recording_id: int
    case_number: str
    blob_key: str
    ended_at: dt.datetime
    retention_days: int


@dataclass(slots=True)
class PurgeReport:
    purged: list[PurgedRecording] = field(default_factory=list)
    held: int = 0  # expired but kept because of a legal hold

    def as_dict(self) -> dict[str, object]:
        return {
            "purged": [
                {"recording_id": p.recording_id, "case": p.case_number, "key": p.blob_key}
                for p in self.purged
            ],
            "held": self.held,
        }


def is_expired(ended_at: dt.datetime, retention_days: int, now: dt.datetime) -> bool:
    """Whether a recording that ended at ``ended_at`` is past its retention at ``now``."""
    return ended_at + dt.timedelta(days=retention_days) <= now


async def retention_days_by_matter(session: AsyncSession) -> dict[int, int]:
    has_matters = await session.run_sync(
        lambda sync: inspect(sync.connection()).has_table("matters")
    )
    if not has_matters:
        return {}
    rows = await session.execute(select(_matters.c.id, _matters.c.retention_days))
    return {int(r[0]): int(r[1]) for r in rows if r[1] is not None}


def _unlink(blobs: BlobStore, key: str) -> None:
    try:
        blobs.path(key).unlink(missing_ok=True)
    except BlobError:
        log.warning("retention: malformed blob key %s left alone", key)


async def purge_recordings(
    db: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    *,
    now: dt.datetime,
    default_days: int = DEFAULT_RETENTION_DAYS,
    overrides: Mapping[int, int] | None = None,
) -> PurgeReport:
    """Remove expired recordings' files; ``overrides`` maps matter id to days (tests, CLI)."""
    report = PurgeReport()
    async with db() as session:
        days_by_matter = {**await retention_days_by_matter(session), **(overrides or {})}
        rows = (
            await session.execute(
                select(Recording.id, Recording.ended_at, Case.id, Case.matter_id, Case.legal_hold)
                .join(Case, Case.id == Recording.case_id)
                .where(Recording.status.in_(STORED), Recording.ended_at.is_not(None))
            )
        ).all()
    candidates: dict[int, list[tuple[int, int]]] = {}
    for rec_id, ended_at, case_id, matter_id, legal_hold in rows:
        days = days_by_matter.get(matter_id, default_days) if matter_id else default_days
        if ended_at is None or not is_expired(ended_at, days, now):
            continue
        if legal_hold:
            report.held += 1
            continue
        candidates.setdefault(case_id, []).append((rec_id, days))

    for case_id, items in candidates.items():
        unlink: list[str] = []
        async with db() as session, session.begin():
            case = await session.get(Case, case_id)
            if case is None or case.legal_hold:  # a hold placed since we looked wins
                report.held += len(items)
                continue
            for rec_id, days in items:
                rec = await session.get(Recording, rec_id)
                if rec is None or rec.status not in STORED or rec.ended_at is None:
                    continue
                rec.status = "purged"
                rec.purged_at = now
                await append_event(
                    session,
                    case,
                    kind="recording.purged",
                    actor=None,
                    data={
                        "recording_id": rec.id,
                        "key": rec.blob_key,
                        "sha256": rec.sha256,
                        "ended_at": rec.ended_at.isoformat(),
                        "retention_days": days,
                    },
                )
                if rec.blob_key:
                    unlink.append(rec.blob_key)
                report.purged.append(
                    PurgedRecording(rec.id, case.number, rec.blob_key or "", rec.ended_at, days)
                )
        for key in unlink:  # after the commit: see the module docstring
            _unlink(blobs, key)
            log.info("retention: removed recording blob %s of case %s", key, case_id)
    return report
