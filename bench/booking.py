"""Booking under contention: bookings per second and latency, beside a bare aiohttp handler.

Starts N real ``yunkan serve`` processes (default 2) on one fresh PostgreSQL database,
plus one process running a bare aiohttp handler that parses the same JSON body and
answers 201 — the floor that HTTP, JSON and the event loop cost on this machine. Then
fires the same number of POSTs at both with the same concurrency: many applicants
racing for a few slots, so most attempts hit a full slot (409). Afterwards it checks in
the database that no seat was sold twice.

    /work/venv/bin/python bench/booking.py [--attempts 1000] [--slots 10] [--seats 10]
        [--concurrency 64] [--nodes 2]

Needs PostgreSQL (``YUNKAN_BENCH_POSTGRES``, default postgresql://postgres@127.0.0.1:5432/test)
and Redis for the nodes' bus (``--redis``/``YUNKAN_BENCH_REDIS``, default
redis://127.0.0.1:6379/0; ``--redis ""`` for none).
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from server.accounts.models import Applicant  # noqa: E402
from server.accounts.service import add_user  # noqa: E402
from server.booking import claims  # noqa: E402
from server.booking import models as m  # noqa: E402
from server.cases.models import Case, CaseCounter, CaseEvent  # noqa: E402
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


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far, from ``/proc/<pid>/stat``."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


# While the sold-out attempts run, the bench holds these tables in EXCLUSIVE mode: plain
# SELECTs pass, but any write or row lock (UPDATE, INSERT, SELECT … FOR UPDATE) would wait.
# An attempt answered 409 within the timeout therefore took no lock on them.
LOCKED_TABLES = tuple(
    model.__tablename__
    for model in (
        m.SlotSeat,
        m.TimeClaim,
        m.Appointment,
        m.Reminder,
        m.OutboxMessage,
        Applicant,
        Case,
        CaseCounter,
        CaseEvent,
    )
)


async def _sold_out(
    url: str, bodies: list[dict[str, Any]], headers: dict[str, str], database: str
) -> dict[str, Any]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(PG.rsplit("/", 1)[0] + "/" + database)
    latencies: list[float] = []
    statuses: collections.Counter[str] = collections.Counter()
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(f"LOCK TABLE {', '.join(LOCKED_TABLES)} IN EXCLUSIVE MODE")
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for body in bodies:
                t0 = time.perf_counter()
                try:
                    async with http.post(
                        f"{url}/api/v1/appointments", json=body, headers=headers
                    ) as response:
                        await response.read()
                        statuses[str(response.status)] += 1
                except TimeoutError:
                    statuses["blocked"] += 1
                latencies.append(time.perf_counter() - t0)
    finally:
        await tx.rollback()
        await conn.close()
    return {
        "attempts": len(bodies),
        "statuses": dict(statuses),
        "answered_409_without_lock": statuses.get("409", 0) == len(bodies),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
    }


def _officer_minutes_sold_twice(
    appointments: list[tuple[int, int, datetime, datetime]],
    claimed: set[tuple[str, int, int]],
) -> tuple[int, int]:
    """(minutes of an officer held by two live appointments, minutes of a live appointment
    missing from its officer's claims), from the appointments and the time-claims table."""
    seen: collections.Counter[tuple[int, int]] = collections.Counter()
    unclaimed = 0
    for appt_id, staff_id, start, end in appointments:
        for minute in claims.minutes(start, end):
            seen[(staff_id, minute)] += 1
            if (claims.staff_resource(staff_id), minute, appt_id) not in claimed:
                unclaimed += 1
    return sum(n - 1 for n in seen.values() if n > 1), unclaimed


async def _check_database(db: Any) -> dict[str, Any]:
    async with db() as session:
        per_slot = (
            await session.execute(
                select(m.Appointment.slot_id, func.count())
                .where(m.Appointment.status == "booked")
                .group_by(m.Appointment.slot_id)
            )
        ).all()
        seats = {s.id: (s.seats, s.taken) for s in await session.scalars(select(m.SlotSeat))}
        live = [
            (a, s, b, e)
            for a, s, b, e in (
                await session.execute(
                    select(
                        m.Appointment.id,
                        m.Appointment.staff_id,
                        m.Appointment.starts_at,
                        m.Appointment.ends_at,
                    ).where(m.Appointment.status != "cancelled")
                )
            ).all()
            if s is not None
        ]
        claimed = {
            (r, x, a)
            for r, x, a in (
                await session.execute(
                    select(m.TimeClaim.resource, m.TimeClaim.minute, m.TimeClaim.appointment_id)
                )
            ).all()
        }
        unassigned = await session.scalar(
            select(func.count())
            .select_from(m.Appointment)
            .where(m.Appointment.status == "booked", m.Appointment.staff_id.is_(None))
        )
    oversold = [sid for sid, n in per_slot if n > seats[sid][0] or n != seats[sid][1]]
    twice, unclaimed = _officer_minutes_sold_twice(live, claimed)
    return {
        "booked_rows": sum(n for _, n in per_slot),
        "oversold_slots": len(oversold),
        "officer_minutes_sold_twice": twice,
        "officer_minutes_unclaimed": unclaimed,
        "booked_without_officer": unassigned or 0,
        "full_slots": [sid for sid, (n, taken) in seats.items() if taken >= n],
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
            officers = [
                (
                    await add_user(
                        session,
                        username=f"officer{i}",
                        password=PASSWORD,
                        role="inspector",
                        display_name=f"officer{i}",
                    )
                ).id
                for i in range(args.officers)
            ]
        cat = await seed_catalog(db, seats=args.seats, staff_ids=tuple(officers))
        # Surge slots from 08:00; the uncontended bookings go to slots from 14:00.
        starts = [_hhmm(8 * 60 + 30 * i) for i in range(args.slots)]
        quiet_slots = [_hhmm(14 * 60 + 30 * i) for i in range(12)]
        bodies = [
            {
                "matter_id": cat.matter_id,
                "start": cat.iso(starts[i % args.slots]),
                "applicant": person(i),
            }
            for i in range(args.attempts)
        ]
        n = args.attempts
        quiet = [
            {
                "matter_id": cat.matter_id,
                "start": cat.iso(quiet_slots[i % len(quiet_slots)]),
                "applicant": person(n + i),
            }
            for i in range(args.uncontended)
        ]
        n += args.uncontended
        pids: list[int] = []
        # The nodes share a Redis bus, as a scaled-out deployment does (the sold-out memo
        # and the session cache are invalidated through it); --redis "" runs without.
        env = {"REDIS_URL": args.redis, "YUNKAN_REDIS_PREFIX": f"{name}:"} if args.redis else {}
        async with running_servers(url, tmp, count=args.nodes, pids=pids, env=env) as urls:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{urls[0]}/api/v1/auth/login",
                    json={"username": "clerk", "password": PASSWORD},
                ) as r,
            ):
                token = (await r.json())["token"]
            headers = {"Authorization": f"Bearer {token}"}
            # Warm up connection pools and imports on every node (not counted): refused
            # attempts, then one real booking per node in the last quiet slot.
            warm = [{**b, "matter_id": 999999} for b in bodies[: 4 * args.nodes]]
            await _fire(urls, warm, headers, args.nodes)
            warm_ok = [
                {
                    "matter_id": cat.matter_id,
                    "start": cat.iso(quiet_slots[-1]),
                    "applicant": person(n + i),
                }
                for i in range(args.nodes)
            ]
            n += args.nodes
            await _fire(urls, warm_ok, headers, args.nodes)
            # One booking at a time, nothing contended: the server CPU each one costs.
            spy = await _start_profile(pids[0], args.profile) if args.profile else None
            cpu0 = _cpu_seconds(pids)
            _, quiet_lat, quiet_statuses = await _fire(urls, quiet, headers, 1)
            quiet_cpu = _cpu_seconds(pids) - cpu0
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
                await spy.wait()
            # The surge.
            cpu0 = _cpu_seconds(pids)
            elapsed, lat, statuses = await _fire(urls, bodies, headers, args.concurrency)
            surge_cpu = _cpu_seconds(pids) - cpu0
            # Attempts at slots already sold out, one at a time, with the booking tables
            # locked against writers by the bench.
            checked = await _check_database(db)
            async with db() as session:
                full = [
                    s.starts_at
                    for s in await session.scalars(
                        select(m.SlotSeat).where(m.SlotSeat.id.in_(checked["full_slots"]))
                    )
                ]
            sold_out: dict[str, Any] = {"attempts": 0}
            if full:
                late = [
                    {
                        "matter_id": cat.matter_id,
                        "start": full[i % len(full)].isoformat(),
                        "applicant": person(n + i),
                    }
                    for i in range(args.sold_out)
                ]
                n += args.sold_out
                cpu0 = _cpu_seconds(pids)
                sold_out = await _sold_out(urls[0], late, headers, name)
                sold_out["server_cpu_ms_per_409"] = round(
                    (_cpu_seconds(pids) - cpu0) * 1000 / len(late), 2
                )
        checked = await _check_database(db)
        await engine.dispose()
        bare = await _bare(bodies, args.concurrency)
    finally:
        await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    expected = min(args.attempts, args.slots * args.seats)
    if args.officers:
        expected = min(expected, args.slots * args.officers)
    booked_quiet = quiet_statuses.get(201, 0)
    attempts_per_s = round(args.attempts / elapsed, 1)
    result = {
        "bench": "booking",
        "nodes": args.nodes,
        "database": "postgresql",
        "redis": bool(args.redis),
        "attempts": args.attempts,
        "slots": args.slots,
        "seats_per_slot": args.seats,
        "officers": args.officers,
        "concurrency": args.concurrency,
        "created_201": statuses.get(201, 0),
        "full_409": statuses.get(409, 0),
        "other_status": {str(k): v for k, v in statuses.items() if k not in (201, 409)},
        "booked_rows": checked["booked_rows"],
        "oversold_slots": checked["oversold_slots"],
        "no_seat_sold_twice": not checked["oversold_slots"]
        and checked["booked_rows"] == statuses.get(201, 0) + booked_quiet + args.nodes
        and statuses.get(201, 0) == expected,
        "officer_minutes_sold_twice": checked["officer_minutes_sold_twice"],
        "officer_minutes_unclaimed": checked["officer_minutes_unclaimed"],
        "booked_without_officer": checked["booked_without_officer"],
        "attempts_per_s": attempts_per_s,
        "bookings_per_s": round(statuses.get(201, 0) / elapsed, 1),
        "p50_ms": round(statistics.median(lat) * 1000, 2),
        "p99_ms": round(_percentile(lat, 0.99) * 1000, 2),
        "server_cpu_ms_per_attempt": round(surge_cpu * 1000 / args.attempts, 2),
        "uncontended": {
            "bookings": args.uncontended,
            "created_201": booked_quiet,
            "other_status": {str(k): v for k, v in quiet_statuses.items() if k != 201},
            "server_cpu_ms_per_booking": round(quiet_cpu * 1000 / max(args.uncontended, 1), 2),
            "p50_ms": round(statistics.median(quiet_lat) * 1000, 2) if quiet_lat else None,
            "p99_ms": round(_percentile(quiet_lat, 0.99) * 1000, 2) if quiet_lat else None,
        },
        "sold_out": sold_out,
        "bare_aiohttp": bare,
        "ratio_to_bare": round(attempts_per_s / bare["requests_per_s"], 4),
        # Other work on the machine skews every figure: report it beside them.
        "cpus": os.cpu_count(),
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }
    result["ok"] = bool(
        result["no_seat_sold_twice"]
        and not result["officer_minutes_sold_twice"]
        and not result["officer_minutes_unclaimed"]
        and booked_quiet == args.uncontended
        and sold_out.get("answered_409_without_lock", True)
    )
    return result


