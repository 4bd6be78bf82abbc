"""JSON schemas of the booking API: they validate requests and feed the OpenAPI document.

Only the shape is checked here; meaning (checksums, slot rules) is the domain's job, so
the messages for those come from :mod:`validation` and :mod:`errors`.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_STR = {"type": "string", "maxLength": 200}
_INT = {"type": "integer", "minimum": 1}
_DATETIME = {"type": "string", "format": "date-time", "maxLength": 40}

APPLICANT: Schema = {
    "type": "object",
    "required": ["name", "mobile"],
    "additionalProperties": False,
    "properties": {
        "kind": {"enum": ["person", "enterprise"]},
        "name": {"type": "string", "maxLength": 100},
        "mobile": {"type": "string", "maxLength": 20},
        "id_number": {"type": "string", "maxLength": 30},
        "credit_code": {"type": "string", "maxLength": 30},
        "contact_name": {"type": "string", "maxLength": 100},
    },
}

BOOK: Schema = {
    "type": "object",
    "required": ["matter_id", "start", "applicant"],
    "additionalProperties": False,
    "properties": {
        "matter_id": _INT,
        "start": _DATETIME,
        "applicant": APPLICANT,
        "site_address": {"type": "string", "maxLength": 300},
        "site_lat": {"type": "number", "minimum": -90, "maximum": 90},
        "site_lon": {"type": "number", "minimum": -180, "maximum": 180},
        "staff_id": _INT,
        "case_id": {**_INT, "description": "Book the follow-up (re-inspection) of this case"},
        "lang": {
            "enum": ["zh_CN", "en"],
            "description": "The applicant's language for every SMS about the booking "
            "(default: the page's language when applicants book, else zh_CN)",
        },
    },
}

MANAGE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"token": {"type": "string", "maxLength": 200}},
}

RESCHEDULE: Schema = {
    "type": "object",
    "required": ["start"],
    "additionalProperties": False,
    "properties": {"start": _DATETIME, "token": {"type": "string", "maxLength": 200}},
}

STATUS: Schema = {
    "type": "object",
    "required": ["status"],
    "additionalProperties": False,
    "properties": {"status": {"enum": ["checked_in", "in_session", "completed", "no_show"]}},
}

ASSIGN: Schema = {
    "type": "object",
    "required": ["staff_id"],
    "additionalProperties": False,
    "properties": {"staff_id": {"type": ["integer", "null"], "minimum": 1}},
}

QUEUE_JOIN: Schema = {
    "type": "object",
    "required": ["matter_id", "applicant"],
    "additionalProperties": False,
    "properties": {"matter_id": _INT, "applicant": APPLICANT},
}

MATTER_OUT: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "code": {"type": "string"},
        "name": {"type": "string"},
        "zone": {"enum": ["citizen", "enterprise"]},
        "kind": {"enum": ["consultation", "inspection", "joint_inspection"]},
        "duration_min": {"type": "integer"},
        "seats": {"type": "integer"},
        "materials": {"type": "array", "items": {"type": "string"}},
        "checklist": {"type": "array", "items": {"type": "object"}},
        "allows_video_now": {"type": "boolean"},
        "internal_review": {"type": "boolean"},
        "rectification_allowed": {"type": "boolean"},
        "rectify_days": {"type": "integer"},
        "complaint_days": {"type": ["integer", "null"]},
        "issues_licence": {"type": "boolean"},
        "observed_notice": {"type": "boolean"},
    },
}

MATTERS_OUT: Schema = {
    "type": "object",
    "properties": {"matters": {"type": "array", "items": MATTER_OUT}},
}

SLOTS_OUT: Schema = {
    "type": "object",
    "properties": {
        "matter_id": {"type": "integer"},
        "date": {"type": "string", "format": "date"},
        "timezone": {"type": "string"},
        "working_day": {"type": "boolean"},
        "day_kind": {
            "type": "string",
            "enum": ["weekday", "weekend", "holiday", "makeup", "override", "unknown_year"],
        },
        "slots": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "start": _DATETIME,
                    "end": _DATETIME,
                    "seats": {"type": "integer"},
                    "seats_left": {"type": "integer"},
                    "period": {
                        "type": "string",
                        "enum": ["morning", "midday", "afternoon", "evening"],
                        "description": "上午 / 午间 / 下午 / 晚间, by the local start",
                    },
                    "label": {"type": "string", "description": "午间错时, 延时服务 … or empty"},
                },
            },
        },
    },
}

APPOINTMENT_OUT: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "status": {"type": "string"},
        "matter_id": {"type": "integer"},
        "matter_name": {"type": "string"},
        "start": _DATETIME,
        "end": _DATETIME,
        "window_id": {"type": "integer"},
        "staff_id": {"type": ["integer", "null"]},
        "case_id": {"type": ["integer", "null"]},
        "applicant": {"type": "object"},
        "site_address": {"type": ["string", "null"]},
        "join_url": {"type": "string"},
        "manage_url": {"type": "string"},
        "calendar_url": {"type": "string"},
        "qr_url": {"type": "string"},
    },
}

APPOINTMENTS_OUT: Schema = {
    "type": "object",
    "properties": {"appointments": {"type": "array", "items": APPOINTMENT_OUT}},
}

TICKET_OUT: Schema = {
    "type": "object",
    "properties": {
        "ticket": {"type": "string"},
        "id": {"type": "integer"},
        "matter_id": {"type": "integer"},
        "status": {"enum": ["waiting", "serving", "done", "left"]},
        "position": {"type": "integer"},
        "eta_minutes": {"type": "integer"},
        "case_id": {"type": ["integer", "null"]},
        "join_url": {
            "type": ["string", "null"],
            "description": "Once served: the holder's link into the case's video room "
            "(applicant role, expires two hours after the call)",
        },
    },
}

SERVED_OUT: Schema = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["appointment", "ticket", "none"]},
        "id": {"type": ["integer", "null"]},
        "case_id": {"type": ["integer", "null"]},
        "console_url": {
            "type": ["string", "null"],
            "description": "The caller's inspector console for the served applicant's room",
        },
    },
}

MATTER_IN: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "code": {"type": "string", "minLength": 1, "maxLength": 40},
        "department_id": _INT,
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string", "maxLength": 2000},
        "zone": {"enum": ["citizen", "enterprise"]},
        "kind": {"enum": ["consultation", "inspection", "joint_inspection"]},
        "duration_min": {"type": "integer", "minimum": 5, "maximum": 480},
        "seats": {"type": "integer", "minimum": 1, "maximum": 1000},
        "buffer_min": {"type": "integer", "minimum": 0, "maximum": 240},
        "notice_min": {"type": "integer", "minimum": 0, "maximum": 60 * 24 * 30},
        "horizon_days": {"type": "integer", "minimum": 0, "maximum": 366},
        "materials": {"type": "array", "items": _STR, "maxItems": 50},
        "checklist": {
            "type": "array",
            "maxItems": 100,
            "items": {
                "type": "object",
                "required": ["key", "text"],
                "properties": {"key": {"type": "string", "maxLength": 40}, "text": _STR},
            },
        },
        "joint_departments": {"type": "array", "items": _STR, "maxItems": 20},
        "letter_template": {"type": ["string", "null"], "maxLength": 20000},
        "allows_video_now": {"type": "boolean"},
        "retention_days": {"type": "integer", "minimum": 1, "maximum": 36500},
        # The procedure (docs/architecture.md): which steps apply to the matter's cases.
        "internal_review": {"type": "boolean"},
        "rectification_allowed": {"type": "boolean"},
        "rectify_days": {"type": "integer", "minimum": 1, "maximum": 365},
        # 好差评 (docs/supervision.md): working days to settle a 差评; null: the department's.
        "complaint_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 60},
        "issues_licence": {"type": "boolean"},
        "observed_notice": {"type": "boolean"},
        "promised_days": {
            "type": "object",
            "description": "Promised working days per step, for deadline supervision",
            "propertyNames": {
                "enum": ["accept", "inspect", "review", "rectify_review", "close", "total"]
            },
            "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 365},
        },
        "active": {"type": "boolean"},
        "window_ids": {"type": "array", "items": _INT},
    },
}

MATTER_CREATE: Schema = {
    **MATTER_IN,
    "required": ["code", "department_id", "name", "zone", "kind"],
}

WINDOW_IN: Schema = {
    "type": "object",
    "required": ["code", "department_id", "name"],
    "additionalProperties": False,
    "properties": {
        "code": {"type": "string", "minLength": 1, "maxLength": 40},
        "department_id": _INT,
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "active": {"type": "boolean"},
    },
}

_HHMM = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"}

PLANS_IN: Schema = {
    "type": "object",
    "required": ["ranges"],
    "additionalProperties": False,
    "properties": {
        "ranges": {
            "type": "array",
            "maxItems": 70,
            "items": {
                "type": "object",
                "required": ["weekday", "start", "end"],
                "additionalProperties": False,
                "properties": {
                    "weekday": {"type": "integer", "minimum": 0, "maximum": 6},
                    "start": _HHMM,
                    "end": _HHMM,
                    "label": {"type": "string", "maxLength": 60},
                },
            },
        }
    },
}

EXCEPTION_IN: Schema = {
    "type": "object",
    "required": ["day", "closed"],
    "additionalProperties": False,
    "properties": {
        "window_id": {"type": ["integer", "null"], "minimum": 1},
        "day": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "closed": {"type": "boolean"},
        "start": _HHMM,
        "end": _HHMM,
        "note": {"type": "string", "maxLength": 200},
    },
}

HOLIDAY_IN: Schema = {
    "type": "object",
    "required": ["working"],
    "additionalProperties": False,
    "properties": {"working": {"type": "boolean"}, "note": {"type": "string", "maxLength": 200}},
}

QUALIFICATIONS_IN: Schema = {
    "type": "object",
    "required": ["matter_ids"],
    "additionalProperties": False,
    "properties": {"matter_ids": {"type": "array", "items": _INT, "maxItems": 500}},
}

OK_OUT: Schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}

STAFF_IN: Schema = {
    "type": "object",
    "required": ["active"],
    "additionalProperties": False,
    "properties": {"active": {"type": "boolean"}},
}

STAFF_CHANGE_OUT: Schema = {
    "type": "object",
    "description": "What the change did to the officer's future bookings: handed to a free "
    "colleague, or left without an officer (the applicant is told by SMS)",
    "properties": {
        "ok": {"type": "boolean"},
        "handed": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "appointment_id": {"type": "integer"},
                    "staff_id": {"type": "integer"},
                },
            },
        },
        "unserved": {"type": "array", "items": {"type": "integer"}},
    },
}
