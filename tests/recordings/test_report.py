from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from PIL import Image

from recordings.report import ReportChecklistRow, ReportData, ReportSnapshot, render_report


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


def test_report_has_chinese_text_and_head_hash() -> None:
    pdf = render_report(
        ReportData(
            case_number="YK-20261122-0003",
            title="许可证变更",
            matter="种子生产经营许可",
            applicant="张*明",
            exported_at="2026-11-22 11:00",
            inspectors=["王勘验"],
            location="30.65432,104.06543 ±12m, 85 m",
            checklist=[ReportChecklistRow("仓储条件", "problem", "通风不足")],
            decision="rectify",
            requirements="加装排风扇",
            deadline="2026-12-01",
            snapshots=[ReportSnapshot("仓储条件", jpeg(), "ab" * 32)],
            head_hash="cd" * 32,
            events=7,
        )
    )
    assert pdf.startswith(b"%PDF")
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    text = subprocess.run(
        ["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()
    for words in ("远程视频勘验报告", "YK-20261122-0003", "通风不足", "限期整改", "cd" * 32):
        assert words in text
