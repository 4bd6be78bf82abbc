"""Log-in endpoints: JSON API for clients, forms for the pages, and the SMS outbox."""

from __future__ import annotations

import datetime as dt

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from server.accounts import service
from server.accounts.models import SmsMessage
from server.accounts.principal import Principal
from server.accounts.sessions import SESSION_COOKIE, revoke
from server.appkeys import DB, LIMITER, SETTINGS, SMS
from server.errors import NotFoundError, YunkanError
from server.http.middlewares import bearer_token, error_response
from server.http.requests import client_ip, is_secure, require_principal, require_staff
from server.http.responses import json_response
from server.masking import mask_mobile
from server.openapi import ApiRoutes, read_json
from server.parsing import parse_digits

routes = ApiRoutes(tag="auth")
DEVICE_COOKIE = "yk_device"
DEVICE_DAYS = 180

PRINCIPAL_SCHEMA = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["staff", "applicant"]},
        "id": {"type": "integer"},
        "role": {"type": "string"},
        "name": {"type": "string"},
        "mobile": {"type": ["string", "null"]},
    },
}
TOKEN_SCHEMA = {
    "type": "object",
    "required": ["token", "expires_at", "principal"],
    "properties": {
        "token": {"type": "string"},
        "expires_at": {"type": "string", "format": "date-time"},
        "principal": PRINCIPAL_SCHEMA,
    },
}
LOGIN_SCHEMA = {
    "type": "object",
    "required": ["username", "password"],
    "additionalProperties": False,
    "properties": {
        "username": {"type": "string", "minLength": 1, "maxLength": 64},
        "password": {"type": "string", "minLength": 1, "maxLength": 200},
    },
}
OTP_SCHEMA = {
    "type": "object",
    "required": ["mobile"],
    "additionalProperties": False,
    "properties": {"mobile": {"type": "string", "maxLength": 32}},
}
OTP_VERIFY_SCHEMA = {
    "type": "object",
    "required": ["mobile", "code"],
    "additionalProperties": False,
    "properties": {
        "mobile": {"type": "string", "maxLength": 32},
        "code": {"type": "string", "minLength": 1, "maxLength": 12},
    },
}


def login_context(request: web.Request) -> service.LoginContext:
    app = request.app
    return service.LoginContext(
        app[DB],
        app[LIMITER],
        app[SMS],
        app[SETTINGS],
        client_ip(request),
        request.headers.get("User-Agent"),
        request.cookies.get(DEVICE_COOKIE),
    )


def _account(principal: Principal, username: str | None = None) -> str:
    if principal.kind == "staff":
        return service.staff_account(username or "")
    return service.mobile_account(principal.mobile or "")


def principal_json(principal: Principal, *, mask: bool = True) -> dict[str, object]:
    mobile = principal.mobile
    return {
        "kind": principal.kind,
        "id": principal.id,
        "role": principal.role,
        "name": principal.name,
        "mobile": mask_mobile(mobile) if mobile and mask else mobile,
    }


def _with_session_cookie(
    request: web.Request,
    response: web.StreamResponse,
    token: str,
    expires: dt.datetime,
    account: str,
) -> None:
    # The device cookie outlives sessions: it tells the next login that this browser is the
    # owner's, so a flood of wrong passwords on the account from elsewhere does not hold it.
    response.set_cookie(
        DEVICE_COOKIE,
        service.device_mark(request.app[SETTINGS].secret_key, account),
        max_age=DEVICE_DAYS * 86_400,
        httponly=True,
        samesite="Lax",
        secure=is_secure(request),
        path="/",
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int((expires - dt.datetime.now(dt.UTC)).total_seconds()),
        httponly=True,
        samesite="Lax",
        secure=is_secure(request),
        path="/",
    )


def _token_response(
    request: web.Request,
    principal: Principal,
    token: str,
    expires: dt.datetime,
    username: str | None = None,
) -> web.Response:
    response = json_response(
        {"token": token, "expires_at": expires, "principal": principal_json(principal, mask=False)}
    )
    _with_session_cookie(request, response, token, expires, _account(principal, username))
    return response


@routes.post(
    "/api/v1/auth/login",
    summary="Staff log-in with username and password",
    request=LOGIN_SCHEMA,
    responses={200: TOKEN_SCHEMA, 401: "error", 422: "error", 429: "error"},
    auth="none",
)
async def api_login(request: web.Request) -> web.Response:
    body = await read_json(request, LOGIN_SCHEMA)
    principal, token, expires = await service.login_staff(
        login_context(request), username=body["username"], password=body["password"]
    )
    return _token_response(request, principal, token, expires, body["username"])


@routes.post(
    "/api/v1/auth/otp",
    summary="Send a 6-digit log-in code by SMS to an applicant's mobile",
    request=OTP_SCHEMA,
    responses={
        202: {
            "type": "object",
            "properties": {
                "sent": {"type": "boolean"},
                "expires_in": {"type": "integer"},
                "mobile": {"type": "string"},
            },
        },
        422: "error",
        429: "error",
    },
    auth="none",
)
async def api_otp(request: web.Request) -> web.Response:
    body = await read_json(request, OTP_SCHEMA)
    app = request.app
    mobile = await service.request_otp(login_context(request), mobile_raw=body["mobile"])
    return json_response(
        {"sent": True, "expires_in": app[SETTINGS].otp_ttl_seconds, "mobile": mask_mobile(mobile)},
        status=202,
    )


