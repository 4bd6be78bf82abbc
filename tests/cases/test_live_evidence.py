"""End to end through the real server: a live session over WebSocket + aiortc yields a
snapshot, a location with its distance flag, a filed recording and a verifiable export."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from PIL import Image

from recordings.bundle import verify_bundle
from server.accounts.service import add_user
from server.appkeys import DB
from server.cases.models import CaseParty
from server.settings import Settings
from signaling.client import PATTERN_BARS, MediaClient
from signaling.handlers import LiveOptions
from signaling.wsclient import SignalingClient
from tests.recordings.pattern import close
from tests.signaling.conftest import LOOPBACK, LiveServer, running_live


class LocatingPhone(SignalingClient):
    """A phone that answers "share location" with a fix (~11 km from the site below)."""

    async def _handle(self, message: dict[str, Any]) -> None:
        if message["type"] == "request" and message["kind"] == "location":
            fix = {"lat": 30.9, "lon": 103.9, "accuracy": 25}
            await self.send({"type": "response", "id": message["id"], "ok": True, "data": fix})
            return
        await super()._handle(message)


@pytest.fixture
async def live(evidence_settings: Settings) -> AsyncIterator[LiveServer]:
    options = LiveOptions(grace=5.0, host_addresses=LOOPBACK)
    async with running_live(evidence_settings, options) as state:
        yield state


async def inspector_api(server: TestServer, case_id: int) -> tuple[aiohttp.ClientSession, int]:
    async with server.app[DB].begin() as session:
        user = await add_user(
            session,
            username="wang",
            password="correct-horse-1",
            role="inspector",
            display_name="王勘验",
        )
        session.add(
            CaseParty(
                case_id=case_id, principal_kind="staff", principal_id=user.id, role="inspector"
            )
        )
        user_id = user.id
    http = aiohttp.ClientSession(
        base_url=str(server.make_url("/")), cookie_jar=aiohttp.DummyCookieJar()
    )
    r = await http.post(
        "/api/v1/auth/login", json={"username": "wang", "password": "correct-horse-1"}
    )
    assert r.status == 200, await r.text()
    http.headers["Authorization"] = f"Bearer {(await r.json())['token']}"
    return http, user_id


async def test_live_session_to_verified_bundle(live: LiveServer, tmp_path: Path) -> None:
    http, user_id = await inspector_api(live.server, live.case_id)
    try:
        case = f"/api/v1/cases/{live.case_id}"
        r = await http.put(
            f"{case}/site",
            json={"address": "郫都区", "lat": 30.8, "lon": 103.9, "threshold_m": 1000},
        )
        assert r.status == 200, await r.text()

        inspector = live.client(f"staff-{user_id}", "inspector", auto_admit=True, source=None)
        await inspector.connect()
        applicant = LocatingPhone(
            live.ws_url,
            live.token("applicant-2", "applicant"),
            media=MediaClient(host_addresses=LOOPBACK),
        )
        live.clients.append(applicant)
        await applicant.connect()
        await inspector.media.wait_for_video("applicant-2", frames=30, within=20)

        r = await http.post(
            f"/api/v1/sessions/{live.room}/snapshots", json={"checklist_item": "厂房"}
        )
        assert r.status == 201, await r.text()
        shot: dict[str, Any] = await r.json()
        assert shot["participant"] == "applicant-2"
        original = Image.open(
            io.BytesIO(await (await http.get(shot["original"]["url"])).read())
        ).convert("RGB")
        for index, colour in enumerate(PATTERN_BARS):
            assert close(original.getpixel((index * 80 + 40, 60)), colour, 30)

        await inspector.send({"type": "request", "kind": "location", "to": "applicant-2"})
        for _ in range(50):
            locations = (await (await http.get(case)).json())["locations"]
            if locations:
                break
            await asyncio.sleep(0.1)
        assert locations[0]["flagged"] is True and locations[0]["distance_m"] > 10_000

        await inspector.send({"type": "end"})
        await applicant.wait_state("ended")
        for _ in range(100):
            recordings = (await (await http.get(case)).json())["recordings"]
            if recordings:
                break
            await asyncio.sleep(0.1)
        (recording,) = recordings
        assert recording["participant"] == "applicant-2" and recording["duration_s"] > 1.0
        # Live's SegmentLog closed the take on the chain before the file was filed.
        assert recording["take"]["ended"] == "ended" and recording["take"]["segments"] >= 1

        report = await (await http.get(f"{case}/verify")).json()
        assert report["ok"] is True, report
        r = await http.get(f"{case}/export")
        assert r.status == 200
        bundle = tmp_path / "case.zip"
        bundle.write_bytes(await r.read())
        checked = verify_bundle(bundle)
        assert checked.ok, checked.problems
        names = zipfile.ZipFile(bundle).namelist()
        assert any(n.startswith("media/recordings/") and n.endswith(".webm") for n in names)
    finally:
        await http.close()
