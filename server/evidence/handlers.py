"""Evidence API: snapshots, annotations, location, checklist, decision, case record.

Handlers are thin: check who may do it, validate the body, call ``recordings.evidence`` or
``recordings.casefile`` inside one transaction, answer. Every write commits before the
response, and files are fsynced before their rows, so "201" means durable. Case access
goes through ``readable_case`` (404 for cases one may not read, so ids cannot be probed);
writes need staff, except location, which the applicant shares.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from recordings import checkpoints
from recordings.annotations import SHAPES_SCHEMA
from recordings.casefile import (
    case_file,
    matter_name,
    table_rows,
    timeline_view,
    verify,
)
from recordings.evidence import (
    annotate_snapshot,
    latest_location,
    record_checklist,
    record_location,
    set_site,
    store_snapshot,
)
from recordings.export import export_case
from recordings.location import GeoFix
from recordings.models import STORED, Recording, Snapshot
from recordings.recovery import RECORDINGS, unfiled_breaks
from recordings.snapshots import WatermarkInfo, take_snapshot
from server.accounts.principal import Principal
from server.appkeys import API_SPEC, BLOBS, DB, SETTINGS
from server.cases.access import authorize
from server.cases.models import Case
from server.cases.timeline import append_event, load_events
from server.cases.workflow import draft_decision
from server.errors import NotFoundError, PermissionDeniedError
from server.evidence import schemas as s
from server.evidence.live import session_video
from server.http.requests import int_param, require_principal, require_staff
from server.letters.appkeys import LETTERS
from server.openapi import ApiRoutes, read_json
from server.parsing import parse_date

routes = ApiRoutes(tag="evidence")
INSPECTING = ("inspector", "supervisor", "admin")


async def _case(
    session: AsyncSession, principal: Principal, case_id: int, action: str = "read"
) -> Case:
    # What only staff may see is not even admitted to exist for the others.
    return await authorize(session, principal, case_id, action, hide=action == "read_internal")


def _snapshot_json(shot: Snapshot) -> dict[str, Any]:
    base = f"/api/v1/snapshots/{shot.id}"
    return {
        "id": shot.id,
        "case_id": shot.case_id,
        "session": shot.session_ref,
        "participant": shot.participant,
        "checklist_item": shot.checklist_item,
        "taken_at": shot.taken_at.isoformat(),
        "width": shot.width,
        "height": shot.height,
        "original": {"url": f"{base}/original", "sha256": shot.original_sha256},
        "watermarked": {"url": f"{base}/watermarked", "sha256": shot.watermarked_sha256},
        "annotated": (
            {"url": f"{base}/annotated", "sha256": shot.annotated_sha256}
            if shot.annotated_key
            else None
        ),
    }


@routes.post(
    "/api/v1/sessions/{id}/snapshots",
    summary="Take a watermarked snapshot of a participant's live video (inspector)",
    request=s.SNAPSHOT_IN,
    responses={201: s.SNAPSHOT_OUT, 403: "error", 404: "error", 409: "error", 422: "error"},
    auth="inspector",
)
async def take(request: web.Request) -> web.Response:
    principal = require_staff(request, *INSPECTING)
    body = await read_json(request, s.SNAPSHOT_IN)
    session_id = request.match_info["id"]
    capture = await session_video(request.app, session_id, body.get("participant"))
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session:
        case = await _case(session, principal, capture.case_id, "evidence")
        loc = await latest_location(session, case.id)
        fix = GeoFix(loc.lat, loc.lon, loc.accuracy_m) if loc else None
        info = WatermarkInfo(
            taken_at=dt.datetime.now(dt.UTC),
            timezone=settings.timezone,
            case_number=case.number,
            matter=await matter_name(session, case),
            inspector=principal.name,
            location=fix,
            checklist_item=body.get("checklist_item"),
        )
    # Decoding and image encoding are CPU work: in a thread, so media keeps flowing, and
    # outside any transaction (on SQLite a transaction holds the database's write lock).
    images = await asyncio.to_thread(take_snapshot, capture.packets, info)
    async with request.app[DB].begin() as session:
        case = await _case(session, principal, capture.case_id, "evidence")
        shot = await store_snapshot(
            session,
            request.app[BLOBS],
            case=case,
            session_ref=session_id,
            participant=capture.participant,
            taken_by=principal,
            images=images,
            checklist_item=body.get("checklist_item"),
            location=fix,
            taken_at=info.taken_at,
        )
        out = _snapshot_json(shot)
    return web.json_response(out, status=201)


@routes.post(
    "/api/v1/snapshots/{id}/annotations",
    summary="Annotate a snapshot (a derived image; the original is untouched)",
    request={"type": "object", "properties": {"shapes": SHAPES_SCHEMA}, "required": ["shapes"]},
    responses={201: s.SNAPSHOT_OUT, 404: "error", 422: "error"},
    auth="staff",
)
async def annotate(request: web.Request) -> web.Response:
    principal = require_staff(request, *INSPECTING)
    body = await read_json(
        request, {"type": "object", "properties": {"shapes": SHAPES_SCHEMA}, "required": ["shapes"]}
    )
    async with request.app[DB].begin() as session:
        shot = await session.get(Snapshot, int_param(request, "id"))
        if shot is None:
            raise NotFoundError()
        case = await _case(session, principal, shot.case_id, "evidence")
        shot = await annotate_snapshot(
            session,
            request.app[BLOBS],
            case=case,
            snapshot=shot,
            shapes=body["shapes"],
            by=principal,
        )
        out = _snapshot_json(shot)
    return web.json_response(out, status=201)


@routes.get(
    "/api/v1/snapshots/{id}/{variant:original|watermarked|annotated}",
    summary="A snapshot image (original: staff only)",
    responses={200: "image/jpeg", 404: "error"},
)
async def snapshot_image(request: web.Request) -> web.StreamResponse:
    principal = require_principal(request)
    variant = request.match_info["variant"]
    async with request.app[DB]() as session:
        shot = await session.get(Snapshot, int_param(request, "id"))
        if shot is None:
            raise NotFoundError()
        await _case(
            session, principal, shot.case_id, "read_internal" if variant == "original" else "read"
        )
    key = {
        "original": shot.original_key,
        "watermarked": shot.watermarked_key,
        "annotated": shot.annotated_key,
    }[variant]
    if key is None:
        raise NotFoundError()
    return web.FileResponse(
        request.app[BLOBS].path(key), headers={"Cache-Control": "private, max-age=3600"}
    )


@routes.post(
    "/api/v1/cases/{id}/location",
    summary="Share the browser's location for a case (applicant or staff)",
    request=s.LOCATION_IN,
    responses={201: s.LOCATION_OUT, 404: "error", 422: "error"},
)
async def location(request: web.Request) -> web.Response:
    principal = require_principal(request)
    body = await read_json(request, s.LOCATION_IN)
    fix = GeoFix(body["lat"], body["lon"], body.get("accuracy"))
    action = "evidence" if principal.is_staff else "share_location"
    async with request.app[DB].begin() as session:
        case = await _case(session, principal, int_param(request, "id"), action)
        row = await record_location(
            session,
            case,
            by=principal,
            participant=body.get("participant") or f"{principal.kind}-{principal.id}",
            fix=fix,
        )
        out: dict[str, Any] = {
            "id": row.id,
            "lat": row.lat,
            "lon": row.lon,
            "accuracy_m": row.accuracy_m,
        }
        if principal.is_staff:
            out.update(distance_m=row.distance_m, flagged=row.flagged)
    return web.json_response(out, status=201)


@routes.put(
    "/api/v1/cases/{id}/site",
    summary="Set the inspected site's address and coordinates (staff)",
    request=s.SITE_IN,
    responses={200: None, 404: "error", 422: "error"},
    auth="staff",
)
async def site(request: web.Request) -> web.Response:
    principal = require_staff(request)
    body = await read_json(request, s.SITE_IN)
    has_point = body.get("lat") is not None and body.get("lon") is not None
    point = GeoFix(body["lat"], body["lon"]) if has_point else None
    async with request.app[DB].begin() as session:
        case = await _case(session, principal, int_param(request, "id"), "evidence")
        row = await set_site(
            session,
            case,
            by=principal,
            address=body.get("address", ""),
            site=point,
            threshold_m=body.get("threshold_m"),
        )
        out = {
            "address": row.address,
            "lat": row.lat,
            "lon": row.lon,
            "threshold_m": row.threshold_m,
        }
    return web.json_response(out)


@routes.post(
    "/api/v1/cases/{id}/checklist",
    summary="Record the result of one checklist item (staff)",
    request=s.CHECKLIST_IN,
    responses={201: None, 404: "error", 422: "error"},
    auth="staff",
)
async def checklist(request: web.Request) -> web.Response:
    principal = require_staff(request, *INSPECTING)
    body = await read_json(request, s.CHECKLIST_IN)
    async with request.app[DB].begin() as session:
        case = await _case(session, principal, int_param(request, "id"), "evidence")
        row = await record_checklist(
            session,
            case,
            by=principal,
            item=body["item"],
            result=body["result"],
            note=body.get("note", ""),
            snapshot_ids=body.get("snapshot_ids", []),
        )
        out = {
            "item": row.item,
            "result": row.result,
            "note": row.note,
            "snapshot_ids": row.snapshot_ids,
        }
    return web.json_response(out, status=201)


@routes.post(
    "/api/v1/cases/{id}/decision",
    summary="Draft the decision: pass, rectify (reason, requirements, working days) or fail "
    "(reason); goes to internal review when the matter has one (inspector of the case)",
    request=s.DECISION_IN,
    responses={201: None, 403: "error", 404: "error", 409: "error", 422: "error"},
    auth="staff",
)
async def decision(request: web.Request) -> web.Response:
    principal = require_principal(request)
    body = await read_json(request, s.DECISION_IN)
    deadline = parse_date(body.get("deadline"), "deadline")
    today = dt.datetime.now(request.app[SETTINGS].zone).date()
    async with request.app[DB].begin() as session:
        case = await _case(session, principal, int_param(request, "id"), "decide")
        row = await draft_decision(
            session,
            case,
            principal,
            outcome=body["outcome"],
            reason=body.get("reason", ""),
            requirements=body.get("requirements", ""),
            rectify_days=body.get("rectify_days"),
            reviewer_id=body.get("reviewer_id"),
            today=today,
            deadline=deadline,
        )
        out = {
            "outcome": row.outcome,
            "reason": row.reason,
            "requirements": row.requirements,
            "deadline": row.deadline.isoformat() if row.deadline else None,
            "state": case.status,
        }
    return web.json_response(out, status=201)


@routes.put(
    "/api/v1/cases/{id}/legal-hold",
    summary="Place or lift a legal hold (stops the retention purge; supervisor/admin)",
    request=s.HOLD_IN,
    responses={200: None, 403: "error", 404: "error"},
    auth="supervisor",
)
async def legal_hold(request: web.Request) -> web.Response:
    principal = require_staff(request, "supervisor", "admin")
    body = await read_json(request, s.HOLD_IN)
    async with request.app[DB].begin() as session:
        case = await _case(session, principal, int_param(request, "id"), "hold")
        case.legal_hold = bool(body["hold"])
        await append_event(
            session,
            case,
            kind="case.hold",
            actor=principal,
            data={"hold": case.legal_hold, "reason": body.get("reason", "")},
        )
    return web.json_response({"legal_hold": bool(body["hold"])})


@routes.get(
    "/api/v1/cases/{id}",
    summary="The case record as the caller may see it",
    responses={200: s.CASE_OUT, 404: "error"},
)
async def get_case(request: web.Request) -> web.Response:
    principal = require_principal(request)
    async with request.app[DB]() as session:
        case = await _case(session, principal, int_param(request, "id"))
        return web.json_response(await case_file(session, case, principal))


@routes.get(
    "/api/v1/cases/{id}/timeline",
    summary="The case timeline (hash-chained events)",
    responses={200: s.TIMELINE_OUT, 404: "error"},
)
async def timeline(request: web.Request) -> web.Response:
    principal = require_principal(request)
    async with request.app[DB]() as session:
        case = await _case(session, principal, int_param(request, "id"))
        events = await load_events(session, case.id)
    return web.json_response({"events": timeline_view(events, principal.is_staff)})


@routes.get(
    "/api/v1/cases/{id}/verify",
    summary="Check the timeline chain and every stored file; report the first break (staff)",
    responses={200: s.VERIFY_OUT, 403: "error", 404: "error"},
    auth="staff",
)
async def verify_handler(request: web.Request) -> web.Response:
    principal = require_staff(request)
    async with request.app[DB]() as session:
        case = await _case(session, principal, int_param(request, "id"), "read_internal")
        events = await load_events(session, case.id)
        root = request.app[SETTINGS].data_dir / RECORDINGS
        unfiled = await unfiled_breaks(session, case, root)
        tables = await table_rows(session, case.id)
        anchors = await checkpoints.load(session, case)
    trust = request.app[LETTERS].seal.trust()
    report = await verify(case, events, request.app[BLOBS], tables, anchors, trust)
    report.breaks += unfiled
    out = report.as_dict()
    out["head_hash"] = case.head_hash
    out["breaks"] = [b.as_dict() for b in report.breaks]
    return web.json_response(out)


@routes.get(
    "/api/v1/cases/{id}/export",
    summary="Export the case as a ZIP (media, manifest.json, report.pdf) (staff)",
    responses={200: "application/zip", 403: "error", 404: "error", 422: "error"},
    auth="staff",
)
async def export(request: web.Request) -> web.StreamResponse:
    principal = require_staff(request)
    settings = request.app[SETTINGS]
    tmpdir = Path(
        await asyncio.to_thread(tempfile.mkdtemp, prefix="export-", dir=settings.data_dir)
    )
    target = tmpdir / "bundle.zip"
    try:
        async with request.app[DB]() as session:
            case = await _case(session, principal, int_param(request, "id"), "export")
        await export_case(
            request.app[DB],
            request.app[BLOBS],
            case.id,
            target=target,
            timezone=settings.timezone,
            now=dt.datetime.now(dt.UTC),
        )
        return await send_zip(request, target, f"{case.number}.zip")
    finally:
        await asyncio.to_thread(shutil.rmtree, tmpdir, True)


async def send_zip(request: web.Request, target: Path, filename: str) -> web.StreamResponse:
    """Stream a written bundle in 1 MiB reads (an hour of recordings never sits in memory)."""
    size = (await asyncio.to_thread(target.stat)).st_size
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Length": str(size),
        }
    )
    await response.prepare(request)
    with target.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, 1 << 20):
            await response.write(chunk)
    await response.write_eof()
    return response


@routes.get(
    "/api/v1/recordings/{id}/media",
    summary="Play or download a recording (WebM; HTTP range requests) (staff)",
    responses={200: "video/webm", 206: "video/webm", 404: "error"},
    auth="staff",
)
async def recording_media(request: web.Request) -> web.StreamResponse:
    principal = require_principal(request)
    if not principal.is_staff:
        raise PermissionDeniedError()
    async with request.app[DB]() as session:
        rec = await session.get(Recording, int_param(request, "id"))
        if rec is None:
            raise NotFoundError()
        await _case(session, principal, rec.case_id, "read_internal")
    if rec.status not in STORED or rec.blob_key is None:
        raise NotFoundError("This recording was removed by the retention policy")
    # FileResponse answers Range requests (206), which the <video> element needs to seek.
    return web.FileResponse(
        request.app[BLOBS].path(rec.blob_key), headers={"Content-Type": rec.mime}
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app[API_SPEC].include(routes)
