"""好差评 pages: the applicant's rating page of the SMS link (phone), the department
head's 差评 tickets (desk), the supervisor's appeals; and the domain's ``setup``.

The pages post to the JSON API (``web/static/supervision/ratings.js``), so a page can
never do more than the API allows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from server.accounts.models import User
from server.appkeys import API_SPEC, DB, SETTINGS
from server.cases.access import allowed, authorize
from server.cases.models import Case
from server.db.types import utcnow
from server.http.requests import int_param, optional_principal
from server.supervision import invites, rating_api, tickets
from server.supervision.rating_models import Rating, RatingTicket
from server.supervision.ratings import LABELS, LEVEL_OF, TAGS, ZH_LABELS, rating_view

routes = web.RouteTableDef()


def _staff(request: web.Request, *roles: str) -> Any:
    principal = optional_principal(request)
    if principal is None:
        raise web.HTTPSeeOther(f"/login?tab=staff&next={request.path}")
    if not principal.is_staff or (roles and not principal.has_role(*roles)):
        raise web.HTTPForbidden()
    return principal


@routes.get("/rate/{token}")
async def rate_page(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    claim = invites.read_link(request.app[SETTINGS].secret_key, token, utcnow())
    context: dict[str, Any] = {
        "token": token,
        "levels": list(LEVEL_OF),
        "labels": LABELS,
        "tags": TAGS,
        "state": "bad_link",
        "case": None,
        "rating": None,
        "ticket": None,
        "today": dt.datetime.now(request.app[SETTINGS].zone).date(),
    }
    if claim is None:
        return aiohttp_jinja2.render_template("supervision/rate.html", request, context, status=403)
    async with request.app[DB]() as session:
        if claim.purpose == invites.FIX:
            ticket = await session.get(RatingTicket, claim.target_id)
            case = await session.get(Case, ticket.case_id) if ticket else None
            context["ticket"] = ticket
            context["state"] = "fix" if ticket and ticket.status == "fixed" else "done"
        else:
            case = await session.get(Case, claim.target_id)
            rating = await session.scalar(
                select(Rating).where(Rating.case_id == claim.target_id, Rating.scope == "case")
            )
            context["rating"] = rating_view(rating) if rating else None
            context["state"] = "case"
            if rating and (rating.status != "valid" or context["today"] > rating.editable_until):
                context["state"] = "closed"
    if case is None:
        raise web.HTTPNotFound()
    context["case"] = case
    return aiohttp_jinja2.render_template("supervision/rate.html", request, context)


@routes.get("/staff/rating-tickets")
async def ticket_list(request: web.Request) -> web.StreamResponse:
    principal = _staff(request)
    async with request.app[DB]() as session:
        rows = [
            await tickets.ticket_view(session, t, request.app[SETTINGS].zone)
            for t in await tickets.tickets_for(session, principal)
        ]
    today = dt.datetime.now(request.app[SETTINGS].zone).date().isoformat()
    return aiohttp_jinja2.render_template(
        "supervision/tickets.html",
        request,
        {"tickets": rows, "today": today, "labels": LABELS, "zh": ZH_LABELS},
    )


@routes.get("/staff/rating-tickets/{id}")
async def ticket_page(request: web.Request) -> web.StreamResponse:
    principal = _staff(request)
    async with request.app[DB]() as session:
        ticket = await tickets.get_ticket(session, int_param(request, "id"))
        case = await authorize(session, principal, ticket.case_id, "read_internal")
        view = await tickets.ticket_view(session, ticket, request.app[SETTINGS].zone)
        may = {
            action: await allowed(session, principal, case, action)
            for action in ("handle_complaint", "appeal_rating", "decide_appeal")
        }
    today = dt.datetime.now(request.app[SETTINGS].zone).date().isoformat()
    return aiohttp_jinja2.render_template(
        "supervision/ticket.html",
        request,
        {"t": view, "may": may, "today": today, "labels": LABELS, "tags": TAGS},
    )


@routes.get("/staff/rating-appeals")
async def appeal_list(request: web.Request) -> web.StreamResponse:
    _staff(request, "supervisor", "admin")
    async with request.app[DB]() as session:
        rows = []
        for row in await tickets.pending_appeals(session):
            rating = await session.get(Rating, row.rating_id)
            case = await session.get(Case, row.case_id)
            by = await session.get(User, row.by_id)
            ticket_id = await session.scalar(
                select(RatingTicket.id).where(RatingTicket.rating_id == row.rating_id)
            )
            assert rating is not None and case is not None
            rows.append(
                {
                    "id": row.id,
                    "case": case.number,
                    "case_id": case.id,
                    "reason": row.reason,
                    "by": by.display_name if by else "",
                    "rating": rating_view(rating),
                    "ticket_id": ticket_id,
                }
            )
    return aiohttp_jinja2.render_template(
        "supervision/appeals.html", request, {"appeals": rows, "labels": LABELS, "tags": TAGS}
    )


async def _links(app: web.Application) -> AsyncIterator[None]:
    # After the letters' context, which sets the checkpoint signer: keep what is there.
    settings = app[SETTINGS]
    info = dict(app[DB].kw.get("info") or {})
    info[invites.LINKS] = invites.RatingLinks(settings.secret_key, settings.effective_public_url)
    app[DB].configure(info=info)
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_links)
    app.router.add_routes(rating_api.routes)
    app[API_SPEC].include(rating_api.routes)
    app.router.add_routes(routes)
