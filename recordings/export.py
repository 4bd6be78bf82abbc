"""The case bundle: everything a case holds, in one ZIP that verifies offline.

``export_case`` writes the agency's full bundle; with a :class:`Redaction` it writes the
copy for sharing outside the agency (``recordings.redaction``): the same media files, the
timeline, tables and report with names, ID numbers, mobiles and IPs masked, the documents
as unsealed redacted copies (rendered by the caller: letters own their layout) and no
handwritten signature images. ``manifest.json`` says what was masked and what verify can
still check (``redaction``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings import checkpoints
from recordings.blobs import BlobStore
from recordings.bundle import BundleFile, write_bundle
from recordings.casefile import case_file, matter_name, table_rows
from recordings.errors import BundleError
from recordings.integrity import export_event
from recordings.models import STORED, Snapshot
from recordings.redaction import MASKED, STANDARD, UNCHANGED, Redactor, mask_name, redactor_for
from recordings.report import ReportChecklistRow, ReportData, ReportSnapshot, render_report
from server.accounts.models import Applicant
from server.accounts.principal import Principal
from server.booking.models import Appointment
from server.cases.models import Case
from server.cases.timeline import load_events
from server.errors import NotFoundError

LetterCopies = Callable[[Redactor], Awaitable[list[tuple[str, bytes]]]]
"""Renders each document of the case redacted: ``(file name, PDF bytes)``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Redaction:
    """Asks :func:`export_case` for the redacted copy; ``seq`` is its ``export.redacted``."""

    seq: int
    letters: LetterCopies | None = None


_FOLDERS = {
    "snapshot.taken": "media/snapshots",
    "snapshot.annotated": "media/annotated",
    "recording.finished": "media/recordings",
    "recording.recovered": "media/recordings",
}


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
    redaction: Redaction | None = None,
) -> dict[str, Any]:
    """Write the case bundle to ``target`` and return its manifest (access checked by caller).

    The database is read in one short session and closed before any file is read or the
    ZIP written: on SQLite every transaction holds the write lock, and an export of an hour
    of recordings must not stop the service from booking or snapshotting meanwhile.
    """
    async with db.begin() as session:
        # Every export is anchored: the agency key signs the head being exported.
        case = await session.get(Case, case_id)
        signer = checkpoints.signer_of(session)
        if case is not None and signer is not None:
            await session.refresh(case)
            checkpoints.record(session, case, "export", signer)
    async with db() as session:
        case = await session.get(Case, case_id)
        if case is None:
            raise NotFoundError()
        events = await load_events(session, case.id)
        anchors = await checkpoints.load(session, case)
        view = await case_file(
            session, case, Principal(kind="staff", id=0, role="admin", name="export")
        )
        report, shots = await _report_inputs(
            session, case, view, now.astimezone(ZoneInfo(timezone))
        )
        case_info = {"number": case.number, "title": case.title, "status": case.status}
        exported = [export_event(e) for e in events]
        tables = await table_rows(session, case.id)
        applicant = await session.get(Applicant, case.applicant_id) if case.applicant_id else None
        # The people named at booking (a person applying, an enterprise's contact person).
        booked = (
            await session.execute(
                select(
                    Appointment.applicant_kind, Appointment.applicant_name, Appointment.contact_name
                ).where(Appointment.case_id == case.id)
            )
        ).all()
    redactor = None
    if redaction is not None:
        known = [applicant.name] if applicant is not None else []
        # An enterprise's name is public (it is what the case is about); its contact is not.
        for kind, name, contact in booked:
            known += [n for n in (contact, None if kind == "enterprise" else name) if n]
        redactor = redactor_for(exported, [*known, *(s["taken_by"] for s in view["snapshots"])])
    purged = {str(e["data"].get("key")) for e in exported if e["kind"] == "recording.purged"}
    files: list[BundleFile] = []
    seen: set[str] = set()
    letters: list[dict[str, Any]] = []
    for event in exported:
        for ref in event["data"].get("blobs", []):
            key, sha = str(ref.get("key")), str(ref.get("sha256"))
            if key in seen or key in purged:
                continue
            if redactor is not None and event["kind"].startswith("letter."):
                continue  # sealed originals and signature images stay at the agency
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
    if redaction is not None and redactor is not None and redaction.letters is not None:
        for name, body in await redaction.letters(redactor):
            files.append(BundleFile(f"letters/redacted/{name}", "letter.redacted", body))
            letters.append({"kind": "letter.redacted", "file": f"letters/redacted/{name}"})
    data = dataclasses.replace(report, snapshots=snapshots, files=[f.name for f in files])
    extra: dict[str, Any] = {}
    all_tables = tables.as_tables()
    if redactor is not None and redaction is not None:
        data = _redact_report(data, redactor)
        exported = [redactor.event(e) for e in exported]
        case_info["title"] = redactor.text(case_info["title"])  # "事项（企业（联系人））"
        all_tables = {k: redactor.rows(v) for k, v in all_tables.items()}
        extra["redaction"] = {
            "standard": STANDARD,
            "event_seq": redaction.seq,
            "masked": list(MASKED),
            "unchanged": list(UNCHANGED),
            "events_masked": [e["seq"] for e in exported if e.get("redacted")],
            "documents": "unsealed redacted copies; the sealed originals stay at the agency",
        }
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
        tables=all_tables,
        signer=signer,
        case_checkpoints=anchors,
        **extra,
    )


def _redact_report(data: ReportData, redactor: Redactor) -> ReportData:
    return dataclasses.replace(
        data,
        title=redactor.text(data.title),
        applicant=redactor.text(data.applicant),
        inspectors=[mask_name(n) for n in data.inspectors],
        checklist=[
            ReportChecklistRow(r.item, r.result, redactor.text(r.note)) for r in data.checklist
        ],
        requirements=redactor.text(data.requirements),
        snapshots=[
            dataclasses.replace(s, caption=redactor.text(s.caption)) for s in data.snapshots
        ],
        recordings=[redactor.text(r) for r in data.recordings],
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
