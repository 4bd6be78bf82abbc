"""The internal review page (内部审核, ``/staff/cases/{id}/review``) for the second official.

The evidence (snapshots with their annotations beside the originals, recordings, the
location and its distance check, the applicant's rectification files), the checklist
results and the draft decision side by side on one desk screen, with the approve / return
form that posts to the case's existing review step (``/cases/{id}/step/review``,
:func:`server.cases.workflow.review_decision`). Only the official whom the newest
``case.under_review`` event names may open it (403 for other parties, 404 for staff who
are not parties), so a page link cannot hand the review to someone else. After the
review the page stays readable to that official, without the form.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from server.appkeys import DB
from server.cases.access import authorize
from server.errors import PermissionDeniedError
from server.evidence.pages import case_context, named_reviewer
from server.http.requests import int_param, optional_principal

routes = web.RouteTableDef()


@routes.get("/staff/cases/{id}/review", name="case_review")
async def review_page(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None or not principal.is_staff:
        raise web.HTTPSeeOther(f"/login?tab=staff&next={request.path}")
    async with request.app[DB]() as session:
        case = await authorize(session, principal, int_param(request, "id"), "review")
        if await named_reviewer(session, case) != principal.id:
            raise PermissionDeniedError("Only the named reviewer can review this decision")
    _, context = await case_context(request, principal)
    return aiohttp_jinja2.render_template("cases/review.html", request, context)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
