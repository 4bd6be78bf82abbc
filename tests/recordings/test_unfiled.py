"""The periodic unfiled-files check, on real files: a filed recording and a snapshot-less
store are quiet; a room's leftover no case holds, a blob no row names are reported (log,
gauge, ``/readyz``); a file a recorder still writes or that just closed is not."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from recordings.evidence import register_recording
from recordings.recorder import Recorder
from recordings.recovery import RECORDINGS
from server.app import create_app
from server.appkeys import BLOBS, DB, METRICS
from server.cases.numbers import open_case
from server.evidence import FIRST_UNFILED_CHECK, check_unfiled
from server.settings import Settings
from tests.recordings.pattern import encode_moving

HOUR_AGO = time.time() - 3600


def record(path: Path, frames: int = 10) -> Recorder:
    recorder = Recorder(path, audio=False)
    for number, packet in enumerate(encode_moving(0, frames)):
        recorder.write("video", packet, 1000.0 + number / 30, frame=number)
    return recorder


def age(path: Path) -> None:
    os.utime(path, (HOUR_AGO, HOUR_AGO))


async def test_files_no_case_holds_are_reported(
    aiohttp_client: Any, sqlite_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert sqlite_settings.unfiled_check_s == 3600 and FIRST_UNFILED_CHECK == 60
    app = create_app(sqlite_settings)
    client = await aiohttp_client(app)
    data = sqlite_settings.data_dir
    rooms = data / RECORDINGS
    stamp = "20261202T000000.000000Z"

    # Filed properly: moved into the store, its row names the blob.
    filed = rooms / "case-1" / stamp / "applicant-1.webm"
    record(filed).close()
    async with app[DB].begin() as session:
        case = await open_case(session, title="勘验", zone=sqlite_settings.zone)
        now = dt.datetime.now(dt.UTC)
        row = await register_recording(
            session,
            app[BLOBS],
            case_id=case.id,
            session_ref=f"case-{case.id}",
            participant="applicant-1",
            participant_role="applicant",
            path=filed,
            started_at=now,
            ended_at=now,
            duration_s=0.3,
        )
        assert row.blob_key
    age(app[BLOBS].path(row.blob_key))

    # A room no case owns left its file; a filing's blob whose row never committed.
    stray = rooms / "appt-77" / stamp / "expert-3.webm"
    record(stray).close()
    age(stray)
    orphan = await app[BLOBS].put(b"\x1a\x45\xdf\xa3 lost", suffix=".webm", kind="recording")
    age(app[BLOBS].path(orphan.key))
    # Not (yet) unfiled: a recorder still writing (its flock held), a file that just closed.
    writing = record(rooms / "case-9" / stamp / "applicant-2.webm")
    age(writing.path)
    fresh = rooms / "case-9" / stamp / "inspector-1.webm"
    record(fresh).close()

    caplog.set_level(logging.WARNING, "server.evidence")
    try:
        report = await check_unfiled(app)
    finally:
        writing.close()
    assert report.recordings == [f"{RECORDINGS}/appt-77/{stamp}/expert-3.webm"]
    assert report.blobs == [app[BLOBS].path(orphan.key).relative_to(data).as_posix()]
    assert report.count == 2
    warned = [r.getMessage() for r in caplog.records if "no case holds" in r.getMessage()]
    assert len(warned) == 1 and "appt-77" in warned[0]
    assert any(orphan.key in r.getMessage() for r in caplog.records)

    scraped = generate_latest(app[METRICS].registry).decode()
    assert 'yunkan_unfiled_files{place="recordings"} 1.0' in scraped
    assert 'yunkan_unfiled_files{place="blobs"} 1.0' in scraped
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 200 and body["unfiled"]["files"] == 2
    assert "appt-77" not in await r.text()  # public: the count, the paths are in the log

    # Filed at last (the store deleted, the room's file moved): the next run is clean.
    app[BLOBS].path(orphan.key).unlink()
    stray.unlink()
    report = await check_unfiled(app)
    assert report.count == 0
    assert (
        'yunkan_unfiled_files{place="blobs"} 0.0' in generate_latest(app[METRICS].registry).decode()
    )


async def test_the_check_runs_by_itself_soon_after_start(
    aiohttp_client: Any, sqlite_settings: Settings
) -> None:
    """With the background tasks on, the first run comes ``min(60 s, interval)`` after
    start, then every interval: here 1 s, so a stray file shows on ``/readyz`` by itself."""
    settings = Settings.for_tests(
        sqlite_settings.data_dir, background_tasks=True, unfiled_check_s=1
    )
    stray = settings.data_dir / RECORDINGS / "case-404" / "x" / "applicant-1.webm"
    record(stray).close()
    age(stray)
    client = await aiohttp_client(create_app(settings))
    r = await client.get("/readyz")
    assert "unfiled" not in await r.json()  # not run yet: start-up is not slowed by it
    for _ in range(50):
        body = await (await client.get("/readyz")).json()
        if "unfiled" in body:
            break
        await asyncio.sleep(0.1)
    assert body["unfiled"]["files"] == 1
    stray.unlink()
    for _ in range(30):
        body = await (await client.get("/readyz")).json()
        if body["unfiled"]["files"] == 0:
            break
        await asyncio.sleep(0.1)
    assert body["unfiled"]["files"] == 0  # and again an interval later
