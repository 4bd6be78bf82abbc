"""Wiring the letters package into the app: its resource (the seal) and its routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from recordings import checkpoints
from server.appkeys import API_SPEC, BLOBS, DB, SETTINGS
from server.letters import handlers, pages, pki
from server.letters.appkeys import LETTERS
from server.letters.documents import LetterContext
from server.settings import Settings

DEFAULT_AGENCY = "云勘视频勘验服务中心"
STAMP_EVERY = 30.0
"""Seconds between runs that add TSA tokens to checkpoints signed inside transactions."""
log = logging.getLogger("yunkan.letters")


def load_seal(settings: Settings) -> pki.SealMaterial:
    """The deployment's seal with its TSA and agency name (blocking: touches files).
    Also used by the CLI, whose sessions sign checkpoints like the app's."""
    p12, ca = settings.seal_p12, settings.seal_ca
    material = pki.load_or_create(
        Path(settings.data_dir),
        p12_path=Path(p12) if p12 else None,
        p12_password=settings.seal_p12_password or None,
        ca_path=Path(ca) if ca else None,
    )
    agency = settings.agency_name or DEFAULT_AGENCY
    return material.configured(tsa_url=settings.tsa_url, agency_name=agency)


async def _letters(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Loading (or, on first start, generating) the PKI touches files: keep it off the loop.
    material = await asyncio.to_thread(load_seal, settings)
    agency = material.agency_name
    signer = material.checkpoint_signer()
    # The procedure's moves sign the chain head inside their transaction: the signer
    # rides on every session of this app (``recordings.checkpoints.signer_of``).
    app[DB].configure(info={checkpoints.SIGNER: signer})
    app[LETTERS] = LetterContext(
        blobs=app[BLOBS],
        seal=material,
        timezone=settings.timezone,
        public_url=settings.effective_public_url,
        agency_name=agency,
    )
    task = None
    if signer.timestamper is not None and settings.background_tasks:
        task = asyncio.create_task(_stamp_loop(app, signer))
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _stamp_loop(app: web.Application, signer: checkpoints.Signer) -> None:
    while True:
        try:
            await checkpoints.stamp_pending(app[DB], signer)
        except Exception:
            log.exception("timestamping checkpoints failed; trying again later")
        await asyncio.sleep(STAMP_EVERY)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_letters)
    app.router.add_routes(handlers.routes)
    app[API_SPEC].include(handlers.routes)
    app.router.add_routes(pages.routes)