@routes.post(
    "/api/v1/auth/otp/verify",
    summary="Exchange an SMS code for a session (applicants)",
    request=OTP_VERIFY_SCHEMA,
    responses={200: TOKEN_SCHEMA, 401: "error", 422: "error", 429: "error"},
    auth="none",
)
async def api_otp_verify(request: web.Request) -> web.Response:
    body = await read_json(request, OTP_VERIFY_SCHEMA)
    principal, token, expires = await service.verify_otp(
        login_context(request), mobile_raw=body["mobile"], code=body["code"]
    )
    return _token_response(request, principal, token, expires)


@routes.post(
    "/api/v1/auth/logout",
    summary="End the current session",
    responses={204: None, 401: "error"},
)
async def api_logout(request: web.Request) -> web.Response:
    require_principal(request)
    token = bearer_token(request) or request.cookies.get(SESSION_COOKIE, "")
    async with request.app[DB].begin() as session:
        await revoke(session, token)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.get(
    "/api/v1/auth/me",
    summary="Who am I",
    responses={200: PRINCIPAL_SCHEMA, 401: "error"},
)
async def api_me(request: web.Request) -> web.Response:
    return json_response(principal_json(require_principal(request), mask=False))


OUTBOX_SCHEMA = {
    "type": "object",
    "properties": {
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "mobile": {"type": "string"},
                    "kind": {"type": "string"},
                    "body": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
        }
    },
}


async def outbox_messages(
    request: web.Request, mobile: str | None, limit: int = 100
) -> list[dict[str, object]]:
    query = select(SmsMessage).order_by(SmsMessage.id.desc()).limit(limit)
    if mobile:
        query = query.where(SmsMessage.mobile == mobile)
    async with request.app[DB]() as session:
        rows = (await session.execute(query)).scalars().all()
    return [
        {"id": m.id, "mobile": m.mobile, "kind": m.kind, "body": m.body, "created_at": m.created_at}
        for m in rows
    ]


@routes.get(
    "/api/v1/outbox",
    summary="SMS messages sent, codes included: demo mode only (admin; filter with ?mobile=)",
    responses={200: OUTBOX_SCHEMA, 401: "error", 403: "error", 404: "error"},
    auth="admin",
)
async def api_outbox(request: web.Request) -> web.Response:
    # Outside demo mode the outbox holds real people's log-in codes: no API shows them.
    if not request.app[SETTINGS].demo:
        raise NotFoundError()
    require_staff(request, "admin")
    mobile = request.query.get("mobile") or None
    limit = min(500, parse_digits(request.query.get("limit"), 6) or 100)
    return json_response({"messages": await outbox_messages(request, mobile, limit)})


# ---- HTML forms -------------------------------------------------------------------


@routes.get("/login")
@aiohttp_jinja2.template("login.html")
async def login_page(request: web.Request) -> dict[str, object]:
    return {
        "next": _safe_next(request.query.get("next")),
        "tab": request.query.get("tab", "applicant"),
        "mobile": request.query.get("mobile", ""),
    }


def _safe_next(value: str | None) -> str:
    # Only same-site paths: an open redirect would make phishing links look like ours.
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return ""


async def _form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _form_error(
    request: web.Request, error: YunkanError, tab: str, **extra: str
) -> web.StreamResponse:
    from server.http.requests import translate

    context = {
        "tab": tab,
        "error": translate(request, error.message, **error.params),
        "fields": {k: translate(request, v) for k, v in error.fields.items()},
        **extra,
    }
    return aiohttp_jinja2.render_template("login.html", request, context, status=error.status)


@routes.post("/login/staff")
async def login_staff_form(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    try:
        principal, token, expires = await service.login_staff(
            login_context(request),
            username=form.get("username", "")[:64],
            password=form.get("password", "")[:200],
        )
    except YunkanError as exc:
        return await _form_error(
            request,
            exc,
            "staff",
            username=form.get("username", "")[:64],
            next=_safe_next(form.get("next")),
        )
    response = web.HTTPSeeOther(_safe_next(form.get("next")) or "/staff")
    account = _account(principal, form.get("username", "")[:64])
    _with_session_cookie(request, response, token, expires, account)
    raise response


@routes.post("/login/otp")
async def otp_request_form(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    try:
        mobile = await service.request_otp(
            login_context(request), mobile_raw=form.get("mobile", "")
        )
    except YunkanError as exc:
        return await _form_error(
            request,
            exc,
            "applicant",
            mobile=form.get("mobile", "")[:32],
            next=_safe_next(form.get("next")),
        )
    return aiohttp_jinja2.render_template(
        "login.html",
        request,
        {
            "tab": "applicant",
            "mobile": mobile,
            "code_sent": True,
            "next": _safe_next(form.get("next")),
        },
    )


@routes.post("/login/otp/verify")
async def otp_verify_form(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    try:
        principal, token, expires = await service.verify_otp(
            login_context(request),
            mobile_raw=form.get("mobile", ""),
            code=form.get("code", "")[:12],
        )
    except YunkanError as exc:
        return await _form_error(
            request,
            exc,
            "applicant",
            mobile=form.get("mobile", "")[:32],
            code_sent="1",
            next=_safe_next(form.get("next")),
        )
    response = web.HTTPSeeOther(_safe_next(form.get("next")) or "/me")
    _with_session_cookie(request, response, token, expires, _account(principal))
    raise response


@routes.post("/logout")
async def logout_form(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with request.app[DB].begin() as session:
            await revoke(session, token)
    response = web.HTTPSeeOther("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


__all__ = ["error_response", "routes"]
