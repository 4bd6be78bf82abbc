"""The inspection record (勘验笔录): the case's facts in a fixed structure, or a refusal.

The record is a legal document in Chinese whatever language the inspector's browser
uses, so its wording lives here rather than in the translation catalog. Every line is
generated from :class:`server.letters.facts.CaseFacts`; the issuer adds a remark at most.

A record that would contradict the case is refused before anything is written:

- no session yet, or one still going on (neither ended nor concluded by a decision):
  ``409 record_no_session`` / ``409 record_session_not_ended`` — the record states when
  the inspection ended;
- a checklist item of the matter without a result: ``409 record_checklist_incomplete``
  (``details.missing``);
- no decision in force from the latest session, or one still in internal review:
  ``409 record_no_decision`` / ``409 record_decision_pending``;
- the request states something the case does not say (an outcome, a deadline, checklist
  results, inspectors): ``409 record_contradicts_case`` (``details.field``, ``case``,
  ``stated``). A client may state what its screen shows, and a stale screen is caught.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from server.letters.errors import LetterStateError
from server.letters.facts import CaseFacts, DecisionFacts, SessionFacts

RESULT_CN: dict[str, str] = {"ok": "符合", "problem": "不符合", "not_ok": "不符合", "na": "不适用"}
OUTCOME_CN: dict[str, str] = {"pass": "通过", "rectify": "限期整改", "fail": "不通过"}
_STATED_RESULT = {"not_ok": "problem"}  # the record API's older spelling of "problem"


class RecordRefusedError(LetterStateError):
    code = "record_refused"
    message = "The record of case %(case)s cannot be issued"


class NoSessionError(RecordRefusedError):
    code = "record_no_session"
    message = "Case %(case)s has no video session in which the applicant was admitted"


class SessionNotEndedError(RecordRefusedError):
    code = "record_session_not_ended"
    message = (
        "The video inspection of case %(case)s has not ended: end the session or "
        "record the decision first"
    )


class ChecklistIncompleteError(RecordRefusedError):
    code = "record_checklist_incomplete"
    message = "Case %(case)s has checklist items without a result: %(missing)s"


class NoDecisionError(RecordRefusedError):
    code = "record_no_decision"
    message = "Case %(case)s has no decision from its latest inspection"


class DecisionPendingError(RecordRefusedError):
    code = "record_decision_pending"
    message = "The decision of case %(case)s is in internal review; issue the record once approved"


class ContradictionError(RecordRefusedError):
    code = "record_contradicts_case"
    message = "The record states a %(field)s that differs from case %(case)s"


def _when(value: dt.datetime, zone: ZoneInfo) -> str:
    local = value.astimezone(zone)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _day(value: dt.date) -> str:
    return f"{value.year}年{value.month}月{value.day}日"


def period(session: SessionFacts, timezone: str) -> str:
    """勘验时间: the session's start to the end of its inspection, in the agency's zone."""
    zone = ZoneInfo(timezone)
    end = session.end
    assert end is not None
    return f"{_when(session.started_at, zone)} 至 {_when(end, zone)}"


def check(facts: CaseFacts, state: str) -> tuple[SessionFacts, DecisionFacts]:
    """The session and decision the record states; raises what makes it impossible."""
    params = {"case": facts.case_number}
    session = facts.session
    if session is None:
        raise NoSessionError(params=params)
    if session.end is None:
        raise SessionNotEndedError(params=params, details={"room": session.room})
    if facts.missing:
        raise ChecklistIncompleteError(
            params={**params, "missing": "、".join(facts.missing)},
            details={"missing": list(facts.missing)},
        )
    if state == "under_review":
        raise DecisionPendingError(params=params)
    decision = facts.decision
    if decision is None or decision.decided_at < session.started_at:
        raise NoDecisionError(params=params)
    return session, decision


def _contradiction(facts: CaseFacts, field: str, case: Any, stated: Any) -> ContradictionError:
    return ContradictionError(
        params={"case": facts.case_number, "field": field},
        details={"field": field, "case": case, "stated": stated},
    )


def check_statements(facts: CaseFacts, decision: DecisionFacts, body: Mapping[str, Any]) -> None:
    """What the request states must be what the case says; nothing stated is taken over."""
    if "outcome" in body and body["outcome"] != decision.outcome:
        raise _contradiction(facts, "outcome", decision.outcome, body["outcome"])
    if "deadline" in body:
        case_deadline = decision.deadline.isoformat() if decision.deadline else None
        if body["deadline"] != case_deadline:
            raise _contradiction(facts, "deadline", case_deadline, body["deadline"])
    if "checklist" in body:
        case_items = {i.item: i.result for i in facts.checklist}
        stated = {
            str(x.get("item")): _STATED_RESULT.get(str(x.get("result")), str(x.get("result")))
            for x in body["checklist"]
        }
        if stated != case_items:
            raise _contradiction(facts, "checklist", case_items, stated)
    if "inspectors" in body:
        case_ids = sorted(i.id for i in facts.inspectors)
        if sorted(set(body["inspectors"])) != case_ids:
            raise _contradiction(facts, "inspectors", case_ids, sorted(set(body["inspectors"])))


def _snapshots(ids: tuple[int, ...]) -> str:
    return f"〔照片 {'、'.join(f'#{n}' for n in ids)}〕" if ids else ""


def record_text(facts: CaseFacts, timezone: str, remark: str = "") -> str:
    """The record's full text, as it appears in the PDF and is signed; call :func:`check`
    first (it guarantees the session ended and the decision is there)."""
    assert facts.session is not None and facts.decision is not None
    lines = [
        f"案件编号：{facts.case_number}",
        f"勘验事项：{facts.matter_title}",
        f"申请人：{facts.applicant.line()}",
        f"勘验地点：{facts.site_address or '未登记'}",
    ]
    if facts.location is not None:
        lines.append(f"现场定位：{facts.location.line()}")
    lines += [
        "勘验方式：远程视频勘验",
        f"勘验时间：{period(facts.session, timezone)}",
        f"勘验人员：{'、'.join(i.name for i in facts.inspectors)}",
        "",
        "一、勘验内容及结果",
    ]
    for number, item in enumerate(facts.checklist, 1):
        note = f"（{item.note}）" if item.note else ""
        result = RESULT_CN.get(item.result, item.result)
        lines.append(f"{number}. {item.item}：{result}{note}{_snapshots(item.snapshot_ids)}")
    if not facts.checklist:
        lines.append("本事项未设勘验清单。")
    decision = facts.decision
    lines += ["", f"二、勘验结论：{OUTCOME_CN.get(decision.outcome, decision.outcome)}"]
    if decision.reason:
        lines.append(f"理由：{decision.reason}")
    if decision.outcome == "rectify":
        lines.append("整改要求：")
        lines += [f"{n}. {r}" for n, r in enumerate(decision.requirements, 1)]
        if decision.deadline is not None:
            lines.append(
                f"请于{_day(decision.deadline)}前完成整改，并通过本系统提交整改材料申请复查。"
            )
    elif decision.outcome == "pass":
        lines.append("现场条件符合申请事项要求。")
    if remark:
        lines += ["", f"备注：{remark}"]
    lines += [
        "",
        "以上笔录经当事人确认无误。勘验过程已全程录音录像，并与本笔录一并归入案件档案。",
    ]
    return "\n".join(lines) + "\n"


def summarize(facts: CaseFacts) -> dict[str, int]:
    """Counts per result, for the timeline event."""
    counts = {"ok": 0, "problem": 0, "na": 0}
    for item in facts.checklist:
        counts[item.result] = counts.get(item.result, 0) + 1
    return counts
