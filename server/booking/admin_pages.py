"""Admin editors (pages) for matters, windows' weekly plans, dated exceptions and holiday
overrides. Plain forms: each posts, the change commits, the page reloads. A bad value
raises the same field errors as the API and the foundation renders a localised error page.

Plans are edited as text, one range per line (``1 09:00-12:00 上午``: weekday 1-7 from
Monday, range, label), because a week with several ranges a day is easier to type and
review as lines than as a grid of inputs.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import delete, select

from server.accounts.models import User
from server.appkeys import DB, SETTINGS
from server.booking import closures, holidays, plancache, staffchange
from server.booking import models as m
from server.booking.admin import SelfDeactivationError, after_staff_change, set_qualifications
from server.booking.present import KIND_LABELS, links_for, utcnow
from server.booking.slots import TimeRange
from server.errors import NotFoundError, PermissionDeniedError, ValidationError
from server.http.requests import int_param, optional_principal
from server.masking import mask_mobile
from server.parsing import INT_MAX, parse_id, parse_int, require_date

routes = web.RouteTableDef()
PLAN_LINE = "Write one range per line, like: 1 09:00-12:00 上午"


def _require_admin(request: web.Request) -> None:
    principal = optional_principal(request)
    if principal is None or not principal.is_staff:
        raise web.HTTPSeeOther(f"/login?tab=staff&next={request.path}")
    if principal.role not in ("admin", "supervisor"):
        raise PermissionDeniedError()


def _int(form: Any, key: str, low: int, high: int) -> int:
    return parse_int(form.get(key), key, low, high)


def parse_plan(text: str) -> list[tuple[int, TimeRange, str]]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split(maxsplit=2)
        if not parts:
            continue
        try:
            weekday = int(parts[0]) - 1
            span = TimeRange.parse(parts[1])
            if not 0 <= weekday <= 6:
                raise ValueError(weekday)
        except (ValueError, IndexError):
            raise ValidationError(fields={f"plan.{number}": PLAN_LINE}) from None
        out.append((weekday, span, parts[2] if len(parts) > 2 else ""))
    return out


def plan_text(plans: list[m.WorkingPlan]) -> str:
    return "\n".join(
        f"{p.weekday + 1} {TimeRange(p.start_min, p.end_min)} {p.label}".rstrip() for p in plans
    )


@routes.get("/admin/matters", name="booking_admin")
@aiohttp_jinja2.template("booking/admin.html")
async def admin_page(request: web.Request) -> dict[str, Any]:
    _require_admin(request)
    async with request.app[DB]() as session:
        matters = (await session.scalars(select(m.Matter).order_by(m.Matter.id))).all()
        departments = (await session.scalars(select(m.Department).order_by(m.Department.id))).all()
        windows = (await session.scalars(select(m.Window).order_by(m.Window.id))).all()
        plans = (
            await session.scalars(
                select(m.WorkingPlan).order_by(m.WorkingPlan.weekday, m.WorkingPlan.start_min)
            )
        ).all()
        exceptions = (
            await session.scalars(select(m.PlanException).order_by(m.PlanException.day))
        ).all()
        overrides = (
            await session.scalars(select(m.HolidayOverride).order_by(m.HolidayOverride.day))
        ).all()
        zone = request.app[SETTINGS].zone
        affected = {e.id: await closures.affected(session, e, zone) for e in exceptions}
        links = (await session.scalars(select(m.WindowMatter))).all()
        years = (await session.scalars(select(m.HolidayYear).order_by(m.HolidayYear.year))).all()
        staff = (await session.scalars(select(User).order_by(User.id))).all()
        qualified = (await session.scalars(select(m.StaffQualification))).all()
        unassigned = await staffchange.unassigned(session, utcnow())
    today = utcnow().astimezone(request.app[SETTINGS].zone).date()
    return {
        "staff": [s for s in staff if s.role in STAFF_ROLES],
        "qualified": lambda uid: {q.matter_id for q in qualified if q.user_id == uid},
        "unassigned": unassigned,
        "matter_name": {x.id: x.name for x in matters},
        "staff_outcome": _outcome_from_query(request),
        "zone": zone,
        "holiday_years": years,
        "missing_holiday_year": holidays.missing_year(today, {y.year for y in years}),
        "matters": matters,
        "departments": departments,
        "windows": [(w, plan_text([p for p in plans if p.window_id == w.id])) for w in windows],
        "exceptions": exceptions,
        "affected": affected,
        "local_time": lambda t: t.astimezone(zone).strftime("%H:%M"),
        "mask": mask_mobile,
        "overrides": overrides,
        "kind_labels": KIND_LABELS,
        "window_matter_ids": lambda wid: {x.matter_id for x in links if x.window_id == wid},
        "minutes": lambda v: "" if v is None else f"{v // 60:02d}:{v % 60:02d}",
    }


@routes.post("/admin/matters")
async def admin_create_matter(request: web.Request) -> web.StreamResponse:
    _require_admin(request)
    form = await request.post()
    code, name = str(form.get("code", "")).strip()[:40], str(form.get("name", "")).strip()[:200]
    zone, kind = str(form.get("zone", "")), str(form.get("kind", ""))
    if not code or not name or zone not in m.ZONES or kind not in m.KINDS:
        raise ValidationError(fields={"code": "This field is required"})
    department_id = _int(form, "department_id", 1, INT_MAX)
    async with request.app[DB]() as session, session.begin():
        if await session.scalar(select(m.Matter.id).where(m.Matter.code == code)) is not None:
            raise ValidationError(fields={"code": "This code is already in use"})
        if await session.get(m.Department, department_id) is None:
            raise ValidationError(fields={"department_id": "No such department"})
        session.add(
            m.Matter(
                code=code,
                name=name,
                zone=zone,
                kind=kind,
                department_id=department_id,
                description="",
                materials=[],
                checklist=[],
                joint_departments=[],
                duration_min=30,
                seats=1,
                buffer_min=0,
                notice_min=60,
                horizon_days=14,
                retention_days=3 * 365,
                allows_video_now=False,
                active=True,
            )
        )
    raise web.HTTPSeeOther("/admin/matters")


@routes.post("/admin/matters/{id}")
async def admin_update_matter(request: web.Request) -> web.StreamResponse:
    _require_admin(request)
    form = await request.post()
    async with request.app[DB]() as session, session.begin():
        matter = await session.get(m.Matter, int_param(request, "id"))
        if matter is None:
            raise NotFoundError()
        matter.name = str(form.get("name", matter.name)).strip() or matter.name
        matter.duration_min = _int(form, "duration_min", 5, 480)
        matter.seats = _int(form, "seats", 1, 1000)
        matter.buffer_min = _int(form, "buffer_min", 0, 240)
        matter.notice_min = _int(form, "notice_min", 0, 60 * 24 * 30)
        matter.horizon_days = _int(form, "horizon_days", 0, 366)
        matter.allows_video_now = form.get("allows_video_now") == "on"
        matter.active = form.get("active") == "on"
        matter.internal_review = form.get("internal_review") == "on"
        matter.rectification_allowed = form.get("rectification_allowed") == "on"
        matter.issues_licence = form.get("issues_licence") == "on"
        matter.observed_notice = form.get("observed_notice") == "on"
        for rule, high in (
            ("max_open_bookings", 100),
            ("no_show_limit", 100),
            ("no_show_window_days", 366),
            ("no_show_block_days", 366),
        ):
            if form.get(rule):
                setattr(matter, rule, _int(form, rule, 0, high))
        if form.get("rectify_days"):
            matter.rectify_days = _int(form, "rectify_days", 1, 365)
        matter.materials = [
            x.strip() for x in str(form.get("materials", "")).splitlines() if x.strip()
        ]
        checklist = []
        for i, line in enumerate(str(form.get("checklist", "")).splitlines()):
            if line.strip():
                checklist.append({"key": f"item{i + 1}", "text": line.strip()})
        matter.checklist = checklist
        template = str(form.get("letter_template", "")).strip()
        matter.letter_template = template or None
    raise web.HTTPSeeOther("/admin/matters")


@routes.post("/admin/windows")
async def admin_create_window(request: web.Request) -> web.StreamResponse:
    _require_admin(request)
    form = await request.post()
    code, name = str(form.get("code", "")).strip(), str(form.get("name", "")).strip()
    if not code:
        raise ValidationError(fields={"code": "This field is required"})
    if not name:
        raise ValidationError(fields={"name": "This field is required"})
    async with request.app[DB]() as session, session.begin():
        if await session.scalar(select(m.Window.id).where(m.Window.code == code)) is not None:
            raise ValidationError(fields={"code": "This code is already in use"})
        department_id = _int(form, "department_id", 1, INT_MAX)
        if await session.get(m.Department, department_id) is None:
            raise ValidationError(fields={"department_id": "No such department"})
        session.add(
            m.Window(code=code[:40], name=name[:100], department_id=department_id, active=True)
        )
    raise web.HTTPSeeOther("/admin/matters#windows")


@routes.post("/admin/windows/{id}/plans")
async def admin_window_plans(request: web.Request) -> web.StreamResponse:
    _require_admin(request)
    form = await request.post()
    ranges = parse_plan(str(form.get("plan", "")))
    matter_ids = {i for v in form.getall("matter_ids", []) if (i := parse_id(str(v))) is not None}
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
        await session.execute(delete(m.WindowMatter).where(m.WindowMatter.window_id == window_id))
        for matter_id in sorted(matter_ids):
            session.add(m.WindowMatter(window_id=window_id, matter_id=matter_id))
    raise web.HTTPSeeOther("/admin/matters#windows")


@routes.post("/admin/exceptions")
async def admin_add_exception(request: web.Request) -> web.StreamResponse:
    _require_admin(request)
    form = await request.post()
    day = require_date(form.get("day"), "day")
    closed = form.get("closed") == "on"
    start, end = str(form.get("start", "")).strip(), str(form.get("end", "")).strip()
    span = None
    if start or end:
        try:
            span = TimeRange.parse(f"{start}-{end}")
        except ValueError:
            raise ValidationError(fields={"end": "The end must be after the start"}) from None
    if not closed and span is None:
        raise ValidationError(fields={"start": "This field is required"})
    window = str(form.get("window_id", ""))
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session, session.begin():
        exc = m.PlanException(
            window_id=parse_id(window),
            day=day,
            closed=closed,
            start_min=span.start if span else None,
            end_min=span.end if span else None,
            note=str(form.get("note", ""))[:200],
        )
        session.add(exc)
        await session.flush()
        # The people who booked the closed time are told in this transaction.
        await closures.tell_affected(
            session, exc, settings.zone, lambda a: links_for(settings, a).manage_url, utcnow()
        )
    raise web.HTTPSeeOther("/admin/matters#exceptions")


@routes.post("/admin/exceptions/{id}/delete")
async def admin_delete_exception(request: web.Request) -> web.StreamResponse:
    _require_admin(request)
    async with request.app[DB]() as session, session.begin():
        await plancache.changed(session)  # Core DELETE: the caches and sold-out memos forget
        await session.execute(
            delete(m.PlanException).where(m.PlanException.id == int_param(request, "id"))
        )
    raise web.HTTPSeeOther("/admin/matters#exceptions")


STAFF_ROLES = ("inspector", "supervisor", "admin")


def _outcome_from_query(request: web.Request) -> dict[str, int] | None:
    """The counts the staff form redirects with, to say what the change did."""
    if "handed" not in request.query:
        return None
    return {key: parse_id(request.query.get(key)) or 0 for key in ("handed", "unserved")}


@routes.post("/admin/staff/{id}")
async def admin_staff(request: web.Request) -> web.StreamResponse:
    """Qualifications and active flag of one officer; their bookings follow."""
    _require_admin(request)
    principal = optional_principal(request)
    assert principal is not None
    form = await request.post()
    user_id = int_param(request, "id")
    active = form.get("active") == "on"
    if user_id == principal.id and not active:
        raise SelfDeactivationError()
    matter_ids = [parse_id(str(v)) for v in form.getall("matter_id", [])]
    async with request.app[DB]() as session, session.begin():
        user = await session.get(User, user_id)
        if user is None:
            raise NotFoundError()
        user.active = active
        await set_qualifications(session, user_id, [i for i in matter_ids if i is not None])
        outcome = await after_staff_change(request, session, user_id)
    raise web.HTTPSeeOther(
        f"/admin/matters?handed={len(outcome.handed)}&unserved={len(outcome.unserved)}#staff"
    )


@routes.post("/admin/holidays")
async def admin_holiday(request: web.Request) -> web.StreamResponse:
    _require_admin(request)
    form = await request.post()
    day = require_date(form.get("day"), "day")
    async with request.app[DB]() as session, session.begin():
        await plancache.changed(session)  # Core DELETE: the caches and sold-out memos forget
        await session.execute(delete(m.HolidayOverride).where(m.HolidayOverride.day == day))
        if form.get("mode") in ("working", "closed"):
            session.add(
                m.HolidayOverride(
                    day=day,
                    working=form.get("mode") == "working",
                    note=str(form.get("note", ""))[:200],
                )
            )
    raise web.HTTPSeeOther("/admin/matters#holidays")


@routes.post("/admin/holidays/import")
async def admin_import_holidays(request: web.Request) -> web.StreamResponse:
    """One year from the State Council's notice (the format is in :mod:`holidays`)."""
    _require_admin(request)
    form = await request.post()
    year = _int(form, "year", 2000, 2100)
    entries = holidays.parse(str(form.get("holidays", "")), year)
    source = str(form.get("source", "")).strip() or "admin form"
    async with request.app[DB]() as session, session.begin():
        await holidays.import_year(session, year, entries, source, utcnow())
    raise web.HTTPSeeOther("/admin/matters#holiday-import")
