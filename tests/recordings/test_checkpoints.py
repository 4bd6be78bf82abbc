"""Signed checkpoints: a chain recomputed with the public algorithm, without the agency
key, fails ``verify case`` and ``verify bundle``; so do deleted or forged checkpoints."""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import io
import json
import zipfile
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings import checkpoints, cli_verify
from recordings.blobs import BlobStore
from recordings.bundle import MANIFEST, SIGNATURE, verify_bundle
from recordings.casefile import verify
from recordings.checkpoints import CaseCheckpoint
from recordings.export import export_case
from server.cases import procedure
from server.cases.models import GENESIS_HASH, Case
from server.cases.timeline import append_event, hash_of, load_events
from server.letters import pki
from server.timestamps import Timestamper
from tests.pki_services import LocalPki, dev_material
from tests.recordings.conftest import INSPECTOR, new_case

NUMBER = "YK-20261202-0013"


async def moved_case(db: async_sessionmaker[AsyncSession]) -> int:
    """A case that went submitted → accepted with a note between: two checkpoints."""
    case_id = await new_case(db, NUMBER, status="submitted")
    async with db.begin() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        await append_event(session, case, kind="note", actor=INSPECTOR, data={"text": "仓库干燥"})
        await procedure.accept(session, case, INSPECTOR)
    return case_id


async def check(db: async_sessionmaker[AsyncSession], blobs: BlobStore, case_id: int) -> list[str]:
    async with db() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        events = await load_events(session, case.id)
        anchors = await checkpoints.load(session, case)
    report = await verify(case, events, blobs, None, anchors, dev_material().trust())
    return [f"seq {b.seq}: {b.reason}" for b in report.breaks]


async def rewrite_chain(db: async_sessionmaker[AsyncSession], case_id: int) -> None:
    """The forger's tool: edit an event and recompute every hash with the public
    algorithm (``hash_of``), then move the case head. Needs no key."""
    async with db.begin() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        events = await load_events(session, case_id)
        events[0].data = {"text": "仓库潮湿"}
        prev = GENESIS_HASH
        for event in events:
            event.prev_hash = prev
            event.hash = hash_of(event, case.number)
            prev = event.hash
        case.head_hash = prev


def run(*argv: str) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser(prog="yunkan")
    cli_verify.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out = io.StringIO()
    code = args.func(args, out)
    return code, out.getvalue().splitlines()


async def test_state_changes_are_signed(
    db: async_sessionmaker[AsyncSession], blobs: BlobStore
) -> None:
    case_id = await moved_case(db)
    async with db() as session:
        rows = list(await session.scalars(select(CaseCheckpoint)))
        case = await session.get(Case, case_id)
        assert case is not None
    assert [(r.seq, r.reason) for r in rows] == [(2, "case.accepted")]
    assert rows[0].head_hash == case.head_hash
    assert await check(db, blobs, case_id) == []


async def test_rewritten_chain_fails_verify_case(
    db: async_sessionmaker[AsyncSession], blobs: BlobStore, tmp_path: Path
) -> None:
    case_id = await moved_case(db)
    await rewrite_chain(db, case_id)
    # The hash chain alone is fooled: every link holds.
    async with db() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        events = await load_events(session, case_id)
    assert (await verify(case, events, blobs)).ok
    # The signed checkpoint is not.
    assert await check(db, blobs, case_id) == [
        "seq 2: chain differs from the head the agency signed at this seq"
    ]
    code, lines = await asyncio.to_thread(
        run, "verify", "case", NUMBER, "--data-dir", str(tmp_path)
    )
    assert code == 1
    assert lines[0] == "BROKEN seq 2: chain differs from the head the agency signed at this seq"


async def test_deleted_or_forged_checkpoints_fail(
    db: async_sessionmaker[AsyncSession], blobs: BlobStore
) -> None:
    case_id = await moved_case(db)
    async with db.begin() as session:
        row = await session.scalar(select(CaseCheckpoint))
        assert row is not None
        saved = (row.seq, row.head_hash, row.reason, row.created_at)
        await session.execute(delete(CaseCheckpoint))
    assert await check(db, blobs, case_id) == [
        "seq 2: state change not anchored by a signed checkpoint"
    ]
    # Signing with a key of one's own (a self-made "agency" certificate) is not enough.
    _ca, p12 = pki.generate_dev_pki("云勘测试中心")
    forger = pki.load_p12(p12, None).checkpoint_signer()
    async with db.begin() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        checkpoints.record(session, case, "case.accepted", forger)
    assert saved[0] == 2
    assert await check(db, blobs, case_id) == ["seq 2: checkpoint signed by a key not the agency's"]


