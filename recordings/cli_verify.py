"""``yunkan verify case NUMBER`` and ``yunkan verify bundle FILE``.

Both print one human line per problem and end with a JSON summary on the last line (for
scripts); the exit status is 0 when everything checks out, 1 when something is broken,
2 when the input cannot be checked at all (unknown case, unreadable file). The bundle
check needs nothing but the ZIP: no database, no settings, no network. Wire it in with
``EXTRA_COMMANDS.append(cli_verify.add_parser)`` in ``server/cli.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from recordings import checkpoints
from recordings.blobs import BlobStore
from recordings.bundle import verify_bundle
from recordings.casefile import table_rows, verify
from recordings.errors import BundleError
from recordings.recovery import RECORDINGS, unfiled_breaks
from server.cases.models import Case
from server.cases.timeline import load_events
from server.db.engine import create_engine, session_factory
from server.letters import pki
from server.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, default=None, help="data directory (default ./var)"
    )
    common.add_argument("--config", default=None, help="TOML settings file")
    parser = subparsers.add_parser("verify", help="check a case or an export bundle for tampering")
    sub = parser.add_subparsers(dest="verify_command", required=True)
    case = sub.add_parser(
        "case", parents=[common], help="check a case's timeline chain and every stored file"
    )
    case.add_argument("number", help="case number, e.g. YK-20261201-0001")
    case.set_defaults(func=cmd_verify_case)
    bundle = sub.add_parser("bundle", parents=[common], help="check an exported case ZIP offline")
    bundle.add_argument("file", type=Path)
    bundle.add_argument(
        "--cert",
        type=Path,
        default=None,
        help="the agency's certificate or CA (PEM) the signatures must chain to "
        "(default: the deployment's seal in --data-dir, if there is one)",
    )
    bundle.set_defaults(func=cmd_verify_bundle)


def _finish(summary: dict[str, Any], problems: list[str], out: TextIO) -> int:
    for line in problems:
        print(f"BROKEN {line}", file=out)
    if not problems:
        print("OK: every hash matches and the timeline chain is intact", file=out)
    print(json.dumps(summary, ensure_ascii=False), file=out)
    return 0 if not problems else 1


async def verify_case_number(settings: Settings, number: str) -> dict[str, Any] | None:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            case = await session.scalar(select(Case).where(Case.number == number))
            if case is None:
                return None
            events = await load_events(session, case.id)
            unfiled = await unfiled_breaks(session, case, settings.data_dir / RECORDINGS)
            tables = await table_rows(session, case.id)
            anchors = await checkpoints.load(session, case)
        trust = agency_trust(settings)
        report = await verify(case, events, BlobStore(settings.blobs_dir), tables, anchors, trust)
        report.breaks += unfiled
        out = report.as_dict()
        out["head_hash"] = case.head_hash
        out["breaks"] = [f"seq {b.seq}: {b.reason}" for b in report.breaks]
        return out
    finally:
        await engine.dispose()


def cmd_verify_case(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    settings = Settings.load(config_file=args.config, data_dir=args.data_dir)
    try:
        result = asyncio.run(verify_case_number(settings, args.number))
    except pki.PkiError as exc:
        print(f"error: the agency certificate cannot be read: {exc}", file=sys.stderr)
        return 2
    if result is None:
        print(f"error: no case numbered {args.number}", file=sys.stderr)
        return 2
    breaks = result.pop("breaks")
    return _finish(result, breaks, out)


def agency_trust(settings: Settings, cert: Path | None = None) -> checkpoints.Trust | None:
    """The certificates checkpoint and manifest signatures must chain to: ``cert`` (PEM,
    the seal certificate or its CA), else the deployment's seal, else none (signatures
    are then checked against the certificate they carry)."""
    if cert is not None:
        pems = x509.load_pem_x509_certificates(cert.read_bytes())
        ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in pems)
        return checkpoints.Trust(ders, tuple(asn1_x509.Certificate.load(d) for d in ders))
    p12, ca = settings.seal_p12, settings.seal_ca
    material = pki.load_existing(
        Path(settings.data_dir),
        p12_path=Path(p12) if p12 else None,
        p12_password=settings.seal_p12_password or None,
        ca_path=Path(ca) if ca else None,
    )
    return material.trust() if material is not None else None


def cmd_verify_bundle(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        settings = Settings.load(config_file=args.config, data_dir=args.data_dir)
        trust = agency_trust(settings, args.cert)
        report = verify_bundle(Path(args.file), trust)
    except (BundleError, OSError, ValueError, pki.PkiError) as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 2
    summary = report.as_dict()
    summary.pop("problems")
    summary["agency_certificate_checked"] = trust is not None
    for line in report.limits():
        print(f"NOTE {line}", file=out)
    return _finish(summary, [str(p) for p in report.problems], out)
