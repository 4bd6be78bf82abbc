"""No seat sold twice: 200 concurrent bookings of a 10-seat slot across two server
processes sharing one PostgreSQL database give exactly 10 × 201 and 190 × 409."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import aliased

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
        await _clerk(db)
        cat = await seed_catalog(db, seats=SEATS)
        async with (
            running_servers(pg_database, tmp_path) as urls,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            headers = await _clerk_headers(http, urls[0])
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


async def test_one_officer_is_never_booked_twice_at_once(pg_database: str, tmp_path: Path) -> None:
    """Three matters, one officer, two nodes: for each time, three racing bookings (one
    per matter, naming the officer or not) give one appointment and two clear refusals."""
    settings = Settings.for_tests(tmp_path / "seed", database_url=pg_database)
    engine = create_engine(settings)
    db = session_factory(engine)
    try:
        async with db.begin() as session:
            clerk = await add_user(
                session,
                username="clerk",
                password="correct-horse-1",
                role="inspector",
                display_name="clerk",
            )
        cat = await seed_catalog(db, seats=SEATS, staff_ids=(clerk.id,))
        matters = (cat.matter_id, cat.small_matter_id, cat.queue_matter_id)
        named, auto = ("14:00", "15:00", "16:00"), ("09:00", "10:00", "11:00")
        async with (
            running_servers(pg_database, tmp_path) as urls,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            async with http.post(
                f"{urls[0]}/api/v1/auth/login",
                json={"username": "clerk", "password": "correct-horse-1"},
            ) as response:
                token = (await response.json())["token"]
            headers = {"Authorization": f"Bearer {token}"}

            async def attempt(
                i: int, hhmm: str, matter_id: int, staff: bool
            ) -> tuple[str, int, Any]:
                body: dict[str, Any] = {
                    "matter_id": matter_id,
                    "start": cat.iso(hhmm),
                    "applicant": person(i),
                    "site_address": "福州市鼓楼区",
                }
                if staff:
                    body["staff_id"] = clerk.id
                async with http.post(
                    f"{urls[i % 2]}/api/v1/appointments", json=body, headers=headers
                ) as response:
                    return hhmm, response.status, await response.json()

            jobs = [
                attempt(n * 3 + k, hhmm, matter, hhmm in named)
                for n, hhmm in enumerate(named + auto)
                for k, matter in enumerate(matters)
            ]
            results = await asyncio.gather(*jobs)
        for hhmm in named + auto:
            mine = [(s, b) for h, s, b in results if h == hhmm]
            assert sorted(s for s, _ in mine) == [201, 409, 409], (hhmm, mine)
            codes = {b["error"]["code"] for s, b in mine if s == 409}
            assert codes == ({"staff_busy"} if hhmm in named else {"slot_full"}), (hhmm, mine)
            assert [b["staff_id"] for s, b in mine if s == 201] == [clerk.id]
        async with db() as session:
            a, b = aliased(m.Appointment), aliased(m.Appointment)
            overlaps = await session.scalar(
                select(func.count())
                .select_from(a)
                .join(b, (a.staff_id == b.staff_id) & (a.id < b.id))
                .where(
                    a.status != "cancelled",
                    b.status != "cancelled",
                    a.starts_at < b.ends_at,
                    b.starts_at < a.ends_at,
                )
            )
            booked = await session.scalar(
                select(func.count())
                .select_from(m.Appointment)
                .where(m.Appointment.status == "booked")
            )
            taken = await session.scalar(select(func.sum(m.SlotSeat.taken)))
            claimed = await session.scalar(
                select(func.count())
                .select_from(m.TimeClaim)
                .where(m.TimeClaim.resource == f"staff:{clerk.id}")
            )
            applicants = await session.scalar(
                select(func.count())
                .select_from(m.TimeClaim)
                .where(m.TimeClaim.resource.like("person:%"))
            )
            minutes = await session.scalar(
                select(func.sum(m.Matter.duration_min))
                .select_from(m.Appointment)
                .join(m.Matter, m.Matter.id == m.Appointment.matter_id)
            )
        assert overlaps == 0
        assert booked == taken == 6
        assert claimed == applicants == minutes  # every minute claimed once, officer and person
    finally:
        await engine.dispose()


async def test_open_bookings_cap_holds_across_racing_nodes(
    pg_database: str, tmp_path: Path
) -> None:
    """One person, eight different times at once on two nodes, a cap of two open bookings:
    exactly two are booked, the others refused with booking_limit (the count is read under
    the person's lock, so the racers cannot all read "none yet")."""
    cap, times = 2, ("09:00", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00")
    settings = Settings.for_tests(tmp_path / "seed", database_url=pg_database)
    engine = create_engine(settings)
    db = session_factory(engine)
    try:
        await _clerk(db)
        cat = await seed_catalog(db, seats=SEATS)
        async with db.begin() as session:
            await session.execute(
                update(m.Matter).where(m.Matter.id == cat.matter_id).values(max_open_bookings=cap)
            )
        async with (
            running_servers(pg_database, tmp_path) as urls,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            headers = await _clerk_headers(http, urls[0])

            async def attempt(i: int, hhmm: str) -> tuple[int, Any]:
                body = {"matter_id": cat.matter_id, "start": cat.iso(hhmm), "applicant": person(7)}
                async with http.post(
                    f"{urls[i % 2]}/api/v1/appointments", json=body, headers=headers
                ) as response:
                    return response.status, await response.json()

            results = await asyncio.gather(*(attempt(i, t) for i, t in enumerate(times)))
        statuses = collections.Counter(status for status, _ in results)
        assert statuses == {201: cap, 409: len(times) - cap}, results
        assert {b["error"]["code"] for s, b in results if s == 409} == {"booking_limit"}
        async with db() as session:
            held = await session.scalar(
                select(func.count())
                .select_from(m.Appointment)
                .where(m.Appointment.status == "booked")
            )
        assert held == cap
    finally:
        await engine.dispose()


async def _clerk(db: Any) -> None:
    async with db.begin() as session:
        await add_user(
            session,
            username="clerk",
            password="correct-horse-1",
            role="inspector",
            display_name="clerk",
        )


async def _clerk_headers(http: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with http.post(
        f"{url}/api/v1/auth/login", json={"username": "clerk", "password": "correct-horse-1"}
    ) as response:
        assert response.status == 200, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['token']}"}
