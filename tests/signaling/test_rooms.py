from __future__ import annotations

import pytest

from signaling.errors import ForbiddenError, RoomClosedError, RoomError
from signaling.rooms import ParticipantState, Room
from signaling.tokens import JoinGrant

INSPECTOR = JoinGrant("r1", "i-1", "inspector", "王科员")
APPLICANT = JoinGrant("r1", "a-7", "applicant", "张三")
EXPERT = JoinGrant("r1", "e-2", "expert", "专家")


def test_waiting_room_admit_and_presence() -> None:
    room = Room("r1")
    room.join(INSPECTOR)
    joined = room.join(APPLICANT)
    assert joined.participant.state is ParticipantState.WAITING
    assert [p.id for p in room.waiting()] == ["a-7"]
    room.admit("i-1", "a-7")
    assert {p["id"]: p["state"] for p in room.presence()} == {
        "i-1": "admitted",
        "a-7": "admitted",
    }
    assert room.join(EXPERT).participant.state is ParticipantState.ADMITTED


def test_only_staff_admit_and_errors_name_the_state() -> None:
    room = Room("r1")
    room.join(APPLICANT)
    room.join(EXPERT)
    with pytest.raises(ForbiddenError, match="e-2 is expert, not staff"):
        room.admit("e-2", "a-7")
    room.join(INSPECTOR)
    room.decline("i-1", "a-7", "材料不全")
    with pytest.raises(RoomError, match="a-7 is declined, not waiting"):
        room.admit("i-1", "a-7")
    with pytest.raises(ForbiddenError, match="a-7 is declined"):
        room.join(APPLICANT)


def test_resume_needs_the_session_id() -> None:
    room = Room("r1")
    room.join(INSPECTOR)
    first = room.join(APPLICANT).participant
    session = first.session
    room.admit("i-1", "a-7")
    room.disconnect("a-7")
    assert not first.connected
    again = room.join(APPLICANT, session=session)
    assert again.resumed and again.participant.state is ParticipantState.ADMITTED
    assert again.participant.connected
    # the link alone (no session) gets a new session id but keeps the admission
    other = room.join(APPLICANT)
    assert not other.resumed and other.participant.session != session


def test_remove_and_end() -> None:
    room = Room("r1")
    room.join(INSPECTOR)
    room.join(APPLICANT)
    room.admit("i-1", "a-7")
    room.remove("i-1", "a-7")
    with pytest.raises(ForbiddenError, match="a-7 is removed"):
        room.join(APPLICANT)
    with pytest.raises(ForbiddenError):
        room.remove("i-1", "i-1")
    room.end("i-1")
    with pytest.raises(RoomClosedError, match="room r1 is closed"):
        room.join(EXPERT)
    with pytest.raises(RoomClosedError):
        room.end("i-1")


def test_left_participant_waits_again() -> None:
    room = Room("r1")
    room.join(INSPECTOR)
    room.join(APPLICANT)
    room.admit("i-1", "a-7")
    room.leave("a-7")
    assert room.join(APPLICANT).participant.state is ParticipantState.WAITING


def test_token_for_other_room() -> None:
    with pytest.raises(RoomError, match="not room r2"):
        Room("r2").join(APPLICANT)
