"""Where a snapshot's packets come from: the one seam between evidence and live video.

The snapshot handler asks :func:`session_video` for a session's video; everything it needs
to know about rooms is behind that call. The live domain registers a resolver under
:data:`VIDEO_RESOLVER` in its ``setup(app)``: given the session (room) id from the URL it
answers which case the session belongs to and, for a participant, the VP8 packets since
the last keyframe (the relay's ``fresh_video_packets``: it asks the publisher for a
keyframe first, because aiortc's encoder sends one only every 100 s and decoding from a
stale keyframe costs a frame per 33 ms).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import av
from aiohttp import web

from recordings.errors import NoVideoError
from server.errors import NotFoundError
from signaling.relay import RelayRoom, UnknownParticipantError


class SessionVideo(Protocol):
    """A live session as the snapshot handler sees it."""

    @property
    def case_id(self) -> int: ...

    def default_participant(self) -> str | None:
        """The participant to snapshot when the inspector names none (the applicant)."""

    async def video_packets(self, participant: str) -> Sequence[av.Packet[Any]]:
        """Packets from the newest keyframe on; empty when no video is flowing."""


Resolver = Callable[[web.Application, str], Awaitable[SessionVideo | None]]
VIDEO_RESOLVER = web.AppKey[Resolver]("evidence_video_resolver")


@dataclass(frozen=True, slots=True)
class Capture:
    case_id: int
    participant: str
    packets: Sequence[av.Packet[Any]]


async def session_video(app: web.Application, session_id: str, participant: str | None) -> Capture:
    """The packets to snapshot, or a domain error that says what is missing."""
    resolver = app.get(VIDEO_RESOLVER)
    live = await resolver(app, session_id) if resolver is not None else None
    if live is None:
        raise NotFoundError("No live session with this id")
    who = participant or live.default_participant()
    if who is None:
        raise NoVideoError()
    packets = await live.video_packets(who)
    if not packets:
        raise NoVideoError()
    return Capture(live.case_id, who, packets)


# Decoding one 640x480 VP8 inter frame costs ~1.5 ms on an idle core and 4 ms or more on a
# busy one; beyond this many packets since the key frame it is cheaper to ask the publisher
# for a fresh key frame (answered in 35–66 ms idle, a few hundred ms on a loaded machine).
SHORT_GOP = 45
DECODE_S_PER_PACKET = 0.004
MIN_KEYFRAME_WAIT, MAX_KEYFRAME_WAIT = 0.3, 1.5


@dataclass(slots=True)
class RelayRoomVideo:
    """A :class:`SessionVideo` over a live ``signaling.relay.RelayRoom``.

    The live domain's resolver returns one of these for a session id; ``applicant`` is the
    participant id snapshots default to.
    """

    room: RelayRoom
    case_id: int
    applicant: str | None = None
    keyframe_wait: float | None = None  # None: as long as decoding the GOP would take

    def _wait(self, gop: int) -> float:
        """Wait for a key frame about as long as decoding what we have would take."""
        if self.keyframe_wait is not None:
            return self.keyframe_wait
        return min(MAX_KEYFRAME_WAIT, max(MIN_KEYFRAME_WAIT, gop * DECODE_S_PER_PACKET))

    def default_participant(self) -> str | None:
        if self.applicant is not None:
            return self.applicant
        publishers = self.room.publishers
        return publishers[0] if publishers else None

    async def video_packets(self, participant: str) -> Sequence[av.Packet[Any]]:
        try:
            packets = self.room.latest_video_packets(participant)
        except UnknownParticipantError:
            return []
        if packets and len(packets) <= SHORT_GOP:
            return packets
        try:
            return await self.room.fresh_video_packets(participant, self._wait(len(packets)))
        except (TimeoutError, UnknownParticipantError):
            # No new keyframe in time (a stalled phone): the long GOP still decodes.
            return packets
