"""Wiring the letters package into the app: its resource (the seal) and its routes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from server.appkeys import API_SPEC, BLOBS, SETTINGS
from server.letters import handlers, pages, pki
from server.letters.appkeys import LETTERS
from server.letters.documents import LetterContext

DEFAULT_AGENCY = "云勘视频勘验服务中心"


def _setting(app: web.Application, name: str, env: str) -> str:
    """Seal settings: from ``Settings`` when the foundation has the field, else the env."""
    value = getattr(app[SETTINGS], name, None)
    return str(value) if value else os.environ.get(env, "")


async def _letters(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    p12 = _setting(app, "seal_p12", "YUNKAN_SEAL_P12")
    ca = _setting(app, "seal_ca", "YUNKAN_SEAL_CA")
    # Loading (or, on first start, generating) the PKI touches files: keep it off the loop.
    material = await asyncio.to_thread(
        pki.load_or_create,
        Path(settings.data_dir),
        p12_path=Path(p12) if p12 else None,
        p12_password=_setting(app, "seal_p12_password", "YUNKAN_SEAL_P12_PASSWORD") or None,
        ca_path=Path(ca) if ca else None,
    )
    public_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    app[LETTERS] = LetterContext(
        blobs=app[BLOBS],
        seal=material,
        timezone=settings.timezone,
        public_url=public_url,
        agency_name=_setting(app, "agency_name", "YUNKAN_AGENCY_NAME") or DEFAULT_AGENCY,
    )
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_letters)
    app.router.add_routes(handlers.routes)
    app[API_SPEC].include(handlers.routes)
    app.router.add_routes(pages.routes)
