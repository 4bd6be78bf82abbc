"""Glue between live rooms and the evidence store.

Live records every room (``signaling.archive.RoomRecording``: one WebM per participant,
muxed without transcoding). When a room closes, :func:`file_room_recordings` files each
finished file on the room's case: moved into the blob store under its SHA-256, a
``Recording`` row, and a ``recording.finished`` event whose ``blobs`` entry lets
``verify_case`` re-hash the file and the export include it.

:func:`relay_resolver` is the snapshot side: it finds a session's relay room and case for
``server.evidence.live.session_video``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from aiohttp import web

from recordings.evidence import register_recording
from recordings.probe import media_seconds
from recordings.recorder import RecordingResult
from server.appkeys import BLOBS, DB
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


async def relay_resolver(app: web.Application, session_id: str) -> SessionVideo | None:
    """The live session ``session_id`` (a relay room id such as ``case-42``/``appt-7``)."""
    from signaling.handlers import RELAY, _resolve_case

    relay = app.get(RELAY)
    room = relay.get(session_id) if relay is not None else None
    if room is None or room.closed:
        return None
    case_id = await _resolve_case(app, session_id)
    if case_id is None:
        return None
    applicant = next((p for p in room.publishers if p.startswith("applicant-")), None)
    return RelayRoomVideo(room, case_id, applicant)
