"""Booking pages: zone → matter → day → slot → details → confirmation, manage links,
"my appointments" and the staff day view. Server-rendered and mobile-first; the only
script is the live staff view and queue (``web/static/js/booking.js``).

Forms post back to the same URL; the domain's field errors are shown beside the inputs
(the same msgids the API returns, translated by the template's ``_``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from server.appkeys import DB, SETTINGS
from server.booking import admin_pages, errors, queue, staff_pages
from server.booking import appointments as svc
from server.booking import models as m
from server.booking.availability import bookable_days, load_calendar, open_slots
from server.booking.handlers import (
    after_change,
    permit_for,
    reminder_offsets,
    tell_cancelled,
    tell_confirmed,
)
from server.booking.invites import qr_svg
from server.booking.numbering import CASE_NUMBERS
from server.booking.present import (
    KIND_LABELS,
    STATUS_LABELS,
    appointment_dict,
    links_for,
    utcnow,
)
from server.booking.queue_handlers import JOIN_PER_IP, TICKET_PER_IP, announce, staff_events
from server.booking.service_hours import next_opening
from server.booking.validation import validate_applicant
from server.cases import access
from server.cases.models import Case
from server.errors import NotFoundError, YunkanError
from server.http.requests import LOCALE, int_param, limit_per_ip, optional_principal
from server.masking import mask_mobile
from server.parsing import parse_id, try_date

routes = web.RouteTableDef()
PERIOD_LABELS = {
    "morning": "Morning",
    "midday": "Midday",
    "afternoon": "Afternoon",
    "evening": "Evening",
}


def _login(request: web.Request, staff: bool = False) -> web.HTTPSeeOther:
    tab = "tab=staff&" if staff else ""
    return web.HTTPSeeOther(f"/login?{tab}next={quote(request.path_qs)}")


def _local(url: str) -> str:
    """Path and query of one of our own absolute links (redirects stay on this origin)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _labels() -> dict[str, Any]:
    return {"kind_labels": KIND_LABELS, "status_labels": STATUS_LABELS}


def _case_param(value: object) -> int | None:
    """``?case=`` / the hidden ``case_id``: the case a re-inspection is booked for."""
    return parse_id(str(value or "").strip())


async def _follow_up(request: web.Request, case_id: int | None) -> dict[str, Any] | None:
    """The case a follow-up booking is for, if the caller may book it; shown on the pages.

    Nothing is refused here: :func:`appointments.book` decides (and says why) on submit.
    """
    principal = optional_principal(request)
    if case_id is None or principal is None:
        return None
    async with request.app[DB]() as session:
        case = await session.get(Case, case_id)
        if case is None or not await access.allowed(session, principal, case, "book_follow_up"):
            return None
        last = await session.scalar(
            select(m.Appointment)
            .where(m.Appointment.case_id == case.id)
            .order_by(m.Appointment.starts_at.desc())
            .limit(1)
        )
    values: dict[str, str] = {}
    if last is not None:  # the applicant need not type it all again
        values = {
            "kind": last.applicant_kind,
            "name": last.applicant_name,
            "mobile": last.mobile,
            "id_number": last.id_number or "",
            "credit_code": last.credit_code or "",
            "contact_name": last.contact_name or "",
            "site_address": last.site_address or "",
        }
    return {"id": case.id, "number": case.number, "status": case.status, "values": values}


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


@routes.get("/book/matter/{id}", name="book_matter")
@aiohttp_jinja2.template("booking/matter.html")
async def matter_page(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    today = utcnow().astimezone(settings.zone).date()
    day = try_date(request.query.get("date"))
    async with request.app[DB]() as session:
        matter = await svc.get_matter(session, int_param(request, "id"))
        days = await bookable_days(session, matter, settings.zone, utcnow())
        if day is None:  # first day with a free seat, so the page opens on something useful
            for d in days:
                if any(
                    s.seats_left
                    for s in await open_slots(session, matter, d, settings.zone, utcnow())
                ):
                    day = d
                    break
        day = day or (days[0] if days else today)
        slots = await open_slots(session, matter, day, settings.zone, utcnow())
    groups: list[tuple[str, list[tuple[Any, datetime]]]] = []
    for s in slots:
        if not groups or groups[-1][0] != s.period:
            groups.append((s.period, []))
        groups[-1][1].append((s, s.start.astimezone(settings.zone)))
    case_id = _case_param(request.query.get("case"))
    return {
        "matter": matter,
        "days": days,
        "day": day,
        "slots": [(s, s.start.astimezone(settings.zone)) for s in slots],
        "groups": groups,
        "period_labels": PERIOD_LABELS,
        "case_id": case_id,
        "follow_up": await _follow_up(request, case_id),
        **_labels(),
    }


async def _details_context(
    request: web.Request, matter_id: int, start_text: str, case_id: int | None
) -> dict[str, Any]:
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
        "case_id": case_id,
        "follow_up": await _follow_up(request, case_id),
        **_labels(),
    }


