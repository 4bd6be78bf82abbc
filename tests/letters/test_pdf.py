from __future__ import annotations

import subprocess
from pathlib import Path

from server.letters import pdf
from tests.letters.sample import sample_document


def test_pdf_has_text_case_number_and_audit_page(tmp_path: Path) -> None:
    data = pdf.render_sync(sample_document())
    assert data.startswith(b"%PDF-")
    path = tmp_path / "letter.pdf"
    path.write_bytes(data)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    for fragment in (
        "告知承诺书",
        "丰禾种业有限公司",
        "YK-20261201-0001",
        "签署审计记录",
        "2026-12-01 09:42:05",
        "127.0.0.1",
        "verify?letter=1",
    ):
        assert fragment in text, fragment
    assert "第2/2页" in text.replace(" ", "")


def test_unsigned_blocks_say_awaiting(tmp_path: Path) -> None:
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf.render_sync(sample_document(signed=False)))
    text = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert "待签署" in text
