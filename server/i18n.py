"""Translations: Babel ``.po`` catalogs under ``web/translations``, zh-CN first.

Message ids are English. Every ``.po`` file in ``<locale>/LC_MESSAGES`` is merged, so each
domain keeps its own file. Catalogs are compiled in memory at start-up (no build step).
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parent.parent / "web" / "translations"
LOCALES = ("zh_CN", "en")
LOCALE_COOKIE = "yk_lang"


class Catalogs:
    def __init__(self, root: Path = TRANSLATIONS) -> None:
        self._by_locale: dict[str, gettext.NullTranslations] = {}
        for locale in LOCALES:
            self._by_locale[locale] = _load(root / locale / "LC_MESSAGES", locale)

    def get(self, locale: str) -> gettext.NullTranslations:
        return self._by_locale.get(locale, self._by_locale["zh_CN"])

    def gettext(self, locale: str, message: str, **params: Any) -> str:
        text = self.get(locale).gettext(message)
        return text % params if params else text

    def callables(self, locale: str) -> dict[str, Callable[..., str]]:
        translations = self.get(locale)

        def _(message: str, **params: Any) -> str:
            text = translations.gettext(message)
            return text % params if params else text

        def ngettext(singular: str, plural: str, n: int, **params: Any) -> str:
            text = translations.ngettext(singular, plural, n)
            return text % {"num": n, **params}

        return {"_": _, "gettext": _, "ngettext": ngettext}


def _load(folder: Path, locale: str) -> gettext.NullTranslations:
    files = sorted(folder.glob("*.po")) if folder.is_dir() else []
    if not files:
        return gettext.NullTranslations()
    merged = None
    for path in files:
        with open(path, "rb") as fh:
            catalog = read_po(fh, locale=locale)
        if merged is None:
            merged = catalog
            continue
        for message in catalog:
            if message.id and message.string:
                merged[message.id] = message
    assert merged is not None
    buffer = io.BytesIO()
    write_mo(buffer, merged)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def pick_locale(cookie: str | None, accept_language: str | None, default: str) -> str:
    """Cookie first (the language switch), then the browser's first choice, then default."""
    if cookie in LOCALES:
        return cookie
    if accept_language:
        first = accept_language.split(",")[0].split(";")[0].strip().lower()
        if first.startswith("zh"):
            return "zh_CN"
        if first.startswith("en"):
            return "en"
    return default