@routes.get("/book/matter/{id}/details", name="book_details")
async def details_page(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None:
        raise _login(request)
    context = await _details_context(
        request,
        int_param(request, "id"),
        request.query.get("start", ""),
        _case_param(request.query.get("case")),
    )
    values = {"kind": "enterprise" if context["matter"].zone == "enterprise" else "person"}
    if context["follow_up"]:
        values.update(context["follow_up"]["values"])
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
    case_id = _case_param(values.get("case_id"))
    context = await _details_context(request, matter_id, values.get("start", ""), case_id)
    applicant = {
        k: values.get(k, "")
        for k in ("kind", "name", "mobile", "id_number", "credit_code", "contact_name")
    }
    info, fields = validate_applicant(applicant)
    if info is not None and principal.kind == "applicant" and info.mobile != principal.mobile:
        fields["applicant.mobile"] = "Use the mobile number you logged in with"
    error: YunkanError | None = None
    if not fields and info is not None:
        req = svc.BookingRequest(
            matter_id=matter_id,
            start=datetime.fromisoformat(values["start"]),
            applicant=info,
            actor=principal,
            site_address=values.get("site_address") or None,
            case_id=case_id,
            lang=request.get(LOCALE) or settings.default_locale,
        )
        try:
            async with request.app[DB]() as session, session.begin():
                appt = await svc.book(
                    session,
                    req,
                    zone=settings.zone,
                    reminders=reminder_offsets(request),
                    case_numbers=request.app[CASE_NUMBERS],
                )
                await tell_confirmed(session, settings, appt, "booked")
        except errors.SlotRuleError as exc:
            fields = dict(exc.fields)
        except YunkanError as exc:
            error = exc
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
            "error": error.message if error else None,
            "error_params": error.params if error else {},
        },
        status=422 if fields else error.status if error else 409,
    )


async def _appointment_context(request: web.Request, action: str = "read") -> dict[str, Any]:
    settings = request.app[SETTINGS]
    token = request.query.get("token")
    async with request.app[DB]() as session:
        permit = await permit_for(session, request, action, token)
        appt = permit.appt
        matter = await svc.get_matter(session, appt.matter_id)
        case = await session.get(Case, appt.case_id) if appt.case_id is not None else None
    links = links_for(settings, appt) if permit.links else None
    return {
        "appt": appointment_dict(
            appt, matter, settings.zone, links=links, full_identity=permit.full_identity
        ),
        "matter": matter,
        "case": case,
        "local_start": appt.starts_at.astimezone(settings.zone),
        "links": links,
        "qr": qr_svg(links.join_url) if links and appt.status == "booked" else None,
        **_labels(),
    }


@routes.get("/book/done/{id}", name="book_done")
@aiohttp_jinja2.template("booking/confirmation.html")
async def confirmation_page(request: web.Request) -> dict[str, Any]:
    return await _appointment_context(request)


@routes.get("/booking/manage/{id}", name="book_manage")
@aiohttp_jinja2.template("booking/manage.html")
async def manage_page(request: web.Request) -> dict[str, Any]:
    context = await _appointment_context(request, "manage_booking")
    settings = request.app[SETTINGS]
    day_text = request.query.get("date")
    slots: list[Any] = []
    if day_text and context["appt"]["status"] == "booked":
        day = try_date(day_text)
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
        appt = (await permit_for(session, request, "manage_booking", token)).appt
        if action == "cancel":
            await svc.cancel(session, appt, optional_principal(request))
            await tell_cancelled(session, request, appt)
        elif action == "reschedule":
            await svc.reschedule(
                session,
                appt,
                datetime.fromisoformat(str(form.get("start", ""))),
                optional_principal(request),
                zone=settings.zone,
                reminders=reminder_offsets(request),
            )
            await tell_confirmed(session, settings, appt, "rescheduled")
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


