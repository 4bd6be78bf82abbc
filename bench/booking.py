"""Booking under contention: bookings per second and latency, beside a bare aiohttp handler.

Starts N real ``yunkan serve`` processes (default 2) on one fresh PostgreSQL database,
plus one process running a bare aiohttp handler that parses the same JSON body and
answers 201 — the floor that HTTP, JSON and the event loop cost on this machine. Then
fires the same number of POSTs at both with the same concurrency: many applicants
racing for a few slots, so most attempts hit a full slot (409). Afterwards it checks in
the database that no seat was sold twice.

    /work/venv/bin/python bench/booking.py [--attempts 1000] [--slots 10] [--seats 10]
        [--concurrency 64] [--nodes 2]

Needs PostgreSQL (``YUNKAN_BENCH_POSTGRES``, default postgresql://postgres@127.0.0.1:5432/test).
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from server.accounts.service import add_user  # noqa: E402
from server.booking import models as m  # noqa: E402
from server.db.engine import create_engine, session_factory  # noqa: E402
from server.db.migrate import upgrade_sync  # noqa: E402
from server.settings import Settings  # noqa: E402
from tests.booking.servers import free_port, running_servers  # noqa: E402
from tests.booking.support import person, seed_catalog  # noqa: E402

PASSWORD = "bench-pass-1"  # noqa: S105 (a throwaway user in a throwaway database)
PG = os.environ.get("YUNKAN_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

BARE_SERVER = """
import sys
from aiohttp import web

async def handler(request):
    body = await request.json()
    return web.json_response({"id": 1, "matter_id": body.get("matter_id")}, status=201)

app = web.Application()
app.router.add_post("/api/v1/appointments", handler)
app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def _pg(sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _async_url(name: str) -> str:
    base = PG.rsplit("/", 1)[0]
    return base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _fire(
    urls: list[str],
    bodies: list[dict[str, Any]],
    headers: dict[str, str],
    concurrency: int,
) -> tuple[float, list[float], collections.Counter[int]]:
    """POST every body (spread over ``urls``) with ``concurrency`` in flight."""
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    for item in enumerate(bodies):
        queue.put_nowait(item)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            while not queue.empty():
                i, body = queue.get_nowait()
                url = urls[i % len(urls)]
                t0 = time.perf_counter()
                async with http.post(
                    f"{url}/api/v1/appointments", json=body, headers=headers
                ) as response:
                    await response.read()
                    statuses[response.status] += 1
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies, statuses


async def _bare(bodies: list[dict[str, Any]], concurrency: int) -> dict[str, float]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", BARE_SERVER, str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"{url}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        elapsed, lat, statuses = await _fire([url], bodies, {}, concurrency)
    finally:
        proc.terminate()
        await proc.wait()
    assert statuses == {201: len(bodies)}, statuses
    return {
        "requests_per_s": round(len(bodies) / elapsed, 1),
        "p50_ms": round(_percentile(lat, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(lat, 0.99) * 1000, 2),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    name = f"yk_bench_{uuid.uuid4().hex[:8]}"
    await _pg(f'CREATE DATABASE "{name}"')
    url = _async_url(name)
    tmp = Path(tempfile.mkdtemp(prefix="yk-bench-"))
    try:
        await asyncio.to_thread(upgrade_sync, url)
        settings = Settings.for_tests(tmp / "seed", database_url=url)
        engine = create_engine(settings)
        db = session_factory(engine)
        async with db.begin() as session:
            await add_user(
                session,
                username="clerk",
                password=PASSWORD,
                role="inspector",
                display_name="clerk",
            )
        cat = await seed_catalog(db, seats=args.seats)
        starts = [f"{8 + (i * 30) // 60:02d}:{(i * 30) % 60:02d}" for i in range(args.slots)]
        bodies = [
            {
                "matter_id": cat.matter_id,
                "start": cat.iso(starts[i % args.slots]),
                "applicant": person(i),
            }
            for i in range(args.attempts)
        ]
        async with running_servers(url, tmp, count=args.nodes) as urls:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{urls[0]}/api/v1/auth/login",
                    json={"username": "clerk", "password": PASSWORD},
                ) as r,
            ):
                token = (await r.json())["token"]
            headers = {"Authorization": f"Bearer {token}"}
            # Warm up connection pools and imports on every node (not counted).
            warm = [{**b, "matter_id": 999999} for b in bodies[: 4 * args.nodes]]
            await _fire(urls, warm, headers, args.nodes)
            elapsed, lat, statuses = await _fire(urls, bodies, headers, args.concurrency)
        async with db() as session:
            per_slot = (
                await session.execute(
                    select(m.Appointment.slot_id, func.count())
                    .where(m.Appointment.status == "booked")
                    .group_by(m.Appointment.slot_id)
                )
            ).all()
            seats = {s.id: (s.seats, s.taken) for s in await session.scalars(select(m.SlotSeat))}
        await engine.dispose()
        oversold = [sid for sid, n in per_slot if n > seats[sid][0] or n != seats[sid][1]]
        booked = sum(n for _, n in per_slot)
        bare = await _bare(bodies, args.concurrency)
    finally:
        await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    expected = min(args.attempts, args.slots * args.seats)
    result = {
        "bench": "booking",
        "nodes": args.nodes,
        "database": "postgresql",
        "attempts": args.attempts,
        "slots": args.slots,
        "seats_per_slot": args.seats,
        "concurrency": args.concurrency,
        "created_201": statuses.get(201, 0),
        "full_409": statuses.get(409, 0),
        "other_status": {str(k): v for k, v in statuses.items() if k not in (201, 409)},
        "booked_rows": booked,
        "oversold_slots": len(oversold),
        "no_seat_sold_twice": not oversold and booked == statuses.get(201, 0) == expected,
        "attempts_per_s": round(args.attempts / elapsed, 1),
        "bookings_per_s": round(statuses.get(201, 0) / elapsed, 1),
        "p50_ms": round(statistics.median(lat) * 1000, 2),
        "p99_ms": round(_percentile(lat, 0.99) * 1000, 2),
        "bare_aiohttp": bare,
        # Other work on the machine skews every figure: report it beside them.
        "cpus": os.cpu_count(),
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=10)
    parser.add_argument("--seats", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=2)
    result = asyncio.run(main(parser.parse_args()))
    print(
        f"{result['attempts']} attempts on {result['slots']} slots x {result['seats_per_slot']} "
        f"seats, {result['nodes']} nodes, concurrency {result['concurrency']}"
    )
    print(
        f"booking: {result['attempts_per_s']} attempts/s, {result['bookings_per_s']} bookings/s, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
        f"201={result['created_201']} 409={result['full_409']} other={result['other_status']}"
    )
    bare = result["bare_aiohttp"]
    print(
        f"bare aiohttp handler: {bare['requests_per_s']} req/s, p50 {bare['p50_ms']} ms, "
        f"p99 {bare['p99_ms']} ms"
    )
    print(
        f"no seat sold twice: {result['no_seat_sold_twice']}; load average "
        f"{result['loadavg_1m_before']} -> {result['loadavg_1m_after']} on {result['cpus']} CPUs"
    )
    print(json.dumps(result, ensure_ascii=False))
    sys.exit(0 if result["no_seat_sold_twice"] else 1)
