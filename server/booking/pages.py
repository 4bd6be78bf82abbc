"""Booking pages: zone → matter → day → slot → details → confirmation, manage links,
"my appointments" and the staff day view. Server-rendered and mobile-first; the only
script is the live staff view and queue (``web/static/js/booking.js``).

Forms post back to the same URL; the domain's field errors are shown beside the inputs
(the same msgids the API returns, translated by the template's ``_``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from server.accounts.models import User
from server.appkeys import DB, SETTINGS
from server.booking import admin_pages, errors, queue
from server.booking import appointments as svc
from server.booking import models as m
from server.booking.availability import load_calendar, open_slots
from server.booking.handlers import after_change, load_for, reminder_offsets
from server.booking.invites import qr_svg
from server.booking.present import (
    KIND_LABELS,
    STATUS_LABELS,
    appointment_dict,
    links_for,
    utcnow,
)
from server.booking.queue_handlers import announce, staff_events
from server.booking.staffday import day_appointments, waiting_tickets
from server.booking.validation import validate_applicant
from server.errors import NotFoundError, YunkanError
from server.http.requests import int_param, optional_principal
from server.masking import mask_mobile

routes = web.RouteTableDef()
DAYS_SHOWN = 14


def _login(request: web.Request, staff: bool = False) -> web.HTTPSeeOther:
    tab = "tab=staff&" if staff else ""
    return web.HTTPSeeOther(f"/login?{tab}next={quote(request.path_qs)}")


def _local(url: str) -> str:
    """Path and query of one of our own absolute links (redirects stay on this origin)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _labels() -> dict[str, Any]:
    return {"kind_labels": KIND_LABELS, "status_labels": STATUS_LABELS}


@routes.get("/book/{zone:citizen|enterprise}", name="book_zone")
@aiohttp_jinja2.template("booking/zone.html")
async def zone_page(request: web.Request) -> dict[str, Any]:
    zone = request.match_info["zone"]
    async with request.app[DB]() as session:
        matters = (
            await session.scalars(
                select(m.Matter)
                .where(m.Matter.zone == zone, m.Matter.active.is_(True))
                .order_by(m.Matter.id)
            )
        ).all()
    return {"zone": zone, "matters": matters, **_labels()}


def _days(start: date, calendar: Any, horizon: int) -> list[dict[str, Any]]:
    out = []
    for i in range(min(horizon, DAYS_SHOWN) + 1):
        day = start + timedelta(days=i)
        out.append({"date": day, "working": calendar.is_working_day(day)})
    return out


