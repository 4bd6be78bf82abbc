"""The evidence API end to end over HTTP, with real VP8 packets and a real database."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import text

from recordings.bundle import verify_bundle
from server.appkeys import BLOBS, DB
from tests.cases.conftest import SESSIONS_KEY, Client, EncodedSession, new_case
from tests.recordings.pattern import QUADRANTS, as_rtp_payloads, close, encode, shade_of
from tests.support import applicant_headers, staff_headers

MOBILE = "13800138000"
OTHER = "13900139000"


async def setup_case(client: Client) -> tuple[int, dict[str, str], dict[str, str]]:
    inspector = await staff_headers(client, "inspector", "inspector")
    applicant = await applicant_headers(client, MOBILE)
    case_id = await new_case(client, applicant_mobile=MOBILE, staff=["inspector"])
    client.app[SESSIONS_KEY]["room-1"] = EncodedSession(
        case_id, {"applicant-1": as_rtp_payloads(encode(6))}
    )
    return case_id, inspector, applicant


async def test_snapshot_shows_the_pattern_and_is_on_the_record(client: Client) -> None:
    case_id, inspector, applicant = await setup_case(client)
    r = await client.post(
        f"/api/v1/cases/{case_id}/location",
        json={"lat": 30.6, "lon": 104.0, "accuracy": 12},
        headers=applicant,
    )
    assert r.status == 201, await r.text()
    r = await client.post(
        "/api/v1/sessions/room-1/snapshots", json={"checklist_item": "仓储条件"}, headers=inspector
    )
    assert r.status == 201, await r.text()
    shot = await r.json()
    assert shot["participant"] == "applicant-1" and len(shot["watermarked"]["sha256"]) == 64

    r = await client.get(shot["original"]["url"], headers=inspector)
    original = Image.open(io.BytesIO(await r.read())).convert("RGB")
    assert original.size == (640, 480)
    assert close(original.getpixel((480, 120)), QUADRANTS[1]) and close(
        original.getpixel((48, 48)), (shade_of(5),) * 3
    )
    r = await client.get(shot["watermarked"]["url"], headers=applicant)
    assert r.status == 200 and r.content_type == "image/jpeg"
    marked = Image.open(io.BytesIO(await r.read())).convert("RGB")
    assert close(marked.getpixel((480, 120)), QUADRANTS[1])
    # The band at the bottom differs from the original (text over a darkened strip).
    band_pixels = [marked.getpixel((x, 470)) for x in range(0, 640, 8)]
    assert (
        sum(
            1
            for p, x in zip(band_pixels, range(0, 640, 8), strict=True)
            if not close(p, original.getpixel((x, 470)))
        )
        > 40
    )
    # Applicants do not get the original frame.
    r = await client.get(shot["original"]["url"], headers=applicant)
    assert r.status == 404

    r = await client.get(f"/api/v1/cases/{case_id}/timeline", headers=inspector)
    kinds = [e["kind"] for e in (await r.json())["events"]]
    assert kinds == ["case.opened", "location.shared", "snapshot.taken"]
    r = await client.get(f"/api/v1/cases/{case_id}/verify", headers=inspector)
    report = await r.json()
    assert report["ok"] is True and report["blobs"] == 2 and report["first_break"] is None


async def test_no_video_is_a_clear_error(client: Client) -> None:
    case_id, inspector, _ = await setup_case(client)
    client.app[SESSIONS_KEY]["room-2"] = EncodedSession(case_id, {"applicant-1": []})
    r = await client.post("/api/v1/sessions/room-2/snapshots", json={}, headers=inspector)
    assert r.status == 409
    assert (await r.json())["error"]["code"] == "no_video"
    r = await client.post("/api/v1/sessions/nope/snapshots", json={}, headers=inspector)
    assert r.status == 404


async def test_only_inspectors_take_snapshots(client: Client) -> None:
    _, _, applicant = await setup_case(client)
    r = await client.post("/api/v1/sessions/room-1/snapshots", json={}, headers=applicant)
    assert r.status == 403


async def test_another_applicant_cannot_read_the_case(client: Client) -> None:
    case_id, inspector, applicant = await setup_case(client)
    r = await client.post("/api/v1/sessions/room-1/snapshots", json={}, headers=inspector)
    shot = await r.json()
    stranger = await applicant_headers(client, OTHER)
    for url in (
        f"/api/v1/cases/{case_id}",
        f"/api/v1/cases/{case_id}/timeline",
        shot["watermarked"]["url"],
    ):
        r = await client.get(url, headers=stranger)
        assert r.status == 404, url
    r = await client.post(
        f"/api/v1/cases/{case_id}/location", json={"lat": 1, "lon": 1}, headers=stranger
    )
    assert r.status == 404
    for url in (f"/api/v1/cases/{case_id}/verify", f"/api/v1/cases/{case_id}/export"):
        r = await client.get(url, headers=applicant)
        assert r.status == 403, url
    # A member of staff who is not a party of the case (and not a supervisor) gets 404 too.
    other_staff = await staff_headers(client, "other", "inspector")
    r = await client.get(f"/api/v1/cases/{case_id}", headers=other_staff)
    assert r.status == 404
    r = await client.get(f"/api/v1/cases/{case_id}", headers=applicant)
    assert r.status == 200 and "recordings" not in await r.json()


async def test_checklist_decision_annotation_export(client: Client, tmp_path: Path) -> None:
    case_id, inspector, _ = await setup_case(client)
    shot = await (
        await client.post("/api/v1/sessions/room-1/snapshots", json={}, headers=inspector)
    ).json()
    r = await client.post(
        f"/api/v1/snapshots/{shot['id']}/annotations",
        json={"shapes": [{"type": "arrow", "from": [10, 10], "to": [200, 200]}]},
        headers=inspector,
    )
    assert r.status == 201 and (await r.json())["annotated"]["sha256"]
    r = await client.post(
        f"/api/v1/snapshots/{shot['id']}/annotations",
        json={"shapes": [{"type": "arrow", "from": [10, 10], "to": [2000, 200]}]},
        headers=inspector,
    )
    assert r.status == 422 and (await r.json())["error"]["code"] == "invalid_annotation"
    r = await client.post(
        f"/api/v1/cases/{case_id}/checklist",
        json={
            "item": "仓储条件",
            "result": "problem",
            "note": "通风不足",
            "snapshot_ids": [shot["id"]],
        },
        headers=inspector,
    )
    assert r.status == 201, await r.text()
    r = await client.post(
        f"/api/v1/cases/{case_id}/decision", json={"outcome": "rectify"}, headers=inspector
    )
    assert r.status == 422 and set((await r.json())["error"]["fields"]) == {
        "requirements",
        "reason",
    }
    r = await client.post(
        f"/api/v1/cases/{case_id}/decision",
        json={
            "outcome": "rectify",
            "reason": "仓储通风不足",
            "requirements": "加装排风扇",
            "deadline": "2099-01-01",
        },
        headers=inspector,
    )
    assert r.status == 201
    # No matter, so no internal review: the decision is in force and the case rectifying.
    assert (await r.json())["state"] == "rectifying"
    r = await client.get(f"/api/v1/cases/{case_id}/export", headers=inspector)
    assert r.status == 200 and r.content_type == "application/zip"
    bundle = tmp_path / "case.zip"
    bundle.write_bytes(await r.read())
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    names = zipfile.ZipFile(bundle).namelist()
    assert "report.pdf" in names and "manifest.json" in names
    assert sum(n.startswith("media/snapshots/") for n in names) == 2


async def test_tampered_blob_is_reported_by_the_api(client: Client) -> None:
    case_id, inspector, _ = await setup_case(client)
    shot = await (
        await client.post("/api/v1/sessions/room-1/snapshots", json={}, headers=inspector)
    ).json()
    blobs = client.app[BLOBS]
    key = next(p for p in blobs.root.rglob("*.jpg"))
    key.write_bytes(b"edited")
    r = await client.get(f"/api/v1/cases/{case_id}/verify", headers=inspector)
    report: dict[str, Any] = await r.json()
    assert report["ok"] is False
    assert (
        report["first_break"]["seq"] == 2 and "sha256 mismatch" in report["first_break"]["reason"]
    )
    r = await client.get(f"/api/v1/cases/{case_id}/export", headers=inspector)
    assert r.status == 422
    assert shot


async def test_case_pages_by_role(client: Client) -> None:
    case_id, inspector, applicant = await setup_case(client)
    await client.post("/api/v1/sessions/room-1/snapshots", json={}, headers=inspector)
    r = await client.get(f"/staff/cases/{case_id}", headers=inspector)
    html = await r.text()
    assert r.status == 200 and "verify-case" in html and 'id="recordings"' in html
    r = await client.get(f"/me/cases/{case_id}", headers=applicant)
    html = await r.text()
    assert r.status == 200 and "share-location" in html and 'id="recordings"' not in html
    assert "/original" not in html
    r = await client.get(f"/me/cases/{case_id}", headers=await applicant_headers(client, OTHER))
    assert r.status == 404


async def test_console_has_the_evidence_panel_for_inspectors_only(client: Client) -> None:
    from signaling.handlers import SIGNER
    from signaling.tokens import JoinGrant

    case_id, inspector_login, _ = await setup_case(client)
    expert_login = await staff_headers(client, "expert", "inspector")
    signer = client.app[SIGNER]
    room = f"case-{case_id}"
    # Console links open for the staff member they name, logged in (docs/signaling.md).
    inspector = signer.issue(JoinGrant(room, "staff-1", "inspector", "王勘验"), ttl=600)
    r = await client.get(f"/live/j/{inspector}", headers=inspector_login)
    html = await r.text()
    assert r.status == 200 and 'id="evidence"' in html and "evidence/console.js" in html
    assert "截图取证" in html or "Take snapshot" in html
    expert = signer.issue(JoinGrant(room, "staff-2", "expert", "专家"), ttl=600)
    r = await client.get(f"/live/j/{expert}", headers=expert_login)
    assert r.status == 200 and 'id="evidence"' not in await r.text()


async def test_edited_decision_row_is_reported_by_the_api_and_pages_show_the_chain(
    client: Client,
) -> None:
    case_id, inspector, applicant = await setup_case(client)
    r = await client.post(
        f"/api/v1/cases/{case_id}/decision",
        json={"outcome": "fail", "reason": "无仓储条件"},
        headers=inspector,
    )
    assert r.status == 201, await r.text()
    r = await client.get(f"/api/v1/cases/{case_id}/verify", headers=inspector)
    assert (await r.json())["ok"] is True
    async with client.app[DB].begin() as session:  # a quiet edit in the database
        await session.execute(
            text("UPDATE evidence_decisions SET outcome = 'pass', reason = '' WHERE case_id = :c"),
            {"c": case_id},
        )
    r = await client.get(f"/api/v1/cases/{case_id}/verify", headers=inspector)
    report: dict[str, Any] = await r.json()
    assert report["ok"] is False
    seq = next(e["seq"] for e in report_timeline(await client_case(client, case_id, inspector)))
    assert report["first_break"]["seq"] == seq
    assert "outcome is 'pass' in the table, 'fail' on the chain" in report["first_break"]["reason"]
    for headers in (inspector, applicant):
        case = await client_case(client, case_id, headers)
        assert case["decision"]["outcome"] == "fail" and case["decision"]["reason"] == "无仓储条件"
    page = await (await client.get(f"/staff/cases/{case_id}", headers=inspector)).text()

    assert 'class="decision decision-fail"><strong>不通过</strong>' in page


async def client_case(client: Client, case_id: int, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.get(f"/api/v1/cases/{case_id}", headers=headers)
    assert r.status == 200
    case: dict[str, Any] = await r.json()
    return case


def report_timeline(case: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in case["timeline"] if e["kind"] == "decision.recorded"]
