"""Evidence over HTTP: the API (``handlers``), the case pages (``pages``), filing live
recordings on cases (``recording``) and the retention job.

The domain lives in ``recordings/``; this package only adapts it to aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from recordings.orphans import UnfiledReport
from server.appkeys import BLOBS, DB, METRICS, SETTINGS, UNFILED

log = logging.getLogger(__name__)

PURGE_EVERY = 6 * 3600.0  # seconds; retention is counted in days, a few runs a day suffice


async def _retention(app: web.Application) -> AsyncIterator[None]:
    from recordings.retention import purge_recordings

    async def loop() -> None:
        while True:
            try:
                report = await purge_recordings(app[DB], app[BLOBS], now=dt.datetime.now(dt.UTC))
                if report.purged or report.held:
                    log.info("retention run", extra={"retention": report.as_dict()})
            except Exception:
                log.exception("retention run failed; trying again later")
            await asyncio.sleep(PURGE_EVERY)

    task = asyncio.create_task(loop()) if app[SETTINGS].background_tasks else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


FIRST_UNFILED_CHECK = 60.0  # seconds after start: start-up recovery has filed what it can


async def check_unfiled(app: web.Application) -> UnfiledReport:
    """One run of the unfiled-files check: logged, on the gauge, kept for ``/readyz``."""
    from recordings.orphans import find_unfiled
    from recordings.recovery import RECORDINGS

    settings = app[SETTINGS]
    report = await find_unfiled(
        app[DB], app[BLOBS], settings.data_dir / RECORDINGS, base=settings.data_dir
    )
    for path in report.recordings:
        log.warning("recording %s is on disk and no case holds it", path)
    for path in report.blobs:
        log.warning("blob %s is in the store and no evidence row names it", path)
    app[METRICS].unfiled.labels("recordings").set(len(report.recordings))
    app[METRICS].unfiled.labels("blobs").set(len(report.blobs))
    app[UNFILED][:] = [report]  # a list: the app is frozen once it runs
    return report


async def _unfiled(app: web.Application) -> AsyncIterator[None]:
    every = app[SETTINGS].unfiled_check_s

    async def loop() -> None:
        await asyncio.sleep(min(FIRST_UNFILED_CHECK, every))
        while True:
            try:
                await check_unfiled(app)
            except Exception:
                log.exception("unfiled-files check failed; trying again later")
            await asyncio.sleep(every)

    run = app[SETTINGS].background_tasks and every > 0
    task = asyncio.create_task(loop()) if run else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def setup(app: web.Application) -> None:
    from server.evidence import handlers, pages, redacted
    from server.evidence.live import VIDEO_RESOLVER
    from server.evidence.recording import relay_resolver

    handlers.setup(app)
    redacted.setup(app)
    pages.setup(app)
    app[VIDEO_RESOLVER] = relay_resolver
    app[UNFILED] = []
    app.cleanup_ctx.extend([_retention, _unfiled])
