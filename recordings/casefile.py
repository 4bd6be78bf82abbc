"""The case file: what each role may see of a case, its verification and its export.

One function builds the view for both the API and the pages, so the JSON and the HTML
can never disagree about what an applicant may see. Staff see everything. The applicant
sees the case, the snapshots as watermarked, the checklist, the decision, letters, their
own location fixes (without the distance flag, an internal assessment) and the timeline
without internal event kinds; recordings and original frames are staff-only.

The export collects every blob the timeline references (snapshots, annotations,
recordings, letters — whatever a domain recorded under ``data["blobs"]``), so a domain
that records its files on the timeline is exported without this module knowing it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import column, inspect, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from recordings import checkpoints
from recordings.blobs import BlobStore
from recordings.facts import fact_breaks, load_facts
from recordings.integrity import chain_records, export_event, record_breaks
from recordings.models import STORED, ChecklistResult, Decision, Location, Recording, Snapshot
from recordings.segments import segment_breaks, take_summaries
from server.accounts.principal import Principal
from server.booking.models import Appointment
from server.cases.models import Case, CaseEvent
from server.cases.timeline import Break, VerifyReport, load_events, verify_loaded
from server.errors import NotFoundError
from signaling.tokens import HIDDEN_ROLES

# Timeline kinds an applicant does not see (internal assessments and housekeeping).
STAFF_ONLY_KINDS = ("location.shared", "recording.", "site.", "case.hold")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _snapshot(shot: Snapshot, staff: bool) -> dict[str, Any]:
    base = f"/api/v1/snapshots/{shot.id}"
    out: dict[str, Any] = {
        "id": shot.id,
        "session": shot.session_ref,
        "checklist_item": shot.checklist_item,
        "taken_by": shot.taken_by_name,
        "taken_at": _iso(shot.taken_at),
        "width": shot.width,
        "height": shot.height,
        "watermarked": {"url": f"{base}/watermarked", "sha256": shot.watermarked_sha256},
        "annotated": (
            {"url": f"{base}/annotated", "sha256": shot.annotated_sha256}
            if shot.annotated_key
            else None
        ),
        "location": (
            {"lat": shot.lat, "lon": shot.lon, "accuracy_m": shot.accuracy_m}
            if shot.lat is not None
            else None
        ),
    }
    if staff:
        out["original"] = {"url": f"{base}/original", "sha256": shot.original_sha256}
    return out


def _location(row: Location, staff: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "lat": row.lat,
        "lon": row.lon,
        "accuracy_m": row.accuracy_m,
        "at": _iso(row.at),
    }
    if staff:
        out.update(distance_m=row.distance_m, threshold_m=row.threshold_m, flagged=row.flagged)
    return out


def _sessions(events: Sequence[CaseEvent]) -> set[str]:
    """Live sessions (rooms) the timeline mentions: recordings and live events carry them."""
    found: set[str] = set()
    for event in events:
        for key in ("session", "room"):
            value = event.data.get(key)
            if isinstance(value, str) and value:
                found.add(value)
    return found


def visible_event(kind: str, staff: bool) -> bool:
    return staff or not kind.startswith(STAFF_ONLY_KINDS)


def hidden_participants(events: Sequence[CaseEvent]) -> set[str]:
    """Participants who joined a call hidden (observers, supervisors): the applicant sees
    none of their events, as they saw none of them in the call (nor their being made
    parties: :func:`timeline_view` drops those ``case.party_added`` events too)."""
    return {
        str(e.data.get("participant"))
        for e in events
        if e.kind in ("live.joined", "live.invited") and e.data.get("role") in HIDDEN_ROLES
    }


def timeline_view(events: list[CaseEvent], staff: bool) -> list[dict[str, Any]]:
    hidden = set() if staff else hidden_participants(events)
    return [
        {
            "seq": e.seq,
            "kind": e.kind,
            "actor": e.actor_name,
            "actor_kind": e.actor_kind,
            "at": _iso(e.created_at),
            "data": e.data if staff else {k: v for k, v in e.data.items() if k != "blobs"},
            "hash": e.hash,
        }
        for e in events
        if visible_event(e.kind, staff)
        and e.data.get("participant") not in hidden
        and not (not staff and e.kind == "case.party_added" and e.data.get("role") in HIDDEN_ROLES)
    ]


async def case_file(session: AsyncSession, case: Case, principal: Principal) -> dict[str, Any]:
    """The case as ``principal`` may see it (access was checked by the caller)."""
    staff = principal.is_staff
    shots = (
        await session.scalars(
            select(Snapshot).where(Snapshot.case_id == case.id).order_by(Snapshot.id)
        )
    ).all()
    loc_query = select(Location).where(Location.case_id == case.id).order_by(Location.id)
    if not staff:
        loc_query = loc_query.where(
            Location.principal_kind == principal.kind, Location.principal_id == principal.id
        )
    locations = (await session.scalars(loc_query)).all()
    events = await load_events(session, case.id)
    decision, checklist = chain_records([export_event(e) for e in events])
    appointments = (
        await session.scalars(
            select(Appointment)
            .where(Appointment.case_id == case.id)
            .order_by(Appointment.starts_at)
        )
    ).all()
    out: dict[str, Any] = {
        "id": case.id,
        "number": case.number,
        "title": case.title,
        "status": case.status,
        "kind": case.kind,
        "outcome": case.outcome,
        "deadline": case.deadline.isoformat() if case.deadline else None,
        "licence_number": case.licence_number,
        "matter_id": case.matter_id,
        "created_at": _iso(case.created_at),
        "appointments": [
            {
                "id": a.id,
                "starts_at": _iso(a.starts_at),
                "ends_at": _iso(a.ends_at),
                "status": a.status,
                "site_address": a.site_address,
            }
            for a in appointments
        ],
        "sessions": sorted({s.session_ref for s in shots} | _sessions(events)),
        "snapshots": [_snapshot(s, staff) for s in shots],
        # What the chain says, not the side tables (verify compares those with it).
        "checklist": checklist,
        "decision": decision,
        "locations": [_location(loc, staff) for loc in locations],
        "letters": [
            {"kind": e.kind, "at": _iso(e.created_at), "blobs": e.data.get("blobs", [])}
            for e in events
            if e.kind.startswith("letter.") and e.data.get("blobs")
        ],
        "timeline": timeline_view(events, staff),
    }
    if staff:
        recs = (
            await session.scalars(
                select(Recording).where(Recording.case_id == case.id).order_by(Recording.id)
            )
        ).all()
        out["legal_hold"] = case.legal_hold
        out["head_hash"] = case.head_hash
        finished = {
            e.data.get("recording_id"): e.data
            for e in events
            if e.kind in ("recording.finished", "recording.recovered")
        }
        takes = take_summaries([export_event(e) for e in events])
        out["recordings"] = [
            {
                **_quality(finished.get(r.id, {})),
                "take": takes.get(str(finished.get(r.id, {}).get("take"))),
                "id": r.id,
                "session": r.session_ref,
                "participant": r.participant,
                "role": r.participant_role,
                "status": r.status,
                "duration_s": r.duration_s,
                "size": r.size,
                "sha256": r.sha256,
                "started_at": _iso(r.started_at),
                "ended_at": _iso(r.ended_at),
                "url": f"/api/v1/recordings/{r.id}/media" if r.status in STORED else None,
            }
            for r in recs
        ]
    return out


def _quality(data: dict[str, Any]) -> dict[str, Any]:
    """What the recorder had to do to the stream, as its ``recording.finished`` event says."""
    return {
        "retimed": int(data.get("retimed", 0)),
        "skipped": int(data.get("skipped", 0)),
        "gaps": list(data.get("gaps", [])),
    }


@dataclass(frozen=True, slots=True)
class TableRows:
    """The decision and checklist rows of a case, as :func:`record_breaks` compares them."""

    decisions: list[dict[str, Any]]
    checklist: list[dict[str, Any]]
    facts: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    """The other side tables (``recordings.facts``: locations, site, snapshots, …)."""

    def as_tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every table as the bundle's ``manifest.json`` carries it."""
        return {"decisions": self.decisions, "checklist": self.checklist, **self.facts}


