"""Every fact on the chain: a quietly edited side row is a break at its event, in verify
(API and CLI) and in the exported bundle, and the procedure refuses to act on it."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import text

from recordings.bundle import verify_bundle
from recordings.cli_verify import verify_case_number
from recordings.errors import RecordTamperedError
from recordings.evidence import record_decision, record_location, set_site
from recordings.location import GeoFix
from server.accounts.principal import Principal
from server.appkeys import DB, SETTINGS
from server.cases.models import Case
from server.cases.workflow import current_decision
from tests.cases.conftest import Client
from tests.letters.flow import make_world

INSPECTOR = Principal(kind="staff", id=1, role="inspector", name="王勘验")
RECORD = {"kind": "commitment", "fields": {"enterprise_name": "丰禾种业有限公司"}}


async def breaks(client: Client, case_id: int, headers: dict[str, str]) -> list[str]:
    r = await client.get(f"/api/v1/cases/{case_id}/verify", headers=headers)
    assert r.status == 200
    return [f"{b['seq']}: {b['reason']}" for b in (await r.json())["breaks"]]


async def bundle_problems(
    client: Client, case_id: int, headers: dict[str, str], tmp: Path
) -> list[str]:
    r = await client.get(f"/api/v1/cases/{case_id}/export", headers=headers)
    assert r.status == 200
    target = tmp / f"export-{dt.datetime.now().timestamp()}.zip"
    target.write_bytes(await r.read())
    with zipfile.ZipFile(target) as zf:
        assert "manifest.json" in zf.namelist()
    return [str(p) for p in verify_bundle(target).problems]


async def test_edited_location_site_and_document_rows_are_breaks_at_their_events(
    client: Client, tmp_path: Path
) -> None:
    world = await make_world(client)
    headers = world.inspector.headers
    r = await client.post(f"/api/v1/cases/{world.case_id}/letters", json=RECORD, headers=headers)
    assert r.status == 201, await r.text()
    letter = await r.json()
    async with client.app[DB].begin() as session:
        case = await session.get(Case, world.case_id)
        assert case is not None
        await set_site(
            session,
            case,
            by=INSPECTOR,
            address="仁和街道种业路 18 号",
            site=GeoFix(30.4, 120.1),
            threshold_m=300.0,
        )
        location = await record_location(
            session, case, by=INSPECTOR, participant="applicant-1", fix=GeoFix(30.401, 120.1, 8.0)
        )
        location_id = location.id
    assert await breaks(client, world.case_id, headers) == []
    assert await bundle_problems(client, world.case_id, headers, tmp_path) == []

    async with client.app[DB].begin() as session:
        await session.execute(
            text("UPDATE evidence_locations SET flagged = :f, lat = 30.4 WHERE id = :i"),
            {"f": True, "i": location_id},
        )
        await session.execute(text("UPDATE evidence_sites SET threshold_m = 5000"))
        await session.execute(
            text("UPDATE letters SET pdf_sha256 = :h WHERE id = :i"),
            {"h": "0" * 64, "i": letter["id"]},
        )
    found = await breaks(client, world.case_id, headers)
    events = (await (await client.get(f"/api/v1/cases/{world.case_id}", headers=headers)).json())[
        "timeline"
    ]
    seq = {e["kind"]: e["seq"] for e in events}
    lat = f"{seq['location.shared']}: location {location_id}: lat is 30.4 in the table"
    assert f"{lat}, 30.401 on the chain" in found
    assert any(b.startswith(f"{seq['site.set']}: site: threshold_m is 5000") for b in found), found
    assert any(
        b.startswith(f"{seq['letter.issued']}: letter {letter['id']}: pdf_sha256 is '{'0' * 64}'")
        for b in found
    ), found
    cli = await verify_case_number(client.app[SETTINGS], world.case_number)
    assert cli is not None and any("location" in b and "flagged" in b for b in cli["breaks"])
    problems = await bundle_problems(client, world.case_id, headers, tmp_path)
    assert any(p.startswith(f"timeline seq {seq['site.set']}: site: threshold_m") for p in problems)
    assert any(f"letter {letter['id']}: pdf_sha256" in p for p in problems), problems


async def test_the_procedure_refuses_an_edited_decision_row(client: Client) -> None:
    """workflow.current_decision reads the decision through the chain: an edited row is a
    409 ``record_tampered`` naming the event, never acted on."""
    world = await make_world(client)
    async with client.app[DB].begin() as session:
        case = await session.get(Case, world.case_id)
        assert case is not None
        decision = await record_decision(
            session,
            case,
            by=INSPECTOR,
            outcome="fail",
            requirements="",
            deadline=None,
            today=dt.date.today(),
            reason="场地不符",
        )
        decision_id = decision.id
    async with client.app[DB]() as session:
        row = await current_decision(session, world.case_id)
        assert row is not None and row.id == decision_id
    async with client.app[DB].begin() as session:
        await session.execute(
            text("UPDATE evidence_decisions SET outcome = 'pass' WHERE id = :i"),
            {"i": decision_id},
        )
    async with client.app[DB]() as session:
        with pytest.raises(RecordTamperedError) as caught:
            await current_decision(session, world.case_id)
    events = (
        await (
            await client.get(f"/api/v1/cases/{world.case_id}", headers=world.inspector.headers)
        ).json()
    )["timeline"]
    (recorded,) = [e for e in events if e["kind"] == "decision.recorded"]
    assert caught.value.params == {"seq": recorded["seq"]}
    assert caught.value.status == 409 and caught.value.code == "record_tampered"
    found = await breaks(client, world.case_id, world.inspector.headers)
    edited = f"{recorded['seq']}: decision {decision_id}: outcome is 'pass' in the table"
    assert f"{edited}, 'fail' on the chain" in found
