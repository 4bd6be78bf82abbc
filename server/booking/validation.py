"""Identity checks for applicants: resident ID, unified social credit code, mobile number.

Every check returns the normalised value or raises :class:`FieldInvalid` carrying an
English msgid; :func:`validate_applicant` collects them per field so the API can answer
one 422 listing every wrong field at once (translated to zh-CN at the edge).
The checksums are the national standards' own: GB 11643-1999 (ISO 7064 MOD 11-2) for
resident ID numbers and GB 32100-2015 (MOD 31) for unified social credit codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

# msgids (translated in web/translations/zh_CN/LC_MESSAGES/booking.po)
REQUIRED = "This field is required"
TOO_LONG = "This value is too long"
ID_FORMAT = "Enter an 18-digit resident ID number (the last character may be X)"
ID_CHECKSUM = "This resident ID number is not valid: its check digit does not match"
ID_BIRTH = "The birth date inside this resident ID number is not a real date"
ID_REGION = "This resident ID number does not start with a valid region code"
USCC_FORMAT = "Enter an 18-character unified social credit code"
USCC_CHECKSUM = "This unified social credit code is not valid: its check character does not match"
MOBILE_FORMAT = "Enter a mainland mobile number: 11 digits starting with 1"
KIND_INVALID = "Choose a person or an enterprise"

_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK = "10X98765432"
# First two digits: province-level region codes (GB/T 2260); 71/81/82 for Taiwan, HK, Macao.
_PROVINCES = frozenset(
    str(code)
    for code in (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        71,
        81,
        82,
        83,
        91,
    )
)
_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_RE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}")
_MOBILE_RE = re.compile(r"1[3-9]\d{9}")
_SEPARATORS = re.compile(r"[\s\-]")


class FieldInvalid(ValueError):
    """One field's value is wrong; ``msgid`` is the English message shown to the user."""

    def __init__(self, msgid: str) -> None:
        super().__init__(msgid)
        self.msgid = msgid


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def validate_resident_id(value: str, *, today: date | None = None) -> str:
    """Return the ID number upper-cased, or raise :class:`FieldInvalid`."""
    number = _SEPARATORS.sub("", value).upper()
    if not re.fullmatch(r"\d{17}[\dX]", number):
        raise FieldInvalid(ID_FORMAT)
    if number[:2] not in _PROVINCES:
        raise FieldInvalid(ID_REGION)
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise FieldInvalid(ID_BIRTH) from None
    if born.year < 1880 or born > (today or date.today()):
        raise FieldInvalid(ID_BIRTH)
    if resident_id_check_char(number[:17]) != number[17]:
        raise FieldInvalid(ID_CHECKSUM)
    return number


def credit_code_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters."""
    total = sum(_USCC_CHARSET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARSET[(31 - total % 31) % 31]


def validate_credit_code(value: str) -> str:
    """Return the unified social credit code upper-cased, or raise :class:`FieldInvalid`."""
    code = _SEPARATORS.sub("", value).upper()
    if not _USCC_RE.fullmatch(code):
        raise FieldInvalid(USCC_FORMAT)
    if credit_code_check_char(code[:17]) != code[17]:
        raise FieldInvalid(USCC_CHECKSUM)
    return code


def validate_mobile(value: str) -> str:
    """Return the 11-digit mainland mobile number; accepts +86/0086 and separators."""
    number = _SEPARATORS.sub("", value)
    for prefix in ("+86", "0086", "86"):
        if number.startswith(prefix) and len(number) == 11 + len(prefix):
            number = number[len(prefix) :]
            break
    if not _MOBILE_RE.fullmatch(number):
        raise FieldInvalid(MOBILE_FORMAT)
    return number


@dataclass(frozen=True, slots=True)
class ApplicantInfo:
    """A validated applicant: a person, or an enterprise with its contact person."""

    kind: Literal["person", "enterprise"]
    name: str
    mobile: str
    id_number: str | None = None
    credit_code: str | None = None
    contact_name: str | None = None

    @property
    def identity_key(self) -> str:
        """What "the same applicant" means for one-booking-per-slot."""
        if self.kind == "enterprise":
            return f"uscc:{self.credit_code}"
        return f"id:{self.id_number}"

    @property
    def display_name(self) -> str:
        if self.kind == "enterprise" and self.contact_name:
            return f"{self.name}（{self.contact_name}）"
        return self.name


def _text(data: Mapping[str, object], key: str, errors: dict[str, str], limit: int = 100) -> str:
    raw = data.get(key)
    value = raw.strip() if isinstance(raw, str) else ""
    if not value:
        errors[key] = REQUIRED
    elif len(value) > limit:
        errors[key] = TOO_LONG
    return value


def _checked(
    data: Mapping[str, object], key: str, errors: dict[str, str], check: Callable[[str], str]
) -> str | None:
    value = _text(data, key, errors)
    if key in errors:
        return None
    try:
        return check(value)
    except FieldInvalid as exc:
        errors[key] = exc.msgid
        return None


def validate_applicant(
    data: Mapping[str, object], *, today: date | None = None
) -> tuple[ApplicantInfo | None, dict[str, str]]:
    """Validate an applicant object; returns ``(info, {})`` or ``(None, field_errors)``.

    Field names are prefixed with ``applicant.`` so a form can put each message beside
    its input.
    """
    errors: dict[str, str] = {}
    kind = data.get("kind", "person")
    if kind not in ("person", "enterprise"):
        return None, {"applicant.kind": KIND_INVALID}
    name = _text(data, "name", errors)
    mobile = _checked(data, "mobile", errors, validate_mobile)
    id_number = credit_code = contact_name = None
    if kind == "person":
        id_number = _checked(
            data, "id_number", errors, lambda v: validate_resident_id(v, today=today)
        )
    else:
        credit_code = _checked(data, "credit_code", errors, validate_credit_code)
        contact_name = _text(data, "contact_name", errors)
    if errors:
        return None, {f"applicant.{k}": v for k, v in errors.items()}
    assert mobile is not None
    return (
        ApplicantInfo(
            kind=kind,
            name=name,
            mobile=mobile,
            id_number=id_number,
            credit_code=credit_code,
            contact_name=contact_name,
        ),
        {},
    )


def mask_id(value: str | None) -> str | None:
    """``110105********002X``: enough for a person to recognise their own number."""
    if not value:
        return value
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_mobile(value: str | None) -> str | None:
    """``138****8000``."""
    if not value or len(value) < 7:
        return value
    return value[:3] + "****" + value[-4:]
