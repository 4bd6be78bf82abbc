"""The record's text and its refusals, from facts alone (no database)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from server.letters import records
from server.letters.errors import LetterStateError
from server.letters.facts import (
    ApplicantFacts,
    CaseFacts,
    DecisionFacts,
    Inspector,
    ItemFacts,
    SessionFacts,
)

START = dt.datetime(2026, 12, 1, 1, 30, tzinfo=dt.UTC)
FACTS = CaseFacts(
    case_number="YK-20261201-0001",
    matter_title="农作物种子生产经营许可证变更",
    applicant=ApplicantFacts(
        "enterprise", "丰禾种业有限公司", "张伟", "91330100MA2CCQLR2K", "张伟"
    ),
    site_address="余杭区仁和街道种业路 18 号",
    location=None,
    session=SessionFacts("appt-1", START, START + dt.timedelta(minutes=14), None),
    inspectors=(Inspector(1, "李娜", "inspector"), Inspector(2, "王强", "inspector")),
    checklist=(
        ItemFacts("生产场所与申请材料一致", "ok", "", (3, 5)),
        ItemFacts("种子检验室配备发芽箱", "problem", "发芽箱未校准", ()),
        ItemFacts("仓储设施", "na", "", ()),
    ),
    missing=(),
    decision=DecisionFacts(
        "rectify",
        "发芽箱未校准",
        ("完成发芽箱校准并上传证书",),
        dt.date(2026, 12, 15),
        "李娜",
        START + dt.timedelta(minutes=12),
    ),
)


def test_rectify_record_lists_results_snapshots_requirements_and_deadline() -> None:
    text = records.record_text(FACTS, "Asia/Shanghai")
    assert "勘验时间：2026年12月1日 09:30 至 2026年12月1日 09:44" in text
    assert "1. 生产场所与申请材料一致：符合〔照片 #3、#5〕" in text
    assert "2. 种子检验室配备发芽箱：不符合（发芽箱未校准）" in text
    assert "3. 仓储设施：不适用" in text
    assert "二、勘验结论：限期整改" in text and "1. 完成发芽箱校准并上传证书" in text
    assert "请于2026年12月15日前完成整改" in text and "备注" not in text


def test_pass_and_fail() -> None:
    passed = dataclasses.replace(
        FACTS, decision=dataclasses.replace(FACTS.decision, outcome="pass", reason="")
    )
    assert "勘验结论：通过" in records.record_text(passed, "Asia/Shanghai")
    failed = dataclasses.replace(
        FACTS, decision=dataclasses.replace(FACTS.decision, outcome="fail", reason="场所不存在")
    )
    text = records.record_text(failed, "Asia/Shanghai", "申请人拒绝签字")
    assert "勘验结论：不通过" in text and "理由：场所不存在" in text
    assert "备注：申请人拒绝签字" in text


@pytest.mark.parametrize(
    ("change", "state", "code"),
    [
        ({"session": None}, "decided", "record_no_session"),
        (
            {"session": SessionFacts("appt-1", START, None, None)},
            "inspecting",
            "record_session_not_ended",
        ),
        ({"missing": ("仓储设施",)}, "decided", "record_checklist_incomplete"),
        ({}, "under_review", "record_decision_pending"),
        ({"decision": None}, "decided", "record_no_decision"),
        (
            {"decision": dataclasses.replace(FACTS.decision, decided_at=START - dt.timedelta(1))},
            "re_inspection",
            "record_no_decision",
        ),
    ],
)
def test_what_makes_a_record_impossible(change: dict[str, object], state: str, code: str) -> None:
    with pytest.raises(LetterStateError) as info:
        records.check(dataclasses.replace(FACTS, **change), state)  # type: ignore[arg-type]
    assert info.value.code == code and info.value.status == 409


def test_statements_are_checked_not_taken() -> None:
    _session, decision = records.check(FACTS, "rectifying")
    same = {
        "outcome": "rectify",
        "deadline": "2026-12-15",
        "inspectors": [2, 1],
        "checklist": [
            {"item": "生产场所与申请材料一致", "result": "ok"},
            {"item": "种子检验室配备发芽箱", "result": "not_ok"},
            {"item": "仓储设施", "result": "na"},
        ],
    }
    records.check_statements(FACTS, decision, same)
    for key, value in [
        ("outcome", "pass"),
        ("deadline", "2026-12-16"),
        ("inspectors", [1]),
        ("checklist", same["checklist"][:2]),  # type: ignore[index]
    ]:
        with pytest.raises(records.ContradictionError) as info:
            records.check_statements(FACTS, decision, {**same, key: value})
        assert info.value.details["field"] == key
