"""The 好差评 API: the applicant rates (by the call's join link or the SMS link), the
department head settles the 差评 ticket, staff appeal, a supervisor decides.

Thin handlers: the link or :func:`server.cases.access.authorize` decides who may ask,
one call into :mod:`server.supervision.ratings` / :mod:`server.supervision.tickets` does
it in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.appkeys import DB, SETTINGS
from server.cases import rooms as case_rooms
from server.cases.access import authorize
from server.cases.models import Case
from server.db.types import utcnow
from server.errors import NotFoundError, PermissionDeniedError
from server.http.requests import int_param, optional_principal, require_staff
from server.openapi import ApiRoutes, Schema, read_json
from server.supervision import invites, tickets
from server.supervision.rating_models import LEVEL_KEYS, Rating, RatingAppeal, RatingTicket
from server.supervision.ratings import (
    TAGS,
    Given,
    NoSessionYetError,
    StaffCannotRateError,
    applicant_principal,
    case_applicant,
    rate,
    rating_view,
    was_admitted,
)
from signaling.errors import TokenError
from signaling.handlers import SIGNER

routes = ApiRoutes(tag="ratings")
TicketStep = Callable[[AsyncSession, RatingTicket, Principal, Any, dt.tzinfo], Awaitable[None]]


class BadRatingLinkError(PermissionDeniedError):
    code = "bad_rating_link"
    message = "This rating link is not valid or has expired"


_GIVEN = {
    "level": {"enum": list(LEVEL_KEYS)},
    "tags": {
        "type": "array",
        "items": {"enum": sorted(TAGS)},
        "maxItems": len(TAGS),
        "uniqueItems": True,
    },
    "comment": {"type": "string", "maxLength": 1000},
}
RATE_IN = {
    "type": "object",
    "properties": {"token": {"type": "string", "minLength": 1, "maxLength": 2000}, **_GIVEN},
    "required": ["token", "level"],
    "additionalProperties": False,
}
RATING_OUT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "scope": {"enum": ["session", "case"]},
        "level": {"enum": list(LEVEL_KEYS)},
        "bad": {"type": "boolean"},
        "editable_until": {"type": "string"},
    },
    "required": ["id", "level", "bad"],
}
LINK_OUT = {
    "type": "object",
    "properties": {"kind": {"enum": ["case", "fix"]}, "rating": RATING_OUT},
    "required": ["kind"],
}
_NOTE = {"type": "string", "maxLength": 2000}
FOLLOW_UP_IN = {
    "type": "object",
    "properties": {"reached": {"type": "boolean"}, "note": _NOTE},
    "required": ["reached"],
    "additionalProperties": False,
}
FIX_IN = {
    "type": "object",
    "properties": {"note": {**_NOTE, "minLength": 1, "pattern": r"\S"}},
    "required": ["note"],
    "additionalProperties": False,
}
APPEAL_IN = {
    "type": "object",
    "properties": {"reason": {**_NOTE, "minLength": 1, "pattern": r"\S"}},
    "required": ["reason"],
    "additionalProperties": False,
}
DECISION_IN = {
    "type": "object",
    "properties": {"uphold": {"type": "boolean"}, "note": _NOTE},
    "required": ["uphold"],
    "additionalProperties": False,
}
TICKET_OUT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "status": {"enum": ["open", "fixed", "closed", "void"]},
        "deadline": {"type": "string"},
    },
    "required": ["id", "status", "deadline"],
}
ERRORS: dict[int, Any] = {403: "error", 404: "error", 409: "error", 422: "error"}


def _refuse_staff(request: web.Request) -> None:
    principal = optional_principal(request)
    if principal is not None and principal.is_staff:
        raise StaffCannotRateError()


def _today(request: web.Request) -> dt.date:
    return dt.datetime.now(request.app[SETTINGS].zone).date()


@routes.post(
    "/api/v1/live/rating",
    summary="一次一评: the applicant rates the video session that just ended (by the join link)",
    request=RATE_IN,
    responses={200: RATING_OUT, 201: RATING_OUT, **ERRORS},
    auth="none",
)
async def rate_session(request: web.Request) -> web.Response:
    _refuse_staff(request)
    body = await read_json(request, RATE_IN)
    given = Given.parse(body)
    try:
        grant = request.app[SIGNER].verify(body["token"])
    except TokenError as err:
        raise BadRatingLinkError() from err
    if grant.role != "applicant":
        raise StaffCannotRateError()
    async with request.app[DB].begin() as session:
        case_id = await case_rooms.case_of_room(session, grant.room)
        if case_id is None:
            raise NotFoundError("Case not found")
        case = await session.get(Case, case_id)
        assert case is not None
        rater = applicant_principal(case, await case_applicant(session, case))
        await authorize(session, rater, case, "rate")
        if not await was_admitted(session, case.id, grant.room, grant.participant):
            raise NoSessionYetError()
        rating, created = await rate(
            session,
            case,
            rater,
            given,
            scope="session",
            session_ref=grant.room,
            today=_today(request),
        )
        out = rating_view(rating)
    return web.json_response(out, status=201 if created else 200)


@routes.post(
    "/api/v1/ratings/link",
    summary="一事一评 or the re-rating of a fix, by the link the applicant got by SMS",
    request=RATE_IN,
    responses={200: LINK_OUT, 201: LINK_OUT, **ERRORS},
    auth="none",
)
async def rate_by_link(request: web.Request) -> web.Response:
    _refuse_staff(request)
    body = await read_json(request, RATE_IN)
    given = Given.parse(body)
    claim = invites.read_link(request.app[SETTINGS].secret_key, body["token"], utcnow())
    if claim is None:
        raise BadRatingLinkError()
    async with request.app[DB].begin() as session:
        if claim.purpose == invites.FIX:
            ticket = await tickets.get_ticket(session, claim.target_id, lock=True)
            case = await _case(session, ticket.case_id)
            rater = applicant_principal(case, await case_applicant(session, case))
            await authorize(session, rater, case, "rate")
            await tickets.rerate(session, ticket, rater, level=given.level, comment=given.comment)
            return web.json_response({"kind": "fix"})
        case = await _case(session, claim.target_id)
        rater = applicant_principal(case, await case_applicant(session, case))
        await authorize(session, rater, case, "rate")
        rating, created = await rate(
            session, case, rater, given, scope="case", today=_today(request)
        )
        out = {"kind": "case", "rating": rating_view(rating)}
    return web.json_response(out, status=201 if created else 200)


async def _case(session: AsyncSession, case_id: int) -> Case:
    case = await session.get(Case, case_id)
    if case is None:
        raise NotFoundError("Case not found")
    return case


async def _ticket_case(
    session: AsyncSession, principal: Principal, ticket_id: int, action: str
) -> tuple[RatingTicket, Case]:
    ticket = await tickets.get_ticket(session, ticket_id, lock=True)
    case = await authorize(session, principal, ticket.case_id, action)
    return ticket, case


_Row = TypeVar("_Row", Rating, RatingAppeal)


async def _locked(
    session: AsyncSession, model: type[_Row], row_id: int, principal: Principal, action: str
) -> _Row:
    """``model`` row ``row_id`` locked for the transaction, once ``principal`` may do
    ``action`` on its case (404 before 403: the id alone says nothing)."""
    row = await session.get(model, row_id, with_for_update=True)
    if row is None:
        raise NotFoundError()
    await authorize(session, principal, row.case_id, action)
    return row


@routes.get(
    "/api/v1/rating-tickets/{id}",
    summary="A 差评 ticket: the rating, 回访, fix, re-rating, appeal",
    responses={200: TICKET_OUT, 403: "error", 404: "error"},
    auth="staff",
)
async def get_ticket(request: web.Request) -> web.Response:
    principal = require_staff(request)
    async with request.app[DB]() as session:
        ticket, _ = await _ticket_case(
            session, principal, int_param(request, "id"), "read_internal"
        )
        return web.json_response(
            await tickets.ticket_view(session, ticket, request.app[SETTINGS].zone)
        )


async def _ticket_step(request: web.Request, schema: Schema, step: TicketStep) -> web.Response:
    """One step of the head's work on a ticket (needs ``handle_complaint`` on its case)."""
    principal = require_staff(request)
    body = await read_json(request, schema)
    zone = request.app[SETTINGS].zone
    async with request.app[DB].begin() as session:
        ticket, _ = await _ticket_case(
            session, principal, int_param(request, "id"), "handle_complaint"
        )
        await step(session, ticket, principal, body, zone)
        out = await tickets.ticket_view(session, ticket, zone)
    return web.json_response(out)


