"""The case timeline is a hash chain: tampering is detected and located."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import text

from server.accounts.principal import Principal
from server.appkeys import BLOBS, DB, SETTINGS
from server.cases.models import Case
from server.cases.numbers import open_case
from server.cases.timeline import append_event, verify_case

Client = TestClient[Any, Any]
INSPECTOR = Principal("staff", 1, "inspector", "李明")


async def _case_with_events(client: Client, n: int = 4) -> int:
    async with client.app[DB].begin() as session:
        case = await open_case(
            session, title="种子公司许可变更勘验", zone=client.app[SETTINGS].zone
        )
        for i in range(n):
            await append_event(
                session, case, kind="note", actor=INSPECTOR, data={"i": i, "text": "现场整洁"}
            )
        return case.id


async def test_intact_chain_verifies(client: Client) -> None:
    case_id = await _case_with_events(client)
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None and case.number.startswith("YK-")
        report = await verify_case(session, case)
    assert report.ok and report.events == 5


async def test_changed_row_is_located(client: Client) -> None:
    case_id = await _case_with_events(client)
    async with client.app[DB].begin() as session:
        await session.execute(
            text("UPDATE case_events SET data = :d WHERE case_id = :c AND seq = 3"),
            {"d": '{"i": 1, "text": "现场脏乱"}', "c": case_id},
        )
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        report = await verify_case(session, case)
    assert not report.ok
    assert report.first_break is not None
    assert report.first_break.seq == 3 and "changed" in report.first_break.reason


async def test_deleted_tail_is_detected(client: Client) -> None:
    case_id = await _case_with_events(client)
    async with client.app[DB].begin() as session:
        await session.execute(
            text("DELETE FROM case_events WHERE case_id = :c AND seq = 5"), {"c": case_id}
        )
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        report = await verify_case(session, case)
    assert not report.ok and report.first_break is not None and report.first_break.seq == 5


async def test_tampered_blob_is_located(client: Client) -> None:
    blobs = client.app[BLOBS]
    ref = await blobs.put(b"\xff\xd8 fake jpeg bytes", suffix=".jpg", kind="snapshot")
    async with client.app[DB].begin() as session:
        case = await open_case(session, title="t", zone=client.app[SETTINGS].zone)
        await append_event(session, case, kind="snapshot.taken", data={"blobs": [ref.as_dict()]})
        case_id = case.id
    blobs.path(ref.key).write_bytes(b"something else")
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        report = await verify_case(session, case, blobs)
    assert not report.ok
    assert report.first_break is not None and report.first_break.seq == 2
    assert "sha256 mismatch" in report.first_break.reason


async def test_concurrent_cases_get_distinct_numbers(client: Client) -> None:
    import asyncio

    async def one() -> str:
        async with client.app[DB].begin() as session:
            case = await open_case(session, title="并发", zone=client.app[SETTINGS].zone)
            return case.number

    numbers = await asyncio.gather(*(one() for _ in range(30)))
    assert len(set(numbers)) == 30
    assert sorted(int(n.rsplit("-", 1)[1]) for n in numbers) == list(range(1, 31))
