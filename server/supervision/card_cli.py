"""``yunkan supervision tick [--now ISO]``: one pass of the deadline evaluator.

``--now`` evaluates as of another moment (an aware ISO time, or a date meaning its
local noon): it is how a test or an operator replays a day, and cards it issues carry
that time. Without it, the real clock.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from typing import Any


def parse_now(text: str, zone: dt.tzinfo) -> dt.datetime:
    """An aware time from ``2027-01-04T10:00+08:00`` or ``2027-01-04`` (local noon)."""
    value = text.strip()
    if len(value) == 10:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(12), zone)
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def cmd_tick(args: argparse.Namespace) -> int:
    from server.cli import _settings, _with_db
    from server.db.migrate import upgrade_sync
    from server.i18n import Catalogs
    from server.supervision import deadlines as d
    from server.supervision.card_evaluator import Context, evaluate, real_now

    settings = _settings(args)
    try:
        now = parse_now(args.now, settings.zone) if args.now else real_now()
    except ValueError:
        print(f"error: --now {args.now!r} is not an ISO date or time", file=sys.stderr)
        return 2
    upgrade_sync(settings.effective_database_url)
    ctx = Context(settings.zone, d.Rules.of(settings), Catalogs(), settings.default_locale)
    issued: list[int] = []

    async def work(db: Any) -> None:
        issued.append(await evaluate(db, ctx, now))

    asyncio.run(_with_db(settings, work))
    print(f"{now.isoformat()}: {issued[0]} cards issued")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from server.cli import build_common

    p: argparse.ArgumentParser = subparsers.add_parser(
        "supervision", help="deadline supervision (电子监察): run the evaluator"
    )
    sub = p.add_subparsers(dest="supervision_command", required=True)
    tick = sub.add_parser("tick", parents=[build_common()], help="one evaluator pass")
    tick.add_argument("--now", default=None, help="evaluate as of this ISO time or date")
    tick.set_defaults(func=cmd_tick)
    return p
