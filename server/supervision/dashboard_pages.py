"""The supervisor's pages: ``/staff/supervision`` (dashboard), its exports, the live wall.

Only supervisors and admins open them (``may_supervise`` of :mod:`server.cases.access`;
other staff get 403, anonymous callers the login page). Filters come from the query
string and are forgiving, like the case list's: a bad date or department shows the
default period instead of an error. "Watch silently" is decided per case by the access
module (``watch_hidden``) and joins the room as a hidden, receive-only ``supervisor``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from server.accounts.principal import Principal
from server.appkeys import CATALOGS, DB, RELAY, SETTINGS
from server.booking.models import Department
from server.cases import rooms as case_rooms
from server.cases.access import authorize, may_supervise
from server.db.types import utcnow
from server.errors import NotFoundError, PermissionDeniedError
from server.http.requests import optional_principal, translate
from server.parsing import parse_id, try_date
from server.supervision import exports, quality_sections
from server.supervision.dashboard import PERIODS, Period, dashboard
from server.supervision.wall import BitrateSampler, live_rows
from signaling.handlers import HUB
from signaling.links import join_url, participant_id, signer_for
from signaling.tokens import JoinGrant

routes = web.RouteTableDef()
SAMPLER = web.AppKey("supervision_bitrates", BitrateSampler)
MAX_DAYS = 366
WALL_REFRESH_S = 5


def _supervisor(request: web.Request) -> Principal:
    principal = optional_principal(request)
    if principal is None:
        raise web.HTTPSeeOther(f"/login?tab=staff&next={quote(request.path_qs)}")
    if not may_supervise(principal):
        raise PermissionDeniedError()
    return principal


def period_of(request: web.Request) -> Period:
    settings = request.app[SETTINGS]
    now = utcnow()
    department = parse_id(request.query.get("department"))
    start, end = try_date(request.query.get("from")), try_date(request.query.get("to"))
    if start and end:
        start, end = min(start, end), max(start, end)
        start = max(start, end - dt.timedelta(days=MAX_DAYS - 1))
        today = now.astimezone(settings.zone).date()
        return Period(start, end, settings.zone, today, now, department)
    days = parse_id(request.query.get("days"))
    return Period.last_days(
        days if days in PERIODS else 30, zone=settings.zone, now=now, department_id=department
    )


def _zh(request: web.Request) -> Any:
    """Exports are written in zh-CN whatever the page's language (the issue asks so)."""
    catalogs = request.app[CATALOGS]
    return lambda message, **params: catalogs.gettext("zh_CN", message, **params)


def _page_translate(request: web.Request) -> Any:
    return lambda message, **params: translate(request, message, **params)


async def _departments(request: web.Request) -> list[tuple[int, str]]:
    async with request.app[DB]() as session:
        rows = await session.execute(select(Department.id, Department.name).order_by(Department.id))
        return [(int(i), str(n)) for i, n in rows.all()]


@routes.get("/staff/supervision", name="supervision")
async def dashboard_page(request: web.Request) -> web.StreamResponse:
    _supervisor(request)
    period = period_of(request)
    async with request.app[DB]() as session:
        sections = await dashboard(session, period, _page_translate(request))
    query = urlencode(period.query())
    return aiohttp_jinja2.render_template(
        "supervision/dashboard.html",
        request,
        {
            "sections": sections,
            "period": period,
            "periods": PERIODS,
            "days": (period.end - period.start).days + 1,
            "departments": await _departments(request),
            "query": query,
            "kinds": list(KINDS.values()),
        },
    )


KINDS = {**exports.EXPORTS, **quality_sections.EXPORTS}
"""Every export: operations (cases, appointments, the figures), then ratings and cards."""


@routes.get("/staff/supervision/exports/{kind}", name="supervision_export")
async def export(request: web.Request) -> web.StreamResponse:
    principal = _supervisor(request)
    key = request.match_info["kind"]
    fmt = request.query.get("format", "xlsx")
    if fmt not in ("csv", "xlsx") or (key not in KINDS and key != "all"):
        raise NotFoundError()
    if key == "all" and fmt == "csv":
        raise NotFoundError()  # one CSV holds one table
    period = period_of(request)
    _ = _zh(request)
    kinds = list(KINDS.values()) if key == "all" else [KINDS[key]]
    sheets = []
    async with request.app[DB]() as session:
        for kind in kinds:
            header, rows = await exports.table(session, kind, period, principal, _)
            sheets.append((_(kind.title), header, rows))
    name = f"yunkan-{key}-{period.start.isoformat()}-{period.end.isoformat()}.{fmt}"
    if fmt == "csv":
        body = exports.to_csv(sheets[0][1], sheets[0][2])
        content_type = "text/csv; charset=utf-8"
    else:
        body = exports.to_xlsx(sheets)
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return web.Response(
        body=body,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@routes.get("/staff/supervision/live", name="supervision_live")
async def wall_page(request: web.Request) -> web.StreamResponse:
    _supervisor(request)
    department = parse_id(request.query.get("department"))
    async with request.app[DB]() as session:
        rows = await live_rows(
            session,
            hub=request.app.get(HUB),
            relay=request.app.get(RELAY),
            sampler=request.app[SAMPLER],
            now=utcnow(),
            department_id=department,
        )
    context = {
        "rows": rows,
        "department": department,
        "departments": await _departments(request),
        "refresh_s": WALL_REFRESH_S,
        "node": request.app[SETTINGS].effective_node_id,
        "refused": request.query.get("refused") == "1",
    }
    if request.query.get("partial") == "1":  # the wall's refresh re-renders just the list
        return aiohttp_jinja2.render_template("supervision/_wall_rows.html", request, context)
    return aiohttp_jinja2.render_template("supervision/wall.html", request, context)


@routes.post("/staff/supervision/live/{room}/watch", name="supervision_watch")
async def watch(request: web.Request) -> web.StreamResponse:
    """Join the room hidden and receive-only; the hub writes the watch on the case chain
    (``live.joined`` as it starts, ``live.watched`` with its start and end)."""
    principal = _supervisor(request)
    room = request.match_info["room"]
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session:
        case_id = await case_rooms.case_of_room(session, room)
        await authorize(session, principal, case_id, "watch_hidden")
        if await case_rooms.closed_reason(session, room) is not None:
            raise web.HTTPSeeOther("/staff/supervision/live?refused=1")
    grant = JoinGrant(room, participant_id(principal), "supervisor", principal.name)
    url = join_url(settings, signer_for(settings), grant, ttl=4 * 3600)
    raise web.HTTPSeeOther(urlsplit(url).path)


def setup(app: web.Application) -> None:
    app[SAMPLER] = BitrateSampler()
    app.router.add_routes(routes)
