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
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from sqlalchemy import column, inspect, select, table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings.blobs import BlobStore
from recordings.bundle import BundleFile, write_bundle
from recordings.errors import BundleError
from recordings.facts import fact_breaks, load_facts
from recordings.integrity import chain_records, export_event, record_breaks
from recordings.models import STORED, ChecklistResult, Decision, Location, Recording, Snapshot
from recordings.report import ReportChecklistRow, ReportData, ReportSnapshot, render_report
from recordings.segments import segment_breaks, take_summaries
from server.accounts.models import Applicant
from server.accounts.principal import Principal
from server.booking.models import Appointment
from server.cases.models import Case, CaseEvent
from server.cases.timeline import Break, VerifyReport, load_events, verify_loaded
from server.errors import NotFoundError
from signaling.tokens import HIDDEN_ROLES

# Timeline kinds an applicant does not see (internal assessments and housekeeping).
STAFF_ONLY_KINDS = ("location.shared", "recording.", "site.", "case.hold")

_FOLDERS = {
    "snapshot.taken": "media/snapshots",
    "snapshot.annotated": "media/annotated",
    "recording.finished": "media/recordings",
    "recording.recovered": "media/recordings",
}


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
    none of their events, as they saw none of them in the call."""
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
        if visible_event(e.kind, staff) and e.data.get("participant") not in hidden
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
    case: Case, events: Sequence[CaseEvent], blobs: BlobStore, tables: TableRows | None = None
) -> VerifyReport:
    """``verify_loaded`` minus the files that retention removed on the record, plus the
    decision and checklist ``tables`` (:func:`table_rows`) checked against the chain.

    Call it after the session that loaded ``events`` is closed (files are hashed here).
    A purged recording's blob is gone by design; its ``recording.purged`` event (itself on
    the chain) explains why, so that absence is not a break. Any other missing or changed
    blob still is.
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
    report.breaks.sort(key=lambda b: b.seq)
    return report


def _open(blobs: BlobStore, key: str, _sha256: str) -> BinaryIO | None:
    try:
        return blobs.path(key).open("rb")
    except (OSError, ValueError):
        return None


def _is_purged(brk: Break, purged: set[str]) -> bool:
    return any(brk.reason == f"blob {key}: missing" for key in purged)


def _folder(kind: str) -> str:
    if kind.startswith("letter."):
        return "letters"
    return _FOLDERS.get(kind, "files")


