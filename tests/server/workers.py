"""A real ``yunkan serve --workers N`` on 127.0.0.1 (tests and ``bench/capacity.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
SECRET = "workers-test-" + "w" * 32


def free_ports(count: int) -> int:
    """A port such that it and the ``count`` after it are free now (the workers' own)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count >= 65535:
            continue
        held = []
        try:
            for port in range(base, base + count + 1):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no run of free ports")


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) == pid:
                out.append(int(entry.name))
    return sorted(out)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Workers:
    proc: subprocess.Popen[bytes]
    port: int
    count: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_url(self, index: int) -> str:
        if self.count == 1:  # one process serves the public port only (no supervisor)
            return self.url
        return f"http://127.0.0.1:{self.port + 1 + index}"

    def server_pids(self) -> list[int]:
        """The processes that serve (the workers, or the one process)."""
        return children(self.proc.pid) if self.count > 1 else [self.proc.pid]

    def ws(self, url: str) -> str:
        return url.replace("http://", "ws://") + "/live/ws"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def wait_healthy(self, within: float = 90) -> None:
        deadline = time.monotonic() + within
        urls = [self.url, *(self.worker_url(i) for i in range(self.count))]
        async with aiohttp.ClientSession() as http:
            for url in urls:
                while True:
                    if self.proc.poll() is not None:
                        raise RuntimeError(
                            f"yunkan exited ({self.proc.returncode}):\n{self.tail()}"
                        )
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{url} did not answer /healthz:\n{self.tail()}")
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        async with http.get(f"{url}/healthz") as response:
                            if response.status == 200:
                                break
                    await asyncio.sleep(0.2)


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


@contextlib.asynccontextmanager
async def running_workers(
    data_dir: Path, count: int, env: Mapping[str, str], database_url: str = ""
) -> AsyncIterator[Workers]:
    """``yunkan serve --workers count`` in its own process; stopped with SIGTERM."""
    port = free_ports(count)
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    log = data_dir / "serve.log"
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")},
        "PYTHONPATH": str(ROOT),
        "YUNKAN_SECRET_KEY": SECRET,
        "YUNKAN_BACKGROUND_TASKS": "false",
        "YUNKAN_LOG_LEVEL": "WARNING",
        "YUNKAN_LOG_FORMAT": "text",
        "YUNKAN_DEMO": "false",
        "YUNKAN_ICE_HOST_ADDRESSES": "127.0.0.1",
        **({"DATABASE_URL": database_url} if database_url else {}),
        **env,
    }
    argv = [sys.executable, "-m", "server.cli", "serve", "--workers", str(count)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    proc = await asyncio.to_thread(_spawn, argv, full_env, log)
    workers = Workers(proc, port, count, log)
    try:
        await workers.wait_healthy()
        yield workers
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 45)
        except subprocess.TimeoutExpired:
            for child in children(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            proc.kill()
            proc.wait()
