from __future__ import annotations

import pytest

from server.letters import templates
from server.letters.templates import TemplateRenderError


def test_renders_case_fields() -> None:
    text = templates.render(
        "承诺人：{{ applicant_name }}\n{{ d | date_cn }}",
        {"applicant_name": "张伟", "d": __import__("datetime").date(2026, 12, 1)},
    )
    assert text == "承诺人：张伟\n2026年12月1日\n"


@pytest.mark.parametrize(
    ("source", "line", "fragment"),
    [
        ("第一行\n第二行 {{ applicant_nmae }}", 2, "applicant_nmae"),
        ("a\n{% if x %}\nb", 3, "endif"),
        ("a\n\n{{ ().__class__.__bases__ }}", 3, "unsafe"),
        ("a\n{{ 1 / 0 }}", 2, "division by zero"),
        ("{{ a.b( }}", 1, ""),
    ],
)
def test_errors_name_line_and_message(source: str, line: int, fragment: str) -> None:
    preview = templates.preview(source)
    assert preview.text is None and preview.problem is not None
    assert preview.problem.line == line
    assert fragment in preview.problem.message
    with pytest.raises(TemplateRenderError) as info:
        templates.render(source, templates.SAMPLE_FIELDS)
    assert info.value.code == "template_error" and info.value.details["line"] == line


def test_sandbox_blocks_python_internals() -> None:
    source = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    assert templates.preview(source).problem is not None


def test_output_and_source_are_bounded() -> None:
    huge_loop = "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}"
    assert templates.preview(huge_loop).problem is not None
    assert templates.preview("x" * (templates.MAX_TEMPLATE_CHARS + 1)).problem is not None


def test_preview_uses_sample_fields() -> None:
    preview = templates.preview("{{ enterprise_name }}，{{ credit_code }}")
    assert preview.problem is None and preview.text is not None
    assert "丰禾种业" in preview.text
