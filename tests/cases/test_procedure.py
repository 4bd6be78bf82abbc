"""The case procedure through the API: states, internal review, deadlines, closing, parties.

Runs on SQLite and PostgreSQL (the ``client`` fixture of this folder).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from server.appkeys import DB, SETTINGS
from server.booking.calendar import HolidayCalendar
from server.booking.models import Department, HolidayOverride, Matter, StaffQualification
from server.cases import procedure
from server.cases.models import Case, CaseEvent, CaseParty
from server.cases.numbers import open_case
from tests.cases.conftest import Client
from tests.support import applicant_headers, staff_headers


async def _matter(client: Client, **flags: Any) -> int:
    async with client.app[DB].begin() as session:
        dept = Department(code=f"d{len(flags)}", name="市场监管局")
        session.add(dept)
        await session.flush()
        matter = Matter(
            code=f"m-{len(flags)}",
            department_id=dept.id,
            name="种子生产经营许可变更",
            zone="enterprise",
            kind="inspection",
            **flags,
        )
        session.add(matter)
        await session.flush()
        return matter.id


async def _qualify(client: Client, username_ids: list[int], matter_id: int) -> None:
    async with client.app[DB].begin() as session:
        for user_id in username_ids:
            session.add(StaffQualification(user_id=user_id, matter_id=matter_id))


async def _user_id(client: Client, username: str) -> int:
    from server.accounts.models import User

    async with client.app[DB]() as session:
        found = await session.scalar(select(User.id).where(User.username == username))
        assert found is not None
        return found


async def _case(
    client: Client, matter_id: int, lead: int, applicant: str, status: str = "inspecting"
) -> int:
    from server.accounts.models import Applicant

    async with client.app[DB].begin() as session:
        person = await session.scalar(select(Applicant).where(Applicant.mobile == applicant))
        if person is None:
            person = Applicant(mobile=applicant, name="张小明")
            session.add(person)
            await session.flush()
        case = await open_case(
            session,
            title="种子公司许可变更勘验",
            zone=client.app[SETTINGS].zone,
            applicant_id=person.id,
            matter_id=matter_id,
            status=status,
        )
        session.add(
            CaseParty(case_id=case.id, principal_kind="staff", principal_id=lead, role="lead")
        )
        return case.id


async def _state(client: Client, case_id: int) -> Case:
    async with client.app[DB]() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        return case


async def test_rectify_goes_through_internal_review_and_a_working_day_deadline(
    client: Client,
) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    other_h = await staff_headers(client, "li", "inspector")
    outsider_h = await staff_headers(client, "zhao", "inspector")
    lead, other = await _user_id(client, "wang"), await _user_id(client, "li")
    matter_id = await _matter(client, internal_review=True, issues_licence=True)
    await _qualify(client, [lead, other], matter_id)
    applicant_h = await applicant_headers(client, "13900139000")
    case_id = await _case(client, matter_id, lead, "13900139000")
    # The next three days are a holiday (an admin's override): the deadline skips them.
    today = dt.datetime.now(client.app[SETTINGS].zone).date()
    async with client.app[DB].begin() as session:
        for n in (1, 2, 3):
            session.add(HolidayOverride(day=today + dt.timedelta(days=n), working=False))

    # Someone who is not a party does not even learn that the case exists.
    r = await client.post(
        f"/api/v1/cases/{case_id}/decision", json={"outcome": "pass"}, headers=outsider_h
    )
    assert r.status == 404
    # With internal review on, a reviewer is required, and it is not the drafter.
    body = {"outcome": "rectify", "reason": "通风不足", "requirements": "加装排风扇"}
    r = await client.post(f"/api/v1/cases/{case_id}/decision", json=body, headers=lead_h)
    assert r.status == 422 and "reviewer_id" in (await r.json())["error"]["fields"]
    r = await client.post(
        f"/api/v1/cases/{case_id}/decision",
        json={**body, "reviewer_id": lead, "rectify_days": 2},
        headers=lead_h,
    )
    assert r.status == 422
    r = await client.post(
        f"/api/v1/cases/{case_id}/decision",
        json={**body, "reviewer_id": other, "rectify_days": 2},
        headers=lead_h,
    )
    assert r.status == 201, await r.text()
    assert (await r.json())["state"] == "under_review"
    # The drafter cannot approve their own decision; the reviewer can.
    r = await client.post(f"/api/v1/cases/{case_id}/review", json={"approve": True}, headers=lead_h)
    assert r.status == 403
    r = await client.post(
        f"/api/v1/cases/{case_id}/review", json={"approve": True, "note": "同意"}, headers=other_h
    )
    assert r.status == 200, await r.text()
    view = await r.json()
    assert view["state"] == "rectifying"
    deadline = dt.date.fromisoformat(view["deadline"])
    holidays = {today + dt.timedelta(days=n): (False, None) for n in (1, 2, 3)}
    calendar = HolidayCalendar(holidays)  # the statutory days and 调休, plus the overrides
    after = [today + dt.timedelta(days=n) for n in range(1, 30)]
    assert deadline == [d for d in after if calendar.is_working_day(d)][1]
    assert deadline > today + dt.timedelta(days=4)
    # The applicant sees the deadline on their case.
    r = await client.get(f"/api/v1/cases/{case_id}/procedure", headers=applicant_h)
    assert (await r.json())["deadline"] == view["deadline"]
    assert "withdraw" in (await r.json())["actions"]
    assert "decide" not in (await r.json())["actions"]

    # Re-inspection by documents, then a pass, then closing needs the licence number.
    r = await client.post(
        f"/api/v1/cases/{case_id}/document-review", json={"note": "已提交整改照片"}, headers=lead_h
    )
    assert (await r.json())["state"] == "re_inspection"
    async with client.app[DB].begin() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        await procedure.admitted(session, case, None, consultation=False)
    r = await client.post(
        f"/api/v1/cases/{case_id}/decision",
        json={"outcome": "pass", "reviewer_id": other},
        headers=lead_h,
    )
    assert (await r.json())["state"] == "under_review"
    r = await client.post(
        f"/api/v1/cases/{case_id}/review", json={"approve": True}, headers=other_h
    )
    assert (await r.json())["state"] == "decided"
    r = await client.post(f"/api/v1/cases/{case_id}/close", json={}, headers=lead_h)
    assert r.status == 422 and "licence_number" in (await r.json())["error"]["fields"]
    r = await client.post(f"/api/v1/cases/{case_id}/close", json={}, headers=other_h)
    assert r.status == 403  # the reviewer is not the lead
    r = await client.post(
        f"/api/v1/cases/{case_id}/close", json={"licence_number": "D-2026-0042"}, headers=lead_h
    )
    assert (await r.json())["state"] == "closed"
    # A closed case refuses further steps with its state named.
    r = await client.post(
        f"/api/v1/cases/{case_id}/cancel", json={"reason": "误操作"}, headers=lead_h
    )
    assert r.status == 409
    error = (await r.json())["error"]
    assert error["code"] == "case_state" and "closed" in error["message"]

    async with client.app[DB]() as session:
        kinds = [
            (e.kind, e.actor_name)
            for e in await session.scalars(
                select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)
            )
            if e.kind.startswith("case.")
        ]
    assert kinds == [
        ("case.opened", None),
        ("case.under_review", "wang"),
        ("case.decided", "li"),
        ("case.rectifying", "li"),
        ("case.re_inspection", "wang"),
        ("case.inspecting", None),
        ("case.under_review", "wang"),
        ("case.decided", "li"),
        ("case.closed", "wang"),
    ]


async def test_returned_draft_goes_back_to_the_inspector(client: Client) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    sup_h = await staff_headers(client, "boss", "supervisor")
    lead, boss = await _user_id(client, "wang"), await _user_id(client, "boss")
    matter_id = await _matter(client)
    await _qualify(client, [lead], matter_id)
    case_id = await _case(client, matter_id, lead, "13900139001")
    # A supervisor who is no party may read (oversight) but not review.
    r = await client.post(f"/api/v1/cases/{case_id}/review", json={"approve": True}, headers=sup_h)
    assert r.status == 403
    r = await client.get(f"/api/v1/cases/{case_id}", headers=sup_h)
    assert r.status == 200
    r = await client.post(
        f"/api/v1/cases/{case_id}/decision",
        json={"outcome": "fail", "reviewer_id": boss},
        headers=lead_h,
    )
    assert r.status == 422 and set((await r.json())["error"]["fields"]) == {"reason"}
    r = await client.post(
        f"/api/v1/cases/{case_id}/decision",
        json={"outcome": "fail", "reason": "场地不符", "reviewer_id": boss},
        headers=lead_h,
    )
    assert r.status == 201
    r = await client.post(f"/api/v1/cases/{case_id}/review", json={"approve": False}, headers=sup_h)
    assert r.status == 422  # returning needs a reason
    r = await client.post(
        f"/api/v1/cases/{case_id}/review",
        json={"approve": False, "note": "请补充照片"},
        headers=sup_h,
    )
    assert (await r.json())["state"] == "inspecting"
    case = await _state(client, case_id)
    assert case.outcome is None


@pytest.mark.parametrize("step", ["accept", "withdraw"])
async def test_steps_name_the_state_that_refuses_them(client: Client, step: str) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    lead = await _user_id(client, "wang")
    applicant_h = await applicant_headers(client, "13900139002")
    matter_id = await _matter(client)
    case_id = await _case(client, matter_id, lead, "13900139002", status="inspecting")
    headers = lead_h if step == "accept" else applicant_h
    r = await client.post(f"/api/v1/cases/{case_id}/{step}", json={}, headers=headers)
    assert r.status == 409
    assert "inspecting" in (await r.json())["error"]["message"]
    assert (await _state(client, case_id)).status == "inspecting"


async def test_application_accepted_or_rejected(client: Client) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    lead = await _user_id(client, "wang")
    matter_id = await _matter(client)
    first = await _case(client, matter_id, lead, "13900139003", status="submitted")
    second = await _case(client, matter_id, lead, "13900139004", status="submitted")
    r = await client.post(f"/api/v1/cases/{first}/accept", json={}, headers=lead_h)
    assert (await r.json())["state"] == "accepted"
    r = await client.post(f"/api/v1/cases/{second}/reject", json={}, headers=lead_h)
    assert r.status == 422
    r = await client.post(
        f"/api/v1/cases/{second}/reject", json={"reason": "材料不全"}, headers=lead_h
    )
    assert (await r.json())["state"] == "rejected"
    assert (await _state(client, second)).closed_at is not None


def test_consultations_skip_the_inspection_steps() -> None:
    case = Case(number="YK-1", title="t", status="scheduled", kind="consultation")
    assert procedure.is_open(case)
    case.status = procedure.CLOSED
    with pytest.raises(procedure.CaseStateError) as err:
        procedure.require(case, procedure.SCHEDULED)
    assert str(err.value) == "Case YK-1 is closed"


def test_working_days_skip_what_the_calendar_says() -> None:
    monday = dt.date(2026, 11, 30)
    assert procedure.add_working_days(monday, 5, lambda d: d.weekday() < 5) == dt.date(2026, 12, 7)
    assert procedure.add_working_days(monday, 1, lambda d: d != dt.date(2026, 12, 1)) == dt.date(
        2026, 12, 2
    )


def test_the_permission_table_in_the_docs_is_the_rule() -> None:
    from pathlib import Path

    from server.cases.access import PARTY_ROLES, RULES

    docs = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    for action, rule in RULES.items():
        cells = ["✓" if c in rule.parties else "" for c in PARTY_ROLES]
        cells.append("✓" if rule.oversight else "")
        assert f"| `{action}` | " + " | ".join(cells) + " |" in docs, action


async def test_no_decision_before_every_checklist_item_has_a_result(client: Client) -> None:
    lead_h = await staff_headers(client, "wang", "inspector")
    lead = await _user_id(client, "wang")
    items = [{"key": "a", "text": "仓储条件"}, {"key": "b", "text": "检验仪器"}]
    matter_id = await _matter(client, internal_review=False, checklist=items)
    case_id = await _case(client, matter_id, lead, "13900139020")
    url = f"/api/v1/cases/{case_id}/decision"
    r = await client.post(
        f"/api/v1/cases/{case_id}/checklist",
        json={"item": "仓储条件", "result": "ok"},
        headers=lead_h,
    )
    assert r.status == 201
    r = await client.post(url, json={"outcome": "pass"}, headers=lead_h)
    assert r.status == 422
    error = (await r.json())["error"]
    assert "checklist" in error["fields"] and error["details"]["missing"] == ["检验仪器"]
    assert (await _state(client, case_id)).status == "inspecting"
    r = await client.post(
        f"/api/v1/cases/{case_id}/checklist",
        json={"item": "检验仪器", "result": "na"},
        headers=lead_h,
    )
    r = await client.post(url, json={"outcome": "pass"}, headers=lead_h)
    assert r.status == 201 and (await r.json())["state"] == "decided"


def test_every_state_and_timeline_sentence_reads_in_chinese() -> None:
    import re

    from server.cases.story import CARD_SENTENCES, SENTENCES
    from server.i18n import Catalogs

    zh = Catalogs().get("zh_CN")
    from server.cases.listing import APPLICANT_NEXT, NEXT_STEP

    assert set(APPLICANT_NEXT) == set(procedure.STATES)  # every state says what comes next
    every = [*procedure.LABELS.values(), *SENTENCES.values(), *CARD_SENTENCES.values()]
    for msgid in [*every, *NEXT_STEP.values(), *APPLICANT_NEXT.values()]:
        text = zh.gettext(msgid)
        assert text != msgid, msgid
        placeholders = sorted(re.findall(r"%\((\w+)\)s", msgid))
        assert sorted(re.findall(r"%\((\w+)\)s", text)) == placeholders, msgid


def test_every_letter_status_reads_in_chinese() -> None:
    from server.evidence.pages import LETTER_STATUS_LABELS
    from server.i18n import Catalogs

    zh = Catalogs().get("zh_CN")
    for msgid in LETTER_STATUS_LABELS.values():
        assert zh.gettext(msgid) != msgid, msgid


def test_runs_of_sealed_segments_read_as_one_line() -> None:
    from server.cases.story import fold, sentence

    def ev(kind: str, at: str, who: str = "p1") -> dict[str, object]:
        return {"kind": kind, "at": at, "hash": f"h-{at}", "data": {"participant": who}}

    events = [
        ev("live.joined", "t0"),
        ev("recording.segment", "t1"),
        ev("recording.segment", "t2", "p2"),
        ev("recording.segment", "t3"),
        ev("live.ended", "t4"),
        ev("recording.segment", "t5"),
    ]
    shown = fold(events)
    assert [e["kind"] for e in shown] == [
        "live.joined",
        "recording.segments",
        "live.ended",
        "recording.segment",  # a run of one stays itself
    ]
    run = shown[1]
    assert (run["at"], run["until"], run["hash"]) == ("t1", "t3", "h-t3")
    assert sentence(run, {})[1]["count"] == "3"
    assert len(events) == 6  # the events themselves are untouched
