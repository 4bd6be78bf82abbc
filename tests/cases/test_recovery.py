"""Nothing unfiled: what a killed process recorded is filed on its case at the next start."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
from pathlib import Path
from typing import Any

import av
from aiohttp import DummyCookieJar

from recordings.cli_verify import verify_case_number
from recordings.recovery import RECORDINGS, STAMP
from server.app import create_app
from server.settings import Settings
from tests.cases.conftest import Client, new_case
from tests.support import staff_headers

ROOT = Path(__file__).resolve().parents[2]


async def record_until_killed(path: Path, seconds: float, *database: str) -> None:
    """The real relay and Recorder in a child process, SIGKILLed mid-recording."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests" / "recordings" / "record_child.py"),
        str(path),
        *database,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"recording"
        await asyncio.sleep(seconds)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL


async def test_killed_recording_is_reported_then_filed_at_start_up(
    client: Client, aiohttp_client: Any, evidence_settings: Settings
) -> None:
    inspector = await staff_headers(client, "inspector", "inspector")
    case_id = await new_case(client, staff=["inspector"])
    stamp = dt.datetime.now(dt.UTC).strftime(STAMP)
    room = evidence_settings.data_dir / RECORDINGS / f"case-{case_id}" / stamp
    await record_until_killed(room / "applicant-1.webm", 4.0)

    # Before a restart the case does not hold the file, and verification says so.
    r = await client.get(f"/api/v1/cases/{case_id}/verify", headers=inspector)
    report = await r.json()
    assert not report["ok"]
    assert [b["reason"] for b in report["breaks"]] == [
        f"recording case-{case_id}/{stamp}/applicant-1.webm is on disk but not filed on the case"
    ]
    r = await client.get(f"/api/v1/cases/{case_id}", headers=inspector)
    number = (await r.json())["number"]
    cli = await verify_case_number(evidence_settings, number)
    assert cli is not None and len(cli["breaks"]) == 1 and "not filed" in cli["breaks"][0]

    # The next start (same database and data directory) files it, marked incomplete,
    # with what the file still holds.
    restarted = await aiohttp_client(create_app(evidence_settings), cookie_jar=DummyCookieJar())
    r = await restarted.get(f"/api/v1/cases/{case_id}", headers=inspector)
    case = await r.json()
    (rec,) = case["recordings"]
    assert rec["status"] == "incomplete" and rec["participant"] == "applicant-1"
    assert rec["duration_s"] > 4.0 - 2.0
    (event,) = [e for e in case["timeline"] if e["kind"] == "recording.recovered"]
    assert event["data"]["complete"] is False and event["data"]["cause"] == "server_restart"
    assert [blob["sha256"] for blob in event["data"]["blobs"]] == [rec["sha256"]]
    assert not (evidence_settings.data_dir / RECORDINGS / f"case-{case_id}").exists()

    r = await restarted.get(rec["url"], headers=inspector)
    assert r.status == 200 and r.content_type == "video/webm"
    played = evidence_settings.data_dir / "played.webm"
    played.write_bytes(await r.read())
    with av.open(str(played)) as container:
        assert container.streams.video[0].width == 640
        frames = sum(1 for _ in container.decode(video=0))
    assert frames > (4.0 - 2.0) * 25

    r = await restarted.get(f"/api/v1/cases/{case_id}/verify", headers=inspector)
    assert (await r.json())["ok"]
    cli = await verify_case_number(evidence_settings, number)
    assert cli is not None and cli["breaks"] == []


async def test_killed_take_is_closed_on_the_chain_with_server_restart(
    client: Client, aiohttp_client: Any, evidence_settings: Settings
) -> None:
    """The child puts a segment on the chain every second until it is killed; the restart
    closes the take with ``server_restart`` and the recovered file verifies segment by
    segment."""
    inspector = await staff_headers(client, "inspector", "inspector")
    case_id = await new_case(client, staff=["inspector"])
    stamp = dt.datetime.now(dt.UTC).strftime(STAMP)
    room_id = f"case-{case_id}"
    path = evidence_settings.data_dir / RECORDINGS / room_id / stamp / "applicant-1.webm"
    url = evidence_settings.effective_database_url
    await record_until_killed(path, 4.0, url, str(case_id), room_id)

    r = await client.get(f"/api/v1/cases/{case_id}", headers=inspector)
    before = [e["data"] for e in (await r.json())["timeline"] if e["kind"] == "recording.segment"]
    assert len(before) >= 2 and not any(s["final"] for s in before)

    restarted = await aiohttp_client(create_app(evidence_settings), cookie_jar=DummyCookieJar())
    r = await restarted.get(f"/api/v1/cases/{case_id}", headers=inspector)
    case = await r.json()
    segments = [e["data"] for e in case["timeline"] if e["kind"] == "recording.segment"]
    assert segments[: len(before)] == before
    last = segments[-1]
    assert last["final"] is True and last["reason"] == "server_restart"
    assert last["bytes"][0] == before[-1]["bytes"][1]
    (rec,) = case["recordings"]
    assert rec["status"] == "incomplete"
    assert rec["take"]["ended"] == "server_restart"
    assert rec["take"]["interruptions"][-1]["reason"] == "server_restart"
    r = await restarted.get(f"/staff/cases/{case_id}", headers=inspector)
    assert "因服务重启中断" in await r.text()
    r = await restarted.get(f"/api/v1/cases/{case_id}/verify", headers=inspector)
    assert (await r.json())["ok"]
