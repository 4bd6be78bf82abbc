"""Janus 1.1.2's VideoRoom as the reference SFU of ``bench/sfu.py``: a private config, the
server as a child process, and a minimal client of its HTTP API.

Janus is Debian's package (``apt-get install -y janus``). Its config keeps only the
VideoRoom plugin and the HTTP transport (127.0.0.1), no STUN/TURN, half-trickle (aiortc
puts its candidates in the SDP), and RTP on ``interface`` only: Janus never gathers on a
loopback interface (src/ice.c skips IFF_LOOPBACK), so ``bench/sfu.py`` gives it a veth
interface inside a private network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

LIBDIR = Path("/usr/lib/x86_64-linux-gnu/janus")
HTTP_PORT = 18588

CORE = """general: {{
	configs_folder = "{etc}"
	plugins_folder = "{plugins}"
	transports_folder = "{transports}"
	events_folder = "{empty}"
	loggers_folder = "{empty}"
	debug_level = 4
	server_name = "yunkan-bench"
	session_timeout = 120
	protected_folders = ["/bin","/boot","/dev","/etc","/lib","/proc","/sbin","/sys","/usr","/var"]
}}
certificates: {{
}}
media: {{
	ipv6 = false
	rtp_port_range = "40000-40999"
}}
nat: {{
	nice_debug = false
	full_trickle = false
	ice_lite = false
	ice_tcp = false
	ice_enforce_list = "{interface}"
}}
plugins: {{
}}
transports: {{
}}
loggers: {{
}}
events: {{
	broadcast = false
}}
"""

HTTP = """general: {{
	json = "compact"
	base_path = "/janus"
	http = true
	port = {port}
	ip = "127.0.0.1"
	https = false
}}
admin: {{
	admin_http = false
	admin_https = false
}}
cors: {{
}}
"""


def write_config(directory: Path, interface: str) -> Path:
    """Janus's config under ``directory`` (VideoRoom + HTTP only); returns janus.jcfg."""
    etc, plugins, transports, empty = (directory / d for d in ("etc", "plugins", "t", "empty"))
    for d in (etc, plugins, transports, empty):
        d.mkdir(parents=True, exist_ok=True)
    for link, target in (
        (plugins / "libjanus_videoroom.so", LIBDIR / "plugins" / "libjanus_videoroom.so"),
        (transports / "libjanus_http.so", LIBDIR / "transports" / "libjanus_http.so"),
    ):
        if not link.exists():
            link.symlink_to(target)
    core = etc / "janus.jcfg"
    core.write_text(
        CORE.format(
            etc=etc, plugins=plugins, transports=transports, empty=empty, interface=interface
        )
    )
    (etc / "janus.transport.http.jcfg").write_text(HTTP.format(port=HTTP_PORT))
    # No static rooms: the load creates one room per pair over the API.
    (etc / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    return core


class JanusError(RuntimeError):
    pass


class JanusServer:
    """Janus in the foreground, a child process of ours (its own PID for /proc readings)."""

    def __init__(self, config: Path, log_path: Path, preexec: Callable[[], None]) -> None:
        self.port = HTTP_PORT
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            ["janus", "-F", str(config.parent), "-C", str(config), "-N", "-o"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
        )

    async def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            for _ in range(100):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
        self.proc.wait()
        self._log.close()


class Janus:
    """One Janus session (one long poll) holding every handle of a round."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: dict[str, list[int]] = {}
        """Janus event type (webrtcup, hangup, slowlink, …) -> the handles it came from."""
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tx = itertools.count()
        self._poll_task: asyncio.Task[None] | None = None

    async def _post(self, url: str, msg: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(url, json=msg) as response:
            data: dict[str, Any] = await response.json(content_type=None)
        return data

    async def start(self, within: float = 15.0) -> None:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        stop = time.monotonic() + within
        while True:
            try:
                data = await self._post(self.url, {"janus": "create", "transaction": "c"})
                break
            except aiohttp.ClientError:
                if time.monotonic() > stop:
                    raise
                await asyncio.sleep(0.2)
        self.session = f"{self.url}/{data['data']['id']}"
        self._poll_task = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        while True:
            params = {"maxev": "20", "rid": str(int(time.time() * 1000))}
            try:
                async with self.http.get(self.session, params=params) as response:
                    data = await response.json(content_type=None)
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.2)
                continue
            for event in data if isinstance(data, list) else [data]:
                kind = event.get("janus")
                future = self._pending.pop(event.get("transaction", ""), None)
                if kind == "event" and future is not None:
                    if not future.done():
                        future.set_result(event)
                elif kind in ("webrtcup", "media", "hangup", "slowlink", "detached"):
                    self.events.setdefault(kind, []).append(event.get("sender", 0))

    async def wait_event(self, kind: str, handle: str, within: float) -> None:
        handle_id = int(handle.rsplit("/", 1)[1])
        stop = time.monotonic() + within
        while handle_id not in self.events.get(kind, []):
            if time.monotonic() > stop:
                raise JanusError(f"no {kind} from handle {handle_id} within {within} s")
            await asyncio.sleep(0.02)

    async def attach(self) -> str:
        data = await self._post(
            self.session,
            {"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": "a"},
        )
        if data.get("janus") != "success":
            raise JanusError(data)
        return f"{self.session}/{data['data']['id']}"

    async def message(
        self, handle: str, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        tx = f"t{next(self._tx)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[tx] = future
        msg: dict[str, Any] = {"janus": "message", "transaction": tx, "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        data = await self._post(handle, msg)
        if data.get("janus") == "success":  # a synchronous request (create, list, …)
            self._pending.pop(tx, None)
            result = data
        elif data.get("janus") == "ack":
            result = await asyncio.wait_for(future, 30)
        else:
            self._pending.pop(tx, None)
            raise JanusError(data)
        plugin = result.get("plugindata", {}).get("data", {})
        if "error" in plugin:
            raise JanusError(plugin)
        return result

    async def close(self) -> None:
        if not hasattr(self, "http"):
            return
        if self._poll_task is not None:
            self._poll_task.cancel()
            with contextlib.suppress(BaseException):
                await self._poll_task
        with contextlib.suppress(Exception):
            await self._post(self.session, {"janus": "destroy", "transaction": "d"})
        await self.http.close()
