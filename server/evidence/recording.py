"""Glue between live rooms and the evidence store: record, then file on the case.

``RecordedRoom`` wraps one relay room for the hub (it is a ``signaling.hub.MediaRoom``):
it points the relay's packet callback at the app's :class:`SessionRecordings`, and when
the hub closes the room it closes the files and registers each one on the room's case
(blob + row + ``recording.finished`` event). ``relay_resolver`` is the snapshot side: it
finds a session's relay room and case for ``server.evidence.live.session_video``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from recordings.evidence import register_recording
from recordings.sessions import FinishedRecording, SessionRecordings
from server.appkeys import BLOBS, DB
from server.evidence.live import RelayRoomVideo, SessionVideo
from signaling.relay import RelayRoom

log = logging.getLogger(__name__)

RECORDINGS = web.AppKey[SessionRecordings]("evidence_recordings")


def _role(participant: str) -> str:
    return participant.partition("-")[0] if "-" in participant else ""


async def file_recordings(
    app: web.Application, case_id: int | None, finished: list[FinishedRecording]
) -> list[int]:
    """Register finished files on the case; without a case they stay where they are."""
    ids: list[int] = []
    for item in finished:
        if case_id is None:
            log.warning(
                "recording %s of room %s has no case; kept at %s",
                item.participant,
                item.room,
                item.result.path,
            )
            continue
        async with app[DB].begin() as session:
            row = await register_recording(
                session,
                app[BLOBS],
                case_id=case_id,
                session_ref=item.room,
                participant=item.participant,
                participant_role=_role(item.participant),
                path=item.result.path,
                started_at=item.started_at,
                ended_at=item.ended_at,
                duration_s=item.result.duration,
            )
            ids.append(row.id)
    return ids


class RecordedRoom:
    """A relay room whose every publisher is recorded until the room closes."""

    def __init__(self, app: web.Application, room: RelayRoom, case_id: int | None) -> None:
        self.app = app
        self.room = room
        self.case_id = case_id
        room.on_packet = app[RECORDINGS].callback(room.room_id)

    async def add_participant(self, participant: str, offer_sdp: str) -> str:
        return await self.room.add_participant(participant, offer_sdp)

    async def remove_participant(self, participant: str) -> None:
        await self.room.remove_participant(participant)

    async def subscribe(self, subscriber: str, publisher: str) -> str:
        return await self.room.subscribe(subscriber, publisher)

    async def accept_answer(self, subscriber: str, publisher: str, answer_sdp: str) -> None:
        await self.room.accept_answer(subscriber, publisher, answer_sdp)

    async def unsubscribe(self, subscriber: str, publisher: str) -> None:
        await self.room.unsubscribe(subscriber, publisher)

    @property
    def publishers(self) -> list[str]:
        return self.room.publishers

    async def close(self) -> None:
        await self.room.close()
        finished = await self.app[RECORDINGS].finish(self.room.room_id)
        try:
            await file_recordings(self.app, self.case_id, finished)
        except Exception:
            # The files stay on disk under data_dir/recordings: nothing is lost, only unfiled.
            log.exception("could not file the recordings of room %s", self.room.room_id)


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
