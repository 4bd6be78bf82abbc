"""The continuous-take proof: segment hashes on the chain, checked against the file."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import shutil
import zipfile
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings.blobs import BlobStore
from recordings.bundle import verify_bundle
from recordings.casefile import case_file, verify
from recordings.evidence import register_recording
from recordings.export import export_case
from recordings.integrity import export_event
from recordings.recorder import Recorder
from recordings.segments import KIND, SegmentLog, append_segment
from server.accounts.principal import Principal
from server.cases.models import Case
from server.cases.timeline import load_events
from tests.recordings.conftest import new_case
from tests.recordings.pattern import encode_moving

Db = async_sessionmaker[AsyncSession]
ADMIN = Principal(kind="staff", id=1, role="admin", name="管理员")


async def record_take(db: Db, blobs: BlobStore, tmp_path: Path, case_id: int) -> Path:
    """200 frames at 30 fps with a 3 s pause after frame 100, segments every 2 s."""
    stamp = "20261202T000000.000000Z"
    path = tmp_path / "recordings" / f"case-{case_id}" / stamp / "applicant-1.webm"
    log = SegmentLog(functools.partial(append_segment, db, case_id, f"case-{case_id}"))
    recorder = Recorder(path, audio=False)
    recorder.segment_s = 2.0
    recorder.on_segment = functools.partial(log.mark, "applicant-1", path)
    t0 = 1_800_000_000.0
    for number, packet in enumerate(encode_moving(0, 200)):
        recorder.write("video", packet, t0 + number / 30 + (3.0 if number >= 100 else 0.0))
    result = recorder.close()
    await log.drain()
    async with db.begin() as session:
        await register_recording(
            session,
            blobs,
            case_id=case_id,
            session_ref=f"case-{case_id}",
            participant="applicant-1",
            participant_role="applicant",
            path=path,
            started_at=dt.datetime.fromtimestamp(t0, dt.UTC),
            ended_at=dt.datetime.now(dt.UTC),
            duration_s=result.duration,
        )
    return path


async def breaks_of(db: Db, blobs: BlobStore, case_id: int) -> list[str]:
    async with db() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        events = await load_events(session, case_id)
    return [f"{b.seq}: {b.reason}" for b in (await verify(case, events, blobs)).breaks]


async def test_segments_cover_the_file_and_a_flipped_byte_names_its_segment(
    db: Db, blobs: BlobStore, tmp_path: Path
) -> None:
    case_id = await new_case(db)
    await record_take(db, blobs, tmp_path, case_id)
    async with db() as session:
        events = [export_event(e) for e in await load_events(session, case_id)]
        case = await session.get(Case, case_id)
        assert case is not None
        view = await case_file(session, case, ADMIN)
    segments = [e["data"] for e in events if e["kind"] == KIND]
    assert [s["index"] for s in segments] == list(range(len(segments)))
    assert len(segments) >= 4
    reasons = [s["reason"] for s in segments]
    assert reasons[-1] == "ended" and segments[-1]["final"] is True
    assert "network" in reasons
    (pause,) = [s for s in segments if s["reason"] == "network"]
    assert 2.9 < pause["pause_s"] < 3.1
    for before, after in itertools.pairwise(segments):
        assert before["bytes"][1] == after["bytes"][0]
    assert segments[0]["bytes"][0] == segments[-1]["header"]["bytes"][1]
    # Every video frame is in exactly one segment, in order.
    assert segments[0]["frames"][0] == 1 and segments[-1]["frames"][1] == 200
    (rec,) = view["recordings"]
    assert rec["take"]["segments"] == len(segments) and rec["take"]["ended"] == "ended"
    assert [i["reason"] for i in rec["take"]["interruptions"]] == ["network"]
    assert await breaks_of(db, blobs, case_id) == []

    # The bundle verifies offline, segments included; a byte flipped in its copy is named.
    bundle = tmp_path / "case.zip"
    now = dt.datetime.now(dt.UTC)
    await export_case(db, blobs, case_id, target=bundle, timezone="Asia/Shanghai", now=now)
    assert verify_bundle(bundle).ok, verify_bundle(bundle).problems

    blob = blobs.path(events[-1]["data"]["blobs"][0]["key"])
    third = segments[2]
    data = bytearray(blob.read_bytes())
    at = (third["bytes"][0] + third["bytes"][1]) // 2
    data[at] ^= 0xFF
    blob.write_bytes(bytes(data))
    found = await breaks_of(db, blobs, case_id)
    named = [b for b in found if "segment 2 " in b]
    assert len(named) == 1, found
    assert f"bytes {third['bytes'][0]}–{third['bytes'][1]}" in named[0]
    assert "differ from their hash" in named[0]

    # The same flip in a bundle's copy (the export itself refuses a tampered blob).
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith(".webm"):
                body = bytes(data)
            dst.writestr(info, body)
    problems = [str(p) for p in verify_bundle(tampered).problems]
    named = [p for p in problems if "segment 2 " in p]
    assert len(named) == 1 and "differ from their hash" in named[0], problems
    shutil.rmtree(tmp_path / "recordings", ignore_errors=True)
