"""Booking JSON API: catalogue, slots, appointments, manage links, calendar and QR.

Handlers parse, check who may act, call :mod:`appointments` inside one transaction and
shape the answer; side effects that must not undo a booking (SMS, bus messages) happen
after the commit.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.appkeys import BUS, DB, SETTINGS
from server.booking import appointments as svc
from server.booking import errors, guard, idempotency, leads, outbox, schemas, texts
from server.booking import models as m
from server.booking.availability import load_calendar, open_slots
from server.booking.invites import ics_invite, qr_svg
from server.booking.numbering import CASE_NUMBERS
from server.booking.present import (
    Links,
    appointment_dict,
    links_for,
    matter_dict,
    utcnow,
)
from server.booking.scheduler import parse_offsets, wake_outbox
from server.booking.soldout import SOLD_OUT
from server.booking.staffday import day_appointments
from server.booking.validation import validate_applicant
from server.errors import PermissionDeniedError, ValidationError
from server.http.requests import (
    LOCALE,
    int_param,
    optional_principal,
    require_principal,
    require_staff,
)
from server.http.responses import json_response
from server.openapi import ApiRoutes, read_json
from server.parsing import require_date
from server.settings import Settings

log = logging.getLogger("yunkan.booking")
routes = ApiRoutes(tag="booking")

STAFF_CHANNEL = "booking.staff"
DATE_FORMAT = "Enter a date like 2026-12-01"


async def publish(request: web.Request, channel: str, message: dict[str, Any]) -> None:
    """Best effort: a missed live update is repaired by the next one or a reload."""
    try:
        await request.app[BUS].publish(channel, message)
    except Exception:
        log.exception("could not publish to %s", channel)


def parse_start(value: str, field: str = "start") -> datetime:
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        raise errors.SlotRuleError(errors.START_NAIVE, field=field) from None
    if start.tzinfo is None:
        raise errors.SlotRuleError(errors.START_NAIVE, field=field)
    return start


@routes.get(
    "/api/v1/matters",
    summary="Bookable matters, optionally of one zone (?zone=citizen|enterprise)",
    responses={200: schemas.MATTERS_OUT},
    auth="none",
)
async def list_matters(request: web.Request) -> web.Response:
    zone = request.query.get("zone")
    query = select(m.Matter).where(m.Matter.active.is_(True)).order_by(m.Matter.id)
    if zone:
        if zone not in m.ZONES:
            raise ValidationError(fields={"zone": "This value is not one of the allowed choices"})
        query = query.where(m.Matter.zone == zone)
    async with request.app[DB]() as session:
        matters = (await session.scalars(query)).all()
    return json_response({"matters": [matter_dict(x) for x in matters]})


@routes.get(
    "/api/v1/matters/{id}",
    summary="One matter with its materials and checklist",
    responses={200: schemas.MATTER_OUT, 404: "error"},
    auth="none",
)
async def get_matter(request: web.Request) -> web.Response:
    async with request.app[DB]() as session:
        matter = await svc.get_matter(session, int_param(request, "id"))
    return json_response(matter_dict(matter))


@routes.get(
    "/api/v1/matters/{id}/slots",
    summary="Slots of a matter on a local date (?date=YYYY-MM-DD) with the seats left",
    responses={200: schemas.SLOTS_OUT, 404: "error", 422: "error"},
    auth="none",
)
async def list_slots(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    day = require_date(request.query.get("date"), "date")
    async with request.app[DB]() as session:
        matter = await svc.get_matter(session, int_param(request, "id"))
        slots = await open_slots(session, matter, day, settings.zone, utcnow())
        kind = (await load_calendar(session)).day_kind(day)
    return json_response(
        {
            "matter_id": matter.id,
            "date": day.isoformat(),
            "timezone": settings.timezone,
            "working_day": kind.working,
            "day_kind": kind.reason,
            "slots": [
                {
                    "start": s.start.astimezone(settings.zone).isoformat(),
                    "end": s.end.astimezone(settings.zone).isoformat(),
                    "seats": s.seats,
                    "seats_left": s.seats_left,
                    "period": s.period,
                    "label": s.label,
                }
                for s in slots
            ],
        }
    )


def booking_request(
    body: dict[str, Any], principal: Principal, locale: str = "zh_CN"
) -> svc.BookingRequest:
    """Turn a validated body into a domain request; collects every field error at once.

    The SMS language is ``lang`` when given, else the page's ``locale`` for an applicant
    booking for themselves, else zh-CN (staff booking on someone's behalf)."""
    info, fields = validate_applicant(body["applicant"])
    start: datetime | None = None
    try:
        start = parse_start(body["start"])
    except errors.SlotRuleError as exc:
        fields.update(exc.fields)
    if (
        info is not None
        and principal.kind == "applicant"
        and principal.mobile
        and info.mobile != principal.mobile
    ):
        fields["applicant.mobile"] = "Use the mobile number you logged in with"
    if fields or info is None or start is None:
        raise ValidationError(fields=fields)
    if principal.kind == "applicant" and body.get("staff_id"):
        raise PermissionDeniedError()
    return svc.BookingRequest(
        matter_id=body["matter_id"],
        start=start,
        applicant=info,
        actor=principal,
        site_address=(body.get("site_address") or "").strip() or None,
        site_lat=body.get("site_lat"),
        site_lon=body.get("site_lon"),
        staff_id=body.get("staff_id"),
        case_id=body.get("case_id"),
        lang=body.get("lang") or (locale if principal.kind == "applicant" else "zh_CN"),
    )


async def _book_once(
    request: web.Request, req: svc.BookingRequest, key: tuple[str, str, str] | None
) -> tuple[int, dict[str, Any], m.Appointment | None]:
    settings = request.app[SETTINGS]
    now = utcnow()
    async with request.app[DB]() as session, session.begin():
        record = await idempotency.reserve(session, *key, now) if key else None
        # Held here, the matter stays in the session's (weak) identity map: book, the SMS
        # and the answer read it once.
        matter = await svc.get_matter(session, req.matter_id)
        appt = await svc.book(
            session,
            req,
            zone=settings.zone,
            now=now,
            reminders=reminder_offsets(request),
            case_numbers=request.app[CASE_NUMBERS],
        )
        await tell_confirmed(session, settings, appt, "booked")
        body = appointment_dict(appt, matter, settings.zone, links=links_for(settings, appt))
        if record is not None:
            idempotency.finish(record, 201, body)
    return 201, body, appt


@routes.post(
    "/api/v1/appointments",
    summary="Book a slot (applicant for themselves, or staff on an applicant's behalf); "
    "honours Idempotency-Key",
    request=schemas.BOOK,
    responses={
        201: schemas.APPOINTMENT_OUT,
        401: "error",
        403: "error",
        404: "error",
        409: "error",
        422: "error",
    },
    auth="any",
)
async def create_appointment(request: web.Request) -> web.Response:
    principal = require_principal(request)
    body = await read_json(request, schemas.BOOK)
    req = booking_request(body, principal, request.get(LOCALE) or "zh_CN")
    raw_key = request.headers.get("Idempotency-Key", "").strip()[:200]
    key = None
    if raw_key:
        key = (f"{principal.kind}:{principal.id}", raw_key, idempotency.request_hash(body))
        async with request.app[DB]() as session:
            replay = await idempotency.stored(session, *key)
        if replay is not None:
            return json_response(replay[1], status=replay[0], headers={"Idempotent-Replay": "true"})
    # A slot this process saw sold out a moment ago is refused from memory (soldout.py);
    # a named officer gets the database's own answer (staff_busy or slot_full).
    memo = request.app[SOLD_OUT]
    if req.staff_id is None and memo.sold_out(req.matter_id, req.start):
        raise errors.SlotFullError()
    generation = memo.generation
    try:
        try:
            status, out, appt = await _book_once(request, req, key)
        except idempotency.KeyInFlight:
            assert key is not None
            async with request.app[DB]() as session:
                replay = await idempotency.stored(session, *key)
            if replay is not None:
                headers = {"Idempotent-Replay": "true"}
                return json_response(replay[1], status=replay[0], headers=headers)
            status, out, appt = await _book_once(request, req, key)  # the twin rolled back
    except errors.SlotFullError:
        memo.mark(req.matter_id, req.start, generation)
        raise
    if appt is not None:
        await after_change(request, appt, "booked")
    return json_response(out, status=status)


async def tell_cancelled(session: AsyncSession, request: web.Request, appt: m.Appointment) -> None:
    """The cancellation SMS, written to the outbox in the cancelling transaction."""
    settings = request.app[SETTINGS]
    principal = optional_principal(request)
    matter = await svc.get_matter(session, appt.matter_id)
    rebook = f"{settings.effective_public_url.rstrip('/')}/book/matter/{matter.id}"
    await outbox.enqueue(
        session,
        key=f"cancelled:{appt.id}",
        kind="booking.cancelled",
        mobile=appt.mobile,
        body=texts.cancellation(
            appt, matter, settings.zone, rebook, by_staff=bool(principal and principal.is_staff)
        ),
        now=utcnow(),
        appointment_id=appt.id,
    )


def reminder_offsets(request: web.Request) -> tuple[timedelta, ...]:
    return parse_offsets(request.app[SETTINGS].reminder_offsets)


async def tell_confirmed(
    session: AsyncSession, settings: Settings, appt: m.Appointment, what: str
) -> None:
    """The confirmation SMS of a booking or a move, written to the outbox in the booking's
    transaction (the outbox worker sends it): it exists if and only if the change
    committed, and no request waits for the provider. Keyed by the appointment's version,
    so every move gets its own text and a replayed transaction writes none twice."""
    matter = await svc.get_matter(session, appt.matter_id)  # in the identity map: no read
    links = links_for(settings, appt)
    await outbox.enqueue(
        session,
        key=f"{what}:{appt.id}:{appt.version}",
        kind=f"booking.{what}",
        mobile=appt.mobile,
        body=texts.confirmation(appt, matter, settings.zone, links.join_url, links.manage_url),
        now=utcnow(),
        appointment_id=appt.id,
    )


async def after_change(request: web.Request, appt: m.Appointment, what: str) -> None:
    """Live updates once the change is committed; wakes the outbox worker for its SMS."""
    if what in ("booked", "rescheduled", "cancelled"):
        wake_outbox(request.app)
    await publish(
        request,
        STAFF_CHANNEL,
        {"type": "appointment", "event": what, "id": appt.id, "status": appt.status},
    )


async def shaped(
    session: AsyncSession,
    request: web.Request,
    appt: m.Appointment,
    *,
    links: Links | None = None,
    full_identity: bool = False,
) -> dict[str, Any]:
    """The appointment as the API answers it, its matter read in the same transaction."""
    matter = await svc.get_matter(session, appt.matter_id)
    zone = request.app[SETTINGS].zone
    return appointment_dict(appt, matter, zone, links=links, full_identity=full_identity)


async def permit_for(
    session: AsyncSession, request: web.Request, action: str, token: str | None = None
) -> guard.Permit:
    """The appointment of the URL if the caller may do ``action`` (see :mod:`guard`)."""
    return await guard.permit(
        session,
        optional_principal(request),
        int_param(request, "id"),
        action,
        token=token,
        secret=request.app[SETTINGS].secret_key,
        now=utcnow(),
    )


@routes.get(
    "/api/v1/appointments/{id}",
    summary="One appointment (its case's parties, oversight, or ?token= from the links)",
    responses={200: schemas.APPOINTMENT_OUT, 403: "error", 404: "error"},
    auth="none",
)
async def get_appointment(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session:
        permit = await permit_for(session, request, "read", request.query.get("token"))
        appt = permit.appt
        links = links_for(settings, appt) if appt.status == "booked" and permit.links else None
        body = await shaped(session, request, appt, links=links, full_identity=permit.full_identity)
    return json_response(body)


@routes.post(
    "/api/v1/appointments/{id}/cancel",
    summary="Cancel (the applicant, the lead, or {token} from the manage link); frees the seat",
    request=schemas.MANAGE,
    responses={200: schemas.APPOINTMENT_OUT, 403: "error", 404: "error", 409: "error"},
    auth="none",
)
async def cancel_appointment(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.MANAGE)
    async with request.app[DB]() as session, session.begin():
        permit = await permit_for(session, request, "manage_booking", body.get("token"))
        appt = permit.appt
        await svc.cancel(session, appt, optional_principal(request))
        await tell_cancelled(session, request, appt)
        out = await shaped(session, request, appt, full_identity=permit.full_identity)
    await after_change(request, appt, "cancelled")
    return json_response(out)


@routes.post(
    "/api/v1/appointments/{id}/reschedule",
    summary="Move to another slot of the same matter; the old manage link stops working",
    request=schemas.RESCHEDULE,
    responses={
        200: schemas.APPOINTMENT_OUT,
        403: "error",
        404: "error",
        409: "error",
        422: "error",
    },
    auth="none",
)
async def reschedule_appointment(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body = await read_json(request, schemas.RESCHEDULE)
    start = parse_start(body["start"])
    async with request.app[DB]() as session, session.begin():
        permit = await permit_for(session, request, "manage_booking", body.get("token"))
        appt = permit.appt
        await svc.reschedule(
            session,
            appt,
            start,
            optional_principal(request),
            zone=settings.zone,
            reminders=reminder_offsets(request),
        )
        await tell_confirmed(session, settings, appt, "rescheduled")
        out = await shaped(
            session,
            request,
            appt,
            links=links_for(settings, appt) if permit.links else None,
            full_identity=permit.full_identity,
        )
    await after_change(request, appt, "rescheduled")
    return json_response(out)


@routes.get(
    "/api/v1/appointments/{id}/calendar.ics",
    summary="Calendar invite (iCalendar) for the appointment (whoever may have its join link)",
    responses={200: "text/calendar", 403: "error", 404: "error"},
    auth="none",
)
async def calendar_invite(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session:
        permit = await permit_for(session, request, "read", request.query.get("token"))
        if not permit.join_link:
            raise PermissionDeniedError()
        appt = permit.appt
        matter = await svc.get_matter(session, appt.matter_id)
    links = links_for(settings, appt)
    data = ics_invite(
        uid=f"appointment-{appt.id}@yunkan",
        title=f"云勘视频窗口：{matter.name}",
        start=appt.starts_at,
        end=appt.ends_at,
        join_url=links.join_url,
        # An invite is forwarded to colleagues and calendars: it never carries the manage
        # link (the SMS and the confirmation page do).
        description="",
        location=appt.site_address,
        sequence=appt.version,
        cancelled=appt.status == "cancelled",
    )
    return web.Response(
        body=data,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="yunkan-{appt.id}.ics"'},
    )


@routes.get(
    "/api/v1/appointments/{id}/qr.svg",
    summary="QR code (SVG) of the join link (whoever may have that link)",
    responses={200: "image/svg+xml", 403: "error", 404: "error"},
    auth="none",
)
async def join_qr(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session:
        permit = await permit_for(session, request, "read", request.query.get("token"))
        if not permit.join_link:
            raise PermissionDeniedError()
        appt = permit.appt
    return web.Response(
        text=qr_svg(links_for(settings, appt).join_url), content_type="image/svg+xml"
    )


@routes.get(
    "/api/v1/appointments",
    summary="My appointments (applicant), or a day's appointments (staff, ?date=): those of "
    "the cases they are parties of and the unassigned ones they may take; all for oversight",
    responses={200: schemas.APPOINTMENTS_OUT, 401: "error"},
    auth="any",
)
async def list_appointments(request: web.Request) -> web.Response:
    principal = require_principal(request)
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session:
        if principal.is_staff:
            day = require_date(
                request.query.get("date") or utcnow().astimezone(settings.zone).date().isoformat(),
                "date",
            )
            rows = await day_appointments(session, day, settings.zone, principal)
        else:
            result = await session.execute(
                select(m.Appointment, m.Matter)
                .join(m.Matter, m.Matter.id == m.Appointment.matter_id)
                .where(guard.visible(principal))
                .order_by(m.Appointment.starts_at.desc())
                .limit(200)
            )
            rows = [(a, mt) for a, mt in result]
        permits = await guard.permits(session, principal, [a for a, _ in rows])
    items = [
        appointment_dict(
            a,
            mt,
            settings.zone,
            links=links_for(settings, a) if a.status == "booked" and permits[a.id].links else None,
            full_identity=permits[a.id].full_identity,
        )
        for a, mt in rows
        if a.id in permits
    ]
    return json_response({"appointments": items})


@routes.post(
    "/api/v1/appointments/{id}/check-in",
    summary="The applicant is here (joined the waiting room, or phoned): booked → checked_in",
    request=schemas.MANAGE,
    responses={200: schemas.APPOINTMENT_OUT, 403: "error", 404: "error", 409: "error"},
    auth="none",
)
async def check_in(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.MANAGE)
    async with request.app[DB]() as session, session.begin():
        permit = await permit_for(session, request, "check_in", body.get("token"))
        appt = permit.appt
        await svc.set_status(session, appt, "checked_in", optional_principal(request))
        out = await shaped(session, request, appt, full_identity=permit.full_identity)
    await after_change(request, appt, "checked_in")
    return json_response(out)


@routes.post(
    "/api/v1/appointments/{id}/status",
    summary="The case's inspectors move an appointment along: checked_in, in_session, "
    "completed, or no_show (only after the start, and only if the applicant never joined)",
    request=schemas.STATUS,
    responses={200: schemas.APPOINTMENT_OUT, 403: "error", 404: "error", 409: "error"},
    auth="staff",
)
async def set_status(request: web.Request) -> web.Response:
    principal = require_staff(request)
    body = await read_json(request, schemas.STATUS)
    async with request.app[DB]() as session, session.begin():
        permit = await permit_for(session, request, "appointment_status")
        appt = permit.appt
        await svc.set_status(
            session, appt, body["status"], principal, zone=request.app[SETTINGS].zone
        )
        out = await shaped(session, request, appt, full_identity=permit.full_identity)
    await after_change(request, appt, body["status"])
    return json_response(out)


@routes.post(
    "/api/v1/appointments/{id}/assign",
    summary="Reassign (the lead, a supervisor; or qualified staff taking an unassigned "
    "appointment for themselves): the new officer becomes the case's lead",
    request=schemas.ASSIGN,
    responses={
        200: schemas.APPOINTMENT_OUT,
        403: "error",
        404: "error",
        409: "error",
        422: "error",
    },
    auth="staff",
)
async def assign_staff_by_hand(request: web.Request) -> web.Response:
    principal = require_staff(request)
    body = await read_json(request, schemas.ASSIGN)
    async with request.app[DB]() as session, session.begin():
        permit = await permit_for(session, request, "read")
        appt = permit.appt
        await reassign(session, permit, body["staff_id"], principal)
        out = await shaped(session, request, appt, full_identity=permit.full_identity)
    await after_change(request, appt, "assigned")
    return json_response(out)


async def reassign(
    session: AsyncSession, permit: guard.Permit, staff_id: int | None, actor: Principal
) -> None:
    """``assign`` (lead, supervisor, oversight) hands over to anyone qualified; a taker
    may only give an unassigned appointment to themselves."""
    if not permit.may("assign") and not (permit.may(guard.TAKE) and staff_id == actor.id):
        raise PermissionDeniedError()
    await leads.assign(session, permit.appt, staff_id, actor)
