"""Case pages: one for staff, a simpler one for the applicant, and the procedure's forms.

Both render ``recordings.casefile.case_file`` — the same role-filtered view the API
returns — so a page can never show more than the API would. The procedure card shows the
case's state, its deadline and only the steps the viewer may take
(``server.cases.access.actions_on``); its forms post to ``/cases/{id}/step/{step}``, which
runs the same step functions as the API and comes back to the page. Times are shown in
the agency's zone; the applicant page offers to share the browser's location.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.casefile import case_file
from recordings.evidence import record_checklist
from server.accounts.models import User
from server.accounts.principal import Principal
from server.appkeys import DB, SETTINGS
from server.booking.availability import load_calendar
from server.booking.models import Appointment, Department, Matter, StaffQualification
from server.booking.present import STATUS_LABELS
from server.cases import procedure, story, workflow
from server.cases.access import actions_on, authorize, live_role, party_roles
from server.cases.handlers import STEPS, form_body, run_step
from server.cases.listing import APPLICANT_NEXT, NEXT_STEP, due_date
from server.cases.models import Case, CaseEvent
from server.errors import NotFoundError, ValidationError, YunkanError
from server.evidence.summary import case_header, uploads
from server.http.requests import int_param, optional_principal, translate
from server.letters.handlers import letter_json, load_signatures
from server.letters.models import Letter
from server.parsing import parse_int
from server.supervision.cards import case_deadlines
from signaling.links import appointment_room, case_room, join_url, participant_id, signer_for
from signaling.tokens import JoinGrant

routes = web.RouteTableDef()
LIVE_APPOINTMENT = ("checked_in", "in_session")
LETTER_STATUS_LABELS = {
    "draft": "Draft",
    "issued": "Waiting for signatures",
    "partially_signed": "Partly signed",
    "signed": "Signed by everyone",
    "superseded": "Superseded by a newer version",
}
"""Appointments whose video room is open now (the applicant is waiting or in the call)."""


def _local(value: str | None, zone: Any) -> str:
    if not value:
        return ""
    return dt.datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _checklist_rows(items: list[str], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The matter's items, each with its result so far (the form shows what was ticked)."""
    done = {r["item"]: r for r in results}
    return [
        {
            "item": item,
            "result": done.get(item, {}).get("result"),
            "note": done.get(item, {}).get("note", ""),
        }
        for item in items
    ]


def _page_of(principal: Principal, case_id: int) -> str:
    return f"/staff/cases/{case_id}" if principal.is_staff else f"/me/cases/{case_id}"


async def case_context(
    request: web.Request, principal: Principal, *, errors: dict[str, str] | None = None
) -> tuple[Any, dict[str, Any]]:
    """(the case row, the template context) of a case page; access checked here."""
    async with request.app[DB]() as session:
        case = await authorize(session, principal, int_param(request, "id"), "read")
        view = await case_file(session, case, principal)
        actions = await actions_on(session, principal, case)
        reviewers = (
            await workflow.reviewers_for(session, case)
            if "decide" in actions and case.status == procedure.INSPECTING
            else []
        )
        matter = await workflow.matter_of(session, case)
        staff = (
            await _party_candidates(session, case, matter)
            if "parties" in actions and procedure.is_open(case)
            else []
        )
        header = await case_header(session, case, view, actions)
        documents = [
            letter_json(letter, case.number, await load_signatures(session, letter.id), principal)
            for letter in await session.scalars(
                select(Letter).where(Letter.case_id == case.id).order_by(Letter.id.desc())
            )
        ]
        named = await named_reviewer(session, case)
        deadlines = await case_deadlines(session, case.id) if principal.is_staff else None
        due = due_date(
            case,
            matter.promised_days if matter else None,
            await load_calendar(session),
            request.app[SETTINGS].zone,
        )
    proc = {
        "state": case.status,
        "label": procedure.LABELS[case.status],
        "next": (NEXT_STEP if principal.is_staff else APPLICANT_NEXT).get(case.status, ""),
        "open": procedure.is_open(case),
        "actions": actions,
        "reviewers": reviewers,
        "staff": staff,
        "internal_review": bool(matter and matter.internal_review),
        "rectify_days": matter.rectify_days if matter else 10,
        "issues_licence": bool(matter and matter.issues_licence),
        "checklist": _checklist_rows(workflow.checklist_items(matter), view["checklist"]),
        "matter_id": case.matter_id,
        "live": "join_live" in actions
        and any(a["status"] in LIVE_APPOINTMENT for a in view["appointments"]),
        "errors": errors or {},
        "done": request.query.get("done", ""),
        "review_page": case.status == procedure.UNDER_REVIEW
        and principal.is_staff
        and named is not None
        and named == principal.id
        and "review" in actions,
    }
    zone = request.app[SETTINGS].zone
    names = story.participant_names(view["timeline"])
    return case, {
        "case": {**view, "timeline": story.fold(view["timeline"])},
        "proc": proc,
        "header": header,
        "due": due,
        "deadlines": deadlines,
        "uploads": uploads(view),
        "appointment_labels": STATUS_LABELS,
        "documents": documents,
        "letter_labels": LETTER_STATUS_LABELS,
        "story": lambda event: story.sentence(event, names, zone),
        "local": lambda v: _local(v, zone),
    }


