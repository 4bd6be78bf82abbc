"""The staff day view and its actions: check in, start video, no-show, reassign, next.

Each action is a small POST form on the row (with the CSRF token); each is decided again
by :mod:`guard` when posted, so a button shown by mistake or a forged form does nothing.
The forms answer with a redirect back to the day (or, for "start video" and "next",
straight on to the console).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from server.accounts.models import User
from server.accounts.principal import Principal
from server.appkeys import DB, SETTINGS
from server.booking import appointments as svc
from server.booking import errors, guard, queue
from server.booking.handlers import after_change, permit_for, reassign
from server.booking.present import KIND_LABELS, STATUS_LABELS, appointment_dict, utcnow
from server.booking.queue_handlers import announce
from server.booking.staffday import day_rows, waiting_tickets
from server.cases.procedure import LABELS as CASE_LABELS
from server.errors import PermissionDeniedError, ValidationError
from server.http.requests import optional_principal
from server.parsing import parse_id, try_date

routes = web.RouteTableDef()


def _staff(request: web.Request) -> Principal:
    principal = optional_principal(request)
    if principal is None or not principal.is_staff:
        raise web.HTTPSeeOther(f"/login?tab=staff&next={quote(request.path_qs)}")
    return principal


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@routes.get("/staff/day", name="staff_day")
async def staff_day_page(request: web.Request) -> web.StreamResponse:
    principal = _staff(request)
    settings = request.app[SETTINGS]
    day = try_date(request.query.get("date")) or utcnow().astimezone(settings.zone).date()
    now = utcnow()
    async with request.app[DB]() as session:
        rows = await day_rows(session, principal, day, settings.zone, now)
        tickets = await waiting_tickets(session)
        positions = {}
        for matter_id in {t.matter_id for t, _ in tickets}:
            for p in await queue.positions(session, matter_id):
                positions[p.ticket_id] = p
        staff_names = dict((await session.execute(select(User.id, User.display_name))).all())
    # The dashboard's charts link here for the list behind a bar: one status, one department.
    status = request.query.get("status", "")
    department = parse_id(request.query.get("department"))
    if status in STATUS_LABELS:
        rows = [r for r in rows if r.appt.status == status]
    if department is not None:
        rows = [r for r in rows if r.matter.department_id == department]
    appts = []
    for row in rows:
        item = appointment_dict(
            row.appt, row.matter, settings.zone, full_identity=row.permit.full_identity
        )
        item["case"] = (
            {"id": row.case.id, "number": row.case.number, "status": row.case.status}
            if row.case is not None
            else None
        )
        item["actions"] = row.actions
        item["staff_choices"] = [(i, staff_names.get(i, str(i))) for i in row.staff_choices]
        appts.append(item)
    context: dict[str, Any] = {
        "day": day,
        "status_filter": status if status in STATUS_LABELS else "",
        "department_filter": department,
        "appointments": appts,
        "tickets": [(t, mt, positions.get(t.id)) for t, mt in tickets],
        "mine": principal.id,
        "staff_names": staff_names,
        "nobody_waiting": request.query.get("empty") == "1",
        "kind_labels": KIND_LABELS,
        "status_labels": STATUS_LABELS,
        "case_labels": CASE_LABELS,
    }
    if request.query.get("partial") == "1":  # the live view re-renders just the lists
        return aiohttp_jinja2.render_template("booking/_staff_lists.html", request, context)
    return aiohttp_jinja2.render_template("booking/staff_day.html", request, context)


def _back(request: web.Request, appt_start: datetime) -> web.HTTPSeeOther:
    day = appt_start.astimezone(request.app[SETTINGS].zone).date()
    return web.HTTPSeeOther(f"/staff/day?date={day.isoformat()}")


@routes.post("/staff/appointments/{id}/check-in")
async def staff_check_in(request: web.Request) -> web.StreamResponse:
    """The applicant phoned or is at the counter: booked → checked_in."""
    principal = _staff(request)
    async with request.app[DB]() as session, session.begin():
        appt = (await permit_for(session, request, "check_in")).appt
        await svc.set_status(session, appt, "checked_in", principal)
    await after_change(request, appt, "checked_in")
    raise _back(request, appt.starts_at)


@routes.post("/staff/appointments/{id}/no-show")
async def staff_no_show(request: web.Request) -> web.StreamResponse:
    principal = _staff(request)
    async with request.app[DB]() as session, session.begin():
        appt = (await permit_for(session, request, "appointment_status")).appt
        await svc.set_status(session, appt, "no_show", principal, zone=request.app[SETTINGS].zone)
    await after_change(request, appt, "no_show")
    raise _back(request, appt.starts_at)


@routes.post("/staff/appointments/{id}/start")
async def staff_start_video(request: web.Request) -> web.StreamResponse:
    """Open the inspector console of the appointment's room.

    A qualified officer starting an unassigned appointment takes it (becomes its lead).
    The status moves when the applicant is admitted (the live side), not here.
    """
    principal = _staff(request)
    async with request.app[DB]() as session, session.begin():
        permit = await permit_for(session, request, "read")
        appt = permit.appt
        if appt.status not in ("booked", "checked_in", "in_session"):
            raise errors.AppointmentStatusError(appt.id, appt.status)
        if not permit.may("appointment_status"):
            if not permit.may(guard.TAKE):  # oversight watches through the live page
                raise PermissionDeniedError()
            await reassign(session, permit, principal.id, principal)
    if not permit.may("appointment_status"):
        await after_change(request, appt, "assigned")
    url = queue.appointment_console_url(request.app[SETTINGS], appt.id, principal)
    raise web.HTTPSeeOther(_local(url))


@routes.post("/staff/appointments/{id}/assign")
async def staff_assign(request: web.Request) -> web.StreamResponse:
    """Reassign (lead, supervisor) from the select of qualified staff, or take it."""
    principal = _staff(request)
    form = await request.post()
    raw = str(form.get("staff_id", "")).strip()
    if raw == "me":
        staff_id: int | None = principal.id
    elif parse_id(raw) is not None:
        staff_id = parse_id(raw)
    elif raw == "":
        staff_id = None
    else:
        raise ValidationError(fields={"staff_id": "Choose a member of staff"})
    async with request.app[DB]() as session, session.begin():
        permit = await permit_for(session, request, "read")
        await reassign(session, permit, staff_id, principal)
        appt = permit.appt
    await after_change(request, appt, "assigned")
    raise _back(request, appt.starts_at)


@routes.post("/staff/day/next")
async def staff_take_next(request: web.Request) -> web.StreamResponse:
    principal = _staff(request)
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session, session.begin():
        served = await queue.take_next(session, principal, zone=settings.zone)
    if served is None:
        raise web.HTTPSeeOther("/staff/day?empty=1")
    await announce(request, served.matter_id)
    # Straight on to the console: the applicant is being told "it is your turn" right now
    # and may already be entering the room; the day view is one "back" away.
    console = queue.console_url(settings, served, principal)
    raise web.HTTPSeeOther(_local(console) if console else "/staff/day")
