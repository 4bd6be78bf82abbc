"""Glue between live rooms and the evidence store.

Live records every room (``signaling.archive.RoomRecording``: one WebM per participant,
muxed without transcoding). When a room closes, :func:`file_room_recordings` files each
finished file on the room's case: moved into the blob store under its SHA-256, a
``Recording`` row, and a ``recording.finished`` event whose ``blobs`` entry lets
``verify_case`` re-hash the file and the export include it.

:func:`relay_resolver` is the snapshot side: it finds a session's relay room and case for
``server.evidence.live.session_video``; :func:`file_live_location` puts an applicant's
answer to the console's "share location" request on the case's location record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from aiohttp import web

from recordings.errors import InvalidLocationError
from recordings.evidence import record_location, register_recording
from recordings.location import GeoFix
from recordings.probe import media_seconds
from recordings.recorder import RecordingResult
from server.accounts.principal import Principal
from server.appkeys import BLOBS, DB, RELAY
from server.cases.models import Case
from server.cases.procedure import is_open
from server.cases.rooms import case_of_room
from server.evidence.live import RelayRoomVideo, SessionVideo

log = logging.getLogger(__name__)


def _role(participant: str) -> str:
    return participant.partition("-")[0] if "-" in participant else ""


async def file_room_recordings(
    app: web.Application,
    room_id: str,
    case_id: int,
    results: list[tuple[str, RecordingResult]],
    *,
    ended_at: dt.datetime | None = None,
) -> list[int]:
    """Register a closed room's files on its case; the new recording ids.

    One transaction per file: a failure leaves the others filed and that file where the
    recorder wrote it (under ``data_dir/recordings``), logged, never deleted.
    """
    ended = ended_at or dt.datetime.now(dt.UTC)
    ids: list[int] = []
    for participant, result in results:
        # The duration is read back from the file (see recordings.probe for why).
        duration = await asyncio.to_thread(media_seconds, result.path)
        started = (
            dt.datetime.fromtimestamp(result.started_at, dt.UTC)
            if result.started_at is not None
            else ended - dt.timedelta(seconds=duration)
        )
        try:
            async with app[DB].begin() as session:
                row = await register_recording(
                    session,
                    app[BLOBS],
                    case_id=case_id,
                    session_ref=room_id,
                    participant=participant,
                    participant_role=_role(participant),
                    path=result.path,
                    started_at=started,
                    ended_at=ended,
                    duration_s=duration,
                    quality=quality(result),
                )
                ids.append(row.id)
        except Exception:
            log.exception(
                "could not file the recording of %s in %s (kept at %s)",
                participant,
                room_id,
                result.path,
            )
    return ids


def quality(result: RecordingResult) -> dict[str, Any]:
    """What the recorder had to do to the stream, for the ``recording.finished`` event."""
    return {
        "retimed": result.retimed,
        "skipped": result.skipped,
        "gaps": [gap.as_dict() for gap in result.gaps],
    }


async def file_live_location(
    app: web.Application,
    case_id: int,
    principal: Principal,
    participant: str,
    response: dict[str, Any],
) -> int | None:
    """Record a live "share location" answer (``{"ok", "data": {lat, lon, accuracy}}``)."""
    payload = response.get("data")
    if not response.get("ok") or not isinstance(payload, dict):
        return None
    try:
        lat, lon = float(payload["lat"]), float(payload["lon"])
        accuracy = payload.get("accuracy")
        fix = GeoFix(lat, lon, float(accuracy) if accuracy is not None else None)
    except (KeyError, TypeError, ValueError, InvalidLocationError):
        log.warning("location answer of %s in case %s is not a position", participant, case_id)
        return None
    async with app[DB].begin() as session:
        case = await session.get(Case, case_id)
        if case is None or not is_open(case):
            return None
        row = await record_location(session, case, by=principal, participant=participant, fix=fix)
        return row.id


async def relay_resolver(app: web.Application, session_id: str) -> SessionVideo | None:
    """The live session ``session_id`` (a relay room id such as ``case-42``/``appt-7``)."""
    relay = app.get(RELAY)
    room = relay.get(session_id) if relay is not None else None
    if room is None or room.closed:
        return None
    async with app[DB]() as session:
        case_id = await case_of_room(session, session_id)
    if case_id is None:
        return None
    applicant = next((p for p in room.publishers if p.startswith("applicant-")), None)
    return RelayRoomVideo(room, case_id, applicant)
