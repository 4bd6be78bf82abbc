"""Admin API for the catalogue and schedules: matters, windows, plans, exceptions,
holiday overrides and staff qualifications. Supervisors and admins only.

Plans are replaced as a whole (``PUT``): the editor shows a week and saves a week, which
is simpler to reason about than patching single ranges. Changing a plan never touches
existing appointments; slots already sold stay sold.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from server.accounts.models import User
from server.appkeys import DB, SETTINGS
from server.booking import models as m
from server.booking import plancache, schemas, staffchange
from server.booking.errors import CodeTakenError
from server.booking.present import links_for, matter_dict, utcnow
from server.booking.slots import TimeRange
from server.errors import ConflictError, NotFoundError, ValidationError
from server.http.requests import int_param, require_staff
from server.http.responses import json_response
from server.openapi import ApiRoutes, read_json
from server.parsing import require_date, try_date

routes = ApiRoutes(tag="booking-admin")
ADMINS = ("admin", "supervisor")
RANGE_INVALID = "The end must be after the start"

WINDOW_OUT = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "code": {"type": "string"}},
}
WINDOWS_OUT = {"type": "object", "properties": {"windows": {"type": "array", "items": WINDOW_OUT}}}


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _range(start: str, end: str, field: str) -> TimeRange:
    try:
        return TimeRange(_minutes(start), _minutes(end))
    except ValueError:
        raise ValidationError(fields={field: RANGE_INVALID}) from None


async def _matter_windows(session: Any, matter_id: int, window_ids: list[int]) -> None:
    await plancache.changed(session)  # Core DELETE: the caches and sold-out memos forget
    await session.execute(delete(m.WindowMatter).where(m.WindowMatter.matter_id == matter_id))
    for wid in sorted(set(window_ids)):
        if await session.get(m.Window, wid) is None:
            raise ValidationError(fields={"window_ids": "No such window"})
        session.add(m.WindowMatter(window_id=wid, matter_id=matter_id))


@routes.post(
    "/api/v1/admin/matters",
    summary="Create a matter",
    request=schemas.MATTER_CREATE,
    responses={201: schemas.MATTER_OUT, 403: "error", 409: "error", 422: "error"},
    auth="admin,supervisor",
)
async def create_matter(request: web.Request) -> web.Response:
    require_staff(request, *ADMINS)
    body = await read_json(request, schemas.MATTER_CREATE)
    window_ids = body.pop("window_ids", [])
    try:
        async with request.app[DB]() as session, session.begin():
            if await session.get(m.Department, body["department_id"]) is None:
                raise ValidationError(fields={"department_id": "No such department"})
            matter = m.Matter(
                **{
                    "description": "",
                    "materials": [],
                    "checklist": [],
                    "joint_departments": [],
                    **body,
                }
            )
            session.add(matter)
            await session.flush()
            await _matter_windows(session, matter.id, window_ids)
    except IntegrityError:
        raise CodeTakenError() from None
    return json_response(matter_dict(matter), status=201)


@routes.patch(
    "/api/v1/admin/matters/{id}",
    summary="Change a matter (any subset of its fields; window_ids replaces its windows)",
    request=schemas.MATTER_IN,
    responses={200: schemas.MATTER_OUT, 403: "error", 404: "error", 409: "error", 422: "error"},
    auth="admin,supervisor",
)
async def update_matter(request: web.Request) -> web.Response:
    require_staff(request, *ADMINS)
    body = await read_json(request, schemas.MATTER_IN)
    window_ids = body.pop("window_ids", None)
    try:
        async with request.app[DB]() as session, session.begin():
            matter = await session.get(m.Matter, int_param(request, "id"))
            if matter is None:
                raise NotFoundError()
            if (
                "department_id" in body
                and await session.get(m.Department, body["department_id"]) is None
            ):
                raise ValidationError(fields={"department_id": "No such department"})
            for key, value in body.items():
                setattr(matter, key, value)
            await session.flush()  # a taken code fails here, inside the try
            if window_ids is not None:
                await _matter_windows(session, matter.id, window_ids)
    except IntegrityError:
        raise CodeTakenError() from None
    return json_response(matter_dict(matter))


@routes.get(
    "/api/v1/admin/windows",
    summary="Windows with their plans and matters",
    responses={200: WINDOWS_OUT, 403: "error"},
    auth="admin,supervisor",
)
async def list_windows(request: web.Request) -> web.Response:
    require_staff(request, *ADMINS)
    async with request.app[DB]() as session:
        windows = (await session.scalars(select(m.Window).order_by(m.Window.id))).all()
        plans = (
            await session.scalars(
                select(m.WorkingPlan).order_by(m.WorkingPlan.weekday, m.WorkingPlan.start_min)
            )
        ).all()
        links = (await session.scalars(select(m.WindowMatter))).all()
    out = []
    for w in windows:
        out.append(
            {
                "id": w.id,
                "code": w.code,
                "name": w.name,
                "department_id": w.department_id,
                "active": w.active,
                "matter_ids": [x.matter_id for x in links if x.window_id == w.id],
                "ranges": [
                    {
                        "weekday": p.weekday,
                        "start": str(TimeRange(p.start_min, p.end_min)).split("-")[0],
                        "end": str(TimeRange(p.start_min, p.end_min)).split("-")[1],
                        "label": p.label,
                    }
                    for p in plans
                    if p.window_id == w.id
                ],
            }
        )
    return json_response({"windows": out})


@routes.post(
    "/api/v1/admin/windows",
    summary="Create a video window",
    request=schemas.WINDOW_IN,
    responses={201: WINDOW_OUT, 403: "error", 409: "error", 422: "error"},
    auth="admin,supervisor",
)
async def create_window(request: web.Request) -> web.Response:
    require_staff(request, *ADMINS)
    body = await read_json(request, schemas.WINDOW_IN)
    try:
        async with request.app[DB]() as session, session.begin():
            if await session.get(m.Department, body["department_id"]) is None:
                raise ValidationError(fields={"department_id": "No such department"})
            window = m.Window(active=True, **body)
            session.add(window)
    except IntegrityError:
        raise CodeTakenError() from None
    return json_response({"id": window.id, "code": window.code}, status=201)


@routes.put(
    "/api/v1/admin/windows/{id}/plans",
    summary="Replace a window's weekly plan (several ranges a day allowed)",
    request=schemas.PLANS_IN,
    responses={200: schemas.OK_OUT, 403: "error", 404: "error", 422: "error"},
    auth="admin,supervisor",
)
async def put_plans(request: web.Request) -> web.Response:
    require_staff(request, *ADMINS)
    body = await read_json(request, schemas.PLANS_IN)
    ranges = [
        (r["weekday"], _range(r["start"], r["end"], f"ranges.{i}.end"), r.get("label", ""))
        for i, r in enumerate(body["ranges"])
    ]
    async with request.app[DB]() as session, session.begin():
        window_id = int_param(request, "id")
        if await session.get(m.Window, window_id) is None:
            raise NotFoundError()
        await plancache.changed(session)  # Core DELETE: the caches and sold-out memos forget
        await session.execute(delete(m.WorkingPlan).where(m.WorkingPlan.window_id == window_id))
        for weekday, span, label in ranges:
            session.add(
                m.WorkingPlan(
                    window_id=window_id,
                    weekday=weekday,
                    start_min=span.start,
                    end_min=span.end,
                    label=label,
                )
            )
    return json_response({"ok": True})


@routes.post(
    "/api/v1/admin/exceptions",
    summary="Add a dated closure (whole day, or start–end) or extra opening hours",
    request=schemas.EXCEPTION_IN,
    responses={201: schemas.OK_OUT, 403: "error", 422: "error"},
    auth="admin,supervisor",
)
async def create_exception(request: web.Request) -> web.Response:
    require_staff(request, *ADMINS)
    body = await read_json(request, schemas.EXCEPTION_IN)
    span = None
    if "start" in body or "end" in body:
        span = (
            _range(body.get("start", ""), body.get("end", ""), "end")
            if "start" in body and "end" in body
            else None
        )
        if span is None:
            raise ValidationError(fields={"end": RANGE_INVALID})
    if not body["closed"] and span is None:
        raise ValidationError(fields={"start": "This field is required"})
    day = require_date(body["day"], "day")
    async with request.app[DB]() as session, session.begin():
        exc = m.PlanException(
            window_id=body.get("window_id"),
            day=day,
            closed=body["closed"],
            start_min=span.start if span else None,
            end_min=span.end if span else None,
            note=body.get("note", ""),
        )
        session.add(exc)
    return json_response({"ok": True, "id": exc.id}, status=201)


@routes.delete(
    "/api/v1/admin/exceptions/{id}",
    summary="Remove a dated exception",
    responses={200: schemas.OK_OUT, 403: "error", 404: "error"},
    auth="admin,supervisor",
)
async def delete_exception(request: web.Request) -> web.Response:
    require_staff(request, *ADMINS)
    async with request.app[DB]() as session, session.begin():
        exc = await session.get(m.PlanException, int_param(request, "id"))
        if exc is None:
            raise NotFoundError()
        await session.delete(exc)
    return json_response({"ok": True})


@routes.put(
    "/api/v1/admin/holidays/{day}",
    summary="Override the statutory calendar for one date (working or not)",
    request=schemas.HOLIDAY_IN,
    responses={200: schemas.OK_OUT, 403: "error", 422: "error"},
    auth="admin,supervisor",
)
async def put_holiday(request: web.Request) -> web.Response:
    require_staff(request, *ADMINS)
    body = await read_json(request, schemas.HOLIDAY_IN)
    day = require_date(request.match_info["day"], "day")
    async with request.app[DB]() as session, session.begin():
        row = await session.get(m.HolidayOverride, day)
        if row is None:
            session.add(
                m.HolidayOverride(day=day, working=body["working"], note=body.get("note", ""))
            )
        else:
            row.working, row.note = body["working"], body.get("note", "")
    return json_response({"ok": True})


@routes.delete(
    "/api/v1/admin/holidays/{day}",
    summary="Remove a date override (back to the statutory calendar)",
    responses={200: schemas.OK_OUT, 403: "error"},
    auth="admin,supervisor",
)
async def delete_holiday(request: web.Request) -> web.Response:
    require_staff(request, *ADMINS)
    day = try_date(request.match_info["day"])
    if day is None:
        raise NotFoundError()
    async with request.app[DB]() as session, session.begin():
        await plancache.changed(session)  # Core DELETE: the caches and sold-out memos forget
        await session.execute(delete(m.HolidayOverride).where(m.HolidayOverride.day == day))
    return json_response({"ok": True})


class SelfDeactivationError(ConflictError):
    code = "cannot_deactivate_self"
    message = "You cannot deactivate your own account"


async def set_qualifications(session: Any, user_id: int, matter_ids: list[int]) -> None:
    await plancache.changed(session)  # Core DELETE: the caches and sold-out memos forget
    await session.execute(
        delete(m.StaffQualification).where(m.StaffQualification.user_id == user_id)
    )
    for matter_id in sorted(set(matter_ids)):
        if await session.get(m.Matter, matter_id) is None:
            raise ValidationError(fields={"matter_ids": "No such matter"})
        session.add(m.StaffQualification(user_id=user_id, matter_id=matter_id))


async def after_staff_change(
    request: web.Request, session: Any, user_id: int
) -> staffchange.Outcome:
    """Hand the officer's bookings on, or tell their applicants (same transaction)."""
    settings = request.app[SETTINGS]
    return await staffchange.apply(
        session,
        user_id,
        require_staff(request),
        zone=settings.zone,
        manage_url=lambda a: links_for(settings, a).manage_url,
        now=utcnow(),
    )


