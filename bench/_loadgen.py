"""Load-side pieces shared by the media benches: the server child process and a track
that replays pre-encoded packets in real time."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

TICK = os.sysconf("SC_CLK_TCK")


class ServerError(Exception):
    """The bench server's reply to a call was an error (``code``: e.g. ``node_busy``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class ChildServer:
    """A bench server in its own process (so its CPU is measured alone), driven over a
    JSON-lines connection. The child prints its port on the first line of stdout. With
    ``raise_errors``, a reply ``{"error": code, "message": …}`` raises ``ServerError``
    (``bench/relay.py``'s server sends one for any exception); otherwise it is returned."""

    def __init__(
        self,
        argv: list[str],
        renice: int = 0,
        preexec: Callable[[], None] | None = None,
        raise_errors: bool = False,
    ) -> None:
        self.raise_errors = raise_errors
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=preexec)
        if renice:
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, renice)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def call(self, **msg: Any) -> dict[str, Any]:
        async with self._lock:
            self.writer.write(json.dumps(msg).encode() + b"\n")
            await self.writer.drain()
            reply: dict[str, Any] = json.loads(await self.reader.readline())
        if self.raise_errors and "error" in reply:
            raise ServerError(reply["error"], reply.get("message", ""))
        return reply

    def cpu_seconds(self) -> float:
        """User + system CPU of the child (all threads), from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    async def stop(self) -> None:
        self.writer.close()
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class LoopTrack(MediaStreamTrack):
    """Replays pre-encoded packets in real time; a key frame request restarts the loop."""

    def __init__(self, kind: str, packets: list[tuple[bytes, bool]], rate: int, step: int):
        super().__init__()
        self.kind = kind
        self._packets, self._rate, self._step = packets, rate, step
        self._interval = step / rate
        self._count = 0
        self._pos = 0
        self.restarts = 0
        self._t0: float | None = None

    def restart(self) -> None:
        self._pos = 0
        self.restarts += 1

    async def recv(self) -> av.Packet[Any]:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        await asyncio.sleep(max(0.0, self._t0 + self._count * self._interval - time.monotonic()))
        data, key = self._packets[self._pos % len(self._packets)]
        packet = av.Packet(data)
        packet.pts = self._count * self._step
        packet.time_base = Fraction(1, self._rate)
        packet.is_keyframe = key
        self._count += 1
        self._pos += 1
        return packet