@routes.get("/book/now/{id}", name="book_now")
async def video_now_page(request: web.Request) -> web.StreamResponse:
    zone = request.app[SETTINGS].zone
    async with request.app[DB]() as session:
        matter = await svc.get_matter(session, int_param(request, "id"))
        opens = (
            next_opening(matter.video_now_hours, await load_calendar(session), utcnow(), zone)
            if matter.video_now_hours
            else None
        )
    principal = optional_principal(request)
    values = (
        {"mobile": principal.mobile or ""} if principal and principal.kind == "applicant" else {}
    )
    context = {"matter": matter, "values": values, "fields": {}, **_labels()}
    if opens is not None:
        context["closed"] = errors.VideoNowClosedError(opens.strftime("%Y-%m-%d %H:%M"))
    return aiohttp_jinja2.render_template("booking/now.html", request, context)


@routes.post("/book/now/{id}")
async def video_now_submit(request: web.Request) -> web.StreamResponse:
    await limit_per_ip(request, JOIN_PER_IP)
    form = await request.post()
    values = {k: str(v).strip() for k, v in form.items() if k != "csrf_token"}
    matter_id = int_param(request, "id")
    info, fields = validate_applicant(
        {**values, "kind": "person", "id_number": values.get("id_number", "")}
    )
    principal = optional_principal(request)
    account = principal.id if principal is not None and principal.kind == "applicant" else None
    closed = None
    if info is not None:
        try:
            async with request.app[DB]() as session, session.begin():
                ticket = await queue.join(
                    session,
                    matter_id,
                    info,
                    applicant_account_id=account,
                    zone=request.app[SETTINGS].zone,
                )
        except errors.SlotRuleError as exc:
            fields = dict(exc.fields)
        except (errors.VideoNowClosedError, errors.AlreadyQueuedError) as exc:
            closed = exc
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
            "closed": closed,
            **_labels(),
        },
        status=409 if closed is not None else 422,
    )


@routes.get("/hall", name="hall_display")
@aiohttp_jinja2.template("booking/hall.html")
async def hall_display(request: web.Request) -> dict[str, Any]:
    """The hall's display: numbers being called and how many wait, per matter. Numbers
    only (the ticket's id, as the ticket page shows it): no names on a public screen.
    The page reloads itself every few seconds (a display has no one to click)."""
    since = utcnow() - timedelta(minutes=30)
    async with request.app[DB]() as session:
        rows = (
            await session.execute(
                select(m.QueueTicket.id, m.QueueTicket.status, m.Matter.name)
                .join(m.Matter, m.Matter.id == m.QueueTicket.matter_id)
                .where(
                    (m.QueueTicket.status == "waiting")
                    | ((m.QueueTicket.status == "serving") & (m.QueueTicket.taken_at >= since))
                )
                .order_by(m.Matter.name, m.QueueTicket.id)
            )
        ).all()
    matters: dict[str, dict[str, Any]] = {}
    for ticket_id, status, name in rows:
        entry = matters.setdefault(name, {"calling": [], "waiting": 0})
        if status == "serving":
            entry["calling"].append(f"{ticket_id:04d}")
        else:
            entry["waiting"] += 1
    return {"matters": matters}


@routes.post("/book/queue/{token}/leave")
async def ticket_leave(request: web.Request) -> web.StreamResponse:
    """The leave button: only the secret ticket token can give up its place."""
    await limit_per_ip(request, TICKET_PER_IP)
    async with request.app[DB]() as session, session.begin():
        ticket = await queue.get_ticket(session, request.match_info["token"])
        await queue.leave(session, ticket)
    await announce(request, ticket.matter_id)
    raise web.HTTPSeeOther(f"/book/queue/{ticket.token}")


@routes.get("/book/queue/{token}", name="book_queue")
@aiohttp_jinja2.template("booking/ticket.html")
async def ticket_page(request: web.Request) -> dict[str, Any]:
    await limit_per_ip(request, TICKET_PER_IP)
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
    app.router.add_routes(staff_pages.routes)
    app.router.add_routes(admin_pages.routes)
