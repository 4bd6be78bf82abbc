"""Every route, tried by people who have no business with a case: nothing read, nothing changed.

The table below names every route of the app. A route that is not in it fails the test, so a
new endpoint cannot be added without saying who may use it. Case routes are tried by an
inspector who is qualified for the matter but not assigned, by another applicant, by
anonymous callers and — for changes — by an observer who is a party of the case: each must
be refused (401/403/404 or a redirect to the login page), no answer may carry the case's
number, the applicant's name, mobile or ID number, or the site address, and a fingerprint of
every table must not move. Write bodies are valid by the route's own request schema, so a
refusal is the access rule, not a validation error. A lead of the case then makes the same
requests' reads and gets them (the data is really there to leak).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, text

from recordings.evidence import store_snapshot
from recordings.models import Recording
from recordings.snapshots import WatermarkInfo, take_snapshot
from server.accounts.models import User
from server.accounts.principal import Principal
from server.app import create_app
from server.appkeys import API_SPEC, BLOBS, DB, SETTINGS
from server.booking import appointments as svc
from server.booking.validation import validate_applicant
from server.cases.models import Case, CaseParty
from server.cases.timeline import append_event
from server.db.base import Base
from server.settings import Settings
from server.supervision.rating_models import RatingTicket
from signaling.handlers import SIGNER
from signaling.tokens import JoinGrant
from tests.recordings.pattern import as_rtp_payloads, encode
from tests.support import applicant_headers, open_every_day, staff_headers

Client = TestClient[Any, Any]

VICTIM = {
    "name": "李四维",
    "mobile": "13912345678",
    "id_number": "11010519491231002X",
    "site": "沙河镇种子仓库三号库",
}
# Tables whose rows any caller may add without touching a case (logins, codes, limits).
UNFINGERPRINTED = {"auth_sessions", "otp_codes", "sms_messages", "idempotency_keys"}


@dataclass
class World:
    case_id: int
    number: str
    appointment_id: int
    matter_id: int
    window_id: int
    snapshot_id: int
    letter_id: int
    recording_id: int
    lead_id: int
    console_token: str
    ticket_id: int = 0
    rating_id: int = 0
    appeal_id: int = 0


@pytest.fixture
async def client(aiohttp_client: Any, sqlite_settings: Settings) -> AsyncIterator[Client]:
    app = create_app(sqlite_settings)
    yield await aiohttp_client(app, cookie_jar=DummyCookieJar())


async def _world(client: Client) -> tuple[World, dict[str, dict[str, str]]]:
    app = client.app
    zone = app[SETTINGS].zone
    heads = {
        "lead": await staff_headers(client, "wang", "inspector"),
        "outsider": await staff_headers(client, "zhao", "inspector"),
        "observer": await staff_headers(client, "guan", "inspector"),
        "other_applicant": await applicant_headers(client, "13700137000"),
    }
    async with app[DB].begin() as session:
        users = {
            u.username: u.id
            for u in await session.scalars(
                select(User).where(User.username.in_(["wang", "zhao", "guan"]))
            )
        }
        matter_id, window_id = await open_every_day(
            session,
            staff_ids=(users["wang"], users["zhao"]),
            code="seed-licence",
            name="种子生产经营许可",
            kind="inspection",
            allows_video_now=True,
        )
        day = dt.datetime.now(zone).date() + dt.timedelta(days=1)
        info, problems = validate_applicant(
            {
                "kind": "person",
                "name": VICTIM["name"],
                "mobile": VICTIM["mobile"],
                "id_number": VICTIM["id_number"],
            }
        )
        assert info is not None, problems
        appt = await svc.book(
            session,
            svc.BookingRequest(
                matter_id=matter_id,
                start=dt.datetime.combine(day, dt.time(10, 0), zone),
                applicant=info,
                actor=None,
                site_address=VICTIM["site"],
                staff_id=users["wang"],
            ),
            zone=zone,
        )
        assert appt.case_id is not None
        case = await session.get(Case, appt.case_id)
        assert case is not None
        case.status = "inspecting"
        session.add(
            CaseParty(
                case_id=case.id, principal_kind="staff", principal_id=users["guan"], role="observer"
            )
        )
        now = dt.datetime.now(dt.UTC)
        images = take_snapshot(
            as_rtp_payloads(encode(2)),
            WatermarkInfo(now, "Asia/Shanghai", case.number, "种子", "wang"),
        )
        shot = await store_snapshot(
            session,
            app[BLOBS],
            case=case,
            session_ref=f"appt-{appt.id}",
            participant="applicant-1",
            taken_by=Principal("staff", users["wang"], "inspector", "wang"),
            images=images,
            checklist_item=None,
            location=None,
            taken_at=now,
        )
        blob = await app[BLOBS].put(
            b"\x1aE\xdf\xa3 not really webm", suffix=".webm", kind="recording"
        )
        rec = Recording(
            case_id=case.id,
            session_ref=f"appt-{appt.id}",
            participant="applicant-1",
            participant_role="applicant",
            blob_key=blob.key,
            sha256=blob.sha256,
            size=10,
            duration_s=1.0,
        )
        session.add(rec)
        await session.flush()
        world = World(
            case_id=case.id,
            number=case.number,
            appointment_id=appt.id,
            matter_id=matter_id,
            window_id=window_id,
            snapshot_id=shot.id,
            letter_id=0,
            recording_id=rec.id,
            lead_id=users["wang"],
            console_token=app[SIGNER].issue(
                JoinGrant(f"appt-{appt.id}", f"staff-{users['wang']}", "inspector", "wang"), ttl=600
            ),
        )
    r = await client.post(
        f"/api/v1/cases/{world.case_id}/letters", json={"kind": "commitment"}, headers=heads["lead"]
    )
    assert r.status == 201, await r.text()
    world.letter_id = (await r.json())["id"]
    # A 差评 of the session (so a ticket exists), appealed by the lead.
    async with app[DB].begin() as session:
        await append_event(
            session,
            world.case_id,
            kind="live.admitted",
            data={"room": f"appt-{appt.id}", "participant": "applicant-1"},
        )
    applicant_token = app[SIGNER].issue(
        JoinGrant(f"appt-{appt.id}", "applicant-1", "applicant", VICTIM["name"]), ttl=600
    )
    r = await client.post(
        "/api/v1/live/rating", json={"token": applicant_token, "level": "very_dissatisfied"}
    )
    assert r.status == 201, await r.text()
    world.rating_id = (await r.json())["id"]
    async with app[DB]() as session:
        ticket_id = await session.scalar(
            select(RatingTicket.id).where(RatingTicket.rating_id == world.rating_id)
        )
    assert ticket_id is not None
    world.ticket_id = ticket_id
    r = await client.post(
        f"/api/v1/ratings/{world.rating_id}/appeal", json={"reason": "误评"}, headers=heads["lead"]
    )
    assert r.status == 201, await r.text()
    world.appeal_id = (await r.json())["id"]
    return world, heads


# -- the route table ---------------------------------------------------------------------

PUBLIC = "public"  # no case data at all
SELF = "self"  # about the caller only (their account, their own lists)
ADMIN = "admin"  # configuration: admins (and supervisors for some) only
CASE = "case"  # one case's data or procedure
TOKEN = "token"  # opened by a secret link; tried with a forged one

ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/otp"): PUBLIC,
    ("POST", "/api/v1/auth/otp/verify"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): SELF,
    ("GET", "/api/v1/auth/me"): SELF,
    ("GET", "/api/v1/outbox"): ADMIN,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login/staff"): PUBLIC,
    ("POST", "/login/otp"): PUBLIC,
    ("POST", "/login/otp/verify"): PUBLIC,
    ("POST", "/logout"): SELF,
    ("GET", "/"): PUBLIC,
    ("GET", "/staff"): SELF,
    ("GET", "/me"): SELF,
    ("GET", "/staff/outbox"): ADMIN,
    ("POST", "/api/v1/admin/unlock"): ADMIN,
    ("GET", "/staff/unlock"): ADMIN,
    ("POST", "/staff/unlock"): ADMIN,
    ("GET", "/lang/{code}"): PUBLIC,
    ("GET", "/api/v1/matters"): PUBLIC,
    ("GET", "/api/v1/matters/{id}"): PUBLIC,
    ("GET", "/api/v1/matters/{id}/slots"): PUBLIC,
    ("POST", "/api/v1/appointments"): SELF,
    ("GET", "/api/v1/appointments/{id}"): CASE,
    ("POST", "/api/v1/appointments/{id}/cancel"): CASE,
    ("POST", "/api/v1/appointments/{id}/reschedule"): CASE,
    ("GET", "/api/v1/appointments/{id}/calendar.ics"): CASE,
    ("GET", "/api/v1/appointments/{id}/qr.svg"): CASE,
    ("GET", "/api/v1/appointments"): SELF,
    ("POST", "/api/v1/appointments/{id}/check-in"): CASE,
    ("POST", "/api/v1/appointments/{id}/status"): CASE,
    ("POST", "/api/v1/appointments/{id}/assign"): CASE,
    ("POST", "/api/v1/appointments/{id}/join"): CASE,
    ("POST", "/api/v1/queue"): SELF,
    ("GET", "/api/v1/queue/{ticket}"): TOKEN,
    ("POST", "/api/v1/queue/{ticket}/leave"): TOKEN,
    ("POST", "/api/v1/queue/next"): SELF,
    ("GET", "/api/v1/queue/{ticket}/events"): TOKEN,
    ("POST", "/api/v1/admin/matters"): ADMIN,
    ("PATCH", "/api/v1/admin/matters/{id}"): ADMIN,
    ("GET", "/api/v1/admin/windows"): ADMIN,
    ("POST", "/api/v1/admin/windows"): ADMIN,
    ("PUT", "/api/v1/admin/windows/{id}/plans"): ADMIN,
    ("POST", "/api/v1/admin/exceptions"): ADMIN,
    ("DELETE", "/api/v1/admin/exceptions/{id}"): ADMIN,
    ("PUT", "/api/v1/admin/holidays/{day}"): ADMIN,
    ("DELETE", "/api/v1/admin/holidays/{day}"): ADMIN,
    ("PUT", "/api/v1/admin/staff/{id}/qualifications"): ADMIN,
    ("PATCH", "/api/v1/admin/staff/{id}"): ADMIN,
    ("GET", "/staff/day/events"): SELF,
    ("GET", "/book/{zone}"): PUBLIC,
    ("GET", "/book/matter/{id}"): PUBLIC,
    ("GET", "/book/matter/{id}/details"): PUBLIC,
    ("POST", "/book/matter/{id}/details"): SELF,
    ("GET", "/book/done/{id}"): CASE,
    ("GET", "/booking/manage/{id}"): CASE,
    ("POST", "/booking/manage/{id}"): CASE,
    ("GET", "/book/mine"): SELF,
    ("GET", "/staff/day"): SELF,
    ("POST", "/staff/appointments/{id}/check-in"): CASE,
    ("POST", "/staff/appointments/{id}/start"): CASE,
    ("POST", "/staff/appointments/{id}/no-show"): CASE,
    ("POST", "/staff/appointments/{id}/assign"): CASE,
    ("POST", "/staff/day/next"): SELF,
    ("GET", "/book/now/{id}"): PUBLIC,
    ("POST", "/book/now/{id}"): SELF,
    ("GET", "/book/queue/{token}"): TOKEN,
    ("POST", "/book/queue/{token}/leave"): TOKEN,
    ("GET", "/hall"): PUBLIC,
    ("GET", "/admin/matters"): ADMIN,
    ("POST", "/admin/matters"): ADMIN,
    ("POST", "/admin/matters/{id}"): ADMIN,
    ("POST", "/admin/windows"): ADMIN,
    ("POST", "/admin/windows/{id}/plans"): ADMIN,
    ("POST", "/admin/exceptions"): ADMIN,
    ("POST", "/admin/staff/{id}"): ADMIN,
    ("POST", "/admin/exceptions/{id}/delete"): ADMIN,
    ("POST", "/admin/holidays"): ADMIN,
    ("POST", "/admin/holidays/import"): ADMIN,
    ("POST", "/api/v1/cases/{id}/accept"): CASE,
    ("POST", "/api/v1/cases/{id}/reject"): CASE,
    ("POST", "/api/v1/cases/{id}/review"): CASE,
    ("POST", "/api/v1/cases/{id}/close"): CASE,
    ("POST", "/api/v1/cases/{id}/withdraw"): CASE,
    ("POST", "/api/v1/cases/{id}/cancel"): CASE,
    ("POST", "/api/v1/cases/{id}/document-review"): CASE,
    ("GET", "/api/v1/cases/{id}/procedure"): CASE,
    ("GET", "/api/v1/cases/{id}/parties"): CASE,
    ("POST", "/api/v1/cases/{id}/parties"): CASE,
    ("GET", "/staff/cases"): SELF,
    ("POST", "/api/v1/sessions/{id}/snapshots"): CASE,
    ("POST", "/api/v1/snapshots/{id}/annotations"): CASE,
    ("GET", "/api/v1/snapshots/{id}/{variant}"): CASE,
    ("POST", "/api/v1/cases/{id}/location"): CASE,
    ("PUT", "/api/v1/cases/{id}/site"): CASE,
    ("POST", "/api/v1/cases/{id}/checklist"): CASE,
    ("POST", "/api/v1/cases/{id}/decision"): CASE,
    ("PUT", "/api/v1/cases/{id}/legal-hold"): CASE,
    ("GET", "/api/v1/cases/{id}"): CASE,
    ("GET", "/api/v1/cases/{id}/timeline"): CASE,
    ("GET", "/api/v1/cases/{id}/verify"): CASE,
    ("GET", "/api/v1/cases/{id}/export"): CASE,
    ("GET", "/api/v1/cases/{id}/export/redacted"): CASE,
    ("GET", "/api/v1/recordings/{id}/media"): CASE,
    ("GET", "/staff/cases/{id}"): CASE,
    ("GET", "/api/v1/cases/{id}/deadlines"): CASE,
    ("POST", "/api/v1/cases/{id}/suspension"): CASE,
    ("POST", "/api/v1/cases/{id}/suspension/resume"): CASE,
    ("POST", "/staff/cases/{id}/suspension"): CASE,
    ("GET", "/staff/notices"): SELF,
    ("POST", "/staff/notices/read"): SELF,
    ("GET", "/me/cases/{id}"): CASE,
    ("POST", "/cases/{id}/step/{step}"): CASE,
    ("POST", "/cases/{id}/live"): CASE,
    ("GET", "/staff/cases/{id}/review"): CASE,
    ("POST", "/cases/{id}/rectification"): CASE,
    ("GET", "/cases/{id}/uploads/{seq}"): CASE,
    ("POST", "/api/v1/cases/{case_id}/letters"): CASE,
    ("GET", "/api/v1/cases/{case_id}/letters"): CASE,
    ("GET", "/api/v1/letters/{letter_id}"): CASE,
    ("POST", "/api/v1/letters/{letter_id}/sign"): CASE,
    ("GET", "/api/v1/letters/{letter_id}/pdf"): CASE,
    ("POST", "/api/v1/verify"): PUBLIC,
    ("GET", "/api/v1/letter-templates"): ADMIN,
    ("PUT", "/api/v1/letter-templates/{matter_id}"): ADMIN,
    ("POST", "/api/v1/letter-templates/preview"): ADMIN,
    ("GET", "/letters/{letter_id}"): CASE,
    ("GET", "/verify"): PUBLIC,
    ("GET", "/staff/letter-templates"): ADMIN,
    ("GET", "/live/ws"): TOKEN,  # the WebSocket: its join is tested in tests/signaling
    ("GET", "/live/j/{token}"): CASE,
    ("GET", "/join/{id}"): TOKEN,
    ("POST", "/api/v1/cases/{id}/live/join"): CASE,
    ("POST", "/api/v1/live/rooms/{room}/invite"): CASE,
    # the pre-call media test: the join token (here a console link without its login)
    ("POST", "/api/v1/live/echo/{token}"): TOKEN,
    ("POST", "/api/v1/live/echo/{token}/{echo}/offer"): TOKEN,
    ("POST", "/api/v1/live/echo/{token}/{echo}/answer"): TOKEN,
    ("DELETE", "/api/v1/live/echo/{token}/{echo}"): TOKEN,
    ("POST", "/api/v1/live/rating"): TOKEN,
    ("POST", "/api/v1/ratings/link"): TOKEN,
    ("GET", "/rate/{token}"): TOKEN,
    ("GET", "/api/v1/rating-tickets/{id}"): CASE,
    ("POST", "/api/v1/rating-tickets/{id}/follow-up"): CASE,
    ("POST", "/api/v1/rating-tickets/{id}/fix"): CASE,
    ("POST", "/api/v1/ratings/{id}/appeal"): CASE,
    ("POST", "/api/v1/rating-appeals/{id}/decision"): CASE,
    ("GET", "/staff/rating-tickets"): SELF,
    ("GET", "/staff/rating-tickets/{id}"): CASE,
    ("GET", "/staff/rating-appeals"): ADMIN,
    ("GET", "/staff/supervision"): ADMIN,
    ("GET", "/staff/supervision/exports/{kind}"): ADMIN,
    ("GET", "/staff/supervision/live"): ADMIN,
    ("POST", "/staff/supervision/live/{room}/watch"): ADMIN,
}

STREAMS = {"/staff/day/events", "/api/v1/queue/{ticket}/events", "/live/ws"}
"""Server-sent events and the WebSocket never end: not requested here."""

SIGNATURE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _fill(path: str, w: World) -> str:
    appt_paths = (
        "/api/v1/appointments/",
        "/book/done/",
        "/booking/manage/",
        "/join/",
        "/staff/appointments/",
    )
    case_id = str(w.appointment_id if path.startswith(appt_paths) else w.case_id)
    values = {
        "{id}": case_id,
        "{case_id}": str(w.case_id),
        "{letter_id}": str(w.letter_id),
        "{step}": "close",
        "{variant}": "watermarked",
        "{room}": f"appt-{w.appointment_id}",
        "{token}": w.console_token,
        "{ticket}": "forged-ticket",
        "{seq}": "1",
        "{echo}": "forged-echo",
        "{kind}": "appointments",
    }
    if path.startswith("/api/v1/snapshots/"):
        values["{id}"] = str(w.snapshot_id)
    if path.startswith("/api/v1/recordings/"):
        values["{id}"] = str(w.recording_id)
    if path.startswith(("/api/v1/rating-tickets/", "/staff/rating-tickets/")):
        values["{id}"] = str(w.ticket_id)
    if path.startswith("/api/v1/ratings/"):
        values["{id}"] = str(w.rating_id)
    if path.startswith("/api/v1/rating-appeals/"):
        values["{id}"] = str(w.appeal_id)
    if path.startswith("/api/v1/sessions/"):
        values["{id}"] = f"appt-{w.appointment_id}"
    for key, value in values.items():
        path = path.replace(key, value)
    return path


def _body(method: str, path: str, w: World) -> dict[str, Any] | None:
    """A body the route's schema accepts, so that only the access rule can refuse it."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    bodies: dict[str, dict[str, Any]] = {
        "/api/v1/appointments/{id}/cancel": {},
        "/api/v1/appointments/{id}/reschedule": {"start": start},
        "/api/v1/appointments/{id}/check-in": {},
        "/api/v1/appointments/{id}/status": {"status": "no_show"},
        "/api/v1/appointments/{id}/assign": {"staff_id": w.lead_id},
        "/api/v1/cases/{id}/accept": {},
        "/api/v1/cases/{id}/reject": {"reason": "x"},
        "/api/v1/cases/{id}/review": {"approve": True},
        "/api/v1/cases/{id}/close": {"licence_number": "X-1"},
        "/api/v1/cases/{id}/withdraw": {"reason": "x"},
        "/api/v1/cases/{id}/cancel": {"reason": "x"},
        "/api/v1/cases/{id}/document-review": {"note": "x"},
        "/api/v1/cases/{id}/parties": {"user_id": w.lead_id, "role": "inspector"},
        "/api/v1/sessions/{id}/snapshots": {},
        "/api/v1/snapshots/{id}/annotations": {
            "shapes": [{"type": "arrow", "from": [1, 1], "to": [20, 20]}]
        },
        "/api/v1/cases/{id}/location": {"lat": 40.0, "lon": 116.3},
        "/api/v1/cases/{id}/site": {"address": "别处", "lat": 40.0, "lon": 116.3},
        "/api/v1/cases/{id}/checklist": {"item": "仓储", "result": "ok"},
        "/api/v1/cases/{id}/decision": {"outcome": "pass"},
        "/api/v1/cases/{id}/legal-hold": {"hold": True},
        "/api/v1/cases/{id}/suspension": {"reason": "等待补正材料"},
        "/api/v1/cases/{case_id}/letters": {"kind": "commitment"},
        "/api/v1/letters/{letter_id}/sign": {"signature": SIGNATURE, "consent": True},
        "/api/v1/live/rooms/{room}/invite": {"role": "observer", "name": "偷看的人"},
        "/api/v1/live/echo/{token}/{echo}/offer": {"sdp": "v=0"},
        "/api/v1/live/echo/{token}/{echo}/answer": {"sdp": "v=0"},
        "/api/v1/rating-tickets/{id}/follow-up": {"reached": True, "note": "x"},
        "/api/v1/rating-tickets/{id}/fix": {"note": "x"},
        "/api/v1/ratings/{id}/appeal": {"reason": "x"},
        "/api/v1/rating-appeals/{id}/decision": {"uphold": True},
    }
    return bodies.get(path, {})


