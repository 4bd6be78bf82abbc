"""The inspection report (勘验报告) PDF that goes into a case export.

A readable summary for people who will never open the manifest: the case, the
checklist with results, the decision, where the applicant was, the snapshots (the
watermarked images, small), and the timeline head hash that anchors the bundle. Rendered
with fpdf2 and the system CJK font; no network, no templates, deterministic enough that
two exports of an unchanged case differ only in the export time.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from fpdf import FPDF

from server.fonts import FontFile, find_cjk_font

RESULT_LABELS = {"ok": "合格", "problem": "存在问题", "na": "不适用"}
DECISION_LABELS = {"pass": "通过", "rectify": "限期整改", "fail": "不通过"}


@dataclass(frozen=True, slots=True)
class ReportChecklistRow:
    item: str
    result: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class ReportSnapshot:
    caption: str
    jpeg: bytes
    sha256: str


@dataclass(frozen=True, slots=True)
class ReportData:
    case_number: str
    title: str
    matter: str
    applicant: str  # already masked by the caller
    exported_at: str  # local time text
    inspectors: Sequence[str] = ()
    location: str | None = None  # "30.65432,104.06543 ±12m, 85 m from the site"
    location_flagged: bool = False
    checklist: Sequence[ReportChecklistRow] = ()
    decision: str | None = None
    requirements: str = ""
    deadline: str | None = None
    snapshots: Sequence[ReportSnapshot] = ()
    recordings: Sequence[str] = ()  # one line each: "2026-11-22 11:00 12 min sha256…"
    head_hash: str = ""
    events: int = 0
    files: Sequence[str] = field(default_factory=tuple)


class _Pdf(FPDF):
    def __init__(self, font: FontFile, case_number: str) -> None:
        super().__init__(format="A4")
        self.add_font("cjk", "", str(font.path), collection_font_number=font.index)
        self.case_number = case_number
        self.set_auto_page_break(auto=True, margin=15)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("cjk", size=8)
        self.cell(0, 6, f"{self.case_number}  第 {self.page_no()} 页", align="C")


def _heading(pdf: _Pdf, text: str) -> None:
    pdf.ln(3)
    pdf.set_font("cjk", size=13)
    pdf.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=10)


def _line(pdf: _Pdf, text: str) -> None:
    pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")


def render_report(data: ReportData, font: FontFile | None = None) -> bytes:
    pdf = _Pdf(font or find_cjk_font(), data.case_number)
    pdf.set_title(f"勘验报告 {data.case_number}")
    pdf.add_page()
    pdf.set_font("cjk", size=18)
    pdf.cell(0, 12, "远程视频勘验报告", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=10)
    _line(pdf, f"办件编号: {data.case_number}")
    _line(pdf, f"事项: {data.matter}    标题: {data.title}")
    _line(pdf, f"申请人: {data.applicant}")
    _line(pdf, f"勘验人员: {'、'.join(data.inspectors) or '—'}")
    _line(pdf, f"导出时间: {data.exported_at}")

    _heading(pdf, "位置")
    if data.location:
        flag = "  【超出距离阈值】" if data.location_flagged else ""
        _line(pdf, data.location + flag)
    else:
        _line(pdf, "申请人未共享位置")

    _heading(pdf, "检查清单")
    if not data.checklist:
        _line(pdf, "无检查记录")
    for row in data.checklist:
        label = RESULT_LABELS.get(row.result, row.result)
        _line(pdf, f"• {row.item}: {label}" + (f" — {row.note}" if row.note else ""))

    _heading(pdf, "结论")
    if data.decision:
        _line(pdf, DECISION_LABELS.get(data.decision, data.decision))
        if data.requirements:
            _line(pdf, f"整改要求: {data.requirements}")
        if data.deadline:
            _line(pdf, f"整改期限: {data.deadline}")
    else:
        _line(pdf, "尚未作出结论")

    if data.recordings:
        _heading(pdf, "录像")
        for text in data.recordings:
            _line(pdf, text)

    if data.snapshots:
        _heading(pdf, "现场截图")
        for shot in data.snapshots:
            if pdf.get_y() > 200:
                pdf.add_page()
            pdf.image(io.BytesIO(shot.jpeg), w=120)
            pdf.set_font("cjk", size=8)
            _line(pdf, f"{shot.caption}  SHA-256 {shot.sha256}")
            pdf.set_font("cjk", size=10)

    _heading(pdf, "完整性")
    _line(pdf, f"时间线事件 {data.events} 条，链首哈希 (head hash):")
    pdf.set_font("cjk", size=8)
    _line(pdf, data.head_hash or "—")
    _line(pdf, "用 `yunkan verify bundle 文件` 离线校验本导出包；与服务器上的链首哈希比对。")
    for name in data.files:
        _line(pdf, name)
    return bytes(pdf.output())
