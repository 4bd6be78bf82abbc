"""HTTP side of the live video window: the WebSocket endpoint, join pages and join API.

``setup(app)`` (called by ``server.app.create_app``) adds the routes and one
``cleanup_ctx`` that owns the relay, the room directory and the ``Hub``; on shutdown every
room is ended and every peer connection closed. Handlers stay thin: the hub applies the
protocol, the rooms module the rules.

Routes:

* ``GET /live/ws`` — the signaling WebSocket (``docs/signaling.md``);
* ``GET /live/j/{token}`` — the page for a join link: applicant page or inspector console
  by the token's role; a console link needs the staff login it was issued to;
* ``POST /api/v1/appointments/{id}/join`` and ``POST /api/v1/cases/{id}/live/join`` — the
  caller's own join URL for that appointment / case, for the caller's role on the case
  (``server.cases.access``: ``join_live``, role by ``live_role``);
* ``POST /api/v1/live/rooms/{room}/invite`` — a guest link for an expert or observer.

The hub's hooks tie the session to the procedure (``server.cases.rooms``): the gate
refuses links of closed appointments, closed cases and ended rooms (from the database, so
also after a restart) and console links without their login; the recorder writes each
event and moves the appointment and the case (waiting → ``checked_in``, admitted →
``in_session`` and ``inspecting``, ended → ``completed``) in the same transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import aiohttp_jinja2
from aiohttp import WSMsgType, web
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.recorder import RecordingGap
from recordings.recovery import RECORDINGS, STAMP, recover_recordings
from recordings.segments import SegmentLog, append_segment
from server.accounts.principal import Principal
from server.appkeys import API_SPEC, BLOBS, BUS, DB, METRICS, REDIS, SETTINGS, SMS
from server.appkeys import RELAY as RELAY  # evidence reads it too (snapshots)
from server.booking.invites import qr_svg
from server.booking.links import BadManageToken, read_token
from server.booking.models import Appointment
from server.booking.validation import FieldInvalid, validate_mobile
from server.cases import rooms as case_rooms
from server.cases.access import authorize, live_role, party_roles
from server.cases.timeline import append_event
from server.errors import NotFoundError, ValidationError
from server.evidence.console import console_view
from server.evidence.recording import file_live_location, file_room_recordings
from server.http.requests import int_param, optional_principal, require_principal, translate
from server.masking import mask_mobile
from server.metrics import RelayMetrics
from server.openapi import ApiRoutes, read_json
from server.parsing import parse_id
from server.settings import Settings
from signaling.admission import Admission, AdmissionLimits, AdmittingDirectory, RedisLoads
from signaling.archive import RoomRecording
from signaling.directory import Directory, MemoryDirectory, Node, RedisDirectory
from signaling.errors import RoomClosedError, TokenError, user_message
from signaling.hub import Entry, Hub, Link, MediaRoom
from signaling.ice import IceConfig
from signaling.links import appointment_room, case_room, participant_id, signer_for
from signaling.protocol import (
    HEARTBEAT_S,
    HEARTBEAT_TIMEOUT_S,
    MAX_MESSAGE_BYTES,
    dumps,
    is_ping,
)
from signaling.relay import Relay, RelayConfig
from signaling.rooms import Room
from signaling.tokens import HIDDEN_ROLES, JoinGrant, Role, TokenSigner

log = logging.getLogger(__name__)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """Knobs tests and deployments may set on the app before it starts."""

    grace: float = 60.0
    """Seconds a dropped participant keeps their place."""
    host_addresses: tuple[str, ...] | None = None
    """Gather the relay's host candidates only on these addresses (tests: 127.0.0.1)."""
    recording: bool = True
    directory_ttl: float = 30.0
    token_ttl: int = 4 * 3600


HUB = web.AppKey[Hub]("live_hub")
SIGNER = web.AppKey[TokenSigner]("live_signer")
LIVE_OPTIONS = web.AppKey[LiveOptions]("live_options")

routes = ApiRoutes(tag="live")


def ice_config(settings: Settings) -> IceConfig:
    """The ICE servers and TURN credentials of ``settings`` (validated at load)."""
    urls = settings.ice_server_list
    return IceConfig(
        stun_urls=tuple(u for u in urls if u.startswith(("stun:", "stuns:"))),
        turn_urls=tuple(u for u in urls if u.startswith(("turn:", "turns:"))),
        turn_secret=settings.turn_secret or None,
        turn_ttl=settings.turn_ttl,
        public_ip=settings.ice_public_ip or None,
        relay_turn=settings.relay_turn,
    )


