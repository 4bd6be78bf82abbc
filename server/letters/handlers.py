"""The letters JSON API: thin handlers over ``issuance``, ``signing`` and ``verification``."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy import select

from server.accounts.models import Applicant
from server.accounts.principal import Principal
from server.appkeys import DB, LIMITER, SMS
from server.cases.access import readable_case
from server.db.types import utcnow
from server.errors import MalformedFormError
from server.http.requests import (
    MALFORMED_FORM_ERRORS,
    client_ip,
    int_param,
    require_principal,
    require_staff,
)
from server.letters import schemas, signatures, templates, verification
from server.letters.appkeys import LETTERS
from server.letters.documents import role_label
from server.letters.issuance import Audit, issue
from server.letters.models import Letter, LetterEvent, LetterSignature, LetterTemplate
from server.letters.signing import readable_letter, sign
from server.openapi import ApiRoutes, read_json
from server.parsing import parse_id
from server.ratelimit import Limit, enforce

log = logging.getLogger("yunkan.letters")
routes = ApiRoutes("letters")
TEMPLATE_ROLES = ("admin", "supervisor")
VERIFY_PER_IP = Limit("letters-verify-ip", 60, 600)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _audit(request: web.Request) -> Audit:
    return Audit(ip=client_ip(request) or None, user_agent=request.headers.get("User-Agent"))


def signer_rows(letter: Letter, signed: list[LetterSignature]) -> list[dict[str, Any]]:
    by_position = {s.position: s for s in signed}
    rows = []
    for position, signer in enumerate(letter.signers):
        s = by_position.get(position)
        rows.append(
            {
                "position": position,
                "name": signer["name"],
                "role": signer["role"],
                "role_label": role_label(str(signer["role"])),
                "signed": s is not None,
                "signed_at": _iso(s.signed_at) if s else None,
                "signature_sha256": s.image_sha256 if s else None,
            }
        )
    return rows


def letter_json(
    letter: Letter, case_number: str, signed: list[LetterSignature], viewer: Principal | None
) -> dict[str, Any]:
    waiting = (
        letter.signer_at(letter.next_signer)
        if letter.status in ("issued", "partially_signed")
        else None
    )
    return {
        "id": letter.id,
        "case_id": letter.case_id,
        "case_number": case_number,
        "kind": letter.kind,
        "version": letter.version,
        "title": letter.title,
        "body": letter.body,
        "body_sha256": letter.body_sha256,
        "status": letter.status,
        "supersedes_id": letter.supersedes_id,
        "superseded_by_id": letter.superseded_by_id,
        "signers": signer_rows(letter, signed),
        "data": letter.data or {},
        "open_for_signing": waiting is not None and letter.superseded_by_id is None,
        "waiting_for": waiting["name"] if waiting else None,
        "your_turn": bool(
            waiting and viewer and waiting["kind"] == viewer.kind and waiting["id"] == viewer.id
        ),
        "pdf_sha256": letter.pdf_sha256,
        "issued_at": _iso(letter.issued_at),
        "signed_at": _iso(letter.signed_at),
        "pdf_url": f"/api/v1/letters/{letter.id}/pdf",
        "sign_url": f"/letters/{letter.id}",
    }


async def load_signatures(session: Any, letter_id: int) -> list[LetterSignature]:
    rows = await session.execute(
        select(LetterSignature).where(LetterSignature.letter_id == letter_id)
    )
    return list(rows.scalars())


async def notify_next_signer(request: web.Request, view: dict[str, Any]) -> None:
    """Text the applicant when it is their turn: they may have left the call already.
    A failed SMS never fails the step that was just committed."""
    if view["status"] not in ("issued", "partially_signed"):
        return
    async with request.app[DB]() as session:
        letter = await session.get(Letter, view["id"])
        nxt = letter.signer_at(letter.next_signer) if letter else None
        if nxt is None or nxt["kind"] != "applicant":
            return
        applicant = await session.get(Applicant, nxt["id"])
    if applicant is None:
        return
    url = f"{request.app[LETTERS].public_url.rstrip('/')}/letters/{view['id']}"
    body = (
        f"【云勘】您有一份《{view['title']}》待签署（案件 {view['case_number']}），"
        f"请打开 {url} 阅读并签名。"
    )
    try:
        await request.app[SMS].send(applicant.mobile, body, kind="letter")
    except Exception:
        log.exception("could not text the signer of letter %s", view["id"])


async def letter_view(request: web.Request, letter_id: int) -> dict[str, Any]:
    principal = require_principal(request)
    async with request.app[DB]() as session:
        letter, case = await readable_letter(session, principal, letter_id)
        signed = await load_signatures(session, letter.id)
    return letter_json(letter, case.number, signed, principal)


@routes.post(
    "/api/v1/cases/{case_id}/letters",
    summary="Issue a commitment letter (from the matter's template) or an inspection record",
    request=schemas.ISSUE,
    responses={201: schemas.LETTER, 403: "error", 404: "error", 409: "error", 422: "error"},
    auth="staff",
)
async def issue_letter(request: web.Request) -> web.Response:
    principal = require_staff(request)
    case_id = int_param(request, "case_id")
    body = await read_json(request, schemas.ISSUE)
    letter_id = await issue(
        request.app[DB], request.app[LETTERS], principal, case_id, body, _audit(request)
    )
    view = await letter_view(request, letter_id)
    await notify_next_signer(request, view)
    return web.json_response(view, status=201)


@routes.get(
    "/api/v1/cases/{case_id}/letters",
    summary="The letters and records of a case, every version",
    responses={200: schemas.LETTER_LIST, 404: "error"},
)
async def list_letters(request: web.Request) -> web.Response:
    principal = require_principal(request)
    case_id = int_param(request, "case_id")
    async with request.app[DB]() as session:
        case = await readable_case(session, principal, case_id)
        letters = list(
            (
                await session.execute(
                    select(Letter).where(Letter.case_id == case.id).order_by(Letter.id)
                )
            ).scalars()
        )
        out = [
            letter_json(x, case.number, await load_signatures(session, x.id), principal)
            for x in letters
        ]
    return web.json_response({"letters": out})


@routes.get(
    "/api/v1/letters/{letter_id}",
    summary="A letter: text, status, signers in order and whose turn it is",
    responses={200: schemas.LETTER, 404: "error"},
)
async def get_letter(request: web.Request) -> web.Response:
    return web.json_response(await letter_view(request, int_param(request, "letter_id")))


@routes.post(
    "/api/v1/letters/{letter_id}/sign",
    summary="Sign a letter with a handwritten signature (PNG data URL) and consent",
    request=schemas.SIGN,
    responses={
        200: schemas.LETTER,
        403: "error",
        404: "error",
        409: "error",
        413: "error",
        422: "error",
    },
)
async def sign_letter(request: web.Request) -> web.Response:
    principal = require_principal(request)
    letter_id = int_param(request, "letter_id")
    body = await read_json(request, schemas.SIGN)
    async with request.app[DB]() as session:
        # Who may sign is settled before the image is decoded (CPU work for strangers).
        await readable_letter(session, principal, letter_id)
    image = signatures.accept(body["signature"])
    await sign(
        request.app[DB],
        request.app[LETTERS],
        principal,
        letter_id,
        image,
        consent=body["consent"],
        audit=_audit(request),
    )
    view = await letter_view(request, letter_id)
    await notify_next_signer(request, view)
    return web.json_response(view)


@routes.get(
    "/api/v1/letters/{letter_id}/pdf",
    summary="The current sealed PDF of a letter",
    responses={200: "application/pdf", 404: "error"},
)
async def letter_pdf(request: web.Request) -> web.Response:
    principal = require_principal(request)
    async with request.app[DB]() as session:
        letter, case = await readable_letter(session, principal, int_param(request, "letter_id"))
    if letter.pdf_key is None:
        raise web.HTTPNotFound()
    data = await request.app[LETTERS].blobs.read(letter.pdf_key)
    name = f"{case.number}-{letter.kind}-v{letter.version}.pdf"
    return web.Response(
        body=data,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{name}"',
            "X-Document-SHA256": letter.pdf_sha256 or "",
            "Cache-Control": "private, no-store",
        },
    )


async def _multipart_file(request: web.Request, cap: int) -> bytes:
    reader = await request.multipart()
    async for part in reader:
        if getattr(part, "name", None) != "file":
            continue
        chunks: list[bytes] = []
        size = 0
        while chunk := await part.read_chunk(64 * 1024):  # type: ignore[union-attr]
            size += len(chunk)
            if size > cap:
                raise verification.PdfTooLargeError(details={"max_bytes": cap})
            chunks.append(chunk)
        return b"".join(chunks)
    raise verification.NotAPdfError()


async def read_upload(request: web.Request) -> bytes:
    """The uploaded PDF (multipart field ``file``, or a raw ``application/pdf`` body),
    read in chunks and cut off past the cap so a huge upload costs no more than the cap."""
    cap = verification.MAX_PDF_BYTES
    if request.content_length is not None and request.content_length > cap + 64 * 1024:
        raise verification.PdfTooLargeError(details={"max_bytes": cap})
    if request.content_type == "multipart/form-data":
        try:
            return await _multipart_file(request, cap)
        except MALFORMED_FORM_ERRORS:
            raise MalformedFormError() from None
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > cap:
            raise verification.PdfTooLargeError(details={"max_bytes": cap})
    return bytes(data)


async def verify_upload(request: web.Request, data: bytes) -> dict[str, Any]:
    """The verdict plus what we hold for that exact file, if anything."""
    ctx = request.app[LETTERS]
    verdict = await verification.verify(data, ctx.seal)
    out: dict[str, Any] = {**verdict.as_json(), "seal_valid": verdict.valid}
    record = None
    async with request.app[DB]() as session:
        event = await session.scalar(
            select(LetterEvent).where(LetterEvent.pdf_sha256 == verdict.sha256).limit(1)
        )
        letter = await session.get(Letter, event.letter_id) if event is not None else None
        if letter is not None and event is not None:
            from server.cases.models import Case

            case = await session.get(Case, letter.case_id)
            signed = await load_signatures(session, letter.id)
            shown = [s for s in signed if s.signed_at <= event.at]
            # Judged as the uploaded version was rendered, not as the letter is now: an
            # unsigned earlier PDF is "issued", even when a later one is fully signed.
            superseded = letter.status == "superseded" or letter.superseded_by_id is not None
            record = {
                "letter_id": letter.id,
                "case_number": case.number if case else "",
                "kind": letter.kind,
                "version": letter.version,
                "status": verification.status_at(len(letter.signers), len(shown)),
                "letter_status": letter.status,
                "superseded": superseded,
                "latest": letter.pdf_sha256 == verdict.sha256 and not superseded,
                "signers": [r for r in signer_rows(letter, shown) if r["signed"]],
            }
    out["matches_record"] = record is not None
    out["record"] = record
    out["valid"] = verdict.valid and record is not None
    out["checked_at"] = utcnow().isoformat()
    return out


@routes.post(
    "/api/v1/verify",
    summary="Verify a sealed PDF: seal, certificate, and whether it is a document we issued",
    request={
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}},
    },
    responses={200: schemas.VERDICT, 413: "error", 422: "error", 429: "error"},
    auth="none",
    content_type="multipart/form-data",
)
async def verify_pdf(request: web.Request) -> web.Response:
    # Public and CPU-bound (parse + hash + signature check): bounded per client address.
    await enforce(request.app[LIMITER], (VERIFY_PER_IP, client_ip(request) or "unknown"))
    data = await read_upload(request)
    return web.json_response(await verify_upload(request, data))


def template_json(row: LetterTemplate) -> dict[str, Any]:
    return {
        "matter_id": row.matter_id,
        "title": row.title,
        "source": row.source,
        "updated_at": _iso(row.updated_at),
    }


@routes.get(
    "/api/v1/letter-templates",
    summary="Commitment-letter templates per matter (0 is the agency default)",
    responses={200: schemas.TEMPLATE_LIST, 403: "error"},
    auth="admin",
)
async def list_templates(request: web.Request) -> web.Response:
    require_staff(request, *TEMPLATE_ROLES)
    async with request.app[DB]() as session:
        rows = (
            await session.execute(select(LetterTemplate).order_by(LetterTemplate.matter_id))
        ).scalars()
        return web.json_response({"templates": [template_json(r) for r in rows]})


@routes.put(
    "/api/v1/letter-templates/{matter_id}",
    summary="Save a matter's template; refused with the line of the first error",
    request=schemas.TEMPLATE_SAVE,
    responses={200: schemas.TEMPLATE_OUT, 403: "error", 422: "error"},
    auth="admin",
)
async def save_template(request: web.Request) -> web.Response:
    principal = require_staff(request, *TEMPLATE_ROLES)
    matter_id = parse_id(request.match_info["matter_id"])
    if matter_id is None:
        raise web.HTTPNotFound()
    body = await read_json(request, schemas.TEMPLATE_SAVE)
    templates.render(body["source"], templates.SAMPLE_FIELDS)  # raises with line + message
    async with request.app[DB].begin() as session:
        row = await session.scalar(
            select(LetterTemplate).where(
                LetterTemplate.matter_id == matter_id, LetterTemplate.kind == "commitment"
            )
        )
        if row is None:
            row = LetterTemplate(matter_id=matter_id, kind="commitment", title="", source="")
            session.add(row)
        row.title, row.source = body["title"], body["source"]
        row.updated_at, row.updated_by = utcnow(), principal.id
        await session.flush()
        out = template_json(row)
    return web.json_response(out)


@routes.post(
    "/api/v1/letter-templates/preview",
    summary="Render a template with sample (or given) fields; errors come back with a line",
    request=schemas.TEMPLATE_PREVIEW,
    responses={200: schemas.PREVIEW_OUT, 403: "error"},
    auth="admin",
)
async def preview_template(request: web.Request) -> web.Response:
    require_staff(request, *TEMPLATE_ROLES)
    body = await read_json(request, schemas.TEMPLATE_PREVIEW)
    fields = {**templates.SAMPLE_FIELDS, **(body.get("fields") or {})}
    result = templates.preview(body["source"], fields)
    return web.json_response(
        {"text": result.text, "problem": result.problem.as_json() if result.problem else None}
    )
