"""Letters pages: the applicant's signing page, the public verification page and the
admin template editor. The pages render the state; the JSON API does the work."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from server.appkeys import DB
from server.http.requests import int_param, optional_principal, require_staff
from server.letters import verification
from server.letters.appkeys import LETTERS
from server.letters.handlers import TEMPLATE_ROLES, letter_view, template_json
from server.letters.models import LetterTemplate
from server.letters.templates import SAMPLE_FIELDS

routes = web.RouteTableDef()


@routes.get("/letters/{letter_id}", name="letter_sign")
async def sign_page(request: web.Request) -> web.StreamResponse:
    """Read, consent, sign. ``?embed=1`` drops the site chrome so the live-call page can
    show it in a panel (``<iframe src="/letters/12?embed=1">``; same origin, so the
    session cookie and CSRF token work as on the full page)."""
    letter_id = int_param(request, "letter_id")
    if optional_principal(request) is None:
        raise web.HTTPSeeOther(f"/login?next=/letters/{letter_id}")
    letter = await letter_view(request, letter_id)
    zone = ZoneInfo(request.app[LETTERS].timezone)
    for signer in letter["signers"]:  # shown in the agency's zone, like the PDF
        at = signer["signed_at"]
        signer["signed_at_local"] = (
            dt.datetime.fromisoformat(at).astimezone(zone).strftime("%Y-%m-%d %H:%M") if at else ""
        )
    embed = request.query.get("embed") == "1"
    return aiohttp_jinja2.render_template(
        "letters/sign.html", request, {"letter": letter, "embed": embed}
    )


@routes.get("/verify", name="verify")
async def verify_page(request: web.Request) -> web.StreamResponse:
    """The QR code's target: ``?letter=ID[&version=N]`` shows that document's status
    (no upload, no personal data); the upload form checks a file for exactly its version."""
    letter = request.query.get("letter", "")
    version = request.query.get("version", "")
    context: dict[str, Any] = {"letter_hint": letter if letter.isdigit() else "", "status": None}
    if letter.isdigit() and len(letter) <= 12:
        async with request.app[DB]() as session:
            status = await verification.document_status(
                session,
                int(letter),
                int(version) if version.isdigit() and len(version) < 6 else None,
            )
        if status is None:
            # Still the verification page (the upload form works); the alert says why
            # nothing is shown. 200, as for any public page reached by a stale QR code.
            context["not_found"] = True
            return aiohttp_jinja2.render_template("letters/verify.html", request, context)
        zone = ZoneInfo(request.app[LETTERS].timezone)
        for signer in status["signers"]:
            at = signer["signed_at"]
            signer["signed_at_local"] = at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at else ""
        issued = status["issued_at"]
        status["issued_at_local"] = (
            issued.astimezone(zone).strftime("%Y-%m-%d %H:%M") if issued else ""
        )
        context["status"] = status
    return aiohttp_jinja2.render_template("letters/verify.html", request, context)


@routes.get("/staff/letter-templates", name="letter_templates")
async def templates_page(request: web.Request) -> web.StreamResponse:
    if optional_principal(request) is None:
        raise web.HTTPSeeOther("/login?tab=staff&next=/staff/letter-templates")
    require_staff(request, *TEMPLATE_ROLES)
    async with request.app[DB]() as session:
        rows = list(
            (
                await session.execute(select(LetterTemplate).order_by(LetterTemplate.matter_id))
            ).scalars()
        )
    return aiohttp_jinja2.render_template(
        "letters/templates.html",
        request,
        {"templates": [template_json(r) for r in rows], "sample_fields": sorted(SAMPLE_FIELDS)},
    )
