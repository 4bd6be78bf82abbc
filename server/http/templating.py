"""What every template sees: translations, locale, the principal and the CSRF token."""

from __future__ import annotations

from aiohttp import web

from server.appkeys import CATALOGS, SETTINGS
from server.http.requests import CSRF, LOCALE, optional_principal


async def template_context(request: web.Request) -> dict[str, object]:
    locale = request.get(LOCALE, request.app[SETTINGS].default_locale)
    return {
        **request.app[CATALOGS].callables(locale),
        "locale": locale,
        "html_lang": "zh-CN" if locale == "zh_CN" else "en",
        "principal": optional_principal(request),
        "csrf_token": request.get(CSRF, ""),
        "request_path": request.path_qs,
        "demo": request.app[SETTINGS].demo,
    }