async def _party_candidates(
    session: AsyncSession, case: Case, matter: Matter | None
) -> list[workflow.StaffChoice]:
    """Who the party form offers: the case department's staff, then the inspectors of the
    matter's joint departments (联合勘验: the expert comes from another department)."""
    own = await workflow.department_staff(session, case)
    codes = list(matter.joint_departments or []) if matter else []
    if not codes:
        return own
    rows = await session.execute(
        select(User.id, User.display_name, User.role)
        .join(StaffQualification, StaffQualification.user_id == User.id)
        .join(Matter, Matter.id == StaffQualification.matter_id)
        .join(Department, Department.id == Matter.department_id)
        .where(Department.code.in_(codes), User.active.is_(True))
        .distinct()
        .order_by(User.display_name)
    )
    seen = {c.id for c in own}
    joint = [workflow.StaffChoice(r[0], r[1], r[2]) for r in rows.all() if r[0] not in seen]
    return own + joint


async def _render(
    request: web.Request,
    template: str,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None:
        raise web.HTTPSeeOther(f"/login?next={request.path}")
    _, context = await case_context(request, principal, errors=errors)
    return aiohttp_jinja2.render_template(template, request, context, status=status)


async def render_case_page(
    request: web.Request, *, errors: dict[str, str], status: int
) -> web.StreamResponse:
    """The viewer's case page again, with field errors (translated here)."""
    principal = optional_principal(request)
    fields = {k: translate(request, v) for k, v in errors.items()}
    staff = principal is not None and principal.is_staff
    template = "cases/staff.html" if staff else "cases/applicant.html"
    return await _render(request, template, errors=fields, status=status)


async def named_reviewer(session: AsyncSession, case: Case) -> int | None:
    """The staff id the newest ``case.under_review`` event names as the second official."""
    data = await session.scalar(
        select(CaseEvent.data)
        .where(CaseEvent.case_id == case.id, CaseEvent.kind == "case.under_review")
        .order_by(CaseEvent.seq.desc())
        .limit(1)
    )
    reviewer = (data or {}).get("reviewer") or {}
    value = reviewer.get("id") if isinstance(reviewer, dict) else None
    return int(value) if isinstance(value, int) else None


@routes.get("/staff/cases/{id}", name="staff_case")
async def staff_case(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is not None and not principal.is_staff:
        raise web.HTTPSeeOther(f"/me/cases/{request.match_info['id']}")
    return await _render(request, "cases/staff.html")


@routes.get("/me/cases/{id}", name="applicant_case")
async def applicant_case(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is not None and principal.is_staff:
        raise web.HTTPSeeOther(f"/staff/cases/{request.match_info['id']}")
    return await _render(request, "cases/applicant.html")


def _int(value: str | None, field: str) -> int | None:
    return parse_int(value, field, 0) if value else None


@routes.post("/cases/{id}/step/{step}")
async def case_step(request: web.Request) -> web.StreamResponse:
    """A procedure form of the case page; back to the page, with field errors if any."""
    principal = optional_principal(request)
    if principal is None:
        raise web.HTTPSeeOther(f"/login?next={request.path}")
    case_id = int_param(request, "id")
    step = request.match_info["step"]
    if step not in STEPS and step not in ("decide", "party", "checklist"):
        raise web.HTTPNotFound()
    form = {k: str(v) for k, v in (await request.post()).items() if k != "csrf_token"}
    today = dt.datetime.now(request.app[SETTINGS].zone).date()
    try:
        async with request.app[DB].begin() as session:
            if step == "decide":
                case = await authorize(session, principal, case_id, "decide")
                await workflow.draft_decision(
                    session,
                    case,
                    principal,
                    outcome=form.get("outcome", ""),
                    reason=form.get("reason", ""),
                    requirements=form.get("requirements", ""),
                    rectify_days=_int(form.get("rectify_days"), "rectify_days"),
                    reviewer_id=_int(form.get("reviewer_id"), "reviewer_id"),
                    today=today,
                )
            elif step == "checklist":
                case = await authorize(session, principal, case_id, "evidence")
                await _save_checklist(session, case, principal, form)
            elif step == "party":
                case = await authorize(session, principal, case_id, "parties")
                user_id = _int(form.get("user_id"), "user_id")
                if user_id is None:
                    raise ValidationError(fields={"user_id": "Choose a member of staff"})
                await workflow.add_staff_party(
                    session, case, principal, user_id, form.get("role", "")
                )
            else:
                await run_step(session, principal, case_id, step, form_body(step, form))
    except ValidationError as err:
        fields = {k: translate(request, v) for k, v in err.fields.items()}
        return await _page_again(request, principal, case_id, fields, 422)
    except YunkanError as err:
        if err.status == 404:
            raise
        message = translate(request, err.message, **err.params)
        return await _page_again(request, principal, case_id, {"_": message}, err.status)
    raise web.HTTPSeeOther(f"{_page_of(principal, case_id)}?done={step}#procedure")


async def _save_checklist(
    session: AsyncSession, case: Case, principal: Principal, form: dict[str, str]
) -> None:
    """Every item of the matter's checklist that the form gives a result for."""
    items = workflow.checklist_items(await workflow.matter_of(session, case))
    for index, item in enumerate(items):
        result = form.get(f"result-{index}")
        if result:
            await record_checklist(
                session,
                case,
                by=principal,
                item=item,
                result=result,
                note=form.get(f"note-{index}", "")[:2000],
                snapshot_ids=[],
            )


async def _page_again(
    request: web.Request, principal: Principal, case_id: int, errors: dict[str, str], status: int
) -> web.StreamResponse:
    template = "cases/staff.html" if principal.is_staff else "cases/applicant.html"
    return await _render(request, template, errors=errors, status=status)


@routes.post("/cases/{id}/live")
async def join_live(request: web.Request) -> web.StreamResponse:
    """Into the case's current video session, as the role the case gives the caller: the
    console for its inspectors, a hidden receive-only seat for supervisors."""
    principal = optional_principal(request)
    if principal is None:
        raise web.HTTPSeeOther(f"/login?next={request.path}")
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session:
        case = await authorize(session, principal, int_param(request, "id"), "join_live")
        role = live_role(principal, await party_roles(session, principal, case))
        appointment = await session.scalar(
            select(Appointment)
            .where(Appointment.case_id == case.id, Appointment.status.in_(LIVE_APPOINTMENT))
            .order_by(Appointment.starts_at)
            .limit(1)
        )
    if role is None:
        raise NotFoundError("Case not found")
    room = appointment_room(appointment.id) if appointment else case_room(case.id)
    grant = JoinGrant(room, participant_id(principal), role, principal.name)  # type: ignore[arg-type]
    url = join_url(settings, signer_for(settings), grant, ttl=4 * 3600)
    raise web.HTTPSeeOther(urlsplit(url).path)


def setup(app: web.Application) -> None:
    from server.evidence import rectification, review

    app.router.add_routes(routes)
    rectification.setup(app)
    review.setup(app)
