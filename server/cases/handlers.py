"""The procedure's API: accept, reject, review, close, withdraw, cancel, parties.

Thin handlers: :func:`server.cases.access.authorize` decides who may ask, the step itself
is one call into :mod:`server.cases.workflow` / :mod:`server.cases.procedure` inside one
transaction, and the answer is the case's procedure view. The case pages post the same
steps through :func:`run_step`, so a page can never do more than the API allows.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.appkeys import API_SPEC, DB
from server.cases import procedure, workflow
from server.cases.access import actions_on, authorize, staff_parties
from server.cases.models import Case
from server.errors import ValidationError
from server.http.requests import int_param, require_principal
from server.openapi import ApiRoutes, read_json

routes = ApiRoutes(tag="cases")

_TEXT = {"type": "string", "maxLength": 1000}
REASON_IN = {
    "type": "object",
    "properties": {"reason": _TEXT},
    "additionalProperties": False,
}
REVIEW_IN = {
    "type": "object",
    "properties": {"approve": {"type": "boolean"}, "note": _TEXT},
    "required": ["approve"],
    "additionalProperties": False,
}
CLOSE_IN = {
    "type": "object",
    "properties": {"licence_number": {"type": ["string", "null"], "maxLength": 64}},
    "additionalProperties": False,
}
NOTE_IN = {
    "type": "object",
    "properties": {"note": _TEXT},
    "additionalProperties": False,
}
PARTY_IN = {
    "type": "object",
    "properties": {
        "user_id": {"type": "integer", "minimum": 1},
        "role": {"enum": list(workflow.ADDABLE_ROLES)},
    },
    "required": ["user_id", "role"],
    "additionalProperties": False,
}
PROCEDURE_OUT = {
    "type": "object",
    "properties": {
        "case": {"type": "string"},
        "state": {"enum": list(procedure.STATES)},
        "kind": {"type": "string"},
        "outcome": {"type": ["string", "null"]},
        "deadline": {"type": ["string", "null"]},
        "licence_number": {"type": ["string", "null"]},
        "actions": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["case", "state", "actions"],
}
PARTIES_OUT = {
    "type": "object",
    "properties": {"parties": {"type": "array"}},
    "required": ["parties"],
}

# step -> (the access action it needs, the request schema)
STEPS: dict[str, tuple[str, dict[str, Any]]] = {
    "accept": ("accept", NOTE_IN),
    "reject": ("accept", REASON_IN),
    "review": ("review", REVIEW_IN),
    "close": ("close", CLOSE_IN),
    "withdraw": ("withdraw", REASON_IN),
    "cancel": ("cancel", REASON_IN),
    "document-review": ("document_review", NOTE_IN),
}


async def procedure_view(session: AsyncSession, principal: Principal, case: Case) -> dict[str, Any]:
    return {
        "case": case.number,
        "state": case.status,
        "kind": case.kind,
        "outcome": case.outcome,
        "deadline": case.deadline.isoformat() if case.deadline else None,
        "licence_number": case.licence_number,
        "actions": sorted(await actions_on(session, principal, case)),
    }


async def run_step(
    session: AsyncSession, principal: Principal, case_id: int, step: str, body: dict[str, Any]
) -> Case:
    """Authorise and make one step of the procedure (caller's transaction)."""
    action, _ = STEPS[step]
    case = await authorize(session, principal, case_id, action)
    if step == "accept":
        await procedure.accept(session, case, principal)
    elif step == "reject":
        await procedure.reject(session, case, principal, body.get("reason", ""))
    elif step == "review":
        await workflow.review_decision(
            session, case, principal, approve=bool(body["approve"]), note=body.get("note", "")
        )
    elif step == "close":
        await workflow.close_case(session, case, principal, body.get("licence_number"))
    elif step == "withdraw":
        await procedure.withdraw(session, case, principal, body.get("reason", ""))
    elif step == "cancel":
        await procedure.cancel(session, case, principal, body.get("reason", ""))
    elif step == "document-review":
        await procedure.document_review(session, case, principal, body.get("note", ""))
    return case


def _step_route(step: str) -> None:
    action, schema = STEPS[step]

    async def handler(request: web.Request) -> web.Response:
        principal = require_principal(request)
        body = await read_json(request, schema)
        async with request.app[DB].begin() as session:
            case = await run_step(session, principal, int_param(request, "id"), step, body)
            out = await procedure_view(session, principal, case)
        return web.json_response(out)

    handler.__name__ = f"case_{step.replace('-', '_')}"
    routes.post(
        f"/api/v1/cases/{{id}}/{step}",
        summary=f"Procedure step '{step}' (needs '{action}' on the case)",
        request=schema,
        responses={200: PROCEDURE_OUT, 403: "error", 404: "error", 409: "error", 422: "error"},
    )(handler)


for _step in STEPS:
    _step_route(_step)


@routes.get(
    "/api/v1/cases/{id}/procedure",
    summary="The case's procedure state and the steps the caller may take",
    responses={200: PROCEDURE_OUT, 404: "error"},
)
async def get_procedure(request: web.Request) -> web.Response:
    principal = require_principal(request)
    async with request.app[DB]() as session:
        case = await authorize(session, principal, int_param(request, "id"), "read")
        return web.json_response(await procedure_view(session, principal, case))


@routes.get(
    "/api/v1/cases/{id}/parties",
    summary="Staff parties of the case (staff who may read it)",
    responses={200: PARTIES_OUT, 404: "error"},
    auth="staff",
)
async def list_parties(request: web.Request) -> web.Response:
    principal = require_principal(request)
    async with request.app[DB]() as session:
        case = await authorize(session, principal, int_param(request, "id"), "read_internal")
        rows = await staff_parties(session, case.id)
        names = {c.id: c.name for c in await workflow.department_staff(session, case)}
    parties = [
        {"user_id": p.principal_id, "role": p.role, "name": names.get(p.principal_id)} for p in rows
    ]
    return web.json_response({"parties": parties})


@routes.post(
    "/api/v1/cases/{id}/parties",
    summary="Add a member of staff to the case: co-inspector, expert, observer, reviewer, lead",
    request=PARTY_IN,
    responses={201: None, 403: "error", 404: "error", 409: "error", 422: "error"},
    auth="staff",
)
async def add_party(request: web.Request) -> web.Response:
    principal = require_principal(request)
    body = await read_json(request, PARTY_IN)
    async with request.app[DB].begin() as session:
        case = await authorize(session, principal, int_param(request, "id"), "parties")
        added = await workflow.add_staff_party(
            session, case, principal, body["user_id"], body["role"]
        )
    return web.json_response(
        {"user_id": added.id, "name": added.name, "role": added.role}, status=201
    )


def form_body(step: str, form: dict[str, str]) -> dict[str, Any]:
    """A page form's fields as the step's API body."""
    if step == "review":
        decision = form.get("decision")
        if decision not in ("approve", "return"):
            raise ValidationError(fields={"decision": "Choose approve or return"})
        return {"approve": decision == "approve", "note": form.get("note", "")}
    if step == "close":
        return {"licence_number": form.get("licence_number") or None}
    key = "note" if step in ("accept", "document-review") else "reason"
    return {key: form.get(key, "")}


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app[API_SPEC].include(routes)