async def _start_profile(pid: int, out: str) -> asyncio.subprocess.Process:
    """py-spy on node 0 while the uncontended bookings run (raw stacks into ``out``)."""
    spy = Path(sys.executable).with_name("py-spy")
    argv = [str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
    proc = await asyncio.create_subprocess_exec(
        *argv, "--output", out, stdout=asyncio.subprocess.DEVNULL
    )
    await asyncio.sleep(1.0)  # let py-spy attach before the first booking
    return proc


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=10)
    parser.add_argument("--seats", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--officers", type=int, default=10, help="qualified officers (0: none)")
    parser.add_argument("--uncontended", type=int, default=50, help="sequential bookings")
    parser.add_argument("--sold-out", type=int, default=100, help="attempts at full slots")
    parser.add_argument(
        "--profile", metavar="PATH", help="py-spy raw stacks of node 0 during the uncontended run"
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("YUNKAN_BENCH_REDIS", "redis://127.0.0.1:6379/0"),
        help='the nodes\' bus ("" for none: each node its own in-process bus)',
    )
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
    quiet = result["uncontended"]
    print(
        f"uncontended: {quiet['created_201']}/{quiet['bookings']} booked one at a time, "
        f"server CPU {quiet['server_cpu_ms_per_booking']} ms per booking, p50 {quiet['p50_ms']} ms"
    )
    sold = result["sold_out"]
    if sold.get("attempts"):
        print(
            f"sold out: {sold['attempts']} attempts with the booking tables locked against "
            f"writers: {sold['statuses']}, p50 {sold['p50_ms']} ms, p99 {sold['p99_ms']} ms, "
            f"server CPU {sold['server_cpu_ms_per_409']} ms per 409"
        )
    print(
        f"ratio to bare: {result['ratio_to_bare'] * 100:.1f} %; surge server CPU "
        f"{result['server_cpu_ms_per_attempt']} ms per attempt"
    )
    print(
        f"no seat sold twice: {result['no_seat_sold_twice']}; officer minutes sold twice: "
        f"{result['officer_minutes_sold_twice']} "
        f"(unclaimed {result['officer_minutes_unclaimed']}); "
        f"load average {result['loadavg_1m_before']} -> {result['loadavg_1m_after']} "
        f"on {result['cpus']} CPUs"
    )
    print(json.dumps(result, ensure_ascii=False))
    sys.exit(0 if result["ok"] else 1)
