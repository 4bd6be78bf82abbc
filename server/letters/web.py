"""Wiring the letters package into the app: its resource (the seal) and its routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from server.appkeys import API_SPEC, BLOBS, SETTINGS
from server.letters import handlers, pages, pki
from server.letters.appkeys import LETTERS
from server.letters.documents import LetterContext

DEFAULT_AGENCY = "云勘视频勘验服务中心"


async def _letters(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    p12, ca = settings.seal_p12, settings.seal_ca
    # Loading (or, on first start, generating) the PKI touches files: keep it off the loop.
    material = await asyncio.to_thread(
        pki.load_or_create,
        Path(settings.data_dir),
        p12_path=Path(p12) if p12 else None,
        p12_password=settings.seal_p12_password or None,
        ca_path=Path(ca) if ca else None,
    )
    app[LETTERS] = LetterContext(
        blobs=app[BLOBS],
        seal=material,
        timezone=settings.timezone,
        public_url=settings.effective_public_url,
        agency_name=settings.agency_name or DEFAULT_AGENCY,
    )
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_letters)
    app.router.add_routes(handlers.routes)
    app[API_SPEC].include(handlers.routes)
    app.router.add_routes(pages.routes)
