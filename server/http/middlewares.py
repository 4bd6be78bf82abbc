"""Middlewares, outermost first: request id + metrics, security headers, errors, locale,
input (text of the query, path, cookies and forms), authentication, CSRF."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web
from aiohttp.helpers import parse_mimetype
from multidict import MultiDictProxy

from server.accounts.session_cache import SESSION_CACHE
from server.accounts.sessions import SESSION_COOKIE, principal_for_token
from server.appkeys import CATALOGS, DB, METRICS, SETTINGS
from server.errors import (
    BadRequestError,
    CsrfError,
    InvalidTextError,
    MalformedFormError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServiceUnavailableError,
    YunkanError,
)
from server.http.outages import unavailable
from server.http.requests import (
    CSRF,
    LOCALE,
    MALFORMED_FORM_ERRORS,
    PRINCIPAL,
    REQUEST_ID,
    is_secure,
    wants_json,
)
from server.http.responses import json_response
from server.http.templating import template_context
from server.i18n import LOCALE_COOKIE, pick_locale
from server.logs import request_id_var
from server.parsing import BAD_TEXT, bad_text

log = logging.getLogger("yunkan.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CSRF_COOKIE = "yk_csrf"
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_NO_SESSION_PREFIXES = ("/static/", "/healthz", "/readyz", "/metrics")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src {connect}; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'self'; form-action 'self'"
)
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def content_security_policy(request: web.Request) -> str:
    """``connect-src`` is this origin and its own WebSocket: CSP Level 2 browsers do not
    count ``ws:``/``wss:`` to the same host as ``'self'``, so the host is named; a Host
    header that is not a plain host[:port] gets ``'self'`` alone."""
    host = request.host
    connect = "'self'"
    if _HOST.fullmatch(host):
        connect += f" wss://{host}" if is_secure(request) else f" ws://{host} wss://{host}"
    return CSP.format(connect=connect)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    request_id = (
        incoming if 8 <= len(incoming) <= 64 and incoming.isalnum() else secrets.token_hex(8)
    )
    request[REQUEST_ID] = request_id
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request_id_var.reset(token)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics = request.app[METRICS]
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)


def _http_error(exc: web.HTTPException) -> YunkanError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLargeError()
    if isinstance(exc, web.HTTPNotFound):
        return NotFoundError()
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowedError(exc.allowed_methods)
    err = BadRequestError(exc.reason)
    err.status = exc.status  # type: ignore[misc]
    return err


async def error_response(request: web.Request, error: YunkanError) -> web.StreamResponse:
    catalogs = request.app[CATALOGS]
    locale = request.get(LOCALE, request.app[SETTINGS].default_locale)
    message = catalogs.gettext(locale, error.message, **error.params)
    headers: dict[str, str] = {}
    if isinstance(error, RateLimitedError | ServiceUnavailableError):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, MethodNotAllowedError):
        headers["Allow"] = ",".join(error.allow)
    if wants_json(request):
        body: dict[str, object] = {"code": error.code, "message": message}
        if error.fields:
            body["fields"] = {k: catalogs.gettext(locale, v) for k, v in error.fields.items()}
        if error.details:
            body["details"] = error.details
        return json_response({"error": body}, status=error.status, headers=headers)
    # Errors may be raised before aiohttp-jinja2's context middleware ran: build it here.
    context = {
        **await template_context(request),
        "error": error,
        "message": message,
        "status": error.status,
    }
    response = aiohttp_jinja2.render_template("error.html", request, context, status=error.status)
    response.headers.update(headers)
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except YunkanError as exc:
        if exc.status >= 500:
            log.exception("domain error %s", exc.code)
        return await error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.status in (101,):
            raise  # redirects and the like are answers, not errors
        return await error_response(request, _http_error(exc))
    except Exception as exc:
        outage = unavailable(exc)
        if outage is not None:
            # Expected while a dependency restarts: one line, not a stack trace per request.
            log.warning("%s on %s %s: %r", outage.code, request.method, request.path, exc)
            request.app[METRICS].outages.labels(outage.code).inc()
            return await error_response(request, outage)
        # Never a stack trace to the client; the log has it, keyed by the request id.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return await error_response(request, YunkanError())


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Content-Security-Policy", content_security_policy(request))
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=(self)")
    if is_secure(request):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def locale(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[LOCALE] = pick_locale(
        request.cookies.get(LOCALE_COOKIE),
        request.headers.get("Accept-Language"),
        request.app[SETTINGS].default_locale,
    )
    return await handler(request)


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_TEXT_HEADERS = ("Authorization", "Idempotency-Key")


async def read_form(
    request: web.Request,
) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The parsed form (aiohttp caches it for the handler), or 400 when it cannot be read.

    See ``MALFORMED_FORM_ERRORS`` for what aiohttp raises instead."""
    if request.content_type == "multipart/form-data" and not _has_boundary(request):
        raise MalformedFormError()
    try:
        return await request.post()
    except web.HTTPException:
        raise  # 413 from client_max_size
    except MALFORMED_FORM_ERRORS:
        raise MalformedFormError() from None


