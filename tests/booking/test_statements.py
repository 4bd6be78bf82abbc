"""What one booking costs the database, counted with SQLAlchemy's cursor events.

A ceiling per path, so a change that adds round trips (an N+1, a re-read of what is
loaded, a second transaction) fails here before it shows in ``bench/booking.py``; and a
sold-out slot is answered from reads alone: no write and no row lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import event

from server.appkeys import ENGINE
from tests.booking.support import person, seed_app
from tests.support import create_staff, staff_headers

Client = TestClient[Any, Any]

BOOKING_MAX = (
    22  # 34 before the plan cache, the one-statement claims and merged reads; 42 before the outbox
)
SOLD_OUT_MAX = 8
WRITES = ("INSERT", "UPDATE", "DELETE")


@contextmanager
def counted(client: Client) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = client.app[ENGINE].sync_engine

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def test_statements_per_booking_and_per_sold_out_attempt(client: Client) -> None:
    headers = await staff_headers(client)
    officers = tuple([await create_staff(client, f"officer{i}", "inspector") for i in range(2)])
    cat = await seed_app(client.app, seats=2, staff_ids=officers)

    def body(i: int) -> dict[str, Any]:
        return {"matter_id": cat.matter_id, "start": cat.iso("10:00"), "applicant": person(i)}

    assert (await client.post("/api/v1/appointments", json=body(0), headers=headers)).status == 201
    with counted(client) as booking:
        response = await client.post("/api/v1/appointments", json=body(1), headers=headers)
    assert response.status == 201, await response.text()
    print(f"booking: {len(booking)} statements", *booking, sep="\n  ")
    assert len(booking) <= BOOKING_MAX

    with counted(client) as sold_out:
        response = await client.post("/api/v1/appointments", json=body(2), headers=headers)
    assert response.status == 409, await response.text()
    print(f"sold out: {len(sold_out)} statements", *sold_out, sep="\n  ")
    assert len(sold_out) <= SOLD_OUT_MAX
    assert not [s for s in sold_out if s.startswith(WRITES) or "FOR UPDATE" in s]

    # Once this process has refused the slot, the next attempts at it are answered from
    # memory (soldout.py) with the caller's session from the session cache: no statement.
    with counted(client) as remembered:
        response = await client.post("/api/v1/appointments", json=body(3), headers=headers)
    assert response.status == 409, await response.text()
    assert (await response.json())["error"]["code"] == "slot_full"
    assert remembered == []
