"""The applicant's rectification evidence: photos or a short video from the phone's browser.

``POST /cases/{id}/rectification`` takes the "My case" page's form (multipart, one or
more ``file`` parts, an optional ``note``), while the case is ``rectifying``. Each file is
stored as a blob (fsynced, SHA-256 addressed) and recorded as one
``rectification.uploaded`` event carrying ``data["blobs"]``, so it is on the hash chain,
checked by ``yunkan verify`` and exported with the bundle like any other evidence. The
kind of file is decided by its first bytes, never by the name or the browser's type, and
only pictures (JPEG, PNG, WebP, HEIC) and videos (MP4/QuickTime, WebM) are taken: the
file is later served inline to staff, so nothing that a browser could run may get in.
The body is capped by ``YUNKAN_MAX_BODY`` (8 MiB by default), enough for a few photos or
some seconds of phone video; a bigger upload is 413 before anything is stored.

``GET /cases/{id}/uploads/{seq}`` serves one of them to whoever may read the case (with
Range requests, so a video can be scrubbed), looked up by its event, so only files the
chain names can be served.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from server.appkeys import BLOBS, DB
from server.cases import procedure
from server.cases.access import authorize
from server.cases.models import CaseEvent
from server.cases.timeline import append_event
from server.errors import NotFoundError, ValidationError
from server.evidence.summary import UPLOAD_KIND
from server.http.middlewares import read_form
from server.http.requests import int_param, optional_principal
from server.parsing import check_text, parse_id

routes = web.RouteTableDef()
MAX_FILES = 6


def sniff(head: bytes) -> tuple[str, str, str] | None:
    """(media, mime, suffix) of a picture or video by its first bytes, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image", "image/jpeg", ".jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "image/png", ".png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image", "image/webp", ".webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
            return "image", "image/heic", ".heic"
        if brand == b"qt  ":
            return "video", "video/quicktime", ".mov"
        return "video", "video/mp4", ".mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", "video/webm", ".webm"
    return None


@routes.post("/cases/{id}/rectification")
async def upload(request: web.Request) -> web.StreamResponse:
    """The rectification form of the applicant's page; back to the page."""
    from server.evidence.pages import render_case_page

    principal = optional_principal(request)
    if principal is None:
        raise web.HTTPSeeOther(f"/login?next={request.path}")
    case_id = int_param(request, "id")
    async with request.app[DB]() as session:
        case = await authorize(session, principal, case_id, "rectify")
        procedure.require(case, procedure.RECTIFYING)
    form = await read_form(request)
    note = check_text(str(form.get("note") or "").strip()[:1000], "note")
    files = [f for f in form.getall("file", []) if isinstance(f, web.FileField)]
    files = [f for f in files if f.filename]
    try:
        if not files:
            raise ValidationError(fields={"file": "Choose at least one photo or video"})
        if len(files) > MAX_FILES:
            raise ValidationError(fields={"file": "Upload at most 6 files at a time"})
        parts = []
        for item in files:
            data = item.file.read()
            kind = sniff(data[:16])
            if kind is None or not data:
                raise ValidationError(
                    fields={"file": "Only photos (JPEG, PNG, WebP, HEIC) and videos (MP4, WebM)"}
                )
            parts.append((item.filename[-120:], data, kind))
    except ValidationError as err:
        return await render_case_page(request, errors=dict(err.fields), status=422)
    blobs = request.app[BLOBS]
    async with request.app[DB].begin() as session:
        case = await authorize(session, principal, case_id, "rectify", lock=True)
        procedure.require(case, procedure.RECTIFYING)
        for name, data, (media, mime, suffix) in parts:
            # Durable before the event names it (DESIGN: no evidence lost).
            ref = await blobs.put(data, suffix=suffix, kind="rectification")
            await append_event(
                session,
                case,
                kind=UPLOAD_KIND,
                actor=principal,
                data={
                    "name": check_text(name, "file"),
                    "media": media,
                    "mime": mime,
                    "size": ref.size,
                    "sha256": ref.sha256,
                    "note": note,
                    "blobs": [{"key": ref.key, "sha256": ref.sha256}],
                },
            )
    raise web.HTTPSeeOther(f"/me/cases/{case_id}?done=rectification#rectification")


@routes.get("/cases/{id}/uploads/{seq}")
async def uploaded_file(request: web.Request) -> web.StreamResponse:
    principal = optional_principal(request)
    if principal is None:
        raise web.HTTPSeeOther(f"/login?next={request.path}")
    seq = parse_id(request.match_info.get("seq"))
    async with request.app[DB]() as session:
        case = await authorize(session, principal, int_param(request, "id"), "read")
        event = await session.scalar(
            select(CaseEvent).where(
                CaseEvent.case_id == case.id,
                CaseEvent.seq == (seq if seq is not None else -1),
                CaseEvent.kind == UPLOAD_KIND,
            )
        )
    if event is None or not event.data.get("blobs"):
        raise NotFoundError()
    key = str(event.data["blobs"][0]["key"])
    return web.FileResponse(
        request.app[BLOBS].path(key),
        headers={
            "Content-Type": str(event.data.get("mime", "application/octet-stream")),
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "inline",
            "Cache-Control": "private, no-store",
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
