"""JSON schemas of the evidence API: validate requests, document responses (OpenAPI)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_HASHED = {
    "type": "object",
    "properties": {"url": {"type": "string"}, "sha256": {"type": "string"}},
    "required": ["url", "sha256"],
}

SNAPSHOT_IN: Schema = {
    "type": "object",
    "properties": {
        "participant": {"type": "string", "minLength": 1, "maxLength": 64},
        "checklist_item": {"type": "string", "minLength": 1, "maxLength": 200},
    },
    "additionalProperties": False,
}

SNAPSHOT_OUT: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "case_id": {"type": "integer"},
        "session": {"type": "string"},
        "participant": {"type": "string"},
        "checklist_item": {"type": ["string", "null"]},
        "taken_at": {"type": "string", "format": "date-time"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "original": _HASHED,
        "watermarked": _HASHED,
        "annotated": {"oneOf": [_HASHED, {"type": "null"}]},
    },
    "required": ["id", "case_id", "original", "watermarked"],
}

LOCATION_IN: Schema = {
    "type": "object",
    "properties": {
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
        "accuracy": {"type": ["number", "null"], "minimum": 0},
        "participant": {"type": "string", "maxLength": 64},
    },
    "required": ["lat", "lon"],
    "additionalProperties": False,
}

LOCATION_OUT: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "lat": {"type": "number"},
        "lon": {"type": "number"},
        "accuracy_m": {"type": ["number", "null"]},
        "distance_m": {"type": ["number", "null"], "description": "staff only"},
        "flagged": {"type": "boolean", "description": "staff only"},
    },
}

SITE_IN: Schema = {
    "type": "object",
    "properties": {
        "address": {"type": "string", "maxLength": 300},
        "lat": {"type": ["number", "null"], "minimum": -90, "maximum": 90},
        "lon": {"type": ["number", "null"], "minimum": -180, "maximum": 180},
        "threshold_m": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 100000},
    },
    "additionalProperties": False,
}

CHECKLIST_IN: Schema = {
    "type": "object",
    "properties": {
        "item": {"type": "string", "minLength": 1, "maxLength": 200},
        "result": {"enum": ["ok", "problem", "na"]},
        "note": {"type": "string", "maxLength": 2000},
        "snapshot_ids": {"type": "array", "items": {"type": "integer"}, "maxItems": 50},
    },
    "required": ["item", "result"],
    "additionalProperties": False,
}

DECISION_IN: Schema = {
    "type": "object",
    "properties": {
        "outcome": {"enum": ["pass", "rectify", "fail"]},
        "reason": {"type": "string", "maxLength": 1000},
        "requirements": {"type": "string", "maxLength": 4000},
        "deadline": {"type": ["string", "null"], "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "rectify_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 365},
        "reviewer_id": {"type": ["integer", "null"], "minimum": 1},
    },
    "required": ["outcome"],
    "additionalProperties": False,
}

HOLD_IN: Schema = {
    "type": "object",
    "properties": {"hold": {"type": "boolean"}, "reason": {"type": "string", "maxLength": 500}},
    "required": ["hold"],
    "additionalProperties": False,
}

EVENT_OUT: Schema = {
    "type": "object",
    "properties": {
        "seq": {"type": "integer"},
        "kind": {"type": "string"},
        "actor": {"type": ["string", "null"]},
        "actor_kind": {"enum": ["staff", "applicant", None]},
        "at": {"type": "string", "format": "date-time"},
        "data": {"type": "object"},
        "hash": {"type": "string"},
    },
}

TIMELINE_OUT: Schema = {
    "type": "object",
    "properties": {"events": {"type": "array", "items": EVENT_OUT}},
}

CASE_OUT: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "number": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "string"},
        "snapshots": {"type": "array"},
        "checklist": {"type": "array"},
        "decision": {"type": ["object", "null"]},
        "locations": {"type": "array"},
        "appointments": {"type": "array"},
        "sessions": {"type": "array", "items": {"type": "string"}},
        "letters": {"type": "array"},
        "recordings": {"type": "array", "description": "staff only"},
        "timeline": {"type": "array", "items": EVENT_OUT},
    },
    "required": ["id", "number", "timeline"],
}

VERIFY_OUT: Schema = {
    "type": "object",
    "properties": {
        "case_number": {"type": "string"},
        "ok": {"type": "boolean"},
        "events": {"type": "integer"},
        "blobs": {"type": "integer"},
        "head_hash": {"type": "string"},
        "first_break": {"type": ["object", "null"]},
        "breaks": {"type": "array"},
    },
    "required": ["ok", "first_break"],
}
