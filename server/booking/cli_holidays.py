"""``yunkan holidays import YEAR FILE`` and ``yunkan holidays list``: the State Council's
holiday notice, loaded from the command line (the same parser as the admin form)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _error(exc: Any) -> int:
    detail = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
    print(f"error: {exc.message}{' (' + detail + ')' if detail else ''}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace, work: Any) -> int:
    from server.cli import _settings, _with_db
    from server.db.migrate import upgrade_sync
    from server.errors import YunkanError

    settings = _settings(args)
    upgrade_sync(settings.effective_database_url)
    try:
        asyncio.run(_with_db(settings, work))
    except YunkanError as exc:
        return _error(exc)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from server.booking import holidays
    from server.errors import YunkanError

    text = Path(args.file).read_text(encoding="utf-8") if args.file != "-" else sys.stdin.read()
    try:
        entries = holidays.parse(text, args.year)  # before touching the database
    except YunkanError as exc:
        return _error(exc)
    source = args.source or f"file {Path(args.file).name}"

    async def work(db: Any) -> None:
        async with db.begin() as session:
            await holidays.import_year(session, args.year, entries, source, datetime.now(UTC))

    code = _run(args, work)
    if code == 0:
        off = sum(1 for e in entries if not e.working)
        print(f"{args.year}: {off} days off, {len(entries) - off} worked weekend days loaded")
    return code


def cmd_list(args: argparse.Namespace) -> int:
    from server.booking import holidays

    async def work(db: Any) -> None:
        async with db() as session:
            for year, days in sorted((await holidays.loaded(session)).items()):
                off = sum(1 for working, _ in days.values() if not working)
                print(f"{year}: loaded, {off} days off, {len(days) - off} worked weekend days")

    return _run(args, work)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from server.cli import build_common

    p: argparse.ArgumentParser = subparsers.add_parser(
        "holidays", help="load the statutory holidays of a year (docs/booking.md has the format)"
    )
    sub = p.add_subparsers(dest="holidays_command", required=True)
    imp = sub.add_parser("import", parents=[build_common()], help="load one year from a file")
    imp.add_argument("year", type=int)
    imp.add_argument("file", help="text file, one entry a line: 2027-02-06~2027-02-12 休 春节")
    imp.add_argument("--source", default=None, help="where the dates come from (the notice)")
    imp.set_defaults(func=cmd_import)
    lst = sub.add_parser("list", parents=[build_common()], help="the years loaded")
    lst.set_defaults(func=cmd_list)
    return p
