from __future__ import annotations

import datetime as dt

import pytest

from server.errors import ValidationError
from server.letters import records

DAY = dt.date(2026, 12, 1)
START = dt.datetime(2026, 12, 1, 1, 30, tzinfo=dt.UTC)
CHECKLIST = [
    {"item": "生产场所与申请材料一致", "result": "ok"},
    {"item": "种子检验室配备发芽箱", "result": "not_ok", "note": "发芽箱未校准"},
    {"item": "仓储设施", "result": "na"},
]


def _record(body: dict[str, object]) -> str:
    checklist, findings, decision = records.parse_outcome(body, inspection_day=DAY)
    record = records.InspectionRecord(
        case_number="YK-20261201-0001",
        matter_title="农作物种子生产经营许可证变更",
        applicant="丰禾种业有限公司（张伟）",
        site_address="余杭区仁和街道种业路 18 号",
        inspectors=("李娜", "王强"),
        started_at=START,
        ended_at=START + dt.timedelta(minutes=12),
        checklist=checklist,
        findings=findings,
        decision=decision,
    )
    return records.record_text(record, "Asia/Shanghai")


def test_rectify_record_lists_requirements_and_deadline() -> None:
    text = _record(
        {
            "checklist": CHECKLIST,
            "findings": ["发芽箱校准证书过期"],
            "outcome": "rectify",
            "requirements": ["完成发芽箱校准并上传证书"],
            "deadline": "2026-12-15",
        }
    )
    assert "勘验时间：2026年12月1日 09:30 至 2026年12月1日 09:42" in text
    assert "2. 种子检验室配备发芽箱：不符合（发芽箱未校准）" in text
    assert "三、勘验结论：限期整改" in text
    assert "请于2026年12月15日前完成整改" in text


def test_pass_and_fail() -> None:
    assert "勘验结论：通过" in _record({"checklist": CHECKLIST, "outcome": "pass"})
    text = _record({"checklist": CHECKLIST, "outcome": "fail", "reason": "场所不存在"})
    assert "理由：场所不存在" in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"checklist": [], "outcome": "pass"}, "checklist"),
        ({"checklist": [{"item": "x", "result": "maybe"}], "outcome": "pass"}, "checklist.0"),
        ({"checklist": CHECKLIST, "outcome": "later"}, "outcome"),
        ({"checklist": CHECKLIST, "outcome": "rectify", "deadline": "2026-12-15"}, "requirements"),
        ({"checklist": CHECKLIST, "outcome": "rectify", "requirements": ["a"]}, "deadline"),
        (
            {
                "checklist": CHECKLIST,
                "outcome": "rectify",
                "requirements": ["a"],
                "deadline": "2026-12-01",
            },
            "deadline",
        ),
        ({"checklist": CHECKLIST, "outcome": "fail"}, "reason"),
    ],
)
def test_incomplete_decisions_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        records.parse_outcome(body, inspection_day=DAY)
    assert field in info.value.fields
