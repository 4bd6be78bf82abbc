"""Setting up a real case over the real app: staff and applicants log in through the API."""

from __future__ import annotations

import base64
import zoneinfo
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.accounts.models import Applicant, User
from server.appkeys import DB
from server.cases.models import Case, CaseEvent, CaseParty
from server.cases.numbers import open_case
from server.letters.models import Letter, LetterEvent, LetterSignature
from tests.letters.images import signature_png
from tests.support import applicant_headers, create_staff, staff_headers

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


def data_url(png: bytes | None = None) -> str:
    return "data:image/png;base64," + base64.b64encode(png or signature_png()).decode()


async def make_world(client: Client, mobile: str = "13800138000") -> World:
    inspector_headers = await staff_headers(client, "inspector1")
    second_id = await create_staff(client, "inspector2", display_name="王强")
    response = await client.post(
        "/api/v1/auth/login", json={"username": "inspector2", "password": "correct-horse-1"}
    )
    second_headers = {"Authorization": f"Bearer {(await response.json())['token']}"}
    applicant = await applicant_headers(client, mobile)
    stranger = await applicant_headers(client, "13900139000")
    async with client.app[DB].begin() as session:
        person = await session.scalar(select(Applicant).where(Applicant.mobile == mobile))
        other = await session.scalar(select(Applicant).where(Applicant.mobile == "13900139000"))
        assert person is not None and other is not None
        person.name = "张伟"
        case = await open_case(
            session,
            title="农作物种子生产经营许可证变更",
            zone=zoneinfo.ZoneInfo("Asia/Shanghai"),
            applicant_id=person.id,
        )
        first = await session.scalar(select(User).where(User.username == "inspector1"))
        assert first is not None
        first.display_name = "李娜"
        for staff_id in (first.id, second_id):
            session.add(
                CaseParty(
                    case_id=case.id, principal_kind="staff", principal_id=staff_id, role="inspector"
                )
            )
        world = World(
            case_id=case.id,
            case_number=case.number,
            applicant=Party(person.id, applicant),
            inspector=Party(first.id, inspector_headers),
            second_inspector=Party(second_id, second_headers),
            stranger=Party(other.id, stranger),
        )
    return world


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