def this_node(settings: Settings) -> Node:
    return Node(settings.effective_node_id, settings.advertise_url or settings.effective_public_url)


def principal_of(participant: str, role: str, name: str) -> Principal | None:
    """The case-event actor for a participant id made by ``participant_id``."""
    kind, _, number = participant.partition("-")
    user_id = parse_id(number)
    if kind not in ("staff", "applicant") or user_id is None:
        return None
    return Principal(kind=kind, id=user_id, role=role, name=name)  # type: ignore[arg-type]


async def _live(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    options = app.get(LIVE_OPTIONS) or LiveOptions()
    ice = ice_config(settings)
    relay = Relay(
        RelayConfig(
            ice_servers_factory=ice.rtc_servers,  # fresh TURN credentials per connection
            host_addresses=options.host_addresses or settings.ice_host_address_list or None,
            public_address=ice.public_ip,
        )
    )
    redis = app[REDIS]
    directory: Directory
    if redis is not None:
        directory = RedisDirectory(
            redis, ttl=options.directory_ttl, prefix=settings.redis_prefix, owns=False
        )
    else:
        directory = MemoryDirectory(ttl=options.directory_ttl)
    admission = _admission(app, lambda: hub)
    directory = AdmittingDirectory(
        directory,
        admission,
        hosted=lambda room: room in hub.rooms,
        on_refused=app[METRICS].rooms_refused.inc,
        on_placed=app[METRICS].rooms_placed.inc,
    )
    signer = signer_for(settings)
    sessions = app[DB]
    bus = app[BUS]
    # Keyed by room id: a room id always belongs to the same case (a few ints per room).
    case_ids: dict[str, int | None] = {}
    # Keyed by the relay room itself: a room may reopen under the same id while the old
    # one is still closing, and each must close its own media and recording.
    tapes: dict[MediaRoom, RoomRecording] = {}
    segment_logs: dict[MediaRoom, SegmentLog] = {}
    # Rooms whose applicant has been admitted since they opened: when such a room closes
    # because everyone left, the session is over (as if ended); otherwise it just idles.
    held: set[str] = set()

    async def media(room_id: str) -> MediaRoom:
        case_ids[room_id] = await _resolve_case(app, room_id)
        held.discard(room_id)
        if not options.recording:
            return relay.room(room_id)
        stamp = dt.datetime.now(dt.UTC).strftime(STAMP)

        def keyframe(participant: str) -> None:
            if participant in opened.publishers:
                opened.publication(participant).request_keyframe()

        def gap(participant: str, hole: RecordingGap) -> None:
            # On the chain as it happens (the recording itself is filed when the room
            # closes); written in the background: the recorder runs inside the relay's
            # packet path and must not wait.
            case_id = case_ids.get(room_id)
            if case_id is not None:
                keep(_gap_event(case_id, room_id, participant, hole))

        async def segment(participant: str, data: dict[str, Any]) -> None:
            case_id = case_ids.get(room_id)
            if case_id is not None:
                await append_segment(sessions, case_id, room_id, participant, data)

        # The continuous-take proof: the recorders mark, the log hashes and appends
        # off the packet path, in order (recordings/segments.py).
        segment_log = SegmentLog(segment)
        tape = RoomRecording(
            settings.data_dir / RECORDINGS / _SAFE_NAME.sub("_", room_id) / stamp,
            request_keyframe=keyframe,
            on_gap=gap,
            on_segment=segment_log.mark,
        )
        opened = relay.room(room_id, on_packet=tape.feed)
        tapes[opened] = tape
        segment_logs[opened] = segment_log
        return opened

    async def _gap_event(case_id: int, room_id: str, participant: str, hole: RecordingGap) -> None:
        async with sessions() as session, session.begin():
            await append_event(
                session,
                case_id,
                kind="recording.gap",
                actor=None,
                data={"room": room_id, "participant": participant, **hole.as_dict()},
            )

    # What writes the record runs to its end even when the connection that caused it goes
    # away: aiohttp cancels the handler of a client that disconnects (the inspector leaving
    # the console right after "end"), and a cancelled filing left a finished recording
    # unfiled on disk, a cancelled transaction lost its event. Shutdown waits for them.
    pending: set[asyncio.Future[Any]] = set()

    def keep(coro: Coroutine[Any, Any, None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(coro)
        pending.add(task)
        task.add_done_callback(pending.discard)
        return task

    async def durable(coro: Coroutine[Any, Any, None]) -> None:
        await asyncio.shield(keep(coro))

    async def close_media(room_id: str, opened: MediaRoom) -> None:
        await durable(_close_media(room_id, opened))

    async def _close_media(room_id: str, opened: MediaRoom) -> None:
        if relay.get(room_id) is opened:
            await relay.close_room(room_id)
        else:
            await opened.close()
        tape = tapes.pop(opened, None)
        segments = segment_logs.pop(opened, None)
        case_id = case_ids.get(room_id)
        if tape is None:
            return
        results = tape.close()
        if segments is not None:  # every segment on the chain before the files move
            await segments.drain()
        if case_id is None or not results:
            return
        # Filed as evidence: moved into the blob store, a recording row and a
        # ``recording.finished`` event carrying the file's hash (verify and export see it).
        await file_room_recordings(app, room_id, case_id, results)

    async def record(room: Room, kind: str, actor: str | None, data: dict[str, Any]) -> None:
        await durable(_record(room, kind, actor, data))

    async def _record(room: Room, kind: str, actor: str | None, data: dict[str, Any]) -> None:
        case_id = case_ids.get(room.id)
        if case_id is None:
            return
        who = room.participants.get(actor or "")
        principal = principal_of(who.id, who.role, who.name) if who else None
        subject = room.participants.get(str(data.get("participant", "")))
        async with sessions() as session, session.begin():
            await append_event(
                session,
                case_id,
                kind=kind,
                actor=principal,
                data={"room": room.id, "participant": actor, **data},
            )
            # The procedure moves in the same transaction as the event that moved it.
            if kind == "live.joined" and data.get("role") == "applicant":
                if data.get("state") == "waiting":
                    await case_rooms.applicant_waiting(session, room.id, principal)
            elif (
                kind in ("live.admitted", "live.readmitted")
                and subject is not None
                and subject.role == "applicant"
            ):
                held.add(room.id)
                await case_rooms.applicant_admitted(session, room.id, principal)
            elif kind == "live.ended":
                held.discard(room.id)
                await case_rooms.session_over(session, room.id, principal, by="end", record=False)
        if kind == "live.response" and data.get("kind") == "location" and principal is not None:
            # The applicant's answer to "share location" goes on the case's location record
            # too, where the distance from the site is computed and flagged.
            await file_live_location(app, case_id, principal, actor or "", data)

    async def notify(message: dict[str, Any]) -> None:
        await bus.publish("live:arrivals", message)

    async def idle(room: Room) -> None:
        if room.id not in held:
            return  # nobody was served: the appointment stays as it is
        held.discard(room.id)
        await durable(_idle(room))

    async def _idle(room: Room) -> None:
        async with sessions() as session, session.begin():
            await case_rooms.session_over(session, room.id, None, by="idle", record=True)

    async def gate(grant: JoinGrant, link: Link) -> Entry:
        if grant.needs_login and link.identity != grant.participant:
            if link.identity is None:
                raise TokenError(
                    f"the link of {grant.participant} needs their staff login",
                    code="login_required",
                )
            raise TokenError(
                f"the link of {grant.participant} is not {link.identity}'s", code="wrong_person"
            )
        async with sessions() as session:
            reason = await case_rooms.closed_reason(session, grant.room)
            if reason is not None:
                raise RoomClosedError(reason)
            observed = grant.role == "applicant" and await case_rooms.observed_notice(
                session, grant.room
            )
        return Entry(observed=observed)

    hub = Hub(
        signer=signer,
        media=media,
        node=this_node(settings),
        directory=directory,
        ice=ice,
        record=record,
        notify=notify,
        grace=options.grace,
        recording=options.recording,
        close_media=close_media,
        gate=gate,
        idle=idle,
    )
    app[HUB], app[RELAY], app[SIGNER] = hub, relay, signer
    # Before any room opens: what a killed process left is filed on its case (as
    # incomplete), so nothing recorded stays off the record. Files another worker is
    # still writing are locked and left alone.
    await recover_recordings(sessions, app[BLOBS], settings.data_dir / RECORDINGS)
    watch = RelayMetrics(app[METRICS].registry, relay)
    watch.start()
    await hub.start()
    await admission.start()
    try:
        yield
    finally:
        await admission.close()
        await watch.close()
        await hub.close()
        await asyncio.gather(*pending, return_exceptions=True)
        await relay.close()
        await directory.close()


def _admission(app: web.Application, hub: Callable[[], Hub]) -> Admission:
    """This node's headroom (``YUNKAN_ADMIT_*``), published in Redis when there is one."""
    settings = app[SETTINGS]
    redis = app[REDIS]

    def usage() -> tuple[int, int]:
        rooms = hub().rooms
        return len(rooms), sum(len(live.subscribed) for live in rooms.values())

    admission = Admission(
        AdmissionLimits(
            max_lag_ms=settings.admit_max_lag_ms,
            max_cpu=settings.admit_max_cpu,
            max_streams=settings.admit_max_streams,
        ),
        this_node(settings),
        usage,
        loads=RedisLoads(redis, settings.redis_prefix) if redis is not None else None,
    )
    app[METRICS].admission_busy.set_function(lambda: 1.0 if admission.busy() else 0.0)
    return admission


async def _resolve_case(app: web.Application, room_id: str) -> int | None:
    """The case whose timeline gets this room's events (None: the call is not filed)."""
    async with app[DB]() as session:
        case_id = await case_rooms.case_of_room(session, room_id)
    if case_id is None:
        log.warning("room %s belongs to no case; its events and recordings are not filed", room_id)
    return case_id


async def _appointment(app: web.Application, appointment_id: int) -> Appointment | None:
    """The one place that reads an appointment (booking's table) for live rooms."""
    async with app[DB]() as session:
        return await session.get(Appointment, appointment_id)


class _WsConnection:
    """The edge of the hub: JSON over aiohttp, ``error`` messages in the reader's language."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request

    async def send(self, message: dict[str, Any]) -> None:
        if message.get("type") == "error":
            message = {
                **message,
                "message": translate(self.request, user_message(message["code"])),
                "detail": message["message"],
            }
        await self.ws.send_str(dumps(message))

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:120])


@routes.get("/live/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    # Larger than the protocol's cap so an oversized message still gets a readable
    # "too_large" error; beyond this aiohttp closes with 1009. aiohttp's heartbeat is reset
    # by every byte received, so it pings only a silent client (protocol.HEARTBEAT_S) and
    # closes it when the pong does not come: the loop below ends and the hub marks it
    # disconnected, as for any other drop. (An aiohttp client answers ping frames only
    # while it reads, so this is kept loose; pages are held to HEARTBEAT_TIMEOUT_S.)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4 * MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    hub = request.app[HUB]
    # The handshake carries the session cookie (browsers) or a bearer token (the Python
    # client, ``yunkan join --login-token``): console links are checked against it.
    principal = optional_principal(request)
    link = Link(
        _WsConnection(ws, request),
        identity=participant_id(principal) if principal is not None else None,
    )
    # A client that sends ``ping`` (the pages, every second) has its heartbeat watched:
    # silence for HEARTBEAT_TIMEOUT_S drops it like a closed socket.
    beating = False
    try:
        while not ws.closed:
            try:
                msg = await ws.receive(timeout=HEARTBEAT_TIMEOUT_S if beating else None)
            except TimeoutError:
                log.info("live: no heartbeat for %.0f s, dropping the socket", HEARTBEAT_TIMEOUT_S)
                break
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                beating = beating or is_ping(msg.data)
                await hub.receive(link, msg.data)
            if link.closed:
                break
    finally:
        await hub.disconnected(link)
        if not ws.closed:
            await ws.close()
    return ws


def _refused(request: web.Request, code: str, status: int) -> web.StreamResponse:
    return aiohttp_jinja2.render_template(
        "live/refused.html", request, {"code": code}, status=status
    )


@routes.get("/live/j/{token}")
async def join_page(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    try:
        grant = request.app[SIGNER].verify(token)
    except TokenError as err:
        return _refused(request, err.error_code, 403)
    if grant.needs_login:
        # A console link alone gives nothing: it is for the member of staff it names.
        principal = optional_principal(request)
        if principal is None:
            raise web.HTTPSeeOther(f"/login?tab=staff&next=/live/j/{token}")
        if participant_id(principal) != grant.participant:
            return _refused(request, "wrong_person", 403)
    principal = optional_principal(request)
    async with request.app[DB]() as session:
        if await case_rooms.closed_reason(session, grant.room) is not None:
            return _refused(request, "room_closed", 410)
        observed = grant.role == "applicant" and await case_rooms.observed_notice(
            session, grant.room
        )
        # The applicant's page watches the case's letters to open the signing panel in
        # the call; the inspector's console gets the case's working state.
        case_id = await case_rooms.case_of_room(session, grant.room)
        workbench = (
            await console_view(session, grant.room, principal, request.app[SETTINGS].zone)
            if grant.role == "inspector" and principal is not None and principal.is_staff
            else None
        )
    template = "live/applicant.html" if grant.role == "applicant" else "live/console.html"
    receive_only = grant.role in HIDDEN_ROLES
    context = {
        "grant": grant,
        "observed": observed,
        "receive_only": receive_only,
        "workbench": workbench,
        "workbench_json": json.dumps(workbench, ensure_ascii=False) if workbench else "",
        "config": json.dumps(
            {
                "token": token,
                "ws": "/live/ws",
                "role": grant.role,
                "participant": grant.participant,
                "name": grant.name,
                "receive_only": receive_only,
                "case_id": case_id,
                "signed_in": principal is not None,
            },
            ensure_ascii=False,
        ),
    }
    response = aiohttp_jinja2.render_template(template, request, context)
    # Camera and microphone for this page only; nothing else may be embedded.
    response.headers["Permissions-Policy"] = "camera=(self), microphone=(self), geolocation=(self)"
    return response


@routes.get("/join/{id}")
async def booking_join_link(request: web.Request) -> web.StreamResponse:
    """The applicant's link from the booking confirmation: ``/join/<id>?token=…``.

    Booking signs its own join token (appointment id + expiry); here it becomes a live
    join token for the appointment's room, valid as long as booking's, and the browser
    goes on to the applicant page.
    """
    settings = request.app[SETTINGS]
    appointment_id = int_param(request, "id")
    try:
        claim = read_token(
            settings.secret_key,
            request.query.get("token", ""),
            dt.datetime.now(dt.UTC),
            purpose="join",
        )
    except BadManageToken:
        claim = None
    appt = await _appointment(request.app, appointment_id)
    if claim is None or claim.appointment_id != appointment_id or appt is None:
        return aiohttp_jinja2.render_template(
            "live/refused.html", request, {"code": "bad_token"}, status=403
        )
    if appt.status in ("cancelled", "completed", "no_show"):
        return aiohttp_jinja2.render_template(
            "live/refused.html", request, {"code": "room_closed"}, status=410
        )
    who = f"applicant-{appt.applicant_id}" if appt.applicant_id else f"appt-{appt.id}-applicant"
    grant = JoinGrant(appointment_room(appt.id), who, "applicant", appt.applicant_name)
    ttl = max(60, claim.expires - int(time.time()))
    token = request.app[SIGNER].issue(grant, ttl=ttl)
    raise web.HTTPFound(f"/live/j/{token}")


JOIN_RESPONSE = {
    "type": "object",
    "required": ["url", "token", "ws", "role", "room"],
    "properties": {
        "url": {"type": "string"},
        "token": {"type": "string"},
        "ws": {"type": "string"},
        "role": {"type": "string"},
        "room": {"type": "string"},
        "expires": {"type": "integer"},
    },
}


def _grant_response(request: web.Request, grant: JoinGrant) -> web.Response:
    settings = request.app[SETTINGS]
    signer = request.app[SIGNER]
    ttl = (request.app.get(LIVE_OPTIONS) or LiveOptions()).token_ttl
    token = signer.issue(grant, ttl=ttl)
    base = settings.effective_public_url.rstrip("/")
    ws_base = "wss" + base[5:] if base.startswith("https") else "ws" + base[4:]
    return web.json_response(
        {
            "url": f"{base}/live/j/{token}",
            "token": token,
            "ws": f"{ws_base}/live/ws",
            "role": grant.role,
            "room": grant.room,
            "expires": signer.verify(token).expires,
        }
    )


async def _live_grant(
    session: AsyncSession, principal: Principal, case_id: int | None, room: str
) -> JoinGrant:
    """The caller's grant for ``room`` of case ``case_id``, by their role on the case.

    ``authorize`` gives 404 to staff who are not parties (supervisors and admins pass for
    oversight and join hidden, as ``supervisor``).
    """
    case = await authorize(session, principal, case_id, "join_live")
    role = live_role(principal, await party_roles(session, principal, case))
    if role is None:
        raise NotFoundError("Case not found")
    return JoinGrant(
        room=room,
        participant=participant_id(principal),
        role=cast(Role, role),
        name=principal.name,
    )


@routes.post(
    "/api/v1/appointments/{id}/join",
    summary="The caller's join URL for an appointment's video room, for the caller's role",
    responses={200: JOIN_RESPONSE, 403: "error", 404: "error"},
)
async def appointment_join(request: web.Request) -> web.Response:
    principal = require_principal(request)
    appointment_id = int_param(request, "id")
    async with request.app[DB]() as session:
        found = await session.get(Appointment, appointment_id)
        if found is None:
            raise NotFoundError()
        grant = await _live_grant(
            session, principal, found.case_id, appointment_room(appointment_id)
        )
    return _grant_response(request, grant)


@routes.post(
    "/api/v1/cases/{id}/live/join",
    summary="The caller's join URL for a case's video room (rooms without an appointment)",
    responses={200: JOIN_RESPONSE, 403: "error", 404: "error"},
)
async def case_join(request: web.Request) -> web.Response:
    principal = require_principal(request)
    case_id = int_param(request, "id")
    async with request.app[DB]() as session:
        grant = await _live_grant(session, principal, case_id, case_room(case_id))
    return _grant_response(request, grant)


INVITE_REQUEST = {
    "type": "object",
    "required": ["role", "name"],
    "additionalProperties": False,
    "properties": {
        "role": {"enum": ["expert", "observer"]},
        "name": {"type": "string", "minLength": 1, "maxLength": 60},
        "mobile": {
            "type": "string",
            "maxLength": 20,
            "description": "text the link to this mainland mobile number",
        },
    },
}
INVITE_RESPONSE = {
    **JOIN_RESPONSE,
    "properties": {
        **JOIN_RESPONSE["properties"],  # type: ignore[dict-item]
        "qr_svg": {"type": "string", "description": "the join URL as a QR code (SVG)"},
        "sms_to": {"type": ["string", "null"], "description": "masked number texted"},
    },
}


@routes.post(
    "/api/v1/live/rooms/{room}/invite",
    summary="A join URL for an invited expert or observer (joint inspection, remote review)",
    request=INVITE_REQUEST,
    responses={200: INVITE_RESPONSE, 403: "error", 404: "error", 422: "error"},
)
async def invite(request: web.Request) -> web.Response:
    principal = require_principal(request)
    room = request.match_info["room"]
    async with request.app[DB]() as session:
        case_id = await case_rooms.case_of_room(session, room)
        await authorize(session, principal, case_id, "invite")
    body = await read_json(request, INVITE_REQUEST)
    mobile: str | None = None
    if body.get("mobile"):
        try:
            mobile = validate_mobile(body["mobile"])
        except FieldInvalid as err:
            raise ValidationError(fields={"mobile": err.msgid}) from None
    # A guest link is token-only (the guest has no account here), like the applicant's.
    grant = JoinGrant(
        room=room,
        participant=f"guest-{secrets.token_hex(4)}",
        role=body["role"],
        name=body["name"],
    )
    async with request.app[DB]() as session, session.begin():
        await append_event(
            session,
            case_id,  # type: ignore[arg-type]  # authorize() refused None
            kind="live.invited",
            actor=principal,
            data={
                "room": room,
                "participant": grant.participant,
                "role": grant.role,
                "name": grant.name,
                "sms": mask_mobile(mobile) if mobile else None,
            },
        )
    response = _grant_response(request, grant)
    out = json.loads(cast(bytes, response.body))
    # The console's invite dialog shows the link three ways: to copy, as a QR code for a
    # phone across the desk, and texted (through the same outbox as every other SMS).
    out["qr_svg"] = qr_svg(out["url"])
    out["sms_to"] = None
    if mobile is not None:
        await request.app[SMS].send(
            mobile,
            f"【云勘】{principal.name}邀请您参加视频勘验，请打开 {out['url']} 加入。",
            kind="invite",
        )
        out["sms_to"] = mask_mobile(mobile)
    return web.json_response(out)


async def _end_rooms(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for open handlers: ending the rooms here closes
    # every WebSocket, so shutdown does not sit out the timeout on live calls.
    if HUB in app:
        await app[HUB].close()


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app[API_SPEC].include(routes)
    app.cleanup_ctx.append(_live)
    app.on_shutdown.append(_end_rooms)
