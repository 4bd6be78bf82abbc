"""Real ``yunkan serve`` processes on 127.0.0.1 sharing one database (tests and bench).

Each node is a separate Python process with its own connection pool, so whatever keeps
two bookings from taking the same seat has to be in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
SECRET = "booking-contention-" + "s" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def _wait_healthy(url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 180  # imports alone took 40 s at load 17 on 2 cores
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"server exited ({proc.returncode}):\n{_tail(log)}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server at {url} did not become healthy:\n{_tail(log)}")


@contextlib.asynccontextmanager
async def running_servers(
    database_url: str,
    data_dir: Path,
    count: int = 2,
    env: Mapping[str, str] | None = None,
    pids: list[int] | None = None,
) -> AsyncIterator[list[str]]:
    """Start ``count`` servers on free ports; yield their base URLs; stop them all.

    ``pids``, when given, receives the servers' process ids (the bench reads their CPU
    time from ``/proc``).
    """
    procs: list[asyncio.subprocess.Process] = []
    logs: list[Path] = []
    urls: list[str] = []
    inherited = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    base_env = {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "YUNKAN_SECRET_KEY": SECRET,
        "YUNKAN_BACKGROUND_TASKS": "false",
        "YUNKAN_LOG_LEVEL": "WARNING",
        "YUNKAN_DEMO": "false",
        **(env or {}),
    }
    try:
        for i in range(count):
            port = free_port()
            node_dir = data_dir / f"node{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            log = node_dir / "server.log"
            logs.append(log)
            with log.open("wb") as out:
                procs.append(
                    await asyncio.create_subprocess_exec(
                        *[
                            sys.executable,
                            "-m",
                            "server.cli",
                            "serve",
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(port),
                            "--data-dir",
                            str(node_dir),
                        ],
                        cwd=ROOT,
                        env={**base_env, "YUNKAN_NODE_ID": f"node{i}"},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc, log in zip(urls, procs, logs, strict=True):
            await _wait_healthy(url, proc, log)
        if pids is not None:
            pids.extend(proc.pid for proc in procs)
        yield urls
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
