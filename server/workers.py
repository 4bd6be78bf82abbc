"""``yunkan serve --workers N``: every core of a host, one command.

One Python process forwards media on one core, so a host runs N worker processes. The
choices (docs/deployment.md, "Several workers on one host"):

* **The public port is shared** with ``SO_REUSEPORT``: every worker listens on
  ``host:port`` and the kernel spreads new connections over them. Pages and the API are
  stateless, so any worker answers them.
* **Each worker also listens on its own port**, ``port + 1 + i``, and advertises that as
  its node URL (``YUNKAN_ADVERTISE_URL`` may be a template with ``{port}`` or ``{worker}``
  for a reverse proxy's per-worker paths). A room lives on one worker; a participant whose
  WebSocket the kernel handed to another worker gets ``wrong_node`` with the room's worker
  URL and reconnects there, exactly as between hosts.
* **Rooms are placed through the room directory** in Redis: more than one worker needs
  ``REDIS_URL`` (the settings refuse ``--workers > 1`` without it). Admission control
  (``signaling.admission``) places a new room on the least-loaded worker when the one
  reached has no headroom.
* **The parent does the one-time work** before any worker starts: migrations, demo
  seeding, the development certificate. Then it only supervises: a worker that dies is
  started again (after 1 s, doubling to 30 s while it keeps dying young); SIGTERM or
  SIGINT is forwarded to every worker, which shuts down gracefully (rooms close with 1001,
  clients reconnect), and a worker still running after ``GRACE`` seconds is killed.
* Background schedulers (reminders, no-shows, retention, deadlines) run in worker 0 only.
* Each worker's WebRTC sockets are its own (ephemeral UDP ports, as in one process).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from types import FrameType
from urllib.parse import urlsplit

from server.settings import Settings, SettingsError

log = logging.getLogger("yunkan.workers")
GRACE = 30.0
"""Seconds a worker has to shut down after SIGTERM before it is killed."""
RESTART_MIN, RESTART_MAX = 1.0, 30.0
YOUNG = 10.0
"""A worker that dies within this many seconds of its start waits longer before the next."""


def worker_port(settings: Settings, index: int) -> int:
    return settings.port + 1 + index


def worker_settings(settings: Settings, index: int, *, secure: bool = False) -> Settings:
    """The settings of worker ``index``: its own node id and URL in the directory
    (``secure``: the worker serves HTTPS itself, e.g. ``--tls-dev``)."""
    port = worker_port(settings, index)
    if not 0 < port < 65536:
        raise SettingsError(f"--port {settings.port} leaves no port for worker {index}")
    template = settings.advertise_url
    if template and ("{port}" in template or "{worker}" in template):
        advertise = template.format(port=port, worker=index)
    elif template:
        raise SettingsError(
            f"YUNKAN_ADVERTISE_URL={template!r} names one process; with --workers give a"
            " template with {port} or {worker}, e.g. https://window.example.cn/n/{worker}"
        )
    else:
        host = settings.host
        if host in ("", "0.0.0.0", "::"):  # noqa: S104  (naming the wildcard, not binding it)
            host = urlsplit(settings.effective_public_url).hostname or socket.gethostname()
        scheme = (
            "https"
            if secure or settings.tls_cert or settings.effective_public_url.startswith("https")
            else "http"
        )
        advertise = f"{scheme}://{host}:{port}"
    base = settings.node_id or f"{socket.gethostname()}:{settings.port}"
    return dataclasses.replace(
        settings,
        node_id=f"{base}/w{index}",
        advertise_url=advertise,
        background_tasks=settings.background_tasks and index == 0,
    )


def listening_sockets(settings: Settings, index: int) -> list[socket.socket]:
    """The shared public socket (``SO_REUSEPORT``) and this worker's own one."""
    out = []
    for port, shared in ((settings.port, True), (worker_port(settings, index), False)):
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.host, port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(256)
        sock.set_inheritable(False)
        out.append(sock)
    return out


def _die_with_parent() -> None:
    # A worker must not outlive a parent that was killed (SIGKILL skips the forwarding).
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclasses.dataclass(slots=True)
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = RESTART_MIN
    due: float = 0.0


class Supervisor:
    """Starts the workers, restarts the ones that die, forwards SIGTERM/SIGINT."""

    def __init__(self, count: int, argv: Callable[[int], Sequence[str]]) -> None:
        self.workers = [_Worker(i) for i in range(count)]
        self.argv = argv
        self._stopping = False

    def _start(self, worker: _Worker) -> None:
        # Own session: a terminal's Ctrl-C reaches the parent only, which forwards it once.
        worker.proc = subprocess.Popen(
            list(self.argv(worker.index)), start_new_session=True, preexec_fn=_die_with_parent
        )
        worker.started = time.monotonic()
        log.info("worker %d started (pid %d)", worker.index, worker.proc.pid)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for worker in self.workers:
                self._start(worker)
            while not self._stopping:
                self._watch()
                time.sleep(0.2)
        finally:
            self._shutdown()
            for s, handler in previous.items():
                signal.signal(s, handler)
        return 0

    def _watch(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if worker.proc is not None and worker.proc.poll() is not None:
                code = worker.proc.returncode
                lived = now - worker.started
                worker.delay = min(RESTART_MAX, worker.delay * 2) if lived < YOUNG else RESTART_MIN
                worker.due = now + worker.delay
                log.warning(
                    "worker %d (pid %d) exited with %s after %.0f s; restarting in %.0f s",
                    worker.index,
                    worker.proc.pid,
                    code,
                    lived,
                    worker.delay,
                )
                worker.proc = None
            if worker.proc is None and now >= worker.due:
                self._start(worker)

    def _shutdown(self) -> None:
        running = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop within %.0f s; killing", proc.pid, GRACE)
                proc.kill()
                proc.wait()


def worker_argv(base: Sequence[str], count: int) -> Callable[[int], list[str]]:
    """``yunkan serve …`` for worker ``i``: the parent's options plus ``--worker-index``."""
    import sys

    def argv(index: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            *base,
            "--workers",
            str(count),
            "--worker-index",
            str(index),
        ]

    return argv
