"""The per-process sold-out memo: it answers refused attempts without the database, and
a freed seat is bookable again at once on this process, through the bus on the others,
and after the TTL whatever the bus missed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from server.app import create_app
from server.appkeys import DB
from server.booking import models as m
from server.booking.soldout import SOLD_OUT, SoldOutMemo
from server.settings import Settings
from tests.booking.support import person, seed_app, token_of
from tests.support import create_staff, staff_headers

Client = TestClient[Any, Any]


def test_a_refusal_read_before_an_invalidation_is_not_remembered() -> None:
    now = [100.0]
    memo = SoldOutMemo(ttl=2.0, clock=lambda: now[0])
    start = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    before = memo.generation
    memo.forget()  # a seat was freed while the attempt was reading
    memo.mark(1, start, before)
    assert not memo.sold_out(1, start)
    memo.mark(1, start, memo.generation)
    assert memo.sold_out(1, start)
    assert not memo.sold_out(2, start)
    now[0] += 2.0  # the TTL
    assert not memo.sold_out(1, start)


async def _book(client: Client, headers: dict[str, str], start: str, i: int, cat: Any) -> Any:
    body = {"matter_id": cat.matter_id, "start": start, "applicant": person(i)}
    return await client.post("/api/v1/appointments", json=body, headers=headers)


async def _cancel(client: Client, booked: Any) -> None:
    body = await booked.json()
    cancel = await client.post(
        f"/api/v1/appointments/{body['id']}/cancel", json={"token": token_of(body["manage_url"])}
    )
    assert cancel.status == 200, await cancel.text()


async def test_cancel_and_admin_change_reopen_at_once_and_ttl_ends_the_rest(
    client: Client,
) -> None:
    headers = await staff_headers(client)
    cat = await seed_app(client.app, seats=1)
    memo = client.app[SOLD_OUT]
    now = [0.0]
    memo.clock = lambda: now[0]
    start = cat.iso("10:00")
    first = await _book(client, headers, start, 0, cat)
    assert first.status == 201
    assert (await _book(client, headers, start, 1, cat)).status == 409  # read: marks
    hits = memo.hits
    refused = await _book(client, headers, start, 2, cat)
    assert refused.status == 409
    assert (await refused.json())["error"]["code"] == "slot_full"
    assert memo.hits == hits + 1
    # A cancellation frees the seat: forgotten after its commit, bookable at once.
    await _cancel(client, first)
    assert len(memo) == 0
    assert (await _book(client, headers, start, 3, cat)).status == 201
    # Full again; an ORM write of what seats are made of (here the matter) forgets too.
    assert (await _book(client, headers, start, 4, cat)).status == 409
    assert len(memo) == 1
    async with client.app[DB].begin() as session:
        matter = await session.get(m.Matter, cat.matter_id)
        assert matter is not None
        matter.name = matter.name + "（新）"
    assert len(memo) == 0
    assert (await _book(client, headers, start, 5, cat)).status == 409  # read: marks again
    # A change the memo cannot see (Core SQL, as another program would): the TTL ends it.
    async with client.app[DB].begin() as session:
        await session.execute(update(m.SlotSeat).values(seats=3))
    assert (await _book(client, headers, start, 6, cat)).status == 409  # still remembered
    now[0] += memo.ttl
    assert (await _book(client, headers, start, 7, cat)).status == 201


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_seat_freed_on_one_node_is_bookable_on_the_other_through_redis(
    aiohttp_client: Any, scaleout_settings: Settings
) -> None:
    first = await aiohttp_client(create_app(scaleout_settings))
    second = await aiohttp_client(create_app(scaleout_settings))
    await create_staff(first, "clerk")
    login = await second.post(
        "/api/v1/auth/login", json={"username": "clerk", "password": "correct-horse-1"}
    )
    headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
    cat = await seed_app(first.app, seats=1)
    memo = second.app[SOLD_OUT]
    memo.ttl = 3600.0  # only the bus can make it forget within this test
    start = cat.iso("11:00")
    booked = await _book(first, headers, start, 0, cat)
    assert booked.status == 201
    assert (await _book(second, headers, start, 1, cat)).status == 409
    hits = memo.hits
    assert (await _book(second, headers, start, 2, cat)).status == 409
    assert memo.hits == hits + 1
    await _cancel(first, booked)
    for _ in range(100):  # the invalidation crosses Redis
        if not memo.sold_out(cat.matter_id, datetime.fromisoformat(start)):
            break
        await asyncio.sleep(0.02)
    again = await _book(second, headers, start, 3, cat)
    assert again.status == 201, await again.text()
