"""The staff case list (``/staff/cases``): what I work on, what waits for my review."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from server.appkeys import DB, SETTINGS
from server.cases import procedure
from server.cases.listing import visible_cases
from server.http.requests import optional_principal

routes = web.RouteTableDef()


@routes.get("/staff/cases", name="staff_cases")
async def staff_cases(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None or not principal.is_staff:
        raise web.HTTPSeeOther("/login?tab=staff&next=/staff/cases")
    state = request.query.get("state", "open")
    if state not in (*procedure.STATES, "open", "all"):
        state = "open"
    mine = request.query.get("mine", "1" if not principal.has_role("supervisor", "admin") else "")
    page = request.query.get("page", "1")
    async with request.app[DB]() as session:
        rows = await visible_cases(
            session,
            principal,
            state=None if state == "all" else state,
            mine=mine == "1",
            search=request.query.get("q", ""),
            page=int(page) if page.isascii() and page.isdigit() and len(page) < 6 else 1,
        )
    return aiohttp_jinja2.render_template(
        "cases/list.html",
        request,
        {
            "rows": rows,
            "state": state,
            "mine": mine == "1",
            "q": request.query.get("q", ""),
            "states": procedure.STATES,
            "labels": procedure.LABELS,
            "zone": request.app[SETTINGS].zone,
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
