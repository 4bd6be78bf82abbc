"""JSON schemas of the letters API: one place for validation and the OpenAPI document."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

ISSUE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind"],
    "description": "Every fact a letter states comes from the case (applicant, site and "
    "location, session start and end, checklist, decision, inspectors). The request adds "
    "a remark at most; any other value it sends is a statement checked against the case "
    "(409 record_contradicts_case when it differs), never taken over. A new version "
    "supersedes the newest one of its kind.",
    "properties": {
        "kind": {"enum": ["commitment", "record"]},
        "remark": {"type": "string", "maxLength": 500, "description": "free remark (备注)"},
        "supersedes": {
            "type": ["integer", "null"],
            "minimum": 1,
            "description": "the version this one replaces; must be the newest (default)",
        },
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "string", "maxLength": 200},
            "description": "commitment: enterprise_name, credit_code, contact_name, "
            "site_address, matter_title, applicant_name as the issuer sees them (checked)",
        },
        "inspectors": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "maxItems": 20,
            "description": "record: the inspectors' staff ids as stated (checked); the "
            "signers are always every inspector party of the case, lead first",
        },
        "checklist": {
            "type": "array",
            "maxItems": 100,
            "description": "record: the checklist results as stated (checked)",
            "items": {
                "type": "object",
                "required": ["item", "result"],
                "properties": {
                    "item": {"type": "string", "maxLength": 200},
                    "result": {"enum": ["ok", "problem", "not_ok", "na"]},
                    "note": {"type": "string", "maxLength": 500},
                },
            },
        },
        "outcome": {"enum": ["pass", "rectify", "fail"], "description": "as stated (checked)"},
        "deadline": {
            "type": ["string", "null"],
            "maxLength": 10,
            "description": "rectification deadline YYYY-MM-DD as stated (checked)",
        },
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
        "data": {
            "type": "object",
            "description": "what the letter was made from: commitment fields, or the "
            "record's outcome, deadline, checklist counts, session start and end, remark",
        },
        "open_for_signing": {
            "type": "boolean",
            "description": "the newest version, issued and waiting for a signature",
        },
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
