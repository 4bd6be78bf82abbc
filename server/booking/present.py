"""Shaping booking objects for JSON and templates, and the links an applicant receives.

Links are absolute (they travel by SMS and calendar invites) and built from
``settings.public_url``. Personal numbers are masked everywhere except in the staff
view of one appointment, where the clerk needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from server.booking import models as m
from server.booking.links import make_token, token_expiry
from server.booking.validation import mask_id, mask_mobile
from server.settings import Settings

KIND_LABELS = {
    "consultation": "Face-to-face online consultation",
    "inspection": "Remote video inspection",
    "joint_inspection": "Joint remote inspection",
}
ZONE_LABELS = {"citizen": "For citizens", "enterprise": "For enterprises"}
STATUS_LABELS = {
    "booked": "Booked",
    "checked_in": "Checked in",
    "in_session": "In session",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "no_show": "No-show",
}


@dataclass(frozen=True, slots=True)
class Links:
    join_url: str
    manage_url: str
    calendar_url: str
    qr_url: str
    manage_token: str


def links_for(settings: Settings, appt: m.Appointment) -> Links:
    base = settings.effective_public_url.rstrip("/")
    expires = token_expiry(appt.ends_at)
    manage = make_token(settings.secret_key, appt.id, appt.version, expires)
    join = make_token(settings.secret_key, appt.id, 0, expires, purpose="join")
    return Links(
        join_url=f"{base}/join/{appt.id}?token={join}",
        manage_url=f"{base}/booking/manage/{appt.id}?token={manage}",
        # Invites are forwarded and QR codes photographed: they carry the read-only join
        # token (view and join), never the manage token that can cancel.
        calendar_url=f"{base}/api/v1/appointments/{appt.id}/calendar.ics?token={join}",
        qr_url=f"{base}/api/v1/appointments/{appt.id}/qr.svg?token={join}",
        manage_token=manage,
    )


def matter_dict(matter: m.Matter) -> dict[str, Any]:
    return {
        "id": matter.id,
        "code": matter.code,
        "name": matter.name,
        "description": matter.description,
        "department_id": matter.department_id,
        "zone": matter.zone,
        "kind": matter.kind,
        "duration_min": matter.duration_min,
        "seats": matter.seats,
        "buffer_min": matter.buffer_min,
        "notice_min": matter.notice_min,
        "horizon_days": matter.horizon_days,
        "materials": list(matter.materials),
        "checklist": list(matter.checklist),
        "joint_departments": list(matter.joint_departments),
        "letter_template": matter.letter_template,
        "allows_video_now": matter.allows_video_now,
        "retention_days": matter.retention_days,
        "active": matter.active,
        "internal_review": matter.internal_review,
        "rectification_allowed": matter.rectification_allowed,
        "rectify_days": matter.rectify_days,
        "complaint_days": matter.complaint_days,
        "issues_licence": matter.issues_licence,
        "observed_notice": matter.observed_notice,
        "promised_days": dict(matter.promised_days or {}),
    }


def local_iso(value: datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).isoformat()


def appointment_dict(
    appt: m.Appointment,
    matter: m.Matter,
    zone: ZoneInfo,
    *,
    links: Links | None = None,
    full_identity: bool = False,
) -> dict[str, Any]:
    """``links`` only for someone entitled to manage; ``full_identity`` only for staff."""
    applicant = {
        "kind": appt.applicant_kind,
        "name": appt.applicant_name,
        "mobile": appt.mobile if full_identity else mask_mobile(appt.mobile),
        "id_number": appt.id_number if full_identity else mask_id(appt.id_number),
        "credit_code": appt.credit_code,
        "contact_name": appt.contact_name,
    }
    out: dict[str, Any] = {
        "id": appt.id,
        "status": appt.status,
        "matter_id": matter.id,
        "matter_name": matter.name,
        "matter_kind": matter.kind,
        "start": local_iso(appt.starts_at, zone),
        "end": local_iso(appt.ends_at, zone),
        "window_id": appt.window_id,
        "staff_id": appt.staff_id,
        "case_id": appt.case_id,
        "applicant": applicant,
        "site_address": appt.site_address,
        "site_lat": appt.site_lat,
        "site_lon": appt.site_lon,
        "on_behalf": appt.booked_by_staff_id is not None,
        "version": appt.version,
    }
    if links is not None:
        out.update(
            join_url=links.join_url,
            manage_url=links.manage_url,
            calendar_url=links.calendar_url,
            qr_url=links.qr_url,
        )
    return out


def utcnow() -> datetime:
    return datetime.now(UTC)
