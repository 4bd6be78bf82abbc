"""Documents state the facts of the case: every field from the case, nothing typed in.

Runs on SQLite and PostgreSQL. The case is booked by the booking service, the room
events are the ones the live hub records (with the same procedure moves), the checklist
and the decision go through the evidence API; the PDF text is read back with pdftotext.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from recordings.models import Location
from server.appkeys import DB
from server.booking.models import Matter
from server.cases.models import Case, CaseEvent
from server.letters.facts import latest_session
from tests.letters.flow import (
    CHECKLIST,
    ENTERPRISE,
    SITE,
    Client,
    World,
    decide,
    end_session,
    inspected,
    make_world,
    snapshot,
    start_session,
    walk_checklist,
)

ZONE = ZoneInfo("Asia/Shanghai")


def hm(value: Any) -> str:
    local = value.astimezone(ZONE)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


async def post_letter(client: Client, world: World, body: dict[str, Any]) -> Any:
    return await client.post(
        f"/api/v1/cases/{world.case_id}/letters", json=body, headers=world.inspector.headers
    )


async def pdf_text(client: Client, letter: dict[str, Any], headers: dict[str, str]) -> str:
    response = await client.get(letter["pdf_url"], headers=headers)
    assert response.status == 200
    data = await response.read()
    out = await asyncio.to_thread(
        lambda: subprocess.run(
            ["pdftotext", "-raw", "-", "-"], input=data, capture_output=True, check=True, timeout=30
        ).stdout.decode()
    )
    return "".join(out.split())  # line breaks of the layout fall anywhere


def squash(text: str) -> str:
    return "".join(text.split())


async def _events(client: Client, world: World, kind: str) -> list[CaseEvent]:
    async with client.app[DB]() as session:
        rows = await session.scalars(
            select(CaseEvent)
            .where(CaseEvent.case_id == world.case_id, CaseEvent.kind == kind)
            .order_by(CaseEvent.seq)
        )
        return list(rows)


async def test_record_states_the_case(client: Client) -> None:
    world = await make_world(client)
    await start_session(client, world)
    await walk_checklist(client, world)
    async with client.app[DB].begin() as session:  # the applicant shared the location
        session.add(
            Location(
                case_id=world.case_id,
                participant=f"applicant-{world.applicant.id}",
                principal_kind="applicant",
                principal_id=world.applicant.id,
                lat=30.4123,
                lon=120.1234,
                accuracy_m=15,
                distance_m=820,
                threshold_m=500,
                flagged=True,
            )
        )
    decision = await decide(client, world, "rectify")
    await end_session(client, world)
    r = await post_letter(client, world, {"kind": "record", "remark": "申请人对结论无异议"})
    assert r.status == 201, await r.text()
    record = await r.json()

    (admitted,) = await _events(client, world, "live.admitted")
    concluded = (await _events(client, world, "case.decided"))[0]
    body = record["body"]
    assert f"案件编号：{world.case_number}" in body
    assert "勘验事项：农作物种子生产经营许可证变更" in body
    assert (
        f"申请人：{ENTERPRISE['name']}（统一社会信用代码：{ENTERPRISE['credit_code']}），"
        f"联系人：{ENTERPRISE['contact_name']}" in body
    )
    assert f"勘验地点：{SITE}" in body
    assert "现场定位：北纬 30.41230°，东经 120.12340°（精度约 15 米），距登记地址 820 米，" in body
    assert "超出允许范围 500 米，已标记待核" in body
    # The actual session (admission to the decision that concluded it), not the booked 10:00.
    assert f"勘验时间：{hm(admitted.created_at)} 至 {hm(concluded.created_at)}" in body
    assert "勘验人员：李娜、王强" in body
    assert f"1. {CHECKLIST[0]['text']}：符合" in body
    assert f"2. {CHECKLIST[1]['text']}：不符合（未校准）" in body
    assert "二、勘验结论：限期整改" in body and "理由：发芽箱未校准" in body
    assert "1. 完成发芽箱校准" in body and "2. 上传校准证书" in body
    async with client.app[DB]() as session:
        case = await session.get(Case, world.case_id)
        assert case is not None and case.deadline is not None
        deadline = case.deadline
    assert decision["state"] == "rectifying"
    assert f"请于{deadline.year}年{deadline.month}月{deadline.day}日前完成整改" in body
    assert "备注：申请人对结论无异议" in body
    assert record["data"]["deadline"] == deadline.isoformat()
    # Signers: every inspector party, the lead first, then the enterprise's contact.
    assert [(s["name"], s["role"]) for s in record["signers"]] == [
        ("李娜", "inspector"),
        ("王强", "inspector"),
        ("张伟", "applicant"),
    ]
    # The PDF says the same (pdftotext of the sealed file).
    text = await pdf_text(client, record, world.applicant.headers)
    for line in body.splitlines():
        assert squash(line) in text, line
    assert "13800138000" not in text


async def test_commitment_fields_come_from_the_case(client: Client) -> None:
    world = await make_world(client, person=True)
    await start_session(client, world)
    r = await post_letter(client, world, {"kind": "commitment", "remark": "现场另有临时仓库一处"})
    assert r.status == 201, await r.text()
    letter = await r.json()
    (admitted,) = await _events(client, world, "live.admitted")
    day = admitted.created_at.astimezone(ZONE).date()
    body = letter["body"]
    assert "本人张伟，就申请办理“农作物种子生产经营许可证变更”事项" in body
    assert f"在{day.year}年{day.month}月{day.day}日通过视频方式" in body
    assert f"（{SITE}）" in body and "备注：现场另有临时仓库一处" in body
    assert letter["signers"] == [
        {
            "position": 0,
            "name": "张伟",
            "role": "applicant",
            "role_label": "申请人",
            "signed": False,
            "signed_at": None,
            "signature_sha256": None,
        }
    ]
    text = await pdf_text(client, letter, world.applicant.headers)
    assert squash("现场另有临时仓库一处") in text and world.case_number in text
    # Stating a field the case does not say is refused; typing one in is not possible.
    before = await snapshot(client, world.case_id)
    r = await post_letter(
        client, world, {"kind": "commitment", "fields": {"site_address": "别处 1 号"}}
    )
    error = (await r.json())["error"]
    assert r.status == 409 and error["code"] == "record_contradicts_case", error
    assert error["details"] == {"field": "site_address", "case": SITE, "stated": "别处 1 号"}
    r = await post_letter(client, world, {"kind": "commitment", "applicant_name": "李四"})
    assert r.status == 422
    assert await snapshot(client, world.case_id) == before


async def test_person_record_masks_the_identity(client: Client) -> None:
    world = await make_world(client, person=True)
    await inspected(client, world, "pass")
    r = await post_letter(client, world, {"kind": "record"})
    assert r.status == 201, await r.text()
    body = (await r.json())["body"]
    assert "申请人：张伟（身份证号：110101********7731）" in body
    assert "110101199003077731" not in body
    assert "二、勘验结论：通过" in body


async def _refused(client: Client, world: World, body: dict[str, Any], status: int) -> str:
    before = await snapshot(client, world.case_id)
    r = await post_letter(client, world, body)
    payload = await r.json()
    assert r.status == status, payload
    assert await snapshot(client, world.case_id) == before
    return str(payload["error"]["code"])


async def test_a_record_that_contradicts_the_case_is_refused(client: Client) -> None:
    world = await make_world(client)
    record = {"kind": "record"}
    assert await _refused(client, world, record, 409) == "record_no_session"
    await start_session(client, world)
    assert await _refused(client, world, record, 409) == "record_session_not_ended"
    await walk_checklist(client, world)
    await decide(client, world, "rectify")
    # Concluded by the decision while the call goes on: the record may be signed in the call.
    (ok := await post_letter(client, world, {**record, "outcome": "rectify"}))
    assert ok.status == 201, await ok.text()
    r = await client.post(
        f"/api/v1/cases/{world.case_id}/letters",
        json={**record, "outcome": "pass"},
        headers={**world.inspector.headers, "Accept-Language": "zh-CN"},
    )
    error = (await r.json())["error"]
    assert r.status == 409 and error["code"] == "record_contradicts_case"
    assert error["details"] == {"field": "outcome", "case": "rectify", "stated": "pass"}
    assert "与案件" in error["message"]
    stated = [{"item": CHECKLIST[0]["text"], "result": "ok"}]  # one item left out
    assert await _refused(client, world, {**record, "checklist": stated}, 409) == (
        "record_contradicts_case"
    )
    assert await _refused(client, world, {**record, "deadline": "2099-01-01"}, 409) == (
        "record_contradicts_case"
    )
    assert await _refused(client, world, {**record, "inspectors": [world.inspector.id]}, 409) == (
        "record_contradicts_case"
    )
    assert await _refused(client, world, {**record, "findings": ["x"]}, 422) == (
        "validation_failed"
    )
    # The matter gained a checklist item after the decision: that item has no result.
    async with client.app[DB].begin() as session:
        case = await session.get(Case, world.case_id)
        assert case is not None
        matter = await session.get(Matter, case.matter_id)
        assert matter is not None
        matter.checklist = [*CHECKLIST, {"key": "store", "text": "仓储设施"}]
    before = await snapshot(client, world.case_id)
    r = await post_letter(client, world, record)
    error = (await r.json())["error"]
    assert r.status == 409 and error["code"] == "record_checklist_incomplete"
    assert error["details"]["missing"] == ["仓储设施"]
    assert await snapshot(client, world.case_id) == before


async def test_no_record_while_the_decision_is_in_review(client: Client) -> None:
    world = await make_world(client, review=True)
    await start_session(client, world)
    await walk_checklist(client, world)
    assert await _refused(client, world, {"kind": "record"}, 409) == "record_session_not_ended"
    await end_session(client, world)
    assert await _refused(client, world, {"kind": "record"}, 409) == "record_no_decision"


def test_the_latest_session_is_the_one_stated() -> None:
    import datetime as dt

    t0 = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)

    def ev(minutes: int, kind: str, **data: Any) -> CaseEvent:
        return CaseEvent(kind=kind, data=data, created_at=t0 + dt.timedelta(minutes=minutes))

    events = [
        ev(0, "live.joined", room="appt-1", participant="applicant-3", role="applicant"),
        ev(1, "live.joined", room="appt-1", participant="staff-1", role="inspector"),
        ev(2, "live.admitted", room="appt-1", participant="staff-9"),  # an expert: no start
        ev(3, "live.admitted", room="appt-1", participant="applicant-3"),
        ev(20, "case.decided"),
        ev(25, "live.ended", room="appt-1"),
        ev(60 * 24, "live.joined", room="appt-2", participant="applicant-3", role="applicant"),
        ev(60 * 24 + 1, "live.admitted", room="appt-2", participant="applicant-3"),
        ev(60 * 24 + 9, "live.ended", room="appt-2"),
    ]
    first = latest_session(events[:6])
    assert first is not None and first.room == "appt-1"
    assert first.started_at == t0 + dt.timedelta(minutes=3)
    assert first.end == t0 + dt.timedelta(minutes=20)  # concluded before the call ended
    second = latest_session(events)
    assert second is not None and second.room == "appt-2"
    assert second.concluded_at is None and second.end == t0 + dt.timedelta(minutes=60 * 24 + 9)
    assert latest_session(events[:2]) is None
