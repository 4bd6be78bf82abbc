"""Recording evidence on a case: every write stores the row and appends a case event.

All functions run inside the caller's transaction and the caller commits; blobs are
written (fsynced) *before* the row, so a committed row never points at a file that is not
durable, and a crash between the two leaves at worst an unreferenced blob. Each event that
names a file carries ``data["blobs"] = [{"key", "sha256"}]`` so ``verify_case`` re-hashes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.annotations import annotate_jpeg
from recordings.blobs import BlobStore
from recordings.location import DEFAULT_THRESHOLD_M, GeoFix, check_distance
from recordings.models import (
    RESULTS,
    CaseSite,
    ChecklistResult,
    Decision,
    Location,
    Recording,
    Snapshot,
)
from recordings.segments import take_of
from recordings.snapshots import ORIGINAL_SUFFIX, WATERMARKED_SUFFIX, SnapshotImages
from server.accounts.principal import Principal
from server.booking.models import Appointment
from server.cases.models import Case
from server.cases.procedure import OUTCOMES, is_open
from server.cases.timeline import append_event
from server.db.types import utcnow
from server.errors import ConflictError, NotFoundError, ValidationError


def _blob(key: str | None, sha256: str | None) -> dict[str, str]:
    return {"key": str(key), "sha256": str(sha256)}


def _require_open(case: Case) -> None:
    if not is_open(case):
        raise ConflictError(
            message="Case %(number)s is closed; no more evidence can be added",
            params={"number": case.number},
        )


async def latest_location(session: AsyncSession, case_id: int) -> Location | None:
    return await session.scalar(
        select(Location).where(Location.case_id == case_id).order_by(Location.id.desc()).limit(1)
    )


async def site_of(session: AsyncSession, case_id: int) -> CaseSite | None:
    return await session.scalar(select(CaseSite).where(CaseSite.case_id == case_id))


async def appointment_site(session: AsyncSession, case_id: int) -> GeoFix | None:
    """The site coordinates given when the appointment was booked (newest first)."""
    row = (
        await session.execute(
            select(Appointment.site_lat, Appointment.site_lon)
            .where(
                Appointment.case_id == case_id,
                Appointment.site_lat.is_not(None),
                Appointment.site_lon.is_not(None),
            )
            .order_by(Appointment.id.desc())
            .limit(1)
        )
    ).first()
    if row is None or row[0] is None or row[1] is None:
        return None
    return GeoFix(row[0], row[1])


async def store_snapshot(
    session: AsyncSession,
    blobs: BlobStore,
    *,
    case: Case,
    session_ref: str,
    participant: str,
    taken_by: Principal,
    images: SnapshotImages,
    checklist_item: str | None,
    location: GeoFix | None,
    taken_at: dt.datetime,
) -> Snapshot:
    _require_open(case)
    original = await blobs.put(images.original, suffix=ORIGINAL_SUFFIX, kind="snapshot")
    marked = await blobs.put(images.watermarked, suffix=WATERMARKED_SUFFIX, kind="snapshot")
    shot = Snapshot(
        case_id=case.id,
        session_ref=session_ref,
        participant=participant,
        taken_by_id=taken_by.id,
        taken_by_name=taken_by.name,
        checklist_item=checklist_item,
        original_key=original.key,
        original_sha256=original.sha256,
        watermarked_key=marked.key,
        watermarked_sha256=marked.sha256,
        width=images.width,
        height=images.height,
        lat=location.lat if location else None,
        lon=location.lon if location else None,
        accuracy_m=location.accuracy_m if location else None,
        taken_at=taken_at,
    )
    session.add(shot)
    await session.flush()
    await append_event(
        session,
        case,
        kind="snapshot.taken",
        actor=taken_by,
        data={
            "snapshot_id": shot.id,
            "session": session_ref,
            "participant": participant,
            "checklist_item": checklist_item,
            "size": [images.width, images.height],
            "location": (
                {"lat": location.lat, "lon": location.lon, "accuracy_m": location.accuracy_m}
                if location
                else None
            ),
            "blobs": [_blob(original.key, original.sha256), _blob(marked.key, marked.sha256)],
        },
    )
    return shot


async def annotate_snapshot(
    session: AsyncSession,
    blobs: BlobStore,
    *,
    case: Case,
    snapshot: Snapshot,
    shapes: Sequence[Mapping[str, Any]],
    by: Principal,
) -> Snapshot:
    """Draw on a copy of the watermarked image; the two stored images stay as they were."""
    _require_open(case)
    source = await blobs.read(snapshot.watermarked_key)
    derived = annotate_jpeg(source, shapes)
    ref = await blobs.put(derived, suffix=".jpg", kind="annotated")
    snapshot.annotated_key = ref.key
    snapshot.annotated_sha256 = ref.sha256
    snapshot.annotations = [dict(s) for s in shapes]
    await append_event(
        session,
        case,
        kind="snapshot.annotated",
        actor=by,
        data={
            "snapshot_id": snapshot.id,
            "shapes": len(shapes),
            "blobs": [_blob(ref.key, ref.sha256)],
        },
    )
    return snapshot


async def set_site(
    session: AsyncSession,
    case: Case,
    *,
    by: Principal,
    address: str,
    site: GeoFix | None,
    threshold_m: float | None,
) -> CaseSite:
    row = await site_of(session, case.id)
    if row is None:
        row = CaseSite(case_id=case.id)
        session.add(row)
    row.address = address
    row.lat = site.lat if site else None
    row.lon = site.lon if site else None
    row.threshold_m = threshold_m
    await session.flush()
    await append_event(
        session,
        case,
        kind="site.set",
        actor=by,
        data={
            "address": address,
            "lat": row.lat,
            "lon": row.lon,
            "threshold_m": threshold_m,
        },
    )
    return row


async def record_location(
    session: AsyncSession,
    case: Case,
    *,
    by: Principal,
    participant: str,
    fix: GeoFix,
    default_threshold_m: float = DEFAULT_THRESHOLD_M,
) -> Location:
    _require_open(case)
    # The case's own site (set by staff) wins over the address given when booking.
    site = await site_of(session, case.id)
    site_fix = (
        GeoFix(site.lat, site.lon)
        if site and site.lat is not None and site.lon is not None
        else await appointment_site(session, case.id)
    )
    threshold = site.threshold_m if site and site.threshold_m else default_threshold_m
    check = check_distance(fix, site_fix, threshold)
    row = Location(
        case_id=case.id,
        participant=participant,
        principal_kind=by.kind,
        principal_id=by.id,
        lat=fix.lat,
        lon=fix.lon,
        accuracy_m=fix.accuracy_m,
        at=utcnow(),
        distance_m=check.distance_m if check else None,
        threshold_m=check.threshold_m if check else None,
        flagged=bool(check and check.flagged),
    )
    session.add(row)
    await session.flush()
    await append_event(
        session,
        case,
        kind="location.shared",
        actor=by,
        data={
            "location_id": row.id,
            "lat": fix.lat,
            "lon": fix.lon,
            "accuracy_m": fix.accuracy_m,
            "distance_m": round(row.distance_m, 1) if row.distance_m is not None else None,
            "flagged": row.flagged,
        },
    )
    return row


async def record_checklist(
    session: AsyncSession,
    case: Case,
    *,
    by: Principal,
    item: str,
    result: str,
    note: str,
    snapshot_ids: Sequence[int],
) -> ChecklistResult:
    _require_open(case)
    if result not in RESULTS:
        raise ValidationError(fields={"result": "Choose ok, problem or not applicable"})
    if snapshot_ids:
        found = set(
            (
                await session.scalars(
                    select(Snapshot.id).where(
                        Snapshot.case_id == case.id, Snapshot.id.in_(list(snapshot_ids))
                    )
                )
            ).all()
        )
        if found != set(snapshot_ids):
            raise ValidationError(fields={"snapshot_ids": "Unknown snapshot for this case"})
    row = await session.scalar(
        select(ChecklistResult).where(
            ChecklistResult.case_id == case.id, ChecklistResult.item == item
        )
    )
    if row is None:
        row = ChecklistResult(case_id=case.id, item=item)
        session.add(row)
    row.result = result
    row.note = note
    row.snapshot_ids = sorted(set(snapshot_ids))
    row.by_id = by.id
    row.by_name = by.name
    row.at = utcnow()
    await session.flush()
    await append_event(
        session,
        case,
        kind="checklist.result",
        actor=by,
        data={"item": item, "result": result, "note": note, "snapshot_ids": row.snapshot_ids},
    )
    return row


async def record_decision(
    session: AsyncSession,
    case: Case,
    *,
    by: Principal,
    outcome: str,
    requirements: str,
    deadline: dt.date | None,
    today: dt.date,
    reason: str = "",
) -> Decision:
    _require_open(case)
    if outcome not in OUTCOMES:
        raise ValidationError(fields={"outcome": "Choose pass, rectify or fail"})
    if outcome == "rectify":
        fields: dict[str, str] = {}
        if not requirements.strip():
            fields["requirements"] = "Rectification needs written requirements"
        if deadline is None:
            fields["deadline"] = "Rectification needs a deadline"
        elif deadline <= today:
            fields["deadline"] = "The deadline must be in the future"
        if fields:
            raise ValidationError(fields=fields)
    else:
        deadline = None
    row = Decision(
        case_id=case.id,
        outcome=outcome,
        requirements=requirements,
        reason=reason,
        deadline=deadline,
        decided_by_id=by.id,
        decided_by_name=by.name,
        decided_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    await append_event(
        session,
        case,
        kind="decision.recorded",
        actor=by,
        data={
            "decision_id": row.id,
            "outcome": outcome,
            "requirements": requirements,
            "reason": reason,
            "deadline": deadline.isoformat() if deadline else None,
        },
    )
    return row


async def register_recording(
    session: AsyncSession,
    blobs: BlobStore,
    *,
    case_id: int,
    session_ref: str,
    participant: str,
    participant_role: str,
    path: Path,
    started_at: dt.datetime,
    ended_at: dt.datetime,
    duration_s: float,
    quality: dict[str, Any] | None = None,
    status: str = "finished",
    kind: str = "recording.finished",
) -> Recording:
    """Move a finished recorder file into the blob store and put it on the case.

    Called when a session's recorder closes its file; the file's hash is computed while
    moving it, so what the case records is what was on disk when the session ended.
    ``quality`` (re-timed and skipped frames, gaps: what the recorder reports) goes on the
    ``recording.finished`` event, i.e. on the chain. A file left by a killed process is
    filed with ``status="incomplete"`` and ``kind="recording.recovered"``
    (``recordings.recovery``).
    """
    case = await session.get(Case, case_id)
    if case is None:
        raise NotFoundError("Case not found")
    ref = await blobs.put_file(path, suffix=path.suffix.lower() or ".webm", kind="recording")
    row = Recording(
        case_id=case.id,
        session_ref=session_ref,
        participant=participant,
        participant_role=participant_role,
        blob_key=ref.key,
        sha256=ref.sha256,
        size=ref.size,
        duration_s=duration_s,
        started_at=started_at,
        ended_at=ended_at,
        status=status,
    )
    session.add(row)
    await session.flush()
    await append_event(
        session,
        case,
        kind=kind,
        actor=None,
        data={
            "recording_id": row.id,
            "session": session_ref,
            "participant": participant,
            # The name its ``recording.segment`` events carry (recordings.segments).
            "take": take_of(path),
            "duration_s": round(duration_s, 2),
            "size": ref.size,
            **(quality or {}),
            "blobs": [_blob(ref.key, ref.sha256)],
        },
    )
    return row
