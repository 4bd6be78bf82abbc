"""Small helpers every handler uses."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from server.accounts.principal import Principal
from server.appkeys import LIMITER, SETTINGS
from server.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
)
from server.parsing import parse_id
from server.ratelimit import Limit, enforce
from server.settings import IPNetwork

# What aiohttp raises for a form or multipart body that does not parse: KeyError (no
# boundary), ValueError/UnicodeDecodeError (bad body), LookupError (unknown charset),
# HttpProcessingError (a part's headers), AssertionError (its reader's own checks).
MALFORMED_FORM_ERRORS = (KeyError, ValueError, LookupError, AssertionError, HttpProcessingError)

PRINCIPAL = web.RequestKey["Principal | None"]("principal")
LOCALE = web.RequestKey[str]("locale")
REQUEST_ID = web.RequestKey[str]("request_id")
CSRF = web.RequestKey[str]("csrf")


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(text: str, networks: tuple[IPNetwork, ...]) -> bool:
    address = _address(text)
    return address is not None and any(address in network for network in networks)


def _via_trusted_proxy(request: web.Request) -> bool:
    settings = request.app[SETTINGS]
    return settings.trust_proxy and _trusted(request.remote or "", settings.trusted_proxy_networks)


def client_ip(request: web.Request) -> str:
    """The address rate limits, sessions and audits key on.

    With ``trust_proxy`` and a peer that is one of ``trusted_proxies``, the rightmost
    ``X-Forwarded-For`` hop that is not a trusted proxy: each proxy appends the address it
    saw, so everything left of that hop was written by the client and proves nothing (the
    leftmost value is whatever an attacker wants it to be)."""
    peer = request.remote or ""
    if not _via_trusted_proxy(request):
        return peer[:64]
    networks = request.app[SETTINGS].trusted_proxy_networks
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
    client = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage: stay with the last hop a trusted proxy vouched for
        client = str(address)
        if not any(address in network for network in networks):
            break
    return client[:64]


async def limit_per_ip(request: web.Request, *limits: Limit) -> None:
    """Count this request against each limit for its client address; 429 when over."""
    ip = client_ip(request) or "unknown"
    await enforce(request.app[LIMITER], *((limit, ip) for limit in limits))


def is_secure(request: web.Request) -> bool:
    if request.app[SETTINGS].cookie_secure or request.secure:
        return True
    return _via_trusted_proxy(request) and request.headers.get("X-Forwarded-Proto") == "https"


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
