from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings import cli_verify
from recordings.blobs import BlobStore
from recordings.export import export_case
from recordings.models import Snapshot
from tests.recordings.conftest import new_case
from tests.recordings.test_casefile import snap


def run(*argv: str) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser(prog="yunkan")
    cli_verify.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out = io.StringIO()
    code = args.func(args, out)
    return code, out.getvalue().splitlines()


async def test_verify_case_and_bundle(
    db: async_sessionmaker[AsyncSession], blobs: BlobStore, tmp_path: Path
) -> None:
    case_id = await new_case(db, "YK-20261122-0042")
    shot_id = await snap(db, blobs, case_id)
    code, lines = await asyncio.to_thread(
        run, "verify", "case", "YK-20261122-0042", "--data-dir", str(tmp_path)
    )
    assert code == 0, lines
    summary = json.loads(lines[-1])
    assert summary["ok"] is True and summary["events"] == 1 and summary["blobs"] == 2

    bundle = tmp_path / "b.zip"
    await export_case(
        db,
        blobs,
        case_id,
        target=bundle,
        timezone="Asia/Shanghai",
        now=dt.datetime.now(dt.UTC),
    )
    code, lines = run("verify", "bundle", str(bundle))
    assert code == 0 and json.loads(lines[-1])["case_number"] == "YK-20261122-0042"

    async with db() as session:
        shot = await session.get(Snapshot, shot_id)
        assert shot is not None
    blobs.path(shot.original_key).write_bytes(b"edited")
    code, lines = await asyncio.to_thread(
        run, "verify", "case", "YK-20261122-0042", "--data-dir", str(tmp_path)
    )
    assert code == 1
    assert lines[0] == f"BROKEN seq 1: blob {shot.original_key}: content changed (sha256 mismatch)"

    bundle.write_bytes(bundle.read_bytes()[:100])
    code, _ = run("verify", "bundle", str(bundle))
    assert code == 2


async def test_unknown_case(db: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    code, _ = await asyncio.to_thread(
        run, "verify", "case", "YK-00000000-0000", "--data-dir", str(tmp_path)
    )
    assert code == 2


def test_wired_into_yunkan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import main

    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"no zip")
    assert main(["verify", "bundle", str(junk)]) == 2
    assert "junk.zip" in capsys.readouterr().err