def _form(path: str) -> dict[str, str] | None:
    forms = {
        "/booking/manage/{id}": {"action": "cancel"},
        "/staff/appointments/{id}/assign": {"staff_id": "me"},
        "/cases/{id}/step/{step}": {"licence_number": "X-1"},
    }
    return forms.get(path)


async def _fingerprint(client: Client) -> str:
    digest = hashlib.sha256()
    async with client.app[DB]() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in UNFINGERPRINTED:
                continue
            rows = (await session.execute(select(table).order_by(*table.primary_key.columns))).all()
            digest.update(table.name.encode())
            digest.update(repr([tuple(r) for r in rows]).encode())
    return digest.hexdigest()


def _leaks(body: str, w: World) -> list[str]:
    return [v for v in (w.number, *VICTIM.values()) if v in body]


def _refused(status: int, location: str) -> bool:
    if status in (401, 403, 404):
        return True
    # To the login page, or from one case page to its twin for the other kind of user
    # (which then answers 404 like any other page of a case one may not read).
    return status in (302, 303) and location.startswith(("/login", "/staff/cases/", "/me/cases/"))


ANON = {"Cookie": "yk_csrf=matrix-token", "X-CSRF-Token": "matrix-token"}


async def _request(
    client: Client, method: str, path: str, w: World, headers: dict[str, str]
) -> tuple[int, str, str]:
    url = _fill(path, w)
    form = _form(path)
    kwargs: dict[str, Any] = {"headers": headers, "allow_redirects": False}
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        if form is not None or not url.startswith("/api/"):
            kwargs["data"] = form or {}
        else:
            kwargs["json"] = _body(method, path, w)
    response = await client.request(method, url, **kwargs)
    body = await response.read()
    return response.status, response.headers.get("Location", ""), body.decode("utf-8", "replace")


