"""Commitment letters (承诺书) and inspection records (勘验笔录): templated, signed on the
phone, rendered to PDF, sealed with the agency's certificate and verifiable by anyone.

``setup(app)`` is what the app factory calls; the domain modules never import aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


def setup(app: web.Application) -> None:
    from server.letters.web import setup as setup_web

    setup_web(app)
