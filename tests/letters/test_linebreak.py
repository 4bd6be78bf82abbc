from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.letters.linebreak import CLOSING, OPENING, wrap


def measure(text: str) -> float:
    """Monospace: CJK characters are 2 units, everything else 1."""
    return float(sum(2 if ord(c) > 0x2E80 else 1 for c in text))


def test_closing_punctuation_hangs_instead_of_starting_a_line() -> None:
    lines = wrap("一二三四五。六七", 10, measure)
    assert lines == ["一二三四五。", "六七"]


def test_opening_punctuation_moves_to_the_next_line() -> None:
    lines = wrap("一二三四（五六）", 10, measure)
    assert lines[0] == "一二三四"
    assert lines[1].startswith("（五")


def test_case_numbers_are_not_cut() -> None:
    lines = wrap("案件编号：YK-20261201-0001，请核对", 20, measure)
    assert any("YK-20261201-0001" in line for line in lines)


def test_newlines_and_empty_paragraphs_are_kept() -> None:
    assert wrap("甲\n\n乙", 10, measure) == ["甲", "", "乙"]


@given(st.text(alphabet="一二三四五六七八九十，。（）《》abcXYZ-0123", max_size=200))
def test_no_text_is_lost_and_punctuation_rules_hold(body: str) -> None:
    text = "甲" + body
    lines = wrap(text, 16, measure)
    assert "".join(lines) == text
    closing = "".join(CLOSING)
    for line in lines:
        assert measure(line.rstrip(closing)) <= 16
    for line in lines[1:]:
        assert line[0] not in CLOSING
    for line in lines[:-1]:
        assert line[-1] not in OPENING


def test_a_line_of_opening_punctuation_still_advances() -> None:
    lines = wrap("（" * 12 + "一", 10, measure)
    assert "".join(lines) == "（" * 12 + "一"
