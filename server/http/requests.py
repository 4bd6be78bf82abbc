"""Small helpers every handler uses."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.accounts.principal import Principal
from server.appkeys import SETTINGS
from server.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
)
from server.parsing import parse_id

PRINCIPAL = web.RequestKey["Principal | None"]("principal")
LOCALE = web.RequestKey[str]("locale")
REQUEST_ID = web.RequestKey[str]("request_id")
CSRF = web.RequestKey[str]("csrf")


def client_ip(request: web.Request) -> str:
    if request.app[SETTINGS].trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return (request.remote or "")[:64]


def is_secure(request: web.Request) -> bool:
    if request.app[SETTINGS].cookie_secure or request.secure:
        return True
    return request.app[SETTINGS].trust_proxy and request.headers.get("X-Forwarded-Proto") == "https"


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


def optional_principal(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


def require_principal(request: web.Request) -> Principal:
    principal = optional_principal(request)
    if principal is None:
        raise AuthenticationError()
    return principal


def require_staff(request: web.Request, *roles: str) -> Principal:
    """A logged-in member of staff, optionally with one of ``roles``."""
    principal = require_principal(request)
    if not principal.is_staff or (roles and not principal.has_role(*roles)):
        raise PermissionDeniedError()
    return principal


def require_applicant(request: web.Request) -> Principal:
    principal = require_principal(request)
    if principal.kind != "applicant":
        raise PermissionDeniedError()
    return principal


def int_param(request: web.Request, name: str) -> int:
    """A numeric path parameter (:func:`server.parsing.parse_id`); anything else is simply
    not found."""
    value = parse_id(request.match_info.get(name))
    if value is None:
        raise NotFoundError()
    return value


def locale_of(request: web.Request) -> str:
    locale: str = request.get(LOCALE) or request.app[SETTINGS].default_locale
    return locale


def translate(request: web.Request, message: str, **params: Any) -> str:
    from server.appkeys import CATALOGS

    text: str = request.app[CATALOGS].gettext(locale_of(request), message, **params)
    return text
