"""The booking background task: reminders and no-shows, in every process.

Each process runs one loop (a ``cleanup_ctx``); they need no coordination because every
step is a conditional UPDATE the database arbitrates (see :mod:`reminders`). Tests turn
the loop off with ``background_tasks=False`` and call :func:`tick` themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from aiohttp import web

from server.appkeys import DB, OUTBOX_WAKE, SETTINGS, SMS
from server.booking import models as m
from server.booking.present import links_for
from server.booking.reminders import mark_no_shows, send_due

log = logging.getLogger("yunkan.booking.scheduler")

INTERVAL_SECONDS = 20.0
NO_SHOW_GRACE = timedelta(minutes=15)
_OFFSET = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_offsets(text: str) -> tuple[timedelta, ...]:
    """``"24h,30m"`` → (24 h, 30 min); unknown parts are ignored with a warning."""
    out: list[timedelta] = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = _OFFSET.match(part)
        if match is None:
            log.warning("ignoring reminder offset %r (use forms like 24h, 30m, 2d)", part)
            continue
        out.append(timedelta(**{_UNITS[match.group(2)]: int(match.group(1))}))
    return tuple(sorted(set(out), reverse=True))


def worker_name(app: web.Application) -> str:
    node = app[SETTINGS].effective_node_id or socket.gethostname()
    return f"{node}:{os.getpid()}"


async def tick(app: web.Application, now: datetime | None = None) -> tuple[int, int]:
    """One pass: (reminders sent by this process, appointments marked no-show)."""
    settings = app[SETTINGS]

    def join_url(appt: m.Appointment) -> str:
        return links_for(settings, appt).join_url

    sent = await send_due(
        app[DB], app[SMS], worker=worker_name(app), zone=settings.zone, join_url=join_url, now=now
    )
    no_shows = await mark_no_shows(app[DB], grace=NO_SHOW_GRACE, now=now)
    return sent, len(no_shows)


def wake_outbox(app: web.Application) -> None:
    """Ask this process's loop for a pass now: a committed change wrote SMS to the outbox
    (a confirmation should not wait up to :data:`INTERVAL_SECONDS`). Wakes that arrive
    during a pass coalesce into one more pass. Without background tasks nothing runs."""
    wake = app.get(OUTBOX_WAKE)
    if wake is not None:
        wake.set()


async def _loop(app: web.Application, wake: asyncio.Event) -> None:
    while True:
        wake.clear()
        try:
            await tick(app)
        except Exception:  # keep the loop alive through a database restart
            log.exception("booking scheduler pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), INTERVAL_SECONDS)


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    task = None
    if app[SETTINGS].background_tasks:
        app[OUTBOX_WAKE] = wake = asyncio.Event()
        task = asyncio.create_task(_loop(app, wake), name="booking-scheduler")
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
