"""Rooms and their waiting rooms, as a state machine without any I/O.

A room belongs to one appointment (or queue ticket) and its case. It is ``open`` from the
first join until an inspector ends it, then ``closed`` for good. Each participant moves
through::

    (token checked) ──join──▶ waiting ──admit──▶ admitted ──remove──▶ removed
                               │         ▲        │ ▲
                               │   re-admit       │ └─ rejoin (resume after a drop)
                               │         │        └─leave──▶ left
                               └─decline─▶ declined

Staff (``inspector``) and invited experts/observers/supervisors are admitted on arrival;
applicants wait until an inspector admits them. ``connected`` is separate from the state: a
phone that drops stays ``admitted`` but disconnected, and its rejoin resumes the same
session (``session`` id), so the inspector sees "reconnecting…" rather than a new arrival.

The session id is the seat's secret, the token only the ticket: a join with the token but
without the session id is refused while the participant is still connected
(``seat_taken``), so a replayed link cannot push a live participant out; once they are
disconnected it gets a new session, and an applicant who had been admitted waits to be
admitted again (staff see the arrival).

A declined applicant stays connected and may wait on (the phone says so): staff see them
in the declined list and may re-admit them, which moves them straight into the call. A
declined participant who drops and comes back is still declined, never waiting again by
itself. Only ``removed`` is final: that link is refused until staff invite the person anew.

Observers and supervisors are hidden and receive-only (``HIDDEN_ROLES``): they never
publish, and an applicant's presence does not list them.

Guard methods raise ``RoomError`` whose message names the state ("room case-42 is closed",
"participant a-7 is declined"), so logs and clients say exactly why something was refused.
``signaling.handlers`` wires this to WebSockets and the relay.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from signaling.errors import ForbiddenError, RoomClosedError, RoomError
from signaling.tokens import HIDDEN_ROLES, STAFF_ROLES, JoinGrant, Role

WAITING_ROLES = frozenset({"applicant"})
"""Roles that wait to be admitted; everyone else holds a token issued by staff."""


class RoomState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ParticipantState(StrEnum):
    WAITING = "waiting"
    ADMITTED = "admitted"
    DECLINED = "declined"
    REMOVED = "removed"
    LEFT = "left"


_PRESENT = (ParticipantState.WAITING, ParticipantState.ADMITTED, ParticipantState.DECLINED)
"""States of someone still in the room (a declined applicant may be re-admitted)."""


@dataclass(slots=True)
class Participant:
    id: str
    role: Role
    name: str
    state: ParticipantState
    session: str
    """Opaque id the client keeps to resume after a drop; new on every fresh join."""
    connected: bool = True
    joined_at: float = field(default_factory=time.time)
    reason: str = ""

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def hidden(self) -> bool:
        """Receive-only, and not shown to the applicant."""
        return self.role in HIDDEN_ROLES

    def sees(self, other: Participant) -> bool:
        """Whether this participant is shown ``other`` (presence, chat, departures)."""
        return not (other.hidden and self.role == "applicant")

    def public(self) -> dict[str, Any]:
        """What other participants see (presence); no session id. Only staff are shown a
        declined participant, with the reason they were given."""
        out: dict[str, Any] = {
            "id": self.id,
            "role": self.role,
            "name": self.name,
            "state": self.state.value,
            "connected": self.connected,
        }
        if self.state is ParticipantState.DECLINED:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class JoinResult:
    participant: Participant
    resumed: bool


class Room:
    """One room's state. Not thread-safe; it lives on one event loop on one node."""

    def __init__(self, room_id: str, *, case_id: int | None = None) -> None:
        self.id = room_id
        self.case_id = case_id
        self.state = RoomState.OPEN
        self.participants: dict[str, Participant] = {}
        self.created_at = time.time()

    def __repr__(self) -> str:
        return f"<Room {self.id} {self.state} {len(self.participants)} participants>"

    # -- guards -----------------------------------------------------------------------
    def require_open(self) -> None:
        if self.state is not RoomState.OPEN:
            raise RoomClosedError(f"room {self.id} is {self.state}")

    def get(self, participant_id: str) -> Participant:
        try:
            return self.participants[participant_id]
        except KeyError:
            raise RoomError(
                f"participant {participant_id} is not in room {self.id}",
                code="no_such_participant",
            ) from None

    def require_staff(self, participant_id: str) -> Participant:
        actor = self.require_admitted(participant_id)
        if not actor.is_staff:
            raise ForbiddenError(f"participant {actor.id} is {actor.role}, not staff")
        return actor

    def require_admitted(self, participant_id: str) -> Participant:
        self.require_open()
        who = self.get(participant_id)
        if who.state is not ParticipantState.ADMITTED:
            raise RoomError(f"participant {who.id} is {who.state}", code="not_admitted")
        return who

    def require_publisher(self, participant_id: str) -> Participant:
        who = self.require_admitted(participant_id)
        if who.hidden:
            raise ForbiddenError(
                f"participant {who.id} is {who.role} and receives only", code="receive_only"
            )
        return who

    # -- transitions ------------------------------------------------------------------
    def join(self, grant: JoinGrant, *, session: str | None = None) -> JoinResult:
        """Arrive with a verified grant; ``session`` resumes an earlier connection.

        A resume needs the session id the server handed out, not just the token, so a
        leaked link cannot take over a live participant's place silently.
        """
        self.require_open()
        if grant.room != self.id:
            raise RoomError(
                f"token is for room {grant.room}, not room {self.id}", code="wrong_room"
            )
        known = self.participants.get(grant.participant)
        if known is not None:
            if known.state is ParticipantState.REMOVED:
                raise ForbiddenError(f"participant {known.id} is {known.state}")
            resumed = session is not None and secrets.compare_digest(session, known.session)
            if not resumed:
                present = known.state in _PRESENT
                if present and known.connected:
                    raise ForbiddenError(
                        f"participant {known.id} is {known.state} and connected; "
                        "joining again needs the session id",
                        code="seat_taken",
                    )
                known.session = secrets.token_urlsafe(16)
                if known.state is ParticipantState.LEFT:
                    known.state = self._arrival_state(grant.role)
                elif known.state is ParticipantState.ADMITTED:
                    # Without the seat's secret an applicant is admitted again by staff.
                    known.state = self._arrival_state(grant.role)
            known.connected = True
            known.name = grant.name or known.name
            return JoinResult(known, resumed)
        who = Participant(
            id=grant.participant,
            role=grant.role,
            name=grant.name or grant.participant,
            state=self._arrival_state(grant.role),
            session=secrets.token_urlsafe(16),
        )
        self.participants[who.id] = who
        return JoinResult(who, resumed=False)

    def admit(self, actor_id: str, participant_id: str) -> Participant:
        self.require_staff(actor_id)
        who = self.get(participant_id)
        if who.state is not ParticipantState.WAITING:
            raise RoomError(f"participant {who.id} is {who.state}, not waiting", code="not_waiting")
        who.state = ParticipantState.ADMITTED
        return who

    def decline(self, actor_id: str, participant_id: str, reason: str) -> Participant:
        self.require_staff(actor_id)
        who = self.get(participant_id)
        if who.state is not ParticipantState.WAITING:
            raise RoomError(f"participant {who.id} is {who.state}, not waiting", code="not_waiting")
        who.state = ParticipantState.DECLINED
        who.reason = reason
        return who

    def readmit(self, actor_id: str, participant_id: str) -> Participant:
        """Staff change their mind: a declined participant who is still here joins the call."""
        self.require_staff(actor_id)
        who = self.get(participant_id)
        if who.state is not ParticipantState.DECLINED:
            raise RoomError(
                f"participant {who.id} is {who.state}, not declined", code="not_declined"
            )
        if not who.connected:
            raise RoomError(f"participant {who.id} is not connected", code="not_present")
        who.state = ParticipantState.ADMITTED
        who.reason = ""
        return who

    def remove(self, actor_id: str, participant_id: str) -> Participant:
        actor = self.require_staff(actor_id)
        who = self.get(participant_id)
        if who.id == actor.id:
            raise ForbiddenError(f"participant {who.id} cannot remove themselves; leave instead")
        if who.state not in _PRESENT:
            raise RoomError(f"participant {who.id} is {who.state}", code="not_present")
        who.state = ParticipantState.REMOVED
        who.connected = False
        return who

    def end(self, actor_id: str) -> None:
        self.require_staff(actor_id)
        self.state = RoomState.CLOSED
        for who in self.participants.values():
            who.connected = False

    def disconnect(self, participant_id: str) -> Participant | None:
        """The socket dropped: keep the place (the client may resume)."""
        who = self.participants.get(participant_id)
        if who is not None:
            who.connected = False
        return who

    def leave(self, participant_id: str) -> Participant | None:
        """Gone for good (left on purpose, or the resume grace period ran out).

        A declined participant stays declined (and disconnected): coming back with the same
        link does not put them in the waiting room again behind the inspector's back.
        """
        who = self.participants.get(participant_id)
        if who is None:
            return None
        if who.state in (ParticipantState.WAITING, ParticipantState.ADMITTED):
            who.state = ParticipantState.LEFT
        if who.state in (ParticipantState.LEFT, ParticipantState.DECLINED):
            who.connected = False
        return who

    # -- views ------------------------------------------------------------------------
    def presence(self, viewer: Participant | None = None) -> list[dict[str, Any]]:
        """Who is here, as ``viewer`` may see it (an applicant does not see hidden roles).

        Declined participants who are still connected are listed to staff only (and to no
        viewer-less caller), so the console can offer to re-admit them.
        """
        return [
            p.public()
            for p in self.participants.values()
            if (p.state in (ParticipantState.WAITING, ParticipantState.ADMITTED))
            or (
                p.state is ParticipantState.DECLINED
                and p.connected
                and viewer is not None
                and viewer.is_staff
            )
            if viewer is None or viewer.sees(p)
        ]

    def may_admit(self, participant_id: str) -> bool:
        """Whether this participant may admit others (and so sees the waiting previews)."""
        who = self.participants.get(participant_id)
        return (
            who is not None
            and who.is_staff
            and who.state is ParticipantState.ADMITTED
            and self.state is RoomState.OPEN
        )

    def waiting(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.state is ParticipantState.WAITING]

    def admitted(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.state is ParticipantState.ADMITTED]

    def has_staff_connected(self) -> bool:
        return any(p.is_staff and p.connected for p in self.admitted())

    @staticmethod
    def _arrival_state(role: str) -> ParticipantState:
        return ParticipantState.WAITING if role in WAITING_ROLES else ParticipantState.ADMITTED
