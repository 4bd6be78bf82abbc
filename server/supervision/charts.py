"""Small server-rendered SVG charts: bars, stacked bars and lines, no JavaScript.

Each bar (or point) may link somewhere (``links[i]``: the list behind that day), and has a
``<title>`` so a hover shows its value. Sizes are in SVG units and the SVG scales to its
box (``viewBox``), so one chart fits the desk's card and a phone's width alike. Text is
escaped here; callers pass translated labels.

    svg = bar_chart(["12-01", "12-02"], [Series("已服务", [3, 5])], links=["/a", "/b"])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 12, 14, 44
PALETTE = ("#1f6feb", "#2da44e", "#d29922", "#cf222e", "#8250df", "#57606a")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float | None]
    """One value per label; None: no value (a gap in a line, no bar)."""
    color: str = ""


def _nice_max(value: float) -> tuple[float, int]:
    """The top of the axis (1, 2 or 5 times a power of ten, at least ``value``) and how
    many steps divide it into round numbers (5 → 1, 2, 3…; 2 → 0.5, 1…)."""
    if value <= 0:
        return 1.0, 5
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power, 4 if step == 2 else 5
    return 10 * power, 5  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _frame(labels: Sequence[str], axis: tuple[float, int], unit: str, title: str) -> list[str]:
    top, steps = axis
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'class="chart" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(steps + 1):
        y = TOP + plot_h - plot_h * i / steps
        value = top * i / steps
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#d0d7de" stroke-width="{1 if i else 1.5}"/>'
        )
        out.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#57606a">{escape(_number(value))}{escape(unit) if i == steps else ""}</text>'
        )
    n = max(len(labels), 1)
    every = max(1, math.ceil(n / 10))  # at most ~10 labels under the axis
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = LEFT + plot_w * (i + 0.5) / n
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11" fill="#57606a">{escape(label)}</text>'
        )
    return out


def _legend(series: Sequence[Series]) -> list[str]:
    out, x = [], LEFT
    for k, s in enumerate(series):
        color = s.color or PALETTE[k % len(PALETTE)]
        out.append(f'<rect x="{x}" y="{HEIGHT - 16}" width="10" height="10" fill="{color}"/>')
        out.append(
            f'<text x="{x + 14}" y="{HEIGHT - 7}" font-size="11" fill="#24292f">'
            f"{escape(s.name)}</text>"
        )
        x += 24 + 12 * len(s.name)
    return out


def _link(inner: str, href: str | None) -> str:
    return f'<a href="{escape(href)}">{inner}</a>' if href else inner


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    links: Sequence[str | None] | None = None,
    stacked: bool = False,
    unit: str = "",
    title: str = "",
) -> str:
    """Bars per label: side by side, or stacked (``stacked``) so a bar is their sum."""
    if stacked:
        totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    else:
        totals = [max((s.values[i] or 0 for s in series), default=0) for i in range(len(labels))]
    axis = _nice_max(max(totals, default=0))
    top = axis[0]
    out = _frame(labels, axis, unit, title)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(labels), 1)
    slot = plot_w / n
    width = slot * 0.7 / (1 if stacked else max(len(series), 1))
    for i, label in enumerate(labels):
        base = 0.0
        bars = []
        for k, s in enumerate(series):
            value = s.values[i]
            if value is None:
                continue
            color = s.color or PALETTE[k % len(PALETTE)]
            h = plot_h * value / top
            x = LEFT + slot * i + slot * 0.15 + (0 if stacked else k * width)
            y = TOP + plot_h - h - (plot_h * base / top if stacked else 0)
            bars.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}" '
                f'fill="{color}" data-value="{_number(value)}">'
                f"<title>{escape(label)} {escape(s.name)}: {escape(_number(value))}"
                f"{escape(unit)}</title></rect>"
            )
            if stacked:
                base += value
        out.append(_link("".join(bars), links[i] if links else None))
    if len(series) > 1:
        out += _legend(series)
    out.append("</svg>")
    return "".join(out)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    links: Sequence[str | None] | None = None,
    unit: str = "",
    title: str = "",
) -> str:
    """A line per series; None values break the line (a day without data)."""
    values = [v for s in series for v in s.values if v is not None]
    axis = _nice_max(max(values, default=0))
    top = axis[0]
    out = _frame(labels, axis, unit, title)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(labels), 1)
    for k, s in enumerate(series):
        color = s.color or PALETTE[k % len(PALETTE)]
        runs: list[list[str]] = [[]]
        points = []
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            x = LEFT + plot_w * (i + 0.5) / n
            y = TOP + plot_h - plot_h * value / top
            runs[-1].append(f"{x:.1f},{y:.1f}")
            dot = (
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}" '
                f'data-value="{_number(value)}"><title>{escape(labels[i])} {escape(s.name)}: '
                f"{escape(_number(value))}{escape(unit)}</title></circle>"
            )
            points.append(_link(dot, links[i] if links else None))
        for run in runs:
            if len(run) > 1:
                out.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" '
                    'stroke-width="2"/>'
                )
        out += points
    if len(series) > 1:
        out += _legend(series)
    out.append("</svg>")
    return "".join(out)
