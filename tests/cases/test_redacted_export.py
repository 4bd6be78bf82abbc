"""The redacted export: names, ID numbers, mobiles and IPs masked, media untouched, the
redaction on the chain, and the copy verifiable offline for what it can still prove."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from recordings.bundle import verify_bundle
from recordings.evidence import record_checklist, store_snapshot
from recordings.snapshots import WatermarkInfo, take_snapshot
from server.accounts.principal import Principal
from server.appkeys import BLOBS, DB
from server.cases.models import Case
from tests.cases.conftest import Client
from tests.letters.flow import data_url, make_world
from tests.recordings.pattern import as_rtp_payloads, encode

INSPECTOR = Principal(kind="staff", id=1, role="inspector", name="李娜")
FIELDS = {"enterprise_name": "丰禾种业有限公司", "site_address": "余杭区仁和街道种业路 18 号"}


def pdf_text(data: bytes) -> str:
    out = subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True)
    return "".join(out.stdout.decode().split())


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
async def test_redacted_export_masks_people_and_keeps_the_evidence(
    client: Client, tmp_path: Path
) -> None:
    world = await make_world(client)
    headers = world.inspector.headers
    r = await client.post(
        f"/api/v1/cases/{world.case_id}/letters",
        json={"kind": "commitment", "fields": FIELDS},
        headers=headers,
    )
    assert r.status == 201, await r.text()
    letter = await r.json()
    r = await client.post(
        f"/api/v1/letters/{letter['id']}/sign",
        json={"signature": data_url(), "consent": True},
        headers=world.applicant.headers,
    )
    assert r.status == 200, await r.text()
    async with client.app[DB].begin() as session:
        case = await session.get(Case, world.case_id)
        assert case is not None
        now = dt.datetime.now(dt.UTC)
        info = WatermarkInfo(now, "Asia/Shanghai", case.number, "种子", INSPECTOR.name)
        shot = await store_snapshot(
            session,
            client.app[BLOBS],
            case=case,
            session_ref=f"case-{case.id}",
            participant="applicant-1",
            taken_by=INSPECTOR,
            images=take_snapshot(as_rtp_payloads(encode(3, 320, 240)), info),
            checklist_item="仓储条件",
            location=None,
            taken_at=now,
        )
        original_sha = shot.original_sha256
        await record_checklist(
            session,
            case,
            by=INSPECTOR,
            item="仓储条件",
            result="problem",
            note="张伟称电话 13800138000，身份证 110101199003071234",
            snapshot_ids=[shot.id],
        )

    r = await client.get(f"/api/v1/cases/{world.case_id}/export/redacted", headers=headers)
    assert r.status == 200 and r.content_type == "application/zip"
    bundle = tmp_path / "redacted.zip"
    bundle.write_bytes(await r.read())

    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        manifest_text = zf.read("manifest.json").decode()
        manifest = json.loads(manifest_text)
        report = pdf_text(zf.read("report.pdf"))
        copies = [n for n in names if n.startswith("letters/redacted/")]
        assert len(copies) == 1
        copy = pdf_text(zf.read(copies[0]))
        media = {n: hashlib.sha256(zf.read(n)).hexdigest() for n in names if n.startswith("media/")}
    # Nobody's name, mobile, ID number or IP address is left, anywhere in the copy.
    for secret in ("张伟", "李娜", "13800138000", "110101199003071234", "IP：127.0.0.1"):
        assert secret not in manifest_text, secret
        assert secret not in report and secret not in copy, secret
    assert "张*" in manifest_text and "138****8000" in manifest_text
    # (The QR link's host is the agency's address, not a person's: it stays.)
    assert "IP：127.0.*.*" in copy and "脱敏副本" in copy and "丰禾种业有限公司" in copy
    # No sealed original and no signature image leaves the agency.
    assert not [n for n in names if n.startswith("letters/") and n not in copies]
    # The evidence itself is untouched: the original frame is the stored one, byte for byte.
    assert original_sha in media.values()

    # The redaction is on the chain, and the copy says which event recorded it.
    r = await client.get(f"/api/v1/cases/{world.case_id}", headers=headers)
    (event,) = [e for e in (await r.json())["timeline"] if e["kind"] == "export.redacted"]
    assert manifest["redaction"]["event_seq"] == event["seq"]
    assert event["actor"] == "李娜"

    report_ok = verify_bundle(bundle)
    assert report_ok.ok, report_ok.problems
    assert report_ok.redacted and report_ok.limits()
    # What it can still prove: a changed media byte is found.
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.startswith("media/snapshots/"):
                body = body[:-1] + bytes([body[-1] ^ 1])
            dst.writestr(info, body)
    assert any("SHA-256 differs" in str(p) for p in verify_bundle(tampered).problems)
    # The redacted mark outside a redacted copy is itself a break.
    del manifest["redaction"]
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(plain, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "manifest.json":
                body = json.dumps(manifest).encode()
            dst.writestr(info, body)
    assert any("marked redacted" in str(p) for p in verify_bundle(plain).problems)

    r = await client.get(
        f"/api/v1/cases/{world.case_id}/export/redacted", headers=world.stranger.headers
    )
    assert r.status in (403, 404)