async def export_case(
    db: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    case_id: int,
    *,
    target: Path,
    timezone: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """Write the case bundle to ``target`` and return its manifest (access checked by caller).

    The database is read in one short session and closed before any file is read or the
    ZIP written: on SQLite every transaction holds the write lock, and an export of an hour
    of recordings must not stop the service from booking or snapshotting meanwhile.
    """
    async with db() as session:
        case = await session.get(Case, case_id)
        if case is None:
            raise NotFoundError()
        events = await load_events(session, case.id)
        view = await case_file(
            session, case, Principal(kind="staff", id=0, role="admin", name="export")
        )
        report, shots = await _report_inputs(
            session, case, view, now.astimezone(ZoneInfo(timezone))
        )
        case_info = {"number": case.number, "title": case.title, "status": case.status}
        exported = [export_event(e) for e in events]
        tables = await table_rows(session, case.id)
    purged = {str(e["data"].get("key")) for e in exported if e["kind"] == "recording.purged"}
    files: list[BundleFile] = []
    seen: set[str] = set()
    letters: list[dict[str, Any]] = []
    for event in exported:
        for ref in event["data"].get("blobs", []):
            key, sha = str(ref.get("key")), str(ref.get("sha256"))
            if key in seen or key in purged:
                continue
            seen.add(key)
            name = f"{_folder(event['kind'])}/{key.rsplit('/', 1)[-1]}"
            files.append(BundleFile(name, event["kind"], blobs.path(key), sha))
            if event["kind"].startswith("letter."):
                letters.append(
                    {"kind": event["kind"], "seq": event["seq"], "file": name, "sha256": sha}
                )
    snapshots = []
    for key, sha, caption in shots:
        jpeg = await blobs.read(key)
        if hashlib.sha256(jpeg).hexdigest() != sha:
            # Never print a tampered picture into the report; the bundle would refuse it too.
            raise BundleError(
                message="%(name)s: stored file does not match its recorded SHA-256",
                params={"name": key},
            )
        snapshots.append(ReportSnapshot(caption=caption, jpeg=jpeg, sha256=sha))
    data = dataclasses.replace(report, snapshots=snapshots, files=[f.name for f in files])
    pdf = await asyncio.to_thread(render_report, data)
    files.append(BundleFile("report.pdf", "report", pdf))
    return await asyncio.to_thread(
        write_bundle,
        target,
        case=case_info,
        files=files,
        events=exported,
        letters=letters,
        exported_at=now.isoformat(),
        tables=tables.as_tables(),
    )


async def _report_inputs(
    session: AsyncSession, case: Case, view: dict[str, Any], local_now: dt.datetime
) -> tuple[ReportData, list[tuple[str, str, str]]]:
    """The report without pictures, and (blob key, sha256, caption) of the pictures."""
    shots: list[tuple[str, str, str]] = []
    for item in view["snapshots"][:12]:  # a report is a summary; the bundle has them all
        shot = await session.get(Snapshot, item["id"])
        if shot is None:
            continue
        key = shot.annotated_key or shot.watermarked_key
        sha = shot.annotated_sha256 or shot.watermarked_sha256
        shots.append((key, sha, f"#{shot.id} {shot.checklist_item or ''} {shot.taken_by_name}"))
    loc = view["locations"][-1] if view["locations"] else None
    location = None
    if loc:
        location = f"{loc['lat']:.5f},{loc['lon']:.5f}"
        if loc["accuracy_m"] is not None:
            location += f" ±{loc['accuracy_m']:.0f}m"
        if loc.get("distance_m") is not None:
            location += f"，距现场 {loc['distance_m']:.0f} m"
    decision = view["decision"] or {}
    inspectors = {s["taken_by"] for s in view["snapshots"]}
    if decision:
        inspectors.add(decision["by"])
    report = ReportData(
        case_number=case.number,
        title=case.title,
        matter=await matter_name(session, case),
        applicant=await _applicant_name(session, case),
        exported_at=f"{local_now:%Y-%m-%d %H:%M}",
        inspectors=sorted(inspectors),
        location=location,
        location_flagged=bool(loc and loc.get("flagged")),
        checklist=[
            ReportChecklistRow(c["item"], c["result"], c["note"]) for c in view["checklist"]
        ],
        decision=decision.get("outcome"),
        requirements=decision.get("requirements") or "",
        deadline=decision.get("deadline"),
        recordings=[
            f"#{r['id']} {r['participant']} {r['duration_s']:.0f}s SHA-256 {r['sha256']}"
            + _quality_text(r)
            for r in view.get("recordings", [])
            if r["status"] in STORED
        ],
        head_hash=case.head_hash,
        events=case.head_seq,
    )
    return report, shots


def _quality_text(recording: dict[str, Any]) -> str:
    """The report's words for what the recorder had to do (nothing: no words)."""
    parts = []
    for gap in recording["gaps"]:
        parts.append(
            f"缺失画面 {gap['start_s']:.1f}s 起 {gap['length_s']:.1f}s"
            f"（丢失 {gap['frames_lost']} 帧，跳过 {gap['frames_skipped']} 帧）"
        )
    if recording["retimed"]:
        parts.append(f"重定时 {recording['retimed']} 帧（未丢弃）")
    if recording["status"] == "incomplete":
        parts.append("服务中断后恢复，录像不完整")
    return "；" + "；".join(parts) if parts else ""


async def _applicant_name(session: AsyncSession, case: Case) -> str:
    if case.applicant_id is None:
        return "—"
    applicant = await session.get(Applicant, case.applicant_id)
    return mask_name(applicant.name) if applicant and applicant.name else "—"


def mask_name(name: str) -> str:
    """张三 -> 张*, 张小明 -> 张*明: enough to recognise, not enough to harvest."""
    if len(name) <= 2:
        return name[:1] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


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
