"""Letters benchmark: what signing costs, next to what rendering alone costs.

Runs the real app on SQLite in a temporary data dir, bound to 127.0.0.1, and measures in
one run:

- ``render``: rendering the unsigned letter PDF (fpdf2, font subsetting) — the floor;
- ``seal``: the PAdES seal alone (pyHanko, ECDSA P-256);
- ``verify``: verifying a sealed PDF (pyHanko + our strict-DER check);
- ``sign_http``: ``POST /api/v1/letters/{id}/sign`` end to end (PNG check, blobs fsynced,
  re-render with the signature, seal, conditional UPDATE + timeline, commit).

Usage: ``python bench/letters.py [--n 20]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
import zoneinfo
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer

from server.accounts.models import Applicant, User
from server.accounts.sessions import (
    create_session,
    principal_of_applicant,
    principal_of_user,
)
from server.app import create_app
from server.appkeys import DB
from server.cases.models import CaseParty
from server.cases.numbers import open_case
from server.db.migrate import upgrade_sync
from server.letters import pdf, sealing, verification
from server.letters.appkeys import LETTERS
from server.settings import Settings
from tests.letters.images import signature_png
from tests.letters.sample import sample_document


def _stats(samples: list[tuple[float, float]]) -> dict[str, float]:
    """p50/p95 of wall time, and p50 of CPU time (the process's, client and server
    together): on a busy machine the wall time mostly measures the neighbours."""
    wall = sorted(w for w, _ in samples)
    cpu = sorted(c for _, c in samples)
    p95 = wall[min(len(wall) - 1, round(0.95 * (len(wall) - 1)))]
    return {
        "p50_ms": round(statistics.median(wall) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
        "cpu_p50_ms": round(statistics.median(cpu) * 1000, 1),
        "n": len(wall),
    }


async def _timed(n: int, fn: Callable[[int], Awaitable[Any]]) -> list[tuple[float, float]]:
    out = []
    for i in range(n):
        start, cpu = time.perf_counter(), time.process_time()
        await fn(i)
        out.append((time.perf_counter() - start, time.process_time() - cpu))
    return out


async def _tokens(client: TestClient[Any, Any]) -> tuple[int, str, str]:
    async with client.app[DB].begin() as session:
        user = User(username="bench", display_name="李娜", role="inspector", password_hash="!")  # noqa: S106 - never logs in
        person = Applicant(mobile="13800138000", name="张伟")
        session.add_all([user, person])
        await session.flush()
        case = await open_case(
            session,
            title="农作物种子生产经营许可证变更",
            zone=zoneinfo.ZoneInfo("Asia/Shanghai"),
            applicant_id=person.id,
        )
        session.add(
            CaseParty(
                case_id=case.id, principal_kind="staff", principal_id=user.id, role="inspector"
            )
        )
        staff, _ = await create_session(
            session, principal_of_user(user), hours=1, ip=None, user_agent=None
        )
        applicant, _ = await create_session(
            session, principal_of_applicant(person), hours=1, ip=None, user_agent=None
        )
        return case.id, staff, applicant


async def run(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="yk-bench-") as tmp:
        data = Path(tmp)
        # Alembic's env runs its own event loop: migrate from a worker thread.
        await asyncio.to_thread(upgrade_sync, f"sqlite+aiosqlite:///{data / 'yunkan.db'}")
        settings = Settings.for_tests(data)
        client = TestClient(
            TestServer(create_app(settings), host="127.0.0.1"), cookie_jar=DummyCookieJar()
        )
        await client.start_server()
        try:
            case_id, staff, applicant = await _tokens(client)
            seal = client.app[LETTERS].seal
            document = sample_document()
            unsigned = await pdf.render(document)
            sealed = await sealing.seal(unsigned, seal)
            render = await _timed(n, lambda _: pdf.render(document))
            seal_only = await _timed(n, lambda _: sealing.seal(unsigned, seal))
            verify = await _timed(n, lambda _: verification.verify(sealed.data, seal))
            letters = []
            for _ in range(n):
                response = await client.post(
                    f"/api/v1/cases/{case_id}/letters",
                    json={"kind": "commitment"},
                    headers={"Authorization": f"Bearer {staff}"},
                )
                assert response.status == 201, await response.text()
                letters.append((await response.json())["id"])
            body = {
                "signature": "data:image/png;base64," + base64.b64encode(signature_png()).decode(),
                "consent": True,
            }

            async def sign(i: int) -> None:
                response = await client.post(
                    f"/api/v1/letters/{letters[i]}/sign",
                    json=body,
                    headers={"Authorization": f"Bearer {applicant}"},
                )
                assert response.status == 200, await response.text()

            sign_http = await _timed(n, sign)
        finally:
            await client.close()
    return {
        "bench": "letters",
        "pdf_bytes": len(sealed.data),
        "render": _stats(render),
        "seal": _stats(seal_only),
        "verify": _stats(verify),
        "sign_http": _stats(sign_http),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    result = asyncio.run(run(args.n))
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result["cpus"] = os.cpu_count()
    for name in ("render", "seal", "verify", "sign_http"):
        s = result[name]
        print(
            f"{name:10s} p50 {s['p50_ms']:7.1f} ms   p95 {s['p95_ms']:7.1f} ms   "
            f"cpu p50 {s['cpu_p50_ms']:7.1f} ms   (n={s['n']})"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
