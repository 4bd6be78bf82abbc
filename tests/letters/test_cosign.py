"""The second inspector co-signs the record: made a party of the case, then signing works.

The record's signers are every inspector party of the case (lead first), never a list
typed in: a co-inspector added after a version was issued signs the next version, which
supersedes it.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from server.appkeys import DB
from server.cases.models import CaseParty
from tests.letters.flow import Client, inspected, make_world
from tests.letters.test_api import RECORD, sign


async def test_lead_adds_a_co_inspector_who_then_co_signs(client: Client) -> None:
    world = await make_world(client)
    async with client.app[DB].begin() as session:
        # Only the lead is on the case, as booking leaves it.
        await session.execute(
            delete(CaseParty).where(
                CaseParty.case_id == world.case_id,
                CaseParty.principal_id == world.second_inspector.id,
                CaseParty.principal_kind == "staff",
            )
        )
        lead = await session.scalar(
            select(CaseParty).where(
                CaseParty.case_id == world.case_id,
                CaseParty.principal_id == world.inspector.id,
                CaseParty.principal_kind == "staff",
            )
        )
        assert lead is not None
        lead.role = "lead"
    await inspected(client, world)
    url = f"/api/v1/cases/{world.case_id}/letters"
    r = await client.post(url, json=RECORD, headers=world.inspector.headers)
    assert r.status == 201, await r.text()
    alone = await r.json()
    assert [s["name"] for s in alone["signers"]] == ["李娜", "张伟"]

    # A record cannot state someone who is not an inspector of the case.
    body = {**RECORD, "inspectors": [world.inspector.id, world.second_inspector.id]}
    r = await client.post(url, json=body, headers=world.inspector.headers)
    assert r.status == 409
    assert (await r.json())["error"]["details"]["field"] == "inspectors"
    # Nor can that person add themselves.
    r = await client.post(
        f"/api/v1/cases/{world.case_id}/parties",
        json={"user_id": world.second_inspector.id, "role": "inspector"},
        headers=world.second_inspector.headers,
    )
    assert r.status == 404

    r = await client.post(
        f"/api/v1/cases/{world.case_id}/parties",
        json={"user_id": world.second_inspector.id, "role": "inspector"},
        headers=world.inspector.headers,
    )
    assert r.status == 201, await r.text()
    # The new version names every inspector of the case and replaces the first one.
    r = await client.post(url, json=body, headers=world.inspector.headers)
    assert r.status == 201, await r.text()
    letter = await r.json()
    assert letter["supersedes_id"] == alone["id"] and letter["version"] == 2

    first = await sign(client, letter["id"], world.inspector.headers)
    assert first.status == 200, await first.text()
    second = await sign(client, letter["id"], world.second_inspector.headers)
    assert second.status == 200, await second.text()
    view = await second.json()
    assert view["status"] == "partially_signed"
    assert [bool(s.get("signed_at")) for s in view["signers"]] == [True, True, False]
    assert view["waiting_for"] == "张伟"  # the applicant signs last

    # The case page lists the record by name, version and signers, with the PDF.
    page = await client.get(
        f"/staff/cases/{world.case_id}",
        headers={**world.inspector.headers, "Accept-Language": "zh-CN"},
    )
    html = await page.text()
    assert f'data-letter="{letter["id"]}"' in html and "部分已签" in html
    assert "王强" in html and f"/api/v1/letters/{letter['id']}/pdf" in html