async def test_rewritten_chain_fails_verify_bundle(
    db: async_sessionmaker[AsyncSession], blobs: BlobStore, tmp_path: Path
) -> None:
    case_id = await moved_case(db)
    cert = tmp_path / "agency.pem"
    cert.write_bytes(pki_pem(dev_material()))
    good = tmp_path / "good.zip"
    now = dt.datetime.now(dt.UTC)
    await export_case(db, blobs, case_id, target=good, timezone="Asia/Shanghai", now=now)
    assert verify_bundle(good, dev_material().trust()).ok
    manifest = json.loads(zipfile.ZipFile(good).read(MANIFEST))
    assert [c["reason"] for c in manifest["checkpoints"]] == ["case.accepted", "export"]
    code, lines = run("verify", "bundle", str(good), "--cert", str(cert))
    assert code == 0, lines

    # Export after a consistent rewrite: the server signs the manifest it was given, but
    # the checkpoints signed before the rewrite do not match the recomputed chain.
    await rewrite_chain(db, case_id)
    bad = tmp_path / "bad.zip"
    await export_case(db, blobs, case_id, target=bad, timezone="Asia/Shanghai", now=now)
    problems = [str(p) for p in verify_bundle(bad, dev_material().trust()).problems]
    # both the state change's checkpoint and the first export's (same head) disagree
    assert (
        problems
        == ["timeline seq 2: chain differs from the head the agency signed at this seq"] * 2
    )

    # Rewriting the bundle itself and re-signing it with another key fails against the
    # agency certificate; without re-signing, the agency's signature no longer holds.
    _ca, p12 = pki.generate_dev_pki("云勘测试中心")
    forger = pki.load_p12(p12, None).checkpoint_signer()
    body = zipfile.ZipFile(good).read(MANIFEST).replace("仓库干燥".encode(), "仓库潮湿".encode())
    forged_sig = {
        **json.loads(zipfile.ZipFile(good).read(SIGNATURE)),
        "signature": base64.b64encode(forger.sign(body)).decode(),
        "certificate": base64.b64encode(forger.certificate).decode(),
    }
    for sig, expected in (
        (None, "manifest: the agency's signature does not hold (manifest changed)"),
        (forged_sig, "manifest: signed by a key that is not the agency's"),
    ):
        forged = tmp_path / "forged.zip"
        with zipfile.ZipFile(good) as zin, zipfile.ZipFile(forged, "w") as zout:
            for info in zin.infolist():
                data = zin.read(info.filename)
                if info.filename == MANIFEST:
                    data = body
                elif info.filename == SIGNATURE and sig is not None:
                    data = json.dumps(sig).encode()
                zout.writestr(info, data)
        code, lines = run("verify", "bundle", str(forged), "--cert", str(cert))
        assert code == 1
        assert f"BROKEN {expected}" in lines


async def test_checkpoints_and_manifest_timestamped(
    db: async_sessionmaker[AsyncSession], blobs: BlobStore, tmp_path: Path
) -> None:
    with LocalPki(tmp_path / "pki") as local:
        material = pki.load_p12(
            local.p12_path.read_bytes(), None, trust=local.ca_pem_path.read_bytes()
        ).configured(tsa_url=local.tsa_url, agency_name="云勘测试中心")
        signer = material.checkpoint_signer()
        db.configure(info={checkpoints.SIGNER: signer})
        case_id = await moved_case(db)
        assert await checkpoints.stamp_pending(db, signer) == 1
        assert await checkpoints.stamp_pending(db, signer) == 0
        target = tmp_path / "b.zip"
        now = dt.datetime.now(dt.UTC)
        await export_case(db, blobs, case_id, target=target, timezone="Asia/Shanghai", now=now)
        assert local.requests >= 2
    assert verify_bundle(target, material.trust()).ok
    sig = json.loads(zipfile.ZipFile(target).read(SIGNATURE))
    assert sig["timestamp"]
    async with db() as session:
        row = await session.scalar(select(CaseCheckpoint).where(CaseCheckpoint.seq == 2))
        assert row is not None and row.timestamp_token
        case = await session.get(Case, case_id)
        assert case is not None
        events = await load_events(session, case_id)
        anchors = await checkpoints.load(session, case)
    report = await verify(case, events, blobs, None, anchors, material.trust())
    assert report.ok, report.breaks
    # A token moved from another checkpoint (other bytes) is reported.
    anchors[0]["timestamp"] = sig["timestamp"]
    report = await verify(case, events, blobs, None, anchors, material.trust())
    assert [b.reason for b in report.breaks] == ["checkpoint timestamp is for other data"]
    assert isinstance(signer.timestamper, Timestamper)


def pki_pem(material: pki.SealMaterial) -> bytes:
    from asn1crypto import pem

    return bytes(pem.armor("CERTIFICATE", material.signing_cert.dump()))
