"""Evidence over HTTP: the API (``handlers``) and the case pages (``pages``).

The domain lives in ``recordings/``; this package only adapts it to aiohttp.
"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    from server.evidence import handlers, pages

    handlers.setup(app)
    pages.setup(app)
