"""``yunkan supervision tick --now``: a pass as of another day, from the command line."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from server.appkeys import DB, SETTINGS
from server.cli import main
from server.db.engine import create_engine, session_factory
from server.settings import Settings
from server.supervision.card_cli import parse_now
from tests.supervision.support import World, cards, world

ZONE = ZoneInfo("Asia/Shanghai")


def test_now_is_an_aware_time_or_a_local_noon() -> None:
    assert parse_now("2027-01-04", ZONE) == dt.datetime(2027, 1, 4, 12, tzinfo=ZONE)
    assert parse_now("2027-01-04T09:30+00:00", ZONE) == dt.datetime(
        2027, 1, 4, 9, 30, tzinfo=dt.UTC
    )
    assert parse_now("2027-01-04T09:30", ZONE) == dt.datetime(2027, 1, 4, 9, 30, tzinfo=ZONE)
    with pytest.raises(ValueError):
        parse_now("next monday", ZONE)


def test_tick_issues_the_cards_due_at_the_given_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "var"
    assert main(["migrate", "--data-dir", str(data)]) == 0
    settings = Settings.load({}, None, data_dir=data)

    async def seeded() -> World:
        engine = create_engine(settings)
        app = {DB: session_factory(engine), SETTINGS: settings}
        try:
            return await world(app)
        finally:
            await engine.dispose()

    w = asyncio.run(seeded())
    when = w.at(settings.zone, 5).isoformat()  # 5 of 5 working days: the warning
    assert main(["supervision", "tick", "--data-dir", str(data), "--now", when]) == 0
    assert "1 cards issued" in capsys.readouterr().out
    assert main(["supervision", "tick", "--data-dir", str(data), "--now", when]) == 0
    assert "0 cards issued" in capsys.readouterr().out
    assert main(["supervision", "tick", "--data-dir", str(data), "--now", "soon"]) == 2

    async def issued() -> list[tuple[str, str]]:
        engine = create_engine(settings)
        try:
            return await cards({DB: session_factory(engine)}, w.case_id)
        finally:
            await engine.dispose()

    assert asyncio.run(issued()) == [("inspect", "warning")]
