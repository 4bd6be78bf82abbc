"""The live wall's data: every video session live now, with what the hub knows of it.

The list comes from ``video_sessions`` (open rows), so it holds the sessions of every node;
the people in the room, the watchers and the network quality come from this node's hub
and relay, and are "—" for a room another node hosts (the page says which node).

Quality is what the relay measures of each publisher's upstream, cheaply: packet loss from
aiortc's receiver statistics of the publish connection (``inbound-rtp``: lost / (received
+ lost)), and the video bitrate from the relay's own byte counter, sampled between two
refreshes of the wall (:class:`BitrateSampler`; the first look shows "—").
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.booking.models import Appointment, Department, Matter, QueueTicket
from server.cases.models import Case
from server.supervision.dashboard import LIVE_HORIZON
from server.supervision.models import VideoSession
from signaling.hub import Hub
from signaling.relay import Relay, RelayRoom
from signaling.rooms import ParticipantState


@dataclass(frozen=True, slots=True)
class Quality:
    participant: str
    name: str
    role: str
    loss_percent: float | None
    kbps: float | None

    @property
    def text(self) -> str:
        loss = "—" if self.loss_percent is None else f"{self.loss_percent:.1f} %"
        rate = "—" if self.kbps is None else f"{self.kbps:.0f} kbps"
        return f"{rate} · {loss}"


@dataclass(slots=True)
class WallRow:
    room: str
    case_id: int
    number: str
    matter: str
    department: str
    applicant: str
    started_at: dt.datetime
    seconds: int
    here: bool
    """Hosted by this node (people and quality known)."""
    people: list[dict[str, Any]] = field(default_factory=list)
    watchers: int = 0
    quality: list[Quality] = field(default_factory=list)

    @property
    def duration(self) -> str:
        minutes, seconds = divmod(self.seconds, 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class BitrateSampler:
    """Bytes seen per publisher at the last look, to turn counters into a rate."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def kbps(self, room: str, participant: str, total_bytes: int) -> float | None:
        now = time.monotonic()
        previous = self._last.get((room, participant))
        self._last[(room, participant)] = (now, total_bytes)
        if previous is None or now - previous[0] < 0.5 or total_bytes < previous[1]:
            return None
        return (total_bytes - previous[1]) * 8 / 1000 / (now - previous[0])

    def forget_except(self, rooms: set[str]) -> None:
        self._last = {k: v for k, v in self._last.items() if k[0] in rooms}


async def _loss(media: RelayRoom, participant: str) -> float | None:
    pc = media.publish_connection(participant)
    if pc is None:
        return None
    try:
        report = await pc.getStats()
    except Exception:  # a connection closing under us: no figure this time
        return None
    received = lost = 0
    for stats in report.values():
        if getattr(stats, "type", "") == "inbound-rtp":
            received += int(getattr(stats, "packetsReceived", 0) or 0)
            lost += max(int(getattr(stats, "packetsLost", 0) or 0), 0)
    total = received + lost
    return round(100 * lost / total, 1) if total else None


async def live_rows(
    session: AsyncSession,
    *,
    hub: Hub | None,
    relay: Relay | None,
    sampler: BitrateSampler,
    now: dt.datetime,
    department_id: int | None = None,
) -> list[WallRow]:
    query = (
        select(
            VideoSession,
            Case.number,
            Matter.name,
            Department.name,
            Appointment.applicant_name,
            QueueTicket.name,
        )
        .join(Case, Case.id == VideoSession.case_id)
        .outerjoin(Matter, Matter.id == VideoSession.matter_id)
        .outerjoin(Department, Department.id == Matter.department_id)
        .outerjoin(Appointment, Appointment.id == VideoSession.appointment_id)
        .outerjoin(QueueTicket, QueueTicket.id == VideoSession.ticket_id)
        .where(VideoSession.ended_at.is_(None), VideoSession.started_at > now - LIVE_HORIZON)
        .order_by(VideoSession.started_at, VideoSession.id)
    )
    if department_id:
        query = query.where(Matter.department_id == department_id)
    rows: list[WallRow] = []
    for vs, number, matter, department, booked_name, walk_in_name in (
        await session.execute(query)
    ).all():
        live = hub.rooms.get(vs.room) if hub is not None else None
        row = WallRow(
            room=vs.room,
            case_id=vs.case_id,
            number=number,
            matter=matter or "",
            department=department or "",
            applicant=booked_name or walk_in_name or "",
            started_at=vs.started_at,
            seconds=max(0, int((now - vs.started_at).total_seconds())),
            here=live is not None,
        )
        if live is not None:
            admitted = [
                p for p in live.room.participants.values() if p.state is ParticipantState.ADMITTED
            ]
            row.people = [p.public() for p in admitted if not p.hidden]
            row.watchers = sum(1 for p in admitted if p.hidden and p.connected)
            media = relay.get(vs.room) if relay is not None else None
            if media is not None:
                for pid in media.publishers:
                    who = live.room.participants.get(pid)
                    stats = media.publication(pid).stats
                    row.quality.append(
                        Quality(
                            pid,
                            who.name if who else pid,
                            who.role if who else "",
                            await _loss(media, pid),
                            sampler.kbps(vs.room, pid, stats.bytes.get("video", 0)),
                        )
                    )
        rows.append(row)
    sampler.forget_except({r.room for r in rows})
    return rows
