"""A Jinja2 sandbox that refuses to build huge values *before* building them.

Jinja2's ``SandboxedEnvironment`` stops attribute tricks and bounds ``range`` (100 000
items), but ``{{ 'a' * 200000000 }}`` still allocates 200 MB before any output limit can
look at it: the letter engine's ``MAX_OUTPUT_CHARS`` only counts what was already built.
Here every operation that can multiply a value's size checks the size it would produce
first: ``*``, ``+``, ``**``, ``%`` (format widths), ``str.format`` / padding methods, and
the ``center``, ``indent``, ``format`` and ``wordwrap`` filters. ``lipsum`` is removed
(its word count is unbounded). A refused operation raises :class:`SecurityError`, which
callers report as a template error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

MAX_VALUE = 1_000_000
"""Largest string or list (characters or items) one operation may produce."""
MAX_POWER_BITS = 64_000
"""Largest integer ``**`` may produce (bits): 2**64000 is ~19 000 digits."""

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d*)(?:\.(\d*))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_NUMBERS = re.compile(r"\d+")
_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "format", "format_map"})


def _size(value: object) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def _too_big(size: int) -> SecurityError:
    return SecurityError(f"the result would have {size} items (at most {MAX_VALUE})")


def _check_repeat(seq: object, times: object) -> None:
    size = _size(seq)
    if size is not None and isinstance(times, int) and size * times > MAX_VALUE:
        raise _too_big(size * times)


def _check_widths(fmt: object) -> None:
    """A format string whose numbers (widths, precisions) could pad past the limit."""
    if not isinstance(fmt, str):
        return
    numbers = [n for match in _PERCENT_SPEC.findall(fmt) for n in match if n]
    numbers += [n for spec in _BRACE_SPEC.findall(fmt) for n in _NUMBERS.findall(spec)]
    for number in numbers:
        if len(number) > 7 or int(number) > MAX_VALUE:
            raise SecurityError(f"the width {number} is too large (at most {MAX_VALUE})")


def _check_width(width: object) -> None:
    if isinstance(width, int) and width > MAX_VALUE:
        raise SecurityError(f"the width {width} is too large (at most {MAX_VALUE})")


def _bounded_filter(inner: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
        check(value, *args, **kwargs)
        return inner(value, *args, **kwargs)

    return bounded


def _check_center(value: object, width: object = 80, *args: object, **kw: object) -> None:
    _check_width(width)


def _check_indent(value: object, width: object = 4, *args: object, **kw: object) -> None:
    if isinstance(width, int):
        lines = str(value).count("\n") + 1
        _check_width(width * lines)
    elif isinstance(width, str | bytes):
        _check_width(len(width) * (str(value).count("\n") + 1))


def _check_format(value: object, *args: object, **kw: object) -> None:
    _check_widths(value)


def _check_wordwrap(value: object, width: object = 79, *args: object, **kw: object) -> None:
    _check_width(width)


class BoundedSandbox(SandboxedEnvironment):
    """``SandboxedEnvironment`` with size checks before every size-multiplying step."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        for name, check in (
            ("center", _check_center),
            ("indent", _check_indent),
            ("format", _check_format),
            ("wordwrap", _check_wordwrap),
        ):
            self.filters[name] = _bounded_filter(self.filters[name], check)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
            _check_repeat(right, left)
        elif operator == "+":
            a, b = _size(left), _size(right)
            if a is not None and b is not None and a + b > MAX_VALUE:
                raise _too_big(a + b)
        elif operator == "**":
            ints = isinstance(left, int) and isinstance(right, int) and right > 0
            if ints and abs(left).bit_length() * right > MAX_POWER_BITS:
                raise SecurityError("the power is too large")
        elif operator == "%":
            _check_widths(left)
        return super().call_binop(context, operator, left, right)

    def call(
        __self,  # Jinja's signature: ``self`` and ``obj`` may be keyword arguments
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        # The sandbox hands str.format out wrapped (``__wrapped__`` is the bound method).
        target = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str) and getattr(target, "__name__", "") in _PADDING:
            _check_widths(owner)
            for arg in (*args, *kwargs.values()):
                _check_width(arg)
        return super().call(__context, __obj, *args, **kwargs)


__all__ = ["MAX_VALUE", "BoundedSandbox", "SecurityError"]
