"""JSON schemas of the letters API: one place for validation and the OpenAPI document."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_TEXT = {"type": "string", "minLength": 1, "maxLength": 1000}

ISSUE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind"],
    "properties": {
        "kind": {"enum": ["commitment", "record"]},
        "supersedes": {"type": ["integer", "null"], "minimum": 1},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "string", "maxLength": 200},
            "description": "enterprise_name, credit_code, site_address, matter_title, "
            "applicant_name: values the template uses",
        },
        "inspectors": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "maxItems": 10,
            "description": "staff ids present (records); default: the issuer",
        },
        "checklist": {
            "type": "array",
            "maxItems": 100,
            "items": {
                "type": "object",
                "required": ["item", "result"],
                "properties": {
                    "item": {"type": "string", "maxLength": 200},
                    "result": {"enum": ["ok", "not_ok", "na"]},
                    "note": {"type": "string", "maxLength": 500},
                },
            },
        },
        "findings": {"type": "array", "items": _TEXT, "maxItems": 50},
        "outcome": {"enum": ["pass", "rectify", "fail"]},
        "requirements": {"type": "array", "items": _TEXT, "maxItems": 50},
        "deadline": {"type": "string", "maxLength": 10},
        "reason": {"type": "string", "maxLength": 1000},
    },
}

SIGN: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["signature", "consent"],
    "properties": {
        "signature": {
            "type": "string",
            "maxLength": 800_000,
            "description": "data:image/png;base64,… from the signature pad",
        },
        "consent": {"type": "boolean"},
    },
}

_SIGNER: Schema = {
    "type": "object",
    "properties": {
        "position": {"type": "integer"},
        "name": {"type": "string"},
        "role": {"type": "string"},
        "signed": {"type": "boolean"},
        "signed_at": {"type": ["string", "null"], "format": "date-time"},
        "signature_sha256": {"type": ["string", "null"]},
    },
}

LETTER: Schema = {
    "type": "object",
    "required": ["id", "case_id", "kind", "version", "status", "signers", "pdf_sha256"],
    "properties": {
        "id": {"type": "integer"},
        "case_id": {"type": "integer"},
        "case_number": {"type": "string"},
        "kind": {"enum": ["commitment", "record"]},
        "version": {"type": "integer"},
        "title": {"type": "string"},
        "body": {"type": "string"},
        "body_sha256": {"type": "string"},
        "status": {"enum": ["draft", "issued", "partially_signed", "signed", "superseded"]},
        "supersedes_id": {"type": ["integer", "null"]},
        "superseded_by_id": {"type": ["integer", "null"]},
        "signers": {"type": "array", "items": _SIGNER},
        "waiting_for": {"type": ["string", "null"]},
        "your_turn": {"type": "boolean"},
        "pdf_sha256": {"type": ["string", "null"]},
        "issued_at": {"type": ["string", "null"], "format": "date-time"},
        "signed_at": {"type": ["string", "null"], "format": "date-time"},
        "pdf_url": {"type": "string"},
        "sign_url": {"type": "string"},
    },
}

LETTER_LIST: Schema = {
    "type": "object",
    "properties": {"letters": {"type": "array", "items": LETTER}},
}

VERDICT: Schema = {
    "type": "object",
    "required": ["valid", "seal_valid", "matches_record", "sha256"],
    "properties": {
        "valid": {
            "type": "boolean",
            "description": "seal valid and byte-identical to a PDF this agency issued",
        },
        "seal_valid": {"type": "boolean"},
        "intact": {"type": "boolean"},
        "trusted": {"type": "boolean"},
        "unmodified": {"type": "boolean"},
        "certificate": {"type": "string"},
        "issuer": {"type": "string"},
        "sealed_by_agency": {"type": "boolean"},
        "signed_at": {"type": ["string", "null"]},
        "sha256": {"type": "string"},
        "problem": {"type": ["string", "null"]},
        "timestamp": {
            "type": ["string", "null"],
            "description": "time from the TSA's signature timestamp (PAdES B-T)",
        },
        "long_term": {
            "type": "boolean",
            "description": "validation data (certificates, CRL/OCSP) in the DSS (PAdES B-LT)",
        },
        "matches_record": {"type": "boolean"},
        "record": {
            "type": ["object", "null"],
            "properties": {
                "letter_id": {"type": "integer"},
                "case_number": {"type": "string"},
                "kind": {"type": "string"},
                "version": {"type": "integer"},
                "status": {
                    "type": "string",
                    "description": "the uploaded version's own status when it was rendered",
                },
                "letter_status": {"type": "string", "description": "that letter's status now"},
                "superseded": {"type": "boolean"},
                "latest": {
                    "type": "boolean",
                    "description": "the current PDF of a letter no correction replaced",
                },
                "signers": {"type": "array", "items": _SIGNER},
            },
        },
    },
}

TEMPLATE_SAVE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "source"],
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "source": {"type": "string", "minLength": 1, "maxLength": 20_000},
    },
}

TEMPLATE_PREVIEW: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["source"],
    "properties": {
        "source": {"type": "string", "maxLength": 20_000},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

PREVIEW_OUT: Schema = {
    "type": "object",
    "properties": {
        "text": {"type": ["string", "null"]},
        "problem": {
            "type": ["object", "null"],
            "properties": {"line": {"type": ["integer", "null"]}, "message": {"type": "string"}},
        },
    },
}

TEMPLATE_OUT: Schema = {
    "type": "object",
    "properties": {
        "matter_id": {"type": "integer"},
        "title": {"type": "string"},
        "source": {"type": "string"},
        "updated_at": {"type": ["string", "null"]},
    },
}

TEMPLATE_LIST: Schema = {
    "type": "object",
    "properties": {"templates": {"type": "array", "items": TEMPLATE_OUT}},
}