def _has_boundary(request: web.Request) -> bool:
    """RFC 2046: 1 to 70 characters; aiohttp's multipart reader parses it the same way."""
    mimetype = parse_mimetype(request.headers.get("Content-Type", ""))
    return 0 < len(mimetype.parameters.get("boundary", "")) <= 70


@web.middleware
async def input_text(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse NUL and lone surrogates wherever text enters before a handler sees it: the
    query, the path, cookies, the headers we store or hash, and page forms (JSON bodies are
    checked by ``read_json``). PostgreSQL cannot store NUL, and a lone surrogate (aiohttp
    decodes header bytes with ``surrogateescape``) cannot be encoded to hash or store."""
    fields: dict[str, str] = {}
    for source in (request.query, request.match_info):
        for key, value in source.items():
            if bad_text(key) or bad_text(value):
                fields[key] = BAD_TEXT
    for key, value in request.cookies.items():
        if bad_text(value):
            fields[key] = BAD_TEXT
    for header in _TEXT_HEADERS:
        if bad_text(request.headers.get(header, "")):
            fields[header] = BAD_TEXT
    # Page forms are parsed here, once, for every page (the CSRF check reads them next);
    # an API upload stays a stream for its handler, which reads only its file.
    if request.method in _UNSAFE and request.content_type in _FORM_TYPES:
        if request.content_type == "multipart/form-data" and not _has_boundary(request):
            raise MalformedFormError()
        if not request.path.startswith("/api/"):
            for key, item in (await read_form(request)).items():
                if bad_text(key) or (isinstance(item, str) and bad_text(item)):
                    fields[key] = BAD_TEXT
    if fields:
        raise InvalidTextError(fields=fields)
    return await handler(request)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


@web.middleware
async def authentication(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(_NO_SESSION_PREFIXES):
        token = bearer_token(request) or request.cookies.get(SESSION_COOKIE)
        if token:
            async with request.app[DB]() as session:
                request[PRINCIPAL] = await principal_for_token(
                    session, token, request.app.get(SESSION_CACHE)
                )
    return await handler(request)


async def _submitted_csrf(request: web.Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in _FORM_TYPES:
        form = await read_form(request)
        value = form.get("csrf_token")
        return value if isinstance(value, str) else None
    return None


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Double-submit cookie. Required on unsafe requests that carry a session cookie and on
    every page form; bearer-token calls and cookie-less JSON API calls carry no ambient
    authority and are exempt (``read_json`` refuses non-JSON bodies, and browsers cannot
    send cross-site JSON without a CORS preflight, which we never grant)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    request[CSRF] = cookie or secrets.token_urlsafe(24)
    if request.method in _UNSAFE and bearer_token(request) is None:
        needs = SESSION_COOKIE in request.cookies or not request.path.startswith("/api/")
        if needs:
            submitted = await _submitted_csrf(request)
            if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
                raise CsrfError()
    response = await handler(request)
    if not cookie and not response.prepared:
        response.set_cookie(
            CSRF_COOKIE,
            request[CSRF],
            httponly=True,
            samesite="Lax",
            secure=is_secure(request),
            path="/",
        )
    return response


MIDDLEWARES = (
    request_context,
    security_headers,
    errors,
    locale,
    input_text,
    authentication,
    csrf,
)
