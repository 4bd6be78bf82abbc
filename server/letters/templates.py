"""Letter templates: admin-written Jinja2, rendered in a sandbox with the case's fields.

Templates are written by agency admins, not developers, so they run in Jinja2's
``SandboxedEnvironment`` (no attribute access to internals, bounded ``range``) with
``StrictUndefined`` (a misspelt ``{{ applicant_nmae }}`` is an error naming the line, not
a blank in a signed legal document). The output is plain text for the PDF, so there is
no autoescaping.

A template error never reaches a live case as an exception from deep inside: ``render``
raises ``TemplateRenderError`` (422, with ``line`` and ``message`` in its details) before
anything is stored, and ``preview`` returns the problem for the editor to show.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from server.letters.errors import LetterError
from server.sandbox import BoundedSandbox

MAX_TEMPLATE_CHARS = 20_000
MAX_OUTPUT_CHARS = 40_000
TEMPLATE_NAME = "<letter template>"


class TemplateRenderError(LetterError):
    status = 422
    code = "template_error"
    message = "The letter template has an error on line %(line)s: %(problem)s"


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    line: int | None
    message: str

    def as_json(self) -> dict[str, object]:
        return {"line": self.line, "message": self.message}


@dataclass(frozen=True, slots=True)
class Preview:
    text: str | None
    problem: TemplateProblem | None


SAMPLE_FIELDS: dict[str, Any] = {
    "case_number": "YK-20261201-0001",
    "case_title": "农作物种子生产经营许可证变更",
    "applicant_name": "张伟",
    "applicant": "丰禾种业有限公司（统一社会信用代码：91330100MA2XXXXX0X），联系人：张伟",
    "contact_name": "张伟",
    "applicant_mobile": "138****5678",
    "enterprise_name": "丰禾种业有限公司",
    "credit_code": "91330100MA2XXXXX0X",
    "matter_title": "农作物种子生产经营许可证变更",
    "site_address": "浙江省杭州市余杭区仁和街道种业路 18 号",
    "location": "北纬 30.41230°，东经 120.12340°（精度约 15 米），距登记地址 40 米，在允许范围内",
    "inspection_date": "2026年12月1日",
    "inspector_names": "李娜、王强",
    "agency_name": "云勘市行政审批局",
    "remark": "",
}


def _environment() -> SandboxedEnvironment:
    env = BoundedSandbox(  # sizes checked before allocating (server/sandbox.py)
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # the output is PDF text, never HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["date_cn"] = date_cn
    return env


def date_cn(value: object) -> str:
    """``2026-12-01`` → ``2026年12月1日`` (dates and datetimes; strings pass through)."""
    if isinstance(value, dt.date):
        return f"{value.year}年{value.month}月{value.day}日"
    return str(value)


_ENV = _environment()


def _line_of(tb: TracebackType | None) -> int | None:
    """The template line of a runtime error: Jinja rewrites tracebacks so that frames of
    template code carry the template's name and line."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == TEMPLATE_NAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def problem_of(exc: Exception) -> TemplateProblem:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateProblem(exc.lineno, exc.message or str(exc))
    return TemplateProblem(_line_of(exc.__traceback__), str(exc) or type(exc).__name__)


def _compile(source: str) -> jinja2.Template:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateRenderError(
            params={"line": 1, "problem": f"longer than {MAX_TEMPLATE_CHARS} characters"},
            details={"line": 1, "message": "template too long"},
        )
    try:
        code = _ENV.compile(source, name=TEMPLATE_NAME, filename=TEMPLATE_NAME)
        return _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None))
    except jinja2.TemplateSyntaxError as exc:
        problem = problem_of(exc)
        raise TemplateRenderError(
            params={"line": problem.line, "problem": problem.message},
            details=problem.as_json(),
        ) from None


def render(source: str, fields: Mapping[str, Any]) -> str:
    """Render ``source`` with ``fields``; raises ``TemplateRenderError`` and nothing else."""
    template = _compile(source)
    parts: list[str] = []
    size = 0
    try:
        for chunk in template.generate(**fields):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateRenderError(
                    params={"line": "?", "problem": "the letter is too long"},
                    details={"line": None, "message": "output too long"},
                )
            parts.append(chunk)
    except TemplateRenderError:
        raise
    except Exception as exc:  # any error inside admin code is a template error
        problem = problem_of(exc)
        raise TemplateRenderError(
            params={"line": problem.line or "?", "problem": problem.message},
            details=problem.as_json(),
        ) from None
    return "".join(parts).strip() + "\n"


def preview(source: str, fields: Mapping[str, Any] | None = None) -> Preview:
    """What the editor shows: the rendered text, or the problem with its line."""
    try:
        return Preview(render(source, SAMPLE_FIELDS if fields is None else fields), None)
    except TemplateRenderError as exc:
        return Preview(
            None,
            TemplateProblem(exc.details.get("line"), str(exc.details.get("message", exc))),
        )
