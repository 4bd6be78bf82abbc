"""Line breaking for Chinese legal text (a small part of 禁则, kinsoku).

fpdf2 breaks lines at spaces and, failing that, at any character, so a line can start
with "。" or end with "（" and a case number like ``YK-20261201-0001`` can be cut in two.
A signed letter should read like a printed one, so the body is wrapped here:

- CJK characters may break anywhere, except that closing punctuation never starts a line
  (it hangs into the right margin instead, as Chinese typesetting allows) and opening
  punctuation never ends one (it moves to the next line);
- runs of Latin letters, digits and ``-./:@_%`` stay together (a run wider than a whole
  line is cut, as it must be);
- explicit newlines are kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable

CLOSING = set("，。、；：？！）》」』】〕〉”’…—·,.;:?!)]}%")
OPENING = set("（《「『【〔〈“‘([{")
_TOKEN = re.compile(r"[A-Za-z0-9\-./:@_%#+]+| +|.", re.DOTALL)


def _tokens(paragraph: str) -> list[str]:
    return _TOKEN.findall(paragraph)


def _split_long(token: str, width: float, measure: Callable[[str], float]) -> list[str]:
    pieces, current = [], ""
    for char in token:
        if current and measure(current + char) > width:
            pieces.append(current)
            current = ""
        current += char
    return [*pieces, current] if current else pieces


def wrap_paragraph(paragraph: str, width: float, measure: Callable[[str], float]) -> list[str]:
    lines: list[str] = []
    line = ""
    tokens = _tokens(paragraph)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if measure(token) > width and not token.isspace():
            tokens[i : i + 1] = _split_long(token, width, measure)
            token = tokens[i]
        if not line or measure(line + token) <= width:
            line += token
            i += 1
            continue
        if token.isspace():  # a break at a space eats the space
            lines.append(line.rstrip())
            line = ""
            i += 1
            continue
        if token[0] in CLOSING:  # hang the punctuation in the margin
            line += token
            i += 1
            continue
        # Opening punctuation must not end the line: carry it over with the next token.
        kept = line.rstrip("".join(OPENING))
        if not kept:  # nothing but opening punctuation: break anyway, or we never advance
            lines.append(line)
            line = ""
            continue
        lines.append(kept.rstrip())
        line = line[len(kept) :]
    lines.append(line.rstrip())
    return lines


def wrap(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """``text`` as lines no wider than ``width`` (closing punctuation may hang over)."""
    out: list[str] = []
    for paragraph in text.split("\n"):
        out.extend(wrap_paragraph(paragraph, width, measure) if paragraph else [""])
    return out
