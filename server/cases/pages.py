"""The staff case list (``/staff/cases``): what I work on, what waits for my review.

Filters come from the query string and are forgiving, as a page's should be: a value
that cannot be one (a bad date, an unknown state, a page past the end) shows the list
without that filter instead of an error page; the form shows what was applied.
"""

from __future__ import annotations

import datetime as dt

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from server.appkeys import DB, SETTINGS
from server.booking.models import Department, Matter
from server.cases import procedure
from server.cases.listing import CaseFilter, case_page
from server.http.requests import optional_principal
from server.parsing import parse_id, try_date
from server.supervision.cards import badges

routes = web.RouteTableDef()


def case_filter(query: dict[str, str], *, oversight: bool) -> CaseFilter:
    state = query.get("state", "open")
    if state not in (*procedure.STATES, "open", "all"):
        state = "open"
    page = parse_id(query.get("page")) or 1
    return CaseFilter(
        state=state,
        matter_id=parse_id(query.get("matter")),
        department_id=parse_id(query.get("department")),
        date_from=try_date(query.get("from")),
        date_to=try_date(query.get("to")),
        # Inspectors start on their own cases, supervisors on everything they oversee; a
        # submitted form (it always sends a state) says what it wants.
        mine=query.get("mine", "" if oversight or "state" in query else "1") == "1",
        overdue=query.get("overdue") == "1",
        search=query.get("q", "").strip()[:40],
        page=min(page, 100_000),
    )


@routes.get("/staff/cases", name="staff_cases")
async def staff_cases(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None or not principal.is_staff:
        raise web.HTTPSeeOther("/login?tab=staff&next=/staff/cases")
    f = case_filter(dict(request.query), oversight=principal.has_role("supervisor", "admin"))
    settings = request.app[SETTINGS]
    today = dt.datetime.now(settings.zone).date()
    async with request.app[DB]() as session:
        result = await case_page(session, principal, f, zone=settings.zone, today=today)
        clocks = await badges(session, [r.case.id for r in result.rows])
        matters = (await session.execute(select(Matter.id, Matter.name).order_by(Matter.id))).all()
        departments = (
            await session.execute(select(Department.id, Department.name).order_by(Department.id))
        ).all()
    return aiohttp_jinja2.render_template(
        "cases/list.html",
        request,
        {
            "result": result,
            "rows": result.rows,
            "clocks": clocks,
            "f": f,
            "matters": matters,
            "departments": departments,
            "states": procedure.STATES,
            "labels": procedure.LABELS,
            "today": today,
            "zone": settings.zone,
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