@routes.get("/book/matter/{id}", name="book_matter")
@aiohttp_jinja2.template("booking/matter.html")
async def matter_page(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    today = utcnow().astimezone(settings.zone).date()
    try:
        day = date.fromisoformat(request.query.get("date", ""))
    except ValueError:
        day = None
    async with request.app[DB]() as session:
        matter = await svc.get_matter(session, int_param(request, "id"))
        calendar = await load_calendar(session)
        days = _days(today, calendar, matter.horizon_days)
        if day is None:  # first day with a free seat, so the page opens on something useful
            for d in days:
                if d["working"] and any(
                    s.seats_left
                    for s in await open_slots(session, matter, d["date"], settings.zone, utcnow())
                ):
                    day = d["date"]
                    break
        day = day or today
        slots = await open_slots(session, matter, day, settings.zone, utcnow())
    return {
        "matter": matter,
        "days": days,
        "day": day,
        "slots": [(s, s.start.astimezone(settings.zone)) for s in slots],
        **_labels(),
    }


async def _details_context(request: web.Request, matter_id: int, start_text: str) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    try:
        start = datetime.fromisoformat(start_text)
    except ValueError:
        raise NotFoundError() from None
    async with request.app[DB]() as session:
        matter = await svc.get_matter(session, matter_id)
    return {
        "matter": matter,
        "start": start_text,
        "local_start": start.astimezone(settings.zone),
        **_labels(),
    }


@routes.get("/book/matter/{id}/details", name="book_details")
async def details_page(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None:
        raise _login(request)
    context = await _details_context(
        request, int_param(request, "id"), request.query.get("start", "")
    )
    values = {"kind": "enterprise" if context["matter"].zone == "enterprise" else "person"}
    if principal.kind == "applicant":
        values["mobile"] = principal.mobile or ""
    return aiohttp_jinja2.render_template(
        "booking/details.html", request, {**context, "values": values, "fields": {}}
    )


@routes.post("/book/matter/{id}/details")
async def details_submit(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None:
        raise _login(request)
    settings = request.app[SETTINGS]
    form = await request.post()
    values = {k: str(v).strip() for k, v in form.items() if k != "csrf_token"}
    matter_id = int_param(request, "id")
    context = await _details_context(request, matter_id, values.get("start", ""))
    applicant = {
        k: values.get(k, "")
        for k in ("kind", "name", "mobile", "id_number", "credit_code", "contact_name")
    }
    info, fields = validate_applicant(applicant)
    if info is not None and principal.kind == "applicant" and info.mobile != principal.mobile:
        fields["applicant.mobile"] = "Use the mobile number you logged in with"
    error: str | None = None
    if not fields and info is not None:
        req = svc.BookingRequest(
            matter_id=matter_id,
            start=datetime.fromisoformat(values["start"]),
            applicant=info,
            actor=principal,
            site_address=values.get("site_address") or None,
        )
        try:
            async with request.app[DB]() as session, session.begin():
                appt = await svc.book(
                    session, req, zone=settings.zone, reminders=reminder_offsets(request)
                )
        except errors.SlotRuleError as exc:
            fields = dict(exc.fields)
        except YunkanError as exc:
            error = exc.message
        else:
            await after_change(request, appt, "booked")
            token = links_for(settings, appt).manage_token
            raise web.HTTPSeeOther(f"/book/done/{appt.id}?token={token}")
    return aiohttp_jinja2.render_template(
        "booking/details.html",
        request,
        {
            **context,
            "values": values,
            "fields": {k.removeprefix("applicant."): v for k, v in fields.items()},
            "error": error,
        },
        status=422 if fields else 409,
    )


async def _appointment_context(request: web.Request, *, manage: bool = False) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    token = request.query.get("token")
    async with request.app[DB]() as session:
        appt, staff = await load_for(session, request, token, manage=manage)
        matter = await svc.get_matter(session, appt.matter_id)
    links = links_for(settings, appt)
    return {
        "appt": appointment_dict(appt, matter, settings.zone, links=links, full_identity=staff),
        "matter": matter,
        "local_start": appt.starts_at.astimezone(settings.zone),
        "links": links,
        "qr": qr_svg(links.join_url) if appt.status == "booked" else None,
        **_labels(),
    }


@routes.get("/book/done/{id}", name="book_done")
@aiohttp_jinja2.template("booking/confirmation.html")
async def confirmation_page(request: web.Request) -> dict[str, Any]:
    return await _appointment_context(request)


@routes.get("/booking/manage/{id}", name="book_manage")
@aiohttp_jinja2.template("booking/manage.html")
async def manage_page(request: web.Request) -> dict[str, Any]:
    context = await _appointment_context(request, manage=True)
    settings = request.app[SETTINGS]
    day_text = request.query.get("date")
    slots: list[Any] = []
    if day_text and context["appt"]["status"] == "booked":
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            day = None
        if day is not None:
            async with request.app[DB]() as session:
                found = await open_slots(session, context["matter"], day, settings.zone, utcnow())
            slots = [(s, s.start.astimezone(settings.zone)) for s in found if s.seats_left]
    return {
        **context,
        "slots": slots,
        "day": day_text or "",
        "token": request.query.get("token", ""),
    }


@routes.post("/booking/manage/{id}")
async def manage_submit(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    form = await request.post()
    token = str(form.get("token", ""))
    action = str(form.get("action", ""))
    async with request.app[DB]() as session, session.begin():
        appt, _ = await load_for(session, request, token, manage=True)
        if action == "cancel":
            await svc.cancel(session, appt, optional_principal(request))
        elif action == "reschedule":
            await svc.reschedule(
                session,
                appt,
                datetime.fromisoformat(str(form.get("start", ""))),
                optional_principal(request),
                zone=settings.zone,
                reminders=reminder_offsets(request),
            )
        else:
            raise NotFoundError()
    await after_change(request, appt, "cancelled" if action == "cancel" else "rescheduled")
    new_token = links_for(settings, appt).manage_token
    raise web.HTTPSeeOther(f"/booking/manage/{appt.id}?token={new_token}")


@routes.get("/book/mine", name="book_mine")
async def mine_page(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None or principal.kind != "applicant":
        raise _login(request)
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session:
        result = await session.execute(
            select(m.Appointment, m.Matter)
            .join(m.Matter, m.Matter.id == m.Appointment.matter_id)
            .where(m.Appointment.applicant_id == principal.id)
            .order_by(m.Appointment.starts_at.desc())
            .limit(100)
        )
        rows = [
            appointment_dict(
                a, mt, settings.zone, links=links_for(settings, a) if a.status == "booked" else None
            )
            for a, mt in result
        ]
    return aiohttp_jinja2.render_template(
        "booking/mine.html",
        request,
        {"appointments": rows, "masked_mobile": mask_mobile(principal.mobile or ""), **_labels()},
    )


@routes.get("/staff/day", name="staff_day")
async def staff_day_page(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None or not principal.is_staff:
        raise _login(request, staff=True)
    settings = request.app[SETTINGS]
    try:
        day = date.fromisoformat(request.query.get("date", ""))
    except ValueError:
        day = utcnow().astimezone(settings.zone).date()
    async with request.app[DB]() as session:
        rows = await day_appointments(session, day, settings.zone)
        tickets = await waiting_tickets(session)
        positions = {}
        for matter_id in {t.matter_id for t, _ in tickets}:
            for p in await queue.positions(session, matter_id):
                positions[p.ticket_id] = p
        staff_names = dict((await session.execute(select(User.id, User.display_name))).all())
    appts = [appointment_dict(a, mt, settings.zone, full_identity=True) for a, mt in rows]
    context = {
        "day": day,
        "appointments": appts,
        "tickets": [(t, mt, positions.get(t.id)) for t, mt in tickets],
        "mine": principal.id,
        "staff_names": staff_names,
        "nobody_waiting": request.query.get("empty") == "1",
        **_labels(),
    }
    if request.query.get("partial") == "1":  # the live view re-renders just the lists
        return aiohttp_jinja2.render_template("booking/_staff_lists.html", request, context)
    return aiohttp_jinja2.render_template("booking/staff_day.html", request, context)


@routes.post("/staff/day/next")
async def staff_take_next(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None or not principal.is_staff:
        raise _login(request, staff=True)
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


@routes.get("/book/now/{id}", name="book_now")
async def video_now_page(request: web.Request) -> web.StreamResponse:
    async with request.app[DB]() as session:
        matter = await svc.get_matter(session, int_param(request, "id"))
    principal = optional_principal(request)
    values = (
        {"mobile": principal.mobile or ""} if principal and principal.kind == "applicant" else {}
    )
    return aiohttp_jinja2.render_template(
        "booking/now.html", request, {"matter": matter, "values": values, "fields": {}, **_labels()}
    )


@routes.post("/book/now/{id}")
async def video_now_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {k: str(v).strip() for k, v in form.items() if k != "csrf_token"}
    matter_id = int_param(request, "id")
    info, fields = validate_applicant(
        {**values, "kind": "person", "id_number": values.get("id_number", "")}
    )
    principal = optional_principal(request)
    account = principal.id if principal is not None and principal.kind == "applicant" else None
    if info is not None:
        try:
            async with request.app[DB]() as session, session.begin():
                ticket = await queue.join(session, matter_id, info, applicant_account_id=account)
        except errors.SlotRuleError as exc:
            fields = dict(exc.fields)
        else:
            await announce(request, matter_id)
            raise web.HTTPSeeOther(f"/book/queue/{ticket.token}")
    async with request.app[DB]() as session:
        matter = await svc.get_matter(session, matter_id)
    return aiohttp_jinja2.render_template(
        "booking/now.html",
        request,
        {
            "matter": matter,
            "values": values,
            "fields": {k.removeprefix("applicant."): v for k, v in fields.items()},
            **_labels(),
        },
        status=422,
    )


@routes.get("/book/queue/{token}", name="book_queue")
@aiohttp_jinja2.template("booking/ticket.html")
async def ticket_page(request: web.Request) -> dict[str, Any]:
    async with request.app[DB]() as session:
        ticket = await queue.get_ticket(session, request.match_info["token"])
        pos = await queue.position_of(session, ticket)
        matter = await svc.get_matter(session, ticket.matter_id)
    link = queue.applicant_join_url(request.app[SETTINGS], ticket)
    join = _local(link) if link else None
    return {"ticket": ticket, "pos": pos, "matter": matter, "join_url": join, **_labels()}


def setup_pages(app: web.Application) -> None:
    app.router.add_get("/staff/day/events", staff_events)
    app.router.add_routes(routes)
    app.router.add_routes(admin_pages.routes)
