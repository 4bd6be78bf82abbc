"""No seat sold twice: 200 concurrent bookings of a 10-seat slot across two server
processes sharing one PostgreSQL database give exactly 10 × 201 and 190 × 409."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from server.accounts.service import add_user
from server.booking import models as m
from server.db.engine import create_engine, session_factory
from server.settings import Settings
from tests.booking.servers import running_servers
from tests.booking.support import person, seed_catalog

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ATTEMPTS = 200
SEATS = 10


async def test_two_processes_never_sell_a_seat_twice(pg_database: str, tmp_path: Path) -> None:
    settings = Settings.for_tests(tmp_path / "seed", database_url=pg_database)
    engine = create_engine(settings)
    db = session_factory(engine)
    try:
        async with db.begin() as session:
            await add_user(
                session,
                username="clerk",
                password="correct-horse-1",
                role="inspector",
                display_name="clerk",
            )
        cat = await seed_catalog(db, seats=SEATS)
        async with (
            running_servers(pg_database, tmp_path) as urls,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            async with http.post(
                f"{urls[0]}/api/v1/auth/login",
                json={"username": "clerk", "password": "correct-horse-1"},
            ) as response:
                assert response.status == 200, await response.text()
                token = (await response.json())["token"]
            headers = {"Authorization": f"Bearer {token}"}
            start = cat.iso("14:00")

            async def attempt(i: int) -> tuple[int, Any]:
                url = urls[i % len(urls)]
                body = {"matter_id": cat.matter_id, "start": start, "applicant": person(i)}
                async with http.post(
                    f"{url}/api/v1/appointments", json=body, headers=headers
                ) as response:
                    return response.status, await response.json()

            results = await asyncio.gather(*(attempt(i) for i in range(ATTEMPTS)))
        statuses = collections.Counter(status for status, _ in results)
        assert statuses == {201: SEATS, 409: ATTEMPTS - SEATS}, statuses
        assert {b["error"]["code"] for s, b in results if s == 409} == {"slot_full"}
        async with db() as session:
            booked = await session.scalar(
                select(func.count())
                .select_from(m.Appointment)
                .where(m.Appointment.status == "booked")
            )
            taken = await session.scalar(select(func.sum(m.SlotSeat.taken)))
            cases = await session.scalar(select(func.count(func.distinct(m.Appointment.case_id))))
        assert booked == taken == cases == SEATS
    finally:
        await engine.dispose()
