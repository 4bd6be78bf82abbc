"""Setting up a real case over the real app: staff and applicants log in through the API."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.accounts.models import Applicant, User
from server.accounts.principal import Principal
from server.appkeys import DB, SETTINGS
from server.booking.appointments import BookingRequest, book
from server.booking.validation import validate_applicant
from server.cases import rooms
from server.cases.access import set_party
from server.cases.models import Case, CaseEvent
from server.cases.timeline import append_event
from server.letters.models import Letter, LetterEvent, LetterSignature
from tests.letters.images import signature_png
from tests.support import applicant_headers, create_staff, open_every_day, staff_headers

Client = TestClient[Any, Any]


@dataclass
class Party:
    id: int
    headers: dict[str, str]


@dataclass
class World:
    case_id: int
    case_number: str
    applicant: Party
    inspector: Party
    second_inspector: Party
    stranger: Party
    room: str = ""


def data_url(png: bytes | None = None) -> str:
    return "data:image/png;base64," + base64.b64encode(png or signature_png()).decode()


CHECKLIST = [
    {"key": "site", "text": "生产场所与申请材料一致"},
    {"key": "lab", "text": "种子检验室配备发芽箱"},
]
ENTERPRISE = {
    "kind": "enterprise",
    "name": "丰禾种业有限公司",
    "credit_code": "91330100MA2CCQLR2K",
    "contact_name": "张伟",
}
SITE = "余杭区仁和街道种业路 18 号"


async def make_world(
    client: Client, mobile: str = "13800138000", *, person: bool = False, review: bool = False
) -> World:
    """A booked case as the booking service makes it: the matter with its checklist, the
    enterprise (or the person) with the booked site, 李娜 the lead and 王强 co-inspecting."""
    inspector_headers = await staff_headers(client, "inspector1")
    second_id = await create_staff(client, "inspector2", display_name="王强")
    response = await client.post(
        "/api/v1/auth/login", json={"username": "inspector2", "password": "correct-horse-1"}
    )
    second_headers = {"Authorization": f"Bearer {(await response.json())['token']}"}
    applicant = await applicant_headers(client, mobile)
    stranger = await applicant_headers(client, "13900139000")
    zone = client.app[SETTINGS].zone
    async with client.app[DB].begin() as session:
        first = await session.scalar(select(User).where(User.username == "inspector1"))
        other = await session.scalar(select(Applicant).where(Applicant.mobile == "13900139000"))
        assert first is not None and other is not None
        first.display_name = "李娜"
        matter_id, _window = await open_every_day(
            session,
            staff_ids=(first.id, second_id),
            code="seed-change",
            name="农作物种子生产经营许可证变更",
            kind="inspection",
            checklist=CHECKLIST,
            internal_review=review,
        )
        fields = (
            {"kind": "person", "name": "张伟", "id_number": "110101199003077731"}
            if person
            else ENTERPRISE
        )
        info, problems = validate_applicant({**fields, "mobile": mobile})
        assert info is not None, problems
        day = dt.datetime.now(zone).date() + dt.timedelta(days=1)
        appt = await book(
            session,
            BookingRequest(
                matter_id=matter_id,
                start=dt.datetime.combine(day, dt.time(10, 0), zone),
                applicant=info,
                actor=None,
                site_address=SITE,
                staff_id=first.id,
            ),
            zone=zone,
        )
        assert appt.case_id is not None
        case = await session.get(Case, appt.case_id)
        assert case is not None and case.applicant_id is not None
        await set_party(session, case.id, "staff", second_id, "inspector")
        world = World(
            case_id=case.id,
            case_number=case.number,
            applicant=Party(case.applicant_id, applicant),
            inspector=Party(first.id, inspector_headers),
            second_inspector=Party(second_id, second_headers),
            stranger=Party(other.id, stranger),
            room=f"appt-{appt.id}",
        )
    return world


async def live_event(client: Client, world: World, kind: str, **data: Any) -> None:
    """A room event as the live hub records it (``signaling.handlers`` ``_record``): the
    event on the chain and the procedure's move, in one transaction."""
    lead = Principal("staff", world.inspector.id, "inspector", "李娜")
    async with client.app[DB].begin() as session:
        await append_event(
            session, world.case_id, kind=kind, actor=lead, data={"room": world.room, **data}
        )
        if kind == "live.admitted":
            await rooms.applicant_admitted(session, world.room, lead)
        elif kind == "live.ended":
            await rooms.session_over(session, world.room, lead, by="end", record=False)


async def start_session(client: Client, world: World) -> None:
    applicant = f"applicant-{world.applicant.id}"
    await live_event(client, world, "live.joined", participant=applicant, role="applicant")
    await live_event(client, world, "live.admitted", participant=applicant)


async def end_session(client: Client, world: World) -> None:
    await live_event(client, world, "live.ended", participant=f"staff-{world.inspector.id}")


async def walk_checklist(client: Client, world: World, *, problem: bool = True) -> None:
    """Both checklist items through the evidence API, the second a problem."""
    results = [
        {"item": CHECKLIST[0]["text"], "result": "ok"},
        {"item": CHECKLIST[1]["text"], "result": "problem" if problem else "ok", "note": "未校准"},
    ]
    for body in results:
        r = await client.post(
            f"/api/v1/cases/{world.case_id}/checklist", json=body, headers=world.inspector.headers
        )
        assert r.status == 201, await r.text()


async def decide(client: Client, world: World, outcome: str = "rectify") -> dict[str, Any]:
    body: dict[str, Any] = {"outcome": outcome}
    if outcome != "pass":
        body["reason"] = "发芽箱未校准"
    if outcome == "rectify":
        body |= {"requirements": "完成发芽箱校准\n上传校准证书", "rectify_days": 5}
    r = await client.post(
        f"/api/v1/cases/{world.case_id}/decision", json=body, headers=world.inspector.headers
    )
    assert r.status == 201, await r.text()
    return dict(await r.json())


async def inspected(client: Client, world: World, outcome: str = "rectify") -> None:
    """The whole inspection: the session, the checklist, the decision, the call ended."""
    await start_session(client, world)
    await walk_checklist(client, world)
    await decide(client, world, outcome)
    await end_session(client, world)


async def snapshot(client: Client, case_id: int) -> dict[str, Any]:
    """Everything a refused request must leave unchanged."""
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        letters = list(
            (await session.execute(select(Letter).where(Letter.case_id == case_id))).scalars()
        )
        return {
            "head": (case.head_seq, case.head_hash),
            "events": await session.scalar(
                select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case_id)
            ),
            "letters": [(x.id, x.status, x.next_signer, x.pdf_sha256) for x in letters],
            "signatures": await session.scalar(select(func.count()).select_from(LetterSignature)),
            "letter_events": await session.scalar(select(func.count()).select_from(LetterEvent)),
        }


async def close_case(client: Client, case_id: int) -> None:
    async with client.app[DB].begin() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        case.status = "closed"
