"""Site pages that belong to no domain: home, staff landing, outbox, language switch."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from server.accounts.handlers import outbox_messages
from server.appkeys import DB, SETTINGS
from server.cases import procedure
from server.cases.listing import visible_cases
from server.errors import NotFoundError
from server.http.requests import is_secure, optional_principal, require_staff
from server.i18n import LOCALE_COOKIE, LOCALES
from server.masking import mask_mobile

routes = web.RouteTableDef()


@routes.get("/", name="home")
@aiohttp_jinja2.template("home.html")
async def home(request: web.Request) -> dict[str, object]:
    return {}


@routes.get("/staff", name="staff_home")
async def staff_home(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None or not principal.is_staff:
        raise web.HTTPSeeOther("/login?tab=staff&next=/staff")
    return aiohttp_jinja2.render_template(
        "staff.html", request, {"demo": request.app[SETTINGS].demo}
    )


@routes.get("/me", name="applicant_home")
async def applicant_home(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None:
        raise web.HTTPSeeOther("/login?next=/me")
    if principal.is_staff:
        raise web.HTTPSeeOther("/staff")
    masked = mask_mobile(principal.mobile or "")
    async with request.app[DB]() as session:
        cases = await visible_cases(session, principal, state="all")
    return aiohttp_jinja2.render_template(
        "me.html",
        request,
        {"masked_mobile": masked, "cases": cases, "labels": procedure.LABELS},
    )


@routes.get("/staff/outbox", name="outbox")
async def outbox_page(request: web.Request) -> web.StreamResponse:
    if not request.app[SETTINGS].demo:
        raise NotFoundError()
    principal = optional_principal(request)
    if principal is None:
        raise web.HTTPSeeOther("/login?tab=staff&next=/staff/outbox")
    require_staff(request)
    messages = await outbox_messages(request, request.query.get("mobile") or None, 50)
    return aiohttp_jinja2.render_template("outbox.html", request, {"messages": messages})


@routes.get("/lang/{code}", name="language")
async def switch_language(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    if code not in LOCALES:
        raise NotFoundError()
    back = request.query.get("next", "/")
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    response = web.HTTPSeeOther(back)
    response.set_cookie(
        LOCALE_COOKIE,
        code,
        max_age=365 * 86400,
        samesite="Lax",
        secure=is_secure(request),
        path="/",
    )
    raise response