def outcome_dict(outcome: staffchange.Outcome) -> dict[str, Any]:
    return {
        "ok": True,
        "handed": [{"appointment_id": a.id, "staff_id": s} for a, s in outcome.handed],
        "unserved": [a.id for a in outcome.unserved],
    }


@routes.put(
    "/api/v1/admin/staff/{id}/qualifications",
    summary="Set which matters a member of staff may serve; their future bookings of other "
    "matters are handed to free colleagues, or their applicants told by SMS",
    request=schemas.QUALIFICATIONS_IN,
    responses={200: schemas.STAFF_CHANGE_OUT, 403: "error", 404: "error", 422: "error"},
    auth="admin,supervisor",
)
async def put_qualifications(request: web.Request) -> web.Response:
    require_staff(request, *ADMINS)
    body = await read_json(request, schemas.QUALIFICATIONS_IN)
    user_id = int_param(request, "id")
    async with request.app[DB]() as session, session.begin():
        if await session.get(User, user_id) is None:
            raise NotFoundError()
        await set_qualifications(session, user_id, body["matter_ids"])
        outcome = await after_staff_change(request, session, user_id)
    return json_response(outcome_dict(outcome))


@routes.patch(
    "/api/v1/admin/staff/{id}",
    summary="Activate or deactivate a member of staff; a deactivated officer's future "
    "bookings are handed to free colleagues, or their applicants told by SMS",
    request=schemas.STAFF_IN,
    responses={200: schemas.STAFF_CHANGE_OUT, 403: "error", 404: "error", 409: "error"},
    auth="admin,supervisor",
)
async def patch_staff(request: web.Request) -> web.Response:
    principal = require_staff(request, *ADMINS)
    body = await read_json(request, schemas.STAFF_IN)
    user_id = int_param(request, "id")
    if user_id == principal.id and not body["active"]:
        raise SelfDeactivationError()
    async with request.app[DB]() as session, session.begin():
        user = await session.get(User, user_id)
        if user is None:
            raise NotFoundError()
        user.active = body["active"]
        outcome = await after_staff_change(request, session, user_id)
    return json_response(outcome_dict(outcome))
