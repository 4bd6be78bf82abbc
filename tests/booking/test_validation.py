"""Identity checks against the national standards' own examples and generated numbers."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.booking import validation as v


@pytest.mark.parametrize("value", ["11010519491231002X", "110105194912310029"[:17] + "X"])
def test_resident_id_examples(value: str) -> None:
    assert v.validate_resident_id(value.lower()) == "11010519491231002X"


@pytest.mark.parametrize(
    ("value", "msgid"),
    [
        ("", v.ID_FORMAT),
        ("1101051949123100", v.ID_FORMAT),
        ("11010519491231002Y", v.ID_FORMAT),
        ("110105194912310021", v.ID_CHECKSUM),
        ("99010519491231002X", v.ID_REGION),
        ("110105194902300027", v.ID_BIRTH),
        ("110105299901010021", v.ID_BIRTH),
    ],
)
def test_resident_id_rejects(value: str, msgid: str) -> None:
    with pytest.raises(v.FieldInvalid) as info:
        v.validate_resident_id(value, today=date(2026, 11, 22))
    assert info.value.msgid == msgid


@given(
    st.sampled_from(["11", "31", "44", "65"]),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 1, 1)),
    st.integers(0, 9999),
)
def test_resident_id_generated_numbers_pass_and_one_digit_changes_fail(
    region: str, born: date, tail: int
) -> None:
    first17 = f"{region}0105{born:%Y%m%d}{tail % 1000:03d}"
    number = first17 + v.resident_id_check_char(first17)
    assert v.validate_resident_id(number) == number
    # Changing any single digit of the sequence part changes the check character.
    changed = first17[:16] + str((int(first17[16]) + 1) % 10)
    with pytest.raises(v.FieldInvalid):
        v.validate_resident_id(changed + number[17])


def test_credit_code_example() -> None:
    assert v.validate_credit_code("91350100m000100y43") == "91350100M000100Y43"
    assert v.validate_credit_code("9135 0100 M000 100Y 43") == "91350100M000100Y43"


@pytest.mark.parametrize(
    ("value", "msgid"),
    [
        ("91350100M000100Y4", v.USCC_FORMAT),
        ("91350100M000100Y4I", v.USCC_FORMAT),
        ("9135010OM000100Y43", v.USCC_FORMAT),
        ("91350100M000100Y44", v.USCC_CHECKSUM),
    ],
)
def test_credit_code_rejects(value: str, msgid: str) -> None:
    with pytest.raises(v.FieldInvalid) as info:
        v.validate_credit_code(value)
    assert info.value.msgid == msgid


@given(st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=10, max_size=10))
def test_credit_code_generated(body: str) -> None:
    first17 = "91110108" + body[:9]
    code = first17 + v.credit_code_check_char(first17)
    assert v.validate_credit_code(code) == code


@pytest.mark.parametrize("value", ["13800138000", "+86 138-0013-8000", "008613800138000"])
def test_mobile_accepts(value: str) -> None:
    assert v.validate_mobile(value) == "13800138000"


@pytest.mark.parametrize("value", ["", "12800138000", "1380013800", "138001380001", "abc"])
def test_mobile_rejects(value: str) -> None:
    with pytest.raises(v.FieldInvalid):
        v.validate_mobile(value)


def test_applicant_collects_every_field_error() -> None:
    info, errors = v.validate_applicant(
        {"kind": "person", "name": " ", "mobile": "123", "id_number": "110105194912310021"}
    )
    assert info is None
    assert errors == {
        "applicant.name": v.REQUIRED,
        "applicant.mobile": v.MOBILE_FORMAT,
        "applicant.id_number": v.ID_CHECKSUM,
    }


def test_enterprise_applicant() -> None:
    info, errors = v.validate_applicant(
        {
            "kind": "enterprise",
            "name": "某某种业有限公司",
            "mobile": "13800138000",
            "credit_code": "91350100M000100Y43",
            "contact_name": "李四",
        }
    )
    assert errors == {}
    assert info is not None
    assert info.identity_key == "uscc:91350100M000100Y43"
    _, errors = v.validate_applicant({"kind": "enterprise", "name": "x", "mobile": "13800138000"})
    assert set(errors) == {"applicant.credit_code", "applicant.contact_name"}
    _, errors = v.validate_applicant({"kind": "robot"})
    assert errors == {"applicant.kind": v.KIND_INVALID}


def test_masks() -> None:
    assert v.mask_id("11010519491231002X") == "110105********002X"
    assert v.mask_mobile("13800138000") == "138****8000"
