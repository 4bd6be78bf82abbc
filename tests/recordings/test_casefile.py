"""Evidence on a real case: verification, tampering, export, retention."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings.blobs import BlobStore
from recordings.bundle import verify_bundle
from recordings.casefile import case_file, table_rows, verify
from recordings.evidence import (
    annotate_snapshot,
    record_checklist,
    record_decision,
    record_location,
    register_recording,
    set_site,
    store_snapshot,
)
from recordings.export import export_case
from recordings.location import GeoFix
from recordings.models import Recording, Snapshot
from recordings.recorder import RecordingGap
from recordings.retention import purge_recordings
from recordings.snapshots import WatermarkInfo, take_snapshot
from server.accounts.principal import Principal
from server.cases.models import Case
from server.cases.timeline import load_events
from server.errors import ValidationError
from tests.recordings.conftest import INSPECTOR, ago, new_case
from tests.recordings.pattern import as_rtp_payloads, encode

APPLICANT = Principal(kind="applicant", id=3, role="applicant", name="张小明")
Db = async_sessionmaker[AsyncSession]


async def snap(db: Db, blobs: BlobStore, case_id: int) -> int:
    async with db() as session, session.begin():
        case = await session.get(Case, case_id)
        assert case is not None
        now = dt.datetime.now(dt.UTC)
        info = WatermarkInfo(now, "Asia/Shanghai", case.number, "种子", INSPECTOR.name)
        images = take_snapshot(as_rtp_payloads(encode(3, 320, 240)), info)
        shot = await store_snapshot(
            session,
            blobs,
            case=case,
            session_ref="room-1",
            participant="p-applicant",
            taken_by=INSPECTOR,
            images=images,
            checklist_item="仓储条件",
            location=None,
            taken_at=now,
        )
        return shot.id


async def recording(
    db: Db, blobs: BlobStore, tmp_path: Path, case_id: int, ended: dt.datetime
) -> int:
    path = tmp_path / f"rec-{ended.timestamp()}.webm"
    path.write_bytes(b"\x1a\x45\xdf\xa3" + ended.isoformat().encode() * 100)
    async with db() as session, session.begin():
        rec = await register_recording(
            session,
            blobs,
            case_id=case_id,
            session_ref="room-1",
            participant="p-applicant",
            participant_role="applicant",
            path=path,
            started_at=ended - dt.timedelta(minutes=10),
            ended_at=ended,
            duration_s=600.0,
        )
        return rec.id


async def check(db: Db, blobs: BlobStore, case_id: int) -> list[str]:
    async with db() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        events = await load_events(session, case.id)
    report = await verify(case, events, blobs)
    return [f"{b.seq}: {b.reason}" for b in report.breaks]


async def test_untouched_case_verifies(db: Db, blobs: BlobStore, tmp_path: Path) -> None:
    case_id = await new_case(db)
    await snap(db, blobs, case_id)
    await recording(db, blobs, tmp_path, case_id, ago(0))
    assert await check(db, blobs, case_id) == []


async def test_changed_snapshot_blob_is_located(db: Db, blobs: BlobStore) -> None:
    case_id = await new_case(db)
    shot_id = await snap(db, blobs, case_id)
    async with db() as session:
        shot = await session.get(Snapshot, shot_id)
        assert shot is not None
        path = blobs.path(shot.watermarked_key)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    breaks = await check(db, blobs, case_id)
    assert breaks == [f"1: blob {shot.watermarked_key}: content changed (sha256 mismatch)"]


async def test_edited_timeline_row_is_located(db: Db, blobs: BlobStore) -> None:
    case_id = await new_case(db)
    await snap(db, blobs, case_id)
    async with db() as session, session.begin():
        case = await session.get(Case, case_id)
        assert case is not None
        await record_checklist(
            session, case, by=INSPECTOR, item="消防", result="ok", note="", snapshot_ids=[]
        )
        await record_checklist(
            session,
            case,
            by=INSPECTOR,
            item="仓储条件",
            result="problem",
            note="漏水",
            snapshot_ids=[1],
        )
    async with db() as session, session.begin():
        # What a quiet edit in the database looks like: the note of event 3 rewritten.
        await session.execute(
            text("UPDATE case_events SET data = :d WHERE case_id = :c AND seq = 3"),
            {
                "d": '{"item": "仓储条件", "result": "ok", "note": "", "snapshot_ids": [1]}',
                "c": case_id,
            },
        )
    assert await check(db, blobs, case_id) == ["3: event content changed"]


async def test_export_then_offline_verify(db: Db, blobs: BlobStore, tmp_path: Path) -> None:
    case_id = await new_case(db)
    shot_id = await snap(db, blobs, case_id)
    await recording(db, blobs, tmp_path, case_id, ago(0))
    async with db() as session, session.begin():
        case = await session.get(Case, case_id)
        shot = await session.get(Snapshot, shot_id)
        assert case is not None and shot is not None
        await annotate_snapshot(
            session,
            blobs,
            case=case,
            snapshot=shot,
            by=INSPECTOR,
            shapes=[{"type": "circle", "center": [50, 50], "radius": 20}],
        )
        await record_decision(
            session,
            case,
            by=INSPECTOR,
            outcome="rectify",
            requirements="加装排风扇",
            deadline=dt.date.today() + dt.timedelta(days=30),
            today=dt.date.today(),
        )
    target = tmp_path / "export.zip"
    manifest = await export_case(
        db,
        blobs,
        case_id,
        target=target,
        timezone="Asia/Shanghai",
        now=dt.datetime.now(dt.UTC),
    )
    kinds = sorted(f["kind"] for f in manifest["files"])
    assert kinds == [
        "recording.finished",
        "report",
        "snapshot.annotated",
        "snapshot.taken",
        "snapshot.taken",
    ]
    report = verify_bundle(target)
    assert report.ok, report.problems
    assert report.head_hash == manifest["timeline"]["head"] and report.events_checked == 4


async def test_export_refuses_tampered_blob(db: Db, blobs: BlobStore, tmp_path: Path) -> None:
    from recordings.errors import BundleError

    case_id = await new_case(db)
    shot_id = await snap(db, blobs, case_id)
    async with db() as session:
        shot = await session.get(Snapshot, shot_id)
        assert shot is not None
    blobs.path(shot.original_key).write_bytes(b"not the frame")
    with pytest.raises(BundleError):
        await export_case(
            db,
            blobs,
            case_id,
            target=tmp_path / "x.zip",
            timezone="Asia/Shanghai",
            now=dt.datetime.now(dt.UTC),
        )


async def test_location_flag_and_applicant_view(db: Db, blobs: BlobStore) -> None:
    case_id = await new_case(db)
    async with db() as session, session.begin():
        case = await session.get(Case, case_id)
        assert case is not None
        await set_site(
            session,
            case,
            by=INSPECTOR,
            address="成都市郫都区",
            site=GeoFix(30.8, 103.9),
            threshold_m=1000,
        )
        near = await record_location(
            session, case, by=APPLICANT, participant="p", fix=GeoFix(30.801, 103.9, 20)
        )
        far = await record_location(
            session, case, by=APPLICANT, participant="p", fix=GeoFix(30.9, 103.9, 20)
        )
        assert (
            not near.flagged
            and far.flagged
            and far.distance_m is not None
            and far.distance_m > 10_000
        )
    await snap(db, blobs, case_id)
    async with db() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        staff_view = await case_file(session, case, INSPECTOR)
        applicant_view = await case_file(session, case, APPLICANT)
    assert staff_view["locations"][1]["flagged"] is True
    assert "flagged" not in applicant_view["locations"][1]
    assert (
        "original" in staff_view["snapshots"][0]
        and "original" not in applicant_view["snapshots"][0]
    )
    assert "recordings" not in applicant_view
    assert [e["kind"] for e in applicant_view["timeline"]] == ["snapshot.taken"]


async def test_decision_rules(db: Db) -> None:
    case_id = await new_case(db)
    async with db() as session, session.begin():
        case = await session.get(Case, case_id)
        assert case is not None
        with pytest.raises(ValidationError) as info:
            await record_decision(
                session,
                case,
                by=INSPECTOR,
                outcome="rectify",
                requirements="",
                deadline=None,
                today=dt.date.today(),
            )
        assert set(info.value.fields) == {"requirements", "deadline"}
        with pytest.raises(ValidationError):
            await record_checklist(
                session, case, by=INSPECTOR, item="x", result="ok", note="", snapshot_ids=[99]
            )
        row = await record_decision(
            session,
            case,
            by=INSPECTOR,
            outcome="pass",
            requirements="",
            deadline=dt.date.today(),
            today=dt.date.today(),
        )
        assert row.deadline is None


async def test_retention_purges_old_recordings_unless_held(
    db: Db, blobs: BlobStore, tmp_path: Path
) -> None:
    free = await new_case(db, "YK-20261122-0001")
    held = await new_case(db, "YK-20261122-0002", legal_hold=True)
    old = await recording(db, blobs, tmp_path, free, ago(40))
    fresh = await recording(db, blobs, tmp_path, free, ago(5))
    old_held = await recording(db, blobs, tmp_path, held, ago(41))
    report = await purge_recordings(db, blobs, now=dt.datetime.now(dt.UTC), default_days=30)
    assert [p.recording_id for p in report.purged] == [old] and report.held == 1
    statuses = {}
    async with db() as session:
        for rec_id in (old, fresh, old_held):
            row = await session.get(Recording, rec_id)
            assert row is not None
            statuses[rec_id] = row.status
    assert statuses == {old: "purged", fresh: "finished", old_held: "finished"}
    async with db() as session:
        rec = await session.get(Recording, old)
        assert rec is not None and rec.blob_key is not None
        assert not blobs.path(rec.blob_key).exists()
    # The purge is on the record, so the case still verifies without the file.
    assert await check(db, blobs, free) == []
    again = await purge_recordings(db, blobs, now=dt.datetime.now(dt.UTC), default_days=30)
    assert again.purged == []


def test_snapshot_helper_sizes() -> None:
    assert Image.open(
        io.BytesIO(
            take_snapshot(
                as_rtp_payloads(encode(1, 320, 240)),
                WatermarkInfo(dt.datetime.now(dt.UTC), "UTC", "c", "m", "i"),
            ).original
        )
    ).size == (320, 240)


async def test_export_includes_letters_from_the_timeline(
    db: Db, blobs: BlobStore, tmp_path: Path
) -> None:
    from server.cases.timeline import append_event

    case_id = await new_case(db)
    ref = await blobs.put(b"%PDF-1.7 signed letter", suffix=".pdf", kind="letter")
    async with db() as session, session.begin():
        case = await session.get(Case, case_id)
        assert case is not None
        await append_event(
            session,
            case,
            kind="letter.signed",
            actor=INSPECTOR,
            data={"letter_id": 1, "blobs": [{"key": ref.key, "sha256": ref.sha256}]},
        )
    target = tmp_path / "letters.zip"
    manifest = await export_case(
        db, blobs, case_id, target=target, timezone="Asia/Shanghai", now=dt.datetime.now(dt.UTC)
    )
    assert manifest["letters"] == [
        {
            "kind": "letter.signed",
            "seq": 1,
            "file": f"letters/{ref.sha256}.pdf",
            "sha256": ref.sha256,
        }
    ]
    assert verify_bundle(target).ok


async def test_recording_gaps_and_retimed_frames_are_on_the_case_and_in_the_report(
    db: Db, blobs: BlobStore, tmp_path: Path
) -> None:
    """What the recorder had to do to a stream is on the chain (the recording.finished
    event), in the case view and in the export's report."""
    case_id = await new_case(db)
    path = tmp_path / "rec.webm"
    path.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(500))
    gap = RecordingGap(
        start=12.5, length=1.25, frames_lost=4, frames_skipped=33, cause="frames_lost"
    )
    async with db() as session, session.begin():
        row = await register_recording(
            session,
            blobs,
            case_id=case_id,
            session_ref="room-1",
            participant="applicant-1",
            participant_role="applicant",
            path=path,
            started_at=ago(0) - dt.timedelta(minutes=1),
            ended_at=ago(0),
            duration_s=60.0,
            quality={"retimed": 7, "skipped": 33, "gaps": [gap.as_dict()]},
        )
    async with db() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        (event,) = [
            e for e in await load_events(session, case_id) if e.kind == "recording.finished"
        ]
        view = await case_file(session, case, INSPECTOR)
    assert event.data["gaps"] == [gap.as_dict()] and event.data["retimed"] == 7
    (rec,) = view["recordings"]
    assert rec["id"] == row.id and (rec["retimed"], rec["skipped"]) == (7, 33)
    assert rec["gaps"] == [
        {
            "start_s": 12.5,
            "length_s": 1.25,
            "frames_lost": 4,
            "frames_skipped": 33,
            "cause": "frames_lost",
        }
    ]
    target = tmp_path / "export.zip"
    await export_case(
        db, blobs, case_id, target=target, timezone="Asia/Shanghai", now=dt.datetime.now(dt.UTC)
    )
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    with zipfile.ZipFile(target) as bundle:
        pdf = bundle.read("report.pdf")
    words = await asyncio.to_thread(
        subprocess.run, ["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True
    )
    flat = "".join(words.stdout.decode().split())  # line breaks fall anywhere
    assert "缺失画面12.5s起1.2s（丢失4帧，跳过33帧）" in flat and "重定时7帧" in flat


async def test_edited_decision_and_checklist_rows_are_breaks_at_their_events(
    db: Db, blobs: BlobStore, tmp_path: Path
) -> None:
    """The side tables the pages used to read are checked against the chain: a quiet edit
    of a decision or a checklist row is a break at the event it contradicts, in verify and
    in the exported bundle, and the case view and report keep showing what the chain says."""
    case_id = await new_case(db)
    async with db() as session, session.begin():
        case = await session.get(Case, case_id)
        assert case is not None
        await record_checklist(
            session,
            case,
            by=INSPECTOR,
            item="仓储条件",
            result="problem",
            note="漏水",
            snapshot_ids=[],
        )
        decision = await record_decision(
            session,
            case,
            by=INSPECTOR,
            outcome="rectify",
            requirements="加装排风扇",
            deadline=dt.date.today() + dt.timedelta(days=30),
            today=dt.date.today(),
        )
        decision_id = decision.id
    assert await verified(db, blobs, case_id) == []  # untouched: the tables match the chain

    async with db() as session, session.begin():
        await session.execute(
            text("UPDATE evidence_decisions SET outcome = 'pass', deadline = NULL WHERE id = :i"),
            {"i": decision_id},
        )
        await session.execute(
            text(
                "UPDATE evidence_checklist_results SET result = 'ok', note = '' WHERE case_id = :c"
            ),
            {"c": case_id},
        )
    deadline = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    assert await verified(db, blobs, case_id) == [
        "1: checklist item '仓储条件': result is 'ok' in the table, 'problem' on the chain",
        "1: checklist item '仓储条件': note is '' in the table, '漏水' on the chain",
        f"2: decision {decision_id}: outcome is 'pass' in the table, 'rectify' on the chain",
        f"2: decision {decision_id}: deadline is None in the table, '{deadline}' on the chain",
    ]
    async with db() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        view = await case_file(session, case, INSPECTOR)
    assert view["decision"]["outcome"] == "rectify" and view["decision"]["deadline"] == deadline
    assert [(c["item"], c["result"], c["note"]) for c in view["checklist"]] == [
        ("仓储条件", "problem", "漏水")
    ]

    target = tmp_path / "export.zip"
    await export_case(
        db, blobs, case_id, target=target, timezone="Asia/Shanghai", now=dt.datetime.now(dt.UTC)
    )
    report = verify_bundle(target)
    assert not report.ok
    assert str(report.first_break) == (
        "timeline seq 1: checklist item '仓储条件': result is 'ok' in the table,"
        " 'problem' on the chain"
    )
    assert any(
        str(p).startswith(f"timeline seq 2: decision {decision_id}: outcome")
        for p in report.problems
    )
    if shutil.which("pdftotext") is None:
        return
    with zipfile.ZipFile(target) as bundle:
        pdf = bundle.read("report.pdf")
    words = await asyncio.to_thread(
        subprocess.run, ["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True
    )
    flat = "".join(words.stdout.decode().split())
    assert "限期整改" in flat and "通过" not in flat and "存在问题—漏水" in flat

    # A removed row is a break too.
    async with db() as session, session.begin():
        await session.execute(
            text("DELETE FROM evidence_decisions WHERE id = :i"), {"i": decision_id}
        )
    assert f"2: decision {decision_id}: on the chain but not in the table" in await verified(
        db, blobs, case_id
    )


async def verified(db: Db, blobs: BlobStore, case_id: int) -> list[str]:
    async with db() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        events = await load_events(session, case.id)
        tables = await table_rows(session, case.id)
    report = await verify(case, events, blobs, tables)
    return [f"{b.seq}: {b.reason}" for b in report.breaks]