@routes.post(
    "/api/v1/rating-tickets/{id}/follow-up",
    summary="Record a 回访 (follow-up call) of a 差评 ticket",
    request=FOLLOW_UP_IN,
    responses={200: TICKET_OUT, **ERRORS},
    auth="staff",
)
async def follow_up(request: web.Request) -> web.Response:
    async def step(
        session: AsyncSession, t: RatingTicket, p: Principal, body: Any, _: dt.tzinfo
    ) -> None:
        await tickets.follow_up(session, t, p, reached=body["reached"], note=body.get("note", ""))

    return await _ticket_step(request, FOLLOW_UP_IN, step)


@routes.post(
    "/api/v1/rating-tickets/{id}/fix",
    summary="Record the fix (整改) of a 差评 ticket; the applicant is asked to re-rate by SMS",
    request=FIX_IN,
    responses={200: TICKET_OUT, **ERRORS},
    auth="staff",
)
async def fix(request: web.Request) -> web.Response:
    async def step(
        session: AsyncSession, t: RatingTicket, p: Principal, body: Any, zone: dt.tzinfo
    ) -> None:
        await tickets.fix(session, t, p, note=body["note"], zone=zone)

    return await _ticket_step(request, FIX_IN, step)


@routes.post(
    "/api/v1/ratings/{id}/appeal",
    summary="An officer of the case appeals a plainly mistaken rating",
    request=APPEAL_IN,
    responses={201: None, **ERRORS},
    auth="staff",
)
async def appeal(request: web.Request) -> web.Response:
    principal = require_staff(request)
    body = await read_json(request, APPEAL_IN)
    async with request.app[DB].begin() as session:
        rating = await _locked(
            session, Rating, int_param(request, "id"), principal, "appeal_rating"
        )
        row = await tickets.appeal(session, rating, principal, reason=body["reason"])
        out = {"id": row.id, "status": row.status}
    return web.json_response(out, status=201)


@routes.post(
    "/api/v1/rating-appeals/{id}/decision",
    summary="A supervisor decides an appeal: upheld voids the rating and its ticket",
    request=DECISION_IN,
    responses={200: None, **ERRORS},
    auth="staff",
)
async def decide(request: web.Request) -> web.Response:
    principal = require_staff(request)
    body = await read_json(request, DECISION_IN)
    async with request.app[DB].begin() as session:
        row = await _locked(
            session, RatingAppeal, int_param(request, "id"), principal, "decide_appeal"
        )
        await tickets.decide(
            session, row, principal, uphold=body["uphold"], note=body.get("note", "")
        )
        out = {"id": row.id, "status": row.status}
    return web.json_response(out)
