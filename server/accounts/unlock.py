"""Unlocking an account: a supervisor or admin clears the hold that failed log-ins put on a
staff username or an applicant's mobile (``limits.LOGIN_FAILURES_PER_USER``,
``limits.OTP_VERIFY_FAILURES_PER_MOBILE``), from the API or the staff page.

The hold on the *addresses* that failed stays: unlocking helps the owner, not whoever
guessed. Every unlock is audited as one JSON log line on the ``yunkan.audit`` logger
(actor, account, whether it was held); the number is masked there like everywhere else.
"""

from __future__ import annotations

import logging

import aiohttp_jinja2
from aiohttp import web

from server.accounts import limits, service
from server.accounts.otp import normalise_mobile
from server.accounts.principal import Principal
from server.appkeys import LIMITER
from server.errors import ValidationError
from server.http.requests import client_ip, optional_principal, require_staff
from server.http.responses import json_response
from server.masking import mask_mobile
from server.openapi import ApiRoutes, read_json
from server.ratelimit import RateLimiter

routes = ApiRoutes(tag="auth")
audit = logging.getLogger("yunkan.audit")
ROLES = ("supervisor", "admin")

UNLOCK_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "username": {"type": "string", "minLength": 1, "maxLength": 64},
        "mobile": {"type": "string", "minLength": 1, "maxLength": 32},
    },
    "minProperties": 1,
    "maxProperties": 1,
}
UNLOCKED_SCHEMA = {
    "type": "object",
    "required": ["account", "was_locked"],
    "properties": {"account": {"type": "string"}, "was_locked": {"type": "boolean"}},
}


async def unlock(
    limiter: RateLimiter, actor: Principal, ip: str, *, username: str = "", mobile: str = ""
) -> tuple[str, bool]:
    """Clear the account's hold; (the account as shown, whether it was held)."""
    if username:
        limit, key, shown = (
            limits.LOGIN_FAILURES_PER_USER,
            service.staff_account(username),
            username,
        )
    else:
        number = normalise_mobile(mobile)
        limit, key, shown = (
            limits.OTP_VERIFY_FAILURES_PER_MOBILE,
            service.mobile_account(number),
            mask_mobile(number),
        )
    was_locked = await limiter.peek(limit, key) is not None
    await limiter.clear(limit, key)
    audit.info(
        "account unlocked",
        extra={
            "event": "account.unlocked",
            "actor_id": actor.id,
            "actor_role": actor.role,
            "account": key.split(":")[0] + ":" + shown,
            "was_locked": was_locked,
            "ip": ip,
        },
    )
    return shown, was_locked


@routes.post(
    "/api/v1/admin/unlock",
    summary="Clear the log-in hold on a staff username or a mobile (supervisor, admin)",
    request=UNLOCK_SCHEMA,
    responses={
        200: UNLOCKED_SCHEMA,
        400: "error",
        401: "error",
        403: "error",
        422: "error",
        503: "error",
    },
    auth="supervisor,admin",
)
async def api_unlock(request: web.Request) -> web.Response:
    actor = require_staff(request, *ROLES)
    body = await read_json(request, UNLOCK_SCHEMA)
    shown, was_locked = await unlock(
        request.app[LIMITER],
        actor,
        client_ip(request),
        username=body.get("username", ""),
        mobile=body.get("mobile", ""),
    )
    return json_response({"account": shown, "was_locked": was_locked})


@routes.get("/staff/unlock")
async def unlock_page(request: web.Request) -> web.StreamResponse:
    if optional_principal(request) is None:
        raise web.HTTPSeeOther("/login?tab=staff&next=/staff/unlock")
    require_staff(request, *ROLES)
    return aiohttp_jinja2.render_template("staff_unlock.html", request, {})


@routes.post("/staff/unlock")
async def unlock_form(request: web.Request) -> web.StreamResponse:
    actor = require_staff(request, *ROLES)
    form = await request.post()
    account = str(form.get("account", "")).strip()[:64]
    context: dict[str, object] = {"account": account}
    try:
        if not account:
            raise ValidationError(fields={"account": "This field is required"})
        is_mobile = account.isascii() and account.lstrip("+").replace(" ", "").isdigit()
        shown, was_locked = await unlock(
            request.app[LIMITER],
            actor,
            client_ip(request),
            username="" if is_mobile else account,
            mobile=account if is_mobile else "",
        )
        context.update(shown=shown, was_locked=was_locked, done=True)
        status = 200
    except ValidationError as exc:
        context["error"] = next(iter(exc.fields.values()), exc.message)
        status = 422
    return aiohttp_jinja2.render_template("staff_unlock.html", request, context, status=status)
