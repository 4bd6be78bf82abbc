"""The facts at the top of a case page: matter, applicant, site, the distance check, deadline.

The applicant's identity comes from the newest appointment (what was validated at
booking: the enterprise's name and unified social credit code with its contact person, or
the person), the site from the case's own site (set by staff) before the booked address —
the same order in which :func:`recordings.evidence.record_location` measures the distance.
Only parties who may ``read_identity`` see the credit code, the contact and the mobile;
others (experts, observers, oversight) see the name masked. The distance check is the
newest shared location's distance to the site with its flag, staff only (the applicant's
view carries no distance, an internal assessment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.evidence import site_of
from recordings.redaction import mask_name
from server.accounts.models import Applicant
from server.booking.models import Appointment, Department, Matter
from server.cases.models import Case
from server.masking import mask_mobile

UPLOAD_KIND = "rectification.uploaded"


@dataclass(frozen=True, slots=True)
class CaseHeader:
    matter: str
    department: str
    applicant_kind: str
    """``enterprise``, ``person`` or empty when the case has no appointment."""
    applicant: str
    credit_code: str
    contact: str
    mobile: str
    site_address: str
    site_has_coordinates: bool
    distance_m: float | None
    threshold_m: float | None
    flagged: bool
    located_at: str | None


async def case_header(
    session: AsyncSession, case: Case, view: dict[str, Any], actions: frozenset[str]
) -> CaseHeader:
    matter = await session.get(Matter, case.matter_id) if case.matter_id else None
    department = await session.get(Department, matter.department_id) if matter else None
    appt = await session.scalar(
        select(Appointment)
        .where(Appointment.case_id == case.id)
        .order_by(Appointment.id.desc())
        .limit(1)
    )
    site = await site_of(session, case.id)
    identity = "read_identity" in actions
    if appt is not None:
        kind, name = appt.applicant_kind, appt.applicant_name
        credit, contact, mobile = appt.credit_code or "", appt.contact_name or "", appt.mobile
    else:
        applicant = await session.get(Applicant, case.applicant_id) if case.applicant_id else None
        kind, credit, contact = "person", "", ""
        name = (applicant.name or "") if applicant else ""
        mobile = applicant.mobile if applicant else ""
    if not identity:
        name = name if kind == "enterprise" else mask_name(name) if name else ""
        credit, contact, mobile = "", "", ""
    address = (site.address if site and site.address else "") or (
        appt.site_address if appt and appt.site_address else ""
    )
    has_coords = bool((site and site.lat is not None) or (appt and appt.site_lat is not None))
    located = [loc for loc in view["locations"] if "distance_m" in loc]
    last = located[-1] if located else None
    return CaseHeader(
        matter=matter.name if matter else case.title,
        department=department.name if department else "",
        applicant_kind=kind if (appt or case.applicant_id) else "",
        applicant=name,
        credit_code=credit,
        contact=contact,
        mobile=mask_mobile(mobile) if mobile else "",
        site_address=address,
        site_has_coordinates=has_coords,
        distance_m=last["distance_m"] if last else None,
        threshold_m=last["threshold_m"] if last else None,
        flagged=bool(last and last["flagged"]),
        located_at=last["at"] if last else None,
    )


def uploads(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The rectification files on the case's timeline, oldest first (both views carry
    the events; the file is served by ``/cases/{id}/uploads/{seq}``)."""
    return [
        {
            "seq": e["seq"],
            "at": e["at"],
            "name": e["data"].get("name", ""),
            "mime": e["data"].get("mime", ""),
            "media": e["data"].get("media", "image"),
            "size": e["data"].get("size", 0),
            "sha256": e["data"].get("sha256", ""),
            "note": e["data"].get("note", ""),
            "url": f"/cases/{view['id']}/uploads/{e['seq']}",
        }
        for e in view["timeline"]
        if e["kind"] == UPLOAD_KIND
    ]
