"""Routes of deadline supervision: a case's clocks and cards, suspensions, staff notices.

The API (``/api/v1/cases/{id}/deadlines``, ``…/suspension``, ``…/suspension/resume``)
and the page forms (``/staff/cases/{id}/suspension``, ``/staff/notices``) call the same
domain functions; access is ``read_internal`` and ``suspend_clock`` in
:mod:`server.cases.access`.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select, update

from server.appkeys import API_SPEC, DB, SETTINGS
from server.cases.access import authorize
from server.errors import ValidationError, YunkanError
from server.http.requests import int_param, optional_principal, require_staff, translate
from server.openapi import ApiRoutes, read_json
from server.supervision import deadline_suspensions as suspensions
from server.supervision import deadlines as d
from server.supervision.card_evaluator import CLOCK, SupervisionClock, clock_now, evaluator_ctx
from server.supervision.card_models import StaffNotice
from server.supervision.cards import Badge, case_deadlines

routes = ApiRoutes("supervision")

SUSPEND_IN = {
    "type": "object",
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
    "required": ["reason"],
    "additionalProperties": False,
}
RESUME_IN = {"type": "object", "properties": {}, "additionalProperties": False}
_CLOCK = {
    "type": "object",
    "properties": {
        "step": {"type": "string", "enum": [*d.STEPS, d.TOTAL]},
        "colour": {"type": "string", "enum": list(d.COLOURS)},
        "used": {"type": "integer"},
        "promised": {"type": "integer"},
        "left": {"type": "integer"},
        "due": {"type": ["string", "null"], "format": "date"},
        "suspended": {"type": "boolean"},
    },
    "required": ["step", "colour", "used", "promised", "suspended"],
}
_SUSPENSION = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "reason": {"type": "string"},
        "started_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
    },
    "required": ["id", "reason", "started_at"],
}
DEADLINES_OUT = {
    "type": "object",
    "properties": {
        "clocks": {"type": "array", "items": _CLOCK},
        "cards": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "step": {"type": "string"},
                    "colour": {"type": "string"},
                    "previous": {"type": "string"},
                    "used": {"type": "integer"},
                    "promised": {"type": "integer"},
                    "issued_at": {"type": "string", "format": "date-time"},
                    "event_seq": {"type": ["integer", "null"]},
                },
            },
        },
        "suspended": {"type": "boolean"},
        "suspensions": {"type": "array", "items": _SUSPENSION},
    },
    "required": ["clocks", "cards", "suspended", "suspensions"],
}


def _clock_json(b: Badge) -> dict[str, Any]:
    return {
        "step": b.step,
        "colour": b.colour,
        "used": b.used,
        "promised": b.promised,
        "left": b.left,
        "due": b.due.isoformat() if b.due else None,
        "suspended": b.suspended,
    }


def _suspension_json(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "reason": s.reason,
        "started_at": s.started_at.isoformat(),
        "ended_at": s.ended_at.isoformat() if s.ended_at else None,
    }


@routes.get(
    "/api/v1/cases/{id}/deadlines",
    summary="The case's deadline clocks, cards (电子监察) and suspensions (staff of the case)",
    responses={200: DEADLINES_OUT, 404: "error"},
    auth="staff",
)
async def get_deadlines(request: web.Request) -> web.Response:
    principal = require_staff(request)
    async with request.app[DB]() as session:
        case = await authorize(session, principal, int_param(request, "id"), "read_internal")
        view = await case_deadlines(session, case.id)
    return web.json_response(
        {
            "clocks": [_clock_json(b) for b in view.clocks],
            "cards": [
                {
                    "step": c.step,
                    "colour": c.colour,
                    "previous": c.previous,
                    "used": c.used,
                    "promised": c.promised,
                    "issued_at": c.issued_at.isoformat(),
                    "event_seq": c.event_seq,
                }
                for c in view.cards
            ],
            "suspended": view.suspension is not None,
            "suspensions": [_suspension_json(s) for s in view.suspensions],
        }
    )


@routes.post(
    "/api/v1/cases/{id}/suspension",
    summary="Suspend the case's deadline clocks with a reason (supervisor)",
    request=SUSPEND_IN,
    responses={201: _SUSPENSION, 403: "error", 404: "error", 409: "error"},
    auth="supervisor",
)
async def post_suspension(request: web.Request) -> web.Response:
    principal = require_staff(request)
    body = await read_json(request, SUSPEND_IN)
    async with request.app[DB].begin() as session:
        case = await authorize(session, principal, int_param(request, "id"), "suspend_clock")
        row = await suspensions.suspend(
            session, case, principal, body["reason"], clock_now(request.app)
        )
        out = _suspension_json(row)
    return web.json_response(out, status=201)


@routes.post(
    "/api/v1/cases/{id}/suspension/resume",
    summary="Restart the case's suspended deadline clocks (supervisor)",
    request=RESUME_IN,
    responses={200: _SUSPENSION, 403: "error", 404: "error", 409: "error"},
    auth="supervisor",
)
async def post_resume(request: web.Request) -> web.Response:
    principal = require_staff(request)
    await read_json(request, RESUME_IN)
    async with request.app[DB].begin() as session:
        case = await authorize(session, principal, int_param(request, "id"), "suspend_clock")
        row = await suspensions.resume(session, case, principal, clock_now(request.app))
        out = _suspension_json(row)
    return web.json_response(out)


pages = web.RouteTableDef()


@pages.post("/staff/cases/{id}/suspension")
async def suspension_form(request: web.Request) -> web.StreamResponse:
    """The case page's suspension form: ``action`` is ``suspend`` (with ``reason``) or
    ``resume``; back to the case page, with the error in the section if refused."""
    from server.evidence.pages import render_case_page

    principal = optional_principal(request)
    if principal is None or not principal.is_staff:
        raise web.HTTPSeeOther(f"/login?tab=staff&next=/staff/cases/{request.match_info['id']}")
    case_id = int_param(request, "id")
    form = await request.post()
    action = str(form.get("action", ""))
    try:
        async with request.app[DB].begin() as session:
            case = await authorize(session, principal, case_id, "suspend_clock")
            now = clock_now(request.app)
            if action == "suspend":
                await suspensions.suspend(
                    session, case, principal, str(form.get("reason", "")), now
                )
            elif action == "resume":
                await suspensions.resume(session, case, principal, now)
            else:
                raise ValidationError(fields={"action": "Choose suspend or resume"})
    except ValidationError as err:
        fields = {f"deadline_{k}": v for k, v in err.fields.items()}
        return await render_case_page(request, errors=fields, status=422)
    except YunkanError as err:
        if err.status == 404:
            raise
        message = translate(request, err.message, **err.params)
        return await render_case_page(request, errors={"deadline": message}, status=err.status)
    raise web.HTTPSeeOther(f"/staff/cases/{case_id}?done=suspension#deadlines")


@pages.get("/staff/notices", name="staff_notices")
async def notices_page(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None or not principal.is_staff:
        raise web.HTTPSeeOther("/login?tab=staff&next=/staff/notices")
    async with request.app[DB]() as session:
        rows = list(
            await session.scalars(
                select(StaffNotice)
                .where(StaffNotice.user_id == principal.id)
                .order_by(StaffNotice.created_at.desc(), StaffNotice.id.desc())
                .limit(200)
            )
        )
    return aiohttp_jinja2.render_template(
        "supervision/notices.html",
        request,
        {
            "notices": rows,
            "unread": sum(1 for n in rows if n.read_at is None),
            "steps": d.STEP_LABELS,
            "colours": d.COLOUR_LABELS,
            "zone": request.app[SETTINGS].zone,
        },
    )


@pages.post("/staff/notices/read")
async def notices_read(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None or not principal.is_staff:
        raise web.HTTPSeeOther("/login?tab=staff&next=/staff/notices")
    async with request.app[DB].begin() as session:
        await session.execute(
            update(StaffNotice)
            .where(StaffNotice.user_id == principal.id, StaffNotice.read_at.is_(None))
            .values(read_at=clock_now(request.app))
            .execution_options(synchronize_session=False)
        )
    raise web.HTTPSeeOther("/staff/notices")


def setup(app: web.Application) -> None:
    app[CLOCK] = SupervisionClock()
    app.router.add_routes(routes)
    app[API_SPEC].include(routes)
    app.router.add_routes(pages)
    app.cleanup_ctx.append(evaluator_ctx)
