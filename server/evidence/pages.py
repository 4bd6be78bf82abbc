"""Case pages: one for staff, a simpler one for the applicant.

Both render ``recordings.casefile.case_file`` — the same role-filtered view the API
returns — so a page can never show more than the API would. Times are shown in the
agency's zone; the applicant page offers to share the browser's location.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from recordings.casefile import case_file
from server.appkeys import DB, SETTINGS
from server.cases.access import readable_case
from server.http.requests import int_param, optional_principal

routes = web.RouteTableDef()


def _local(value: str | None, zone: Any) -> str:
    if not value:
        return ""
    return dt.datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


async def _render(request: web.Request, template: str) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None:
        raise web.HTTPSeeOther(f"/login?next={request.path}")
    async with request.app[DB]() as session:
        case = await readable_case(session, principal, int_param(request, "id"))
        view = await case_file(session, case, principal)
    zone = request.app[SETTINGS].zone
    return aiohttp_jinja2.render_template(
        template, request, {"case": view, "local": lambda v: _local(v, zone)}
    )


@routes.get("/staff/cases/{id}", name="staff_case")
async def staff_case(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is not None and not principal.is_staff:
        raise web.HTTPSeeOther(f"/me/cases/{request.match_info['id']}")
    return await _render(request, "cases/staff.html")


@routes.get("/me/cases/{id}", name="applicant_case")
async def applicant_case(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is not None and principal.is_staff:
        raise web.HTTPSeeOther(f"/staff/cases/{request.match_info['id']}")
    return await _render(request, "cases/applicant.html")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
