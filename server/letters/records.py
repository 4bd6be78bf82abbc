"""The inspection record (勘验笔录): written from what the inspector ticked and decided.

The record is a legal document in Chinese whatever language the inspector's browser
uses, so its wording lives here rather than in the translation catalog. It is generated,
not typed: the checklist results, the findings and the decision go in, a fixed structure
comes out, and every signer signs the same text (its hash is in the timeline).

The decision is one of three, and each demands what the practice demands:

- ``pass`` (通过): nothing more;
- ``rectify`` (限期整改): at least one requirement and a deadline after the inspection day;
- ``fail`` (不通过): a reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from server.errors import ValidationError
from server.parsing import try_date

Outcome = Literal["pass", "rectify", "fail"]
ItemResult = Literal["ok", "not_ok", "na"]

_RESULT_CN: dict[str, str] = {"ok": "符合", "not_ok": "不符合", "na": "不适用"}
_OUTCOME_CN: dict[str, str] = {"pass": "通过", "rectify": "限期整改", "fail": "不通过"}


@dataclass(frozen=True, slots=True)
class ChecklistResult:
    item: str
    result: ItemResult
    note: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    requirements: tuple[str, ...] = ()
    deadline: dt.date | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class InspectionRecord:
    case_number: str
    matter_title: str
    applicant: str  # person, or "enterprise（representative）"
    site_address: str
    inspectors: tuple[str, ...]
    started_at: dt.datetime
    ended_at: dt.datetime
    checklist: tuple[ChecklistResult, ...]
    findings: tuple[str, ...]
    decision: Decision
    method: str = "远程视频勘验"
    extra: Mapping[str, str] = field(default_factory=dict)


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= limit else None


def parse_outcome(
    body: Mapping[str, Any], *, inspection_day: dt.date
) -> tuple[tuple[ChecklistResult, ...], tuple[str, ...], Decision]:
    """Checklist, findings and decision from an API body; field errors name what is wrong."""
    errors: dict[str, str] = {}
    checklist: list[ChecklistResult] = []
    for index, raw in enumerate(body.get("checklist") or []):
        item = _text(raw.get("item") if isinstance(raw, dict) else None, 200)
        result = raw.get("result") if isinstance(raw, dict) else None
        if item is None or result not in _RESULT_CN:
            errors[f"checklist.{index}"] = "Each checklist item needs a text and a result"
            continue
        note = raw.get("note") or ""
        checklist.append(ChecklistResult(item, result, str(note)[:500]))
    if not checklist and "checklist" not in errors:
        errors["checklist"] = "The record needs at least one checklist item"
    findings = tuple(
        f for f in (_text(x, 1000) for x in body.get("findings") or []) if f is not None
    )
    outcome = body.get("outcome")
    requirements = tuple(
        r for r in (_text(x, 500) for x in body.get("requirements") or []) if r is not None
    )
    deadline: dt.date | None = None
    reason = _text(body.get("reason"), 1000) or ""
    if outcome not in _OUTCOME_CN:
        errors["outcome"] = "Choose pass, rectify or fail"
    elif outcome == "rectify":
        if not requirements:
            errors["requirements"] = "Rectification needs at least one requirement"
        deadline = try_date(body.get("deadline"))
        if deadline is None:
            errors["deadline"] = "Rectification needs a deadline (YYYY-MM-DD)"
        elif deadline <= inspection_day:
            errors["deadline"] = "The deadline must be after the inspection day"
    elif outcome == "fail" and not reason:
        errors["reason"] = "A failed inspection needs a reason"
    if errors:
        raise ValidationError(fields=errors)
    decision = Decision(outcome, requirements, deadline, reason)  # type: ignore[arg-type]
    return tuple(checklist), findings, decision


def _when(value: dt.datetime, zone: ZoneInfo) -> str:
    local = value.astimezone(zone)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def record_text(record: InspectionRecord, timezone: str) -> str:
    """The record's full text, as it appears in the PDF and is signed."""
    zone = ZoneInfo(timezone)
    lines = [
        f"案件编号：{record.case_number}",
        f"勘验事项：{record.matter_title}",
        f"申请人：{record.applicant}",
        f"勘验地点：{record.site_address}",
        f"勘验方式：{record.method}",
        f"勘验时间：{_when(record.started_at, zone)} 至 {_when(record.ended_at, zone)}",
        f"勘验人员：{'、'.join(record.inspectors)}",
    ]
    lines += [f"{key}：{value}" for key, value in record.extra.items()]
    lines += ["", "一、勘验内容及结果"]
    for number, item in enumerate(record.checklist, 1):
        note = f"（{item.note}）" if item.note else ""
        lines.append(f"{number}. {item.item}：{_RESULT_CN[item.result]}{note}")
    lines += ["", "二、勘验发现"]
    if record.findings:
        lines += [f"{n}. {f}" for n, f in enumerate(record.findings, 1)]
    else:
        lines.append("未发现异常情况。")
    decision = record.decision
    lines += ["", f"三、勘验结论：{_OUTCOME_CN[decision.outcome]}"]
    if decision.outcome == "rectify":
        lines += [f"{n}. {r}" for n, r in enumerate(decision.requirements, 1)]
        assert decision.deadline is not None
        d = decision.deadline
        lines.append(
            f"请于{d.year}年{d.month}月{d.day}日前完成整改，并通过本系统提交整改材料申请复查。"
        )
    elif decision.outcome == "fail":
        lines.append(f"理由：{decision.reason}")
    else:
        lines.append("现场条件符合申请事项要求。")
    lines += [
        "",
        "以上笔录经当事人确认无误。勘验过程已全程录音录像，并与本笔录一并归入案件档案。",
    ]
    return "\n".join(lines) + "\n"


def summarize(checklist: Sequence[ChecklistResult]) -> dict[str, int]:
    """Counts per result, for the timeline event."""
    counts = {"ok": 0, "not_ok": 0, "na": 0}
    for item in checklist:
        counts[item.result] += 1
    return counts
