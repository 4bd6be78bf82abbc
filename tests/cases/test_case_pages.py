"""The case list and the case page's procedure forms (server-rendered, bearer-authenticated)."""

from __future__ import annotations

from server.appkeys import DB
from server.cases.models import Case
from tests.cases.conftest import Client
from tests.cases.test_procedure import _case, _matter, _qualify, _user_id
from tests.support import applicant_headers, staff_headers

ZH = {"Accept-Language": "zh-CN"}


async def test_case_list_shows_only_what_the_viewer_may_read(client: Client) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    outsider_h = await staff_headers(client, "zhao", "inspector")
    sup_h = await staff_headers(client, "boss", "supervisor")
    lead = await _user_id(client, "wang")
    matter_id = await _matter(client, internal_review=False)
    applicant_h = await applicant_headers(client, "13900139010")
    case_id = await _case(client, matter_id, lead, "13900139010", status="scheduled")
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        number = case.number

    page = await (await client.get("/staff/cases", headers={**lead_h, **ZH})).text()
    assert number in page and "已预约" in page and "进行视频核查" in page
    page = await (await client.get("/staff/cases", headers={**outsider_h, **ZH})).text()
    assert number not in page
    page = await (await client.get("/staff/cases?mine=", headers={**sup_h, **ZH})).text()
    assert number in page  # oversight
    page = await (await client.get("/me", headers={**applicant_h, **ZH})).text()
    assert number in page and f"/me/cases/{case_id}" in page
    other_h = await applicant_headers(client, "13900139011")
    page = await (await client.get("/me", headers={**other_h, **ZH})).text()
    assert number not in page


async def test_decision_form_errors_are_shown_and_change_nothing(client: Client) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    lead = await _user_id(client, "wang")
    matter_id = await _matter(client, internal_review=False)
    await _qualify(client, [lead], matter_id)
    case_id = await _case(client, matter_id, lead, "13900139012")
    page = await client.get(f"/staff/cases/{case_id}", headers={**lead_h, **ZH})
    assert 'id="decision-form"' in await page.text()

    r = await client.post(
        f"/cases/{case_id}/step/decide",
        data={"outcome": "rectify", "requirements": "", "rectify_days": "5"},
        headers={**lead_h, **ZH},
        allow_redirects=False,
    )
    assert r.status == 422
    text = await r.text()
    assert "请填写理由" in text and "限期整改需要填写整改要求" in text
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None and case.status == "inspecting" and case.head_seq == 1

    r = await client.post(
        f"/cases/{case_id}/step/decide",
        data={"outcome": "rectify", "reason": "灭火器过期", "requirements": "更换灭火器"},
        headers={**lead_h, **ZH},
        allow_redirects=False,
    )
    assert r.status == 303 and r.headers["Location"].startswith(f"/staff/cases/{case_id}")
    page = await (await client.get(f"/staff/cases/{case_id}", headers={**lead_h, **ZH})).text()
    assert "整改中" in page and 'id="rectify-deadline"' in page
    # A closed step names the state instead of pretending.
    r = await client.post(
        f"/cases/{case_id}/step/close", data={}, headers={**lead_h, **ZH}, allow_redirects=False
    )
    assert r.status == 409 and "rectifying" in await r.text()
