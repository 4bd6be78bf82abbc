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
    with pytest.raises(ForbiddenError, match="a-7 is declined and connected"):
        room.join(APPLICANT)


def test_declined_stays_declined_until_readmitted_and_remove_is_final() -> None:
    room = Room("r1")
    room.join(INSPECTOR)
    room.join(EXPERT)
    room.join(APPLICANT)
    room.decline("i-1", "a-7", "材料不全")
    staff_view = room.presence(viewer=room.participants["i-1"])
    assert {"id": "a-7", "state": "declined", "reason": "材料不全"}.items() <= next(
        p for p in staff_view if p["id"] == "a-7"
    ).items()
    assert all(p["id"] != "a-7" for p in room.presence(viewer=room.participants["e-2"]))
    assert not room.may_admit("a-7") and not room.may_admit("e-2") and room.may_admit("i-1")
    # Gone and back with the link alone: still declined, not in the queue again.
    room.leave("a-7")
    assert room.participants["a-7"].state is ParticipantState.DECLINED
    with pytest.raises(RoomError, match="a-7 is not connected"):
        room.readmit("i-1", "a-7")
    back = room.join(APPLICANT)
    assert back.participant.state is ParticipantState.DECLINED and not back.resumed
    with pytest.raises(ForbiddenError, match="e-2 is expert, not staff"):
        room.readmit("e-2", "a-7")
    assert room.readmit("i-1", "a-7").state is ParticipantState.ADMITTED
    with pytest.raises(RoomError, match="a-7 is admitted, not declined"):
        room.readmit("i-1", "a-7")
    room.remove("i-1", "a-7")
    with pytest.raises(ForbiddenError, match="a-7 is removed"):
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
    # a replayed link (no session id) cannot take the seat while its holder is connected
    with pytest.raises(ForbiddenError, match="needs the session id") as refused:
        room.join(APPLICANT)
    assert refused.value.error_code == "seat_taken"
    assert room.participants["a-7"].session == session
    # once they are gone it gets a new session, and an applicant waits to be admitted again
    room.disconnect("a-7")
    other = room.join(APPLICANT)
    assert not other.resumed and other.participant.session != session
    assert other.participant.state is ParticipantState.WAITING
    # staff arrive admitted anyway
    room.disconnect("i-1")
    assert room.join(INSPECTOR).participant.state is ParticipantState.ADMITTED


def test_hidden_roles_receive_only_and_are_not_shown_to_the_applicant() -> None:
    room = Room("r1")
    room.join(INSPECTOR)
    applicant = room.join(APPLICANT).participant
    room.admit("i-1", "a-7")
    supervisor = room.join(JoinGrant("r1", "s-5", "supervisor", "督查")).participant
    observer = room.join(JoinGrant("r1", "o-6", "observer", "旁听")).participant
    assert supervisor.state is ParticipantState.ADMITTED and supervisor.hidden
    assert {p["id"] for p in room.presence(viewer=applicant)} == {"i-1", "a-7"}
    assert {p["id"] for p in room.presence(viewer=room.get("i-1"))} == {"i-1", "a-7", "s-5", "o-6"}
    for who in (supervisor, observer):
        with pytest.raises(ForbiddenError, match="receives only") as refused:
            room.require_publisher(who.id)
        assert refused.value.error_code == "receive_only"
    assert room.require_publisher("a-7") is applicant


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