def _app_routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        if path.startswith("/static"):
            continue
        found.add((route.method, re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)))
    return found


async def test_every_route_has_a_rule(client: Client) -> None:
    missing = _app_routes(client.app) - set(ROUTES)
    assert not missing, f"routes without an access rule in this table: {sorted(missing)}"
    gone = set(ROUTES) - _app_routes(client.app)
    assert not gone, f"routes in the table that no longer exist: {sorted(gone)}"


async def test_write_bodies_pass_their_schemas(client: Client) -> None:
    w = World(1, "YK", 1, 1, 1, 1, 1, 1, 1, "t")
    for op in client.app[API_SPEC].operations:
        if op.request is None or (op.method, op.path) not in ROUTES:
            continue
        if ROUTES[(op.method, op.path)] != CASE:
            continue
        jsonschema.validate(_body(op.method, op.path, w), op.request)


async def test_no_one_without_a_part_reads_or_changes_a_case(client: Client) -> None:
    w, heads = await _world(client)
    attackers = {
        "outsider inspector": heads["outsider"],
        "another applicant": heads["other_applicant"],
        "anonymous": ANON,
    }
    before = await _fingerprint(client)
    problems: list[str] = []
    for (method, path), kind in sorted(ROUTES.items()):
        if path in STREAMS:
            continue
        if kind == SELF and method == "GET":
            # Lists of "my" things must not hold someone else's case.
            for who, headers in attackers.items():
                status, location, body = await _request(client, method, path, w, headers)
                if leaks := _leaks(body, w):
                    problems.append(f"{who}: {method} {path} leaked {leaks}")
            continue
        if kind not in (CASE, ADMIN):
            continue
        for who, headers in attackers.items():
            status, location, body = await _request(client, method, path, w, headers)
            if not _refused(status, location):
                problems.append(f"{who}: {method} {path} -> {status} {body[:120]}")
            if leaks := _leaks(body, w):
                problems.append(f"{who}: {method} {path} leaked {leaks}")
            if method != "GET" and (now := await _fingerprint(client)) != before:
                problems.append(f"{who}: {method} {path} changed the database")
                before = now
        if method != "GET" and kind == CASE:
            # An observer is a party: they may watch and read (join links are theirs too),
            # never change anything.
            await _request(client, method, path, w, heads["observer"])
            if (now := await _fingerprint(client)) != before:
                problems.append(f"observer: {method} {path} changed the database")
                before = now
    assert not problems, "\n".join(problems)

    # The data was there to leak: the lead reads it.
    for path in ("/api/v1/cases/{id}", "/api/v1/appointments/{id}", "/staff/cases/{id}"):
        status, _, body = await _request(client, "GET", path, w, heads["lead"])
        assert status == 200 and _leaks(body, w), path
    async with client.app[DB]() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM case_events WHERE case_id = :c"), {"c": w.case_id}
        )
    assert count and count >= 4  # opened, booked, snapshot, letter