async def table_rows(session: AsyncSession, case_id: int) -> TableRows:
    case = await session.get(Case, case_id)
    if case is None:
        raise NotFoundError()
    decisions = await session.scalars(
        select(Decision).where(Decision.case_id == case_id).order_by(Decision.id)
    )
    items = await session.scalars(
        select(ChecklistResult)
        .where(ChecklistResult.case_id == case_id)
        .order_by(ChecklistResult.id)
    )
    return TableRows(
        decisions=[
            {
                "id": d.id,
                "outcome": d.outcome,
                "requirements": d.requirements,
                "reason": d.reason,
                "deadline": d.deadline.isoformat() if d.deadline else None,
                "by": d.decided_by_name,
            }
            for d in decisions
        ],
        checklist=[
            {
                "item": c.item,
                "result": c.result,
                "note": c.note,
                "snapshot_ids": list(c.snapshot_ids or []),
                "by": c.by_name,
            }
            for c in items
        ],
        facts=await load_facts(session, case),
    )


async def verify(
    case: Case,
    events: Sequence[CaseEvent],
    blobs: BlobStore,
    tables: TableRows | None = None,
    anchors: Sequence[dict[str, Any]] | None = None,
    trust: checkpoints.Trust | None = None,
) -> VerifyReport:
    """``verify_loaded`` minus the files that retention removed on the record, plus the
    decision and checklist ``tables`` (:func:`table_rows`) checked against the chain.

    Call it after the session that loaded ``events`` is closed (files are hashed here).
    A purged recording's blob is gone by design; its ``recording.purged`` event (itself on
    the chain) explains why, so that absence is not a break. Any other missing or changed
    blob still is.

    ``anchors`` (``checkpoints.load``) are the agency's signed heads, checked against the
    chain with ``trust`` (``recordings.checkpoints.verify``): a chain recomputed without
    the key fails here even though every hash links.
    """
    report = await verify_loaded(case.number, case.head_hash, events, blobs)
    purged = {str(e.data.get("key")) for e in events if e.kind == "recording.purged"}
    report.breaks = [b for b in report.breaks if not _is_purged(b, purged)]
    ids = {e.seq: e.id for e in events}
    exported = [export_event(e) for e in events]
    found = await asyncio.to_thread(segment_breaks, exported, functools.partial(_open, blobs))
    if tables is not None:
        found += record_breaks(exported, tables.decisions, tables.checklist)
        found += fact_breaks(exported, tables.facts)
    for brk in found:
        seq = brk.seq if brk.seq is not None else case.head_seq
        report.breaks.append(Break(seq=seq, event_id=ids.get(seq), reason=brk.reason))
    if anchors is not None:
        for anchor in await checkpoints.verify(case.number, exported, anchors, trust):
            report.breaks.append(Break(anchor.seq, ids.get(anchor.seq), anchor.reason))
    report.breaks.sort(key=lambda b: b.seq)
    return report


def _open(blobs: BlobStore, key: str, _sha256: str) -> BinaryIO | None:
    try:
        return blobs.path(key).open("rb")
    except (OSError, ValueError):
        return None


def _is_purged(brk: Break, purged: set[str]) -> bool:
    return any(brk.reason == f"blob {key}: missing" for key in purged)


# The matters table belongs to booking; a lightweight clause reads the name only.
_matters = table("matters", column("id"), column("name"))


async def matter_name(session: AsyncSession, case: Case) -> str:
    """The matter's name for watermarks and reports, or the case title without one."""
    if case.matter_id is None:
        return case.title
    exists = await session.run_sync(lambda sync: inspect(sync.connection()).has_table("matters"))
    if not exists:
        return case.title
    name = await session.scalar(select(_matters.c.name).where(_matters.c.id == case.matter_id))
    return str(name) if name else case.title
