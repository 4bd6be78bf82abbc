"""Untrusted input, parsed in one place: path ids, integers, dates, JSON bodies, text.

Every handler, page and the WebSocket protocol go through these, so a value that would
crash ``int()``, overflow a column, make PostgreSQL refuse a string or blow the stack is
refused with a stable code before anything reads it:

- ids are ASCII digits (``str.isdigit`` also takes ``²`` and ``١``) within the range of
  the ``INTEGER`` columns that hold them (PostgreSQL refuses anything above 2^31 - 1);
- integers in a JSON body fit those columns too; ``NaN`` and ``Infinity`` are not JSON;
- dates are ``YYYY-MM-DD`` and real (not ``2026-02-30``), in years where date arithmetic
  cannot overflow;
- JSON nesting is bounded (:data:`MAX_JSON_DEPTH`);
- text holds no NUL (PostgreSQL cannot store it) and no lone surrogate (it cannot be
  encoded as UTF-8, so it would fail later, when written or sent to someone else).

Nothing here imports aiohttp: the WebSocket protocol maps these errors to its own.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from server.errors import InvalidTextError, JsonTooDeepError, MalformedJsonError, ValidationError

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1  # ids and counts are INTEGER columns
MAX_JSON_DEPTH = 32
MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2999, 12, 31)  # far from date.max: deadlines add working days

DATE_FORMAT = "Enter a date like 2026-12-01"
TOO_LARGE = "This value is too large"
TOO_SMALL = "This value is too small"
NOT_A_NUMBER = "Enter a whole number"
BAD_TEXT = "This text contains characters that are not allowed"
MESSAGES = (DATE_FORMAT, TOO_LARGE, TOO_SMALL, NOT_A_NUMBER, BAD_TEXT)  # field msgids

_DIGITS = re.compile(r"[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def parse_digits(text: str | None, max_length: int = 18) -> int | None:
    """ASCII digits (at most ``max_length``) as a number, or ``None``."""
    if text is None or not 0 < len(text) <= max_length or not _DIGITS.fullmatch(text):
        return None
    return int(text)


def parse_id(text: str | None) -> int | None:
    """A row id from a path or a form, or ``None`` when it cannot be one."""
    value = parse_digits(text, 10)
    return value if value is not None and value <= INT_MAX else None


def parse_int(value: object, field: str, low: int = INT_MIN, high: int = INT_MAX) -> int:
    """A whole number of a form or query within ``low``..``high``, or a field error."""
    text = str(value if value is not None else "").strip()
    sign = text[:1] if text[:1] in "+-" else ""
    digits = text[len(sign) :]
    if not re.fullmatch(r"[0-9]{1,12}", digits):
        raise ValidationError(fields={field: NOT_A_NUMBER})
    number = int(sign + digits)
    if number < low:
        raise ValidationError(fields={field: TOO_SMALL})
    if number > high:
        raise ValidationError(fields={field: TOO_LARGE})
    return number


def parse_date(value: object, field: str) -> dt.date | None:
    """An optional ``YYYY-MM-DD`` value; a real date, ``None`` when empty, or a field error.

    ``date.fromisoformat`` alone also takes ``20260101``, ``2026W011`` and full-width
    digits, and gives ``date.min`` arithmetic to whoever sends ``0001-01-01``."""
    if value is None or value == "":
        return None
    text = str(value)
    if not _DATE.fullmatch(text):
        raise ValidationError(fields={field: DATE_FORMAT})
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationError(fields={field: DATE_FORMAT}) from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise ValidationError(fields={field: DATE_FORMAT})
    return day


def require_date(value: object, field: str) -> dt.date:
    day = parse_date(value, field)
    if day is None:
        raise ValidationError(fields={field: DATE_FORMAT})
    return day


def try_date(value: object) -> dt.date | None:
    """A real date or ``None``: for pages, where a bad ``?date=`` shows the default day."""
    try:
        return parse_date(value, "date")
    except ValidationError:
        return None


def bad_text(value: str) -> bool:
    """True when ``value`` holds a NUL or a lone surrogate."""
    return _BAD_TEXT.search(value) is not None


def check_text(value: str, field: str) -> str:
    if bad_text(value):
        raise InvalidTextError(fields={field: BAD_TEXT})
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(raw: bytes | str) -> Any:
    """Parse a JSON document and check its depth, text and integers.

    Raises :class:`MalformedJsonError` (not JSON, ``NaN``), :class:`JsonTooDeepError`,
    :class:`InvalidTextError` or :class:`ValidationError` (an integer out of range); the
    field names are dotted paths like the schema validation's (``applicant.name``)."""
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        # The C decoder recurses once per level: thousands of ``[`` exhaust the stack
        # before any depth check of ours could see the document.
        raise JsonTooDeepError() from None
    except (ValueError, UnicodeDecodeError):
        raise MalformedJsonError() from None
    text_fields: dict[str, str] = {}
    number_fields: dict[str, str] = {}
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:  # iterative: the document may be as deep as the decoder allowed
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise JsonTooDeepError()
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                name = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and bad_text(key):
                    text_fields.setdefault(name, BAD_TEXT)
                stack.append((item, name, depth + 1))
        elif isinstance(value, str):
            if bad_text(value):
                text_fields.setdefault(path or "body", BAD_TEXT)
        elif isinstance(value, int) and not isinstance(value, bool):
            if value > INT_MAX:
                number_fields.setdefault(path or "body", TOO_LARGE)
            elif value < INT_MIN:
                number_fields.setdefault(path or "body", TOO_SMALL)
    if text_fields:
        raise InvalidTextError(fields=text_fields)
    if number_fields:
        raise ValidationError(fields=number_fields)
    return data
