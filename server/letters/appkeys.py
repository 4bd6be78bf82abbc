"""The letters package's application key (kept apart so domain modules need no aiohttp)."""

from __future__ import annotations

from aiohttp import web

from server.letters.documents import LetterContext

LETTERS = web.AppKey[LetterContext]("letters")
