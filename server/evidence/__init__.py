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

from server.appkeys import BLOBS, DB, SETTINGS

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


def setup(app: web.Application) -> None:
    from server.evidence import handlers, pages, redacted
    from server.evidence.live import VIDEO_RESOLVER
    from server.evidence.recording import relay_resolver

    handlers.setup(app)
    redacted.setup(app)
    pages.setup(app)
    app[VIDEO_RESOLVER] = relay_resolver
    app.cleanup_ctx.append(_retention)
