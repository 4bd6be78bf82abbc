"""What the inspection console shows beside the video: the case's working state.

The live page (``signaling.handlers.join_page``) renders the console for staff; this module
gathers, for the room's case, what the inspector works through during the call: the
matter's checklist as fixed items with the results so far and their snapshots, the site
and the booked time (the waiting room shows them), the latest location with its distance
check, the decision, the letters and who may co-sign them. It reads through
``recordings.casefile.case_file`` (the same role-filtered view the API returns), so the
console never shows more than the API would; every write the console makes goes through
the existing APIs (checklist, snapshots, annotations, decision, letters, invite).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.casefile import case_file, matter_name
from recordings.evidence import appointment_site, site_of
from server.accounts.models import User
from server.accounts.principal import Principal
from server.cases import procedure, workflow
from server.cases.access import WORKING, actions_on, authorize, staff_parties
from server.cases.rooms import case_of_room
from server.errors import YunkanError
from server.letters.handlers import letter_json, load_signatures
from server.letters.models import Letter

BEFORE_DECISION = frozenset(
    {
        procedure.ACCEPTED,
        procedure.SCHEDULED,
        procedure.INSPECTING,
        procedure.IN_SESSION,
        procedure.RE_INSPECTION,
    }
)
RESULT_TO_RECORD = {"ok": "ok", "problem": "not_ok", "na": "na"}
"""The checklist's results (recordings) as the inspection record spells them (letters)."""


def _local(value: str | None, zone: dt.tzinfo) -> str:
    if not value:
        return ""
    return dt.datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")


async def _inspectors(session: AsyncSession, case_id: int) -> list[dict[str, Any]]:
    """The case's inspectors (lead and co-inspectors): they all sign the record."""
    out = []
    for party in await staff_parties(session, case_id):
        if party.role not in WORKING:
            continue
        user = await session.get(User, party.principal_id)
        if user is not None and user.active:
            out.append({"id": user.id, "name": user.display_name, "role": party.role})
    return out


async def console_view(
    session: AsyncSession, room: str, principal: Principal, zone: dt.tzinfo
) -> dict[str, Any] | None:
    """The console's data for ``room``, or None when the viewer may not work on its case.

    ``None`` (not an error) because the video works without it: an expert or observer
    sees the call, only the case's inspectors get the workbench.
    """
    case_id = await case_of_room(session, room)
    if case_id is None:
        return None
    try:
        case = await authorize(session, principal, case_id, "evidence")
    except YunkanError:
        return None
    view = await case_file(session, case, principal)
    actions = await actions_on(session, principal, case)
    matter = await workflow.matter_of(session, case)
    done = {r["item"]: r for r in view["checklist"]}
    shots_by_item: dict[str, list[dict[str, Any]]] = {}
    for shot in view["snapshots"]:
        shots_by_item.setdefault(shot["checklist_item"] or "", []).append(shot)
    checklist = [
        {
            "item": item,
            "result": done.get(item, {}).get("result"),
            "note": done.get(item, {}).get("note", ""),
            "snapshot_ids": done.get(item, {}).get("snapshot_ids", [])
            or [s["id"] for s in shots_by_item.get(item, [])],
        }
        for item in workflow.checklist_items(matter)
    ]
    site = await site_of(session, case.id)
    point = (
        {"lat": site.lat, "lon": site.lon}
        if site and site.lat is not None and site.lon is not None
        else None
    )
    if point is None and (booked_point := await appointment_site(session, case.id)):
        point = {"lat": booked_point.lat, "lon": booked_point.lon}
    appointment = next(
        (a for a in view["appointments"] if room == f"appt-{a['id']}"),
        view["appointments"][-1] if view["appointments"] else None,
    )
    address = (site.address if site and site.address else "") or (
        appointment["site_address"] if appointment and appointment["site_address"] else ""
    )
    letters = [
        letter_json(letter, case.number, await load_signatures(session, letter.id), principal)
        for letter in await session.scalars(
            select(Letter).where(Letter.case_id == case.id).order_by(Letter.id)
        )
    ]
    # The console usually opens before the applicant is admitted (the case moves to
    # "inspecting" then), so the form is offered for every state that leads there; the
    # decision API still refuses it outside "inspecting", with a message that says so.
    may_decide = "decide" in actions and case.status in BEFORE_DECISION
    reviewers = await workflow.reviewers_for(session, case) if may_decide else []
    return {
        "case_id": case.id,
        "number": case.number,
        "state": case.status,
        "state_label": procedure.LABELS[case.status],
        "matter": await matter_name(session, case),
        "booked": _local(appointment["starts_at"], zone) if appointment else "",
        "site_address": address,
        "site": point,
        "checklist": checklist,
        "snapshots": view["snapshots"],
        "locations": view["locations"][-1:],
        "decision": view["decision"],
        "letters": letters,
        "inspectors": await _inspectors(session, case.id),
        "reviewers": [{"id": r.id, "name": r.name} for r in reviewers],
        "internal_review": bool(matter and matter.internal_review),
        "rectify_days": matter.rectify_days if matter else 10,
        "may_decide": may_decide,
        "may_invite": "invite" in actions,
        "result_to_record": RESULT_TO_RECORD,
    }
