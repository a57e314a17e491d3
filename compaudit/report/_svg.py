"""The per-class chart as inline SVG, for the HTML report.

Written as text: no matplotlib import and no raster, so a chart costs a few
milliseconds and stays sharp at any zoom. At most :data:`~._class_chart.WORST_SHOWN`
bars plus a 40-bin histogram are drawn above :data:`~._class_chart.SUMMARY_OVER`
classes, so the markup is a few kilobytes at 10 or at 100,000 classes. Every
string from the user (title, class names) goes through :func:`compaudit._text.for_html`;
numbers are formatted here. Each bar carries a ``<title>`` (its name and value),
shown on hover.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from compaudit._text import for_html, for_terminal
from compaudit.report._class_chart import KINDS, NEUTRAL, WORSE, YLIM, ClassChart, class_chart

if TYPE_CHECKING:
    from compaudit.results import ClassRow

__all__ = ["FONT", "class_plot_svg", "cut", "nice_step", "num"]

WIDTH = 1000.0  # px of the viewBox; the page scales it down to fit
PLOT_H = 300.0
TOP, LEFT, RIGHT = 34.0, 66.0, 14.0
NAME_CHARS = 18
TITLE_CHARS = 160
_CHAR_W = 0.6  # average glyph width / font size, sans-serif
FONT = "font-family='system-ui, -apple-system, Segoe UI, Roboto, sans-serif'"


def cut(text: str, n: int) -> str:
    """``text`` safe to show (:func:`~compaudit._text.for_terminal`), cut to ``n`` characters."""
    s = for_terminal(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def num(x: float) -> str:
    """A coordinate: two decimals are finer than a pixel, and keep the markup short."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def nice_step(raw: float, multiples: Sequence[float] = (1, 2, 5, 10)) -> float:
    """The smallest ``m * 10**k`` (``m`` in ``multiples``) at least ``raw``: a tick step."""
    mag = 10 ** math.floor(math.log10(raw))
    return float(next(m * mag for m in multiples if m * mag >= raw))


def _step(span: float) -> float:
    """A 1-2-5 tick step giving about four ticks on each side of zero."""
    return nice_step(YLIM * span / 4)


def _star(x: float, y: float, color: str) -> str:
    """A six-armed asterisk (the significance mark) centred at (x, y)."""
    r, s = 4.5, 4.5 * math.sin(math.pi / 3)
    d = (
        f"M{num(x - r)} {num(y)}H{num(x + r)}"
        f"M{num(x - r / 2)} {num(y - s)}L{num(x + r / 2)} {num(y + s)}"
        f"M{num(x - r / 2)} {num(y + s)}L{num(x + r / 2)} {num(y - s)}"
    )
    return f"<path d='{d}' stroke='{color}' stroke-width='1.6' fill='none'/>"


class _Frame:
    """Maps values (pp) to the bars panel's pixels."""

    def __init__(self, chart: ClassChart, x0: float, x1: float) -> None:
        self.lim = YLIM * chart.span
        self.x0, self.x1 = x0, x1
        self.n = chart.shown.size
        self.slot = (x1 - x0) / (self.n + 0.4)

    def y(self, v: float) -> float:
        return TOP + (self.lim - v) / (2 * self.lim) * PLOT_H

    def x(self, i: int) -> float:
        return self.x0 + (i + 0.7) * self.slot


def _axes(chart: ClassChart, fr: _Frame) -> list[str]:
    step = _step(chart.span)
    k = int(fr.lim // step)
    out = []
    for j in range(-k, k + 1):
        y = num(fr.y(j * step))
        out.append(
            f"<line x1='{num(fr.x0)}' x2='{num(fr.x1)}' y1='{y}' y2='{y}' stroke='#e5e7e9'/>"
        )
        label = f"{j * step:.6g}"
        out.append(
            f"<text x='{num(fr.x0 - 6)}' y='{y}' dy='0.32em' text-anchor='end' "
            f"font-size='11'>{label}</text>"
        )
    mid = num(TOP + PLOT_H / 2)
    out.append(
        f"<text transform='translate(16 {mid}) rotate(-90)' text-anchor='middle' "
        "font-size='12'>normalized recall difference (pp)</text>"
    )
    bottom = num(TOP + PLOT_H)
    out.append(f"<path d='M{num(fr.x0)} {num(TOP)}V{bottom}' stroke='#555' fill='none'/>")
    return out


def _bars(chart: ClassChart, fr: _Frame) -> list[str]:
    out = []
    half = 0.4 * fr.slot
    zero = fr.y(0.0)
    for i, idx in enumerate(chart.shown):
        v, color = float(chart.values[idx]), chart.colors[idx]
        top, bottom = sorted((fr.y(v), zero))
        err = float(chart.errors[idx])
        tip = f"{chart.names[idx]}: {v:+z.3g} pp" + ("" if np.isnan(err) else f" ± {err:.3g}")
        tip += "" if color == NEUTRAL else " (significant)"
        out.append(
            f"<rect x='{num(fr.x(i) - half)}' y='{num(top)}' width='{num(2 * half)}' "
            f"height='{num(max(bottom - top, 0.0))}' fill='{color}'><title>{for_html(tip)}"
            "</title></rect>"
        )
        if not np.isnan(err):
            x = num(fr.x(i))
            out.append(
                f"<line x1='{x}' x2='{x}' y1='{num(fr.y(v - err))}' y2='{num(fr.y(v + err))}' "
                "stroke='#1c2833' stroke-width='1.2'/>"
            )
        if color != NEUTRAL:
            out.append(_star(fr.x(i), fr.y(v + (-0.07 if v < 0 else 0.07) * chart.span), color))
    y0 = num(zero)
    out.append(f"<line x1='{num(fr.x0)}' x2='{num(fr.x1)}' y1='{y0}' y2='{y0}' stroke='black'/>")
    if chart.threshold is not None:
        yg = num(fr.y(-100.0 * chart.threshold))
        out.append(
            f"<line x1='{num(fr.x0)}' x2='{num(fr.x1)}' y1='{yg}' y2='{yg}' stroke='{WORSE}' "
            "stroke-width='1.5' stroke-dasharray='6 3'/>"
        )
    return out


def _names(chart: ClassChart, fr: _Frame) -> tuple[list[str], float]:
    """Bar names under the axis; returns them and the height they take."""
    names = [cut(chart.names[i], NAME_CHARS) for i in chart.shown]
    size = 11 if fr.n <= 30 else 9
    longest = max(map(len, names), default=0)
    y = TOP + PLOT_H + 6
    if fr.n <= 30 and longest <= 4:  # short names read best upright
        return [
            f"<text x='{num(fr.x(i))}' y='{num(y + size)}' text-anchor='middle' "
            f"font-size='{size}'>{for_html(t)}</text>"
            for i, t in enumerate(names)
        ], size + 10
    out = [
        f"<text transform='translate({num(fr.x(i))} {num(y)}) rotate(-60)' text-anchor='end' "
        f"dy='0.7em' font-size='{size}'>{for_html(t)}</text>"
        for i, t in enumerate(names)
    ]
    return out, longest * _CHAR_W * size * 0.866 + size + 10


def _legend(chart: ClassChart, x: float) -> list[str]:
    out, y = [], TOP + 8
    items: list[tuple[str, str, bool]] = [(c, t, False) for c, t in chart.legend()]
    if chart.threshold is not None:
        items.append((WORSE, f"gate class_recall_drop: -{100 * chart.threshold:.3g} pp", True))
    for color, text, dashed in items:
        mark = (
            f"<line x1='{num(x)}' x2='{num(x + 16)}' y1='{num(y + 5)}' y2='{num(y + 5)}' "
            f"stroke='{color}' stroke-width='1.5' stroke-dasharray='6 3'/>"
            if dashed
            else f"<rect x='{num(x + 3)}' y='{num(y)}' width='10' height='10' fill='{color}'/>"
        )
        out.append(
            f"{mark}<text x='{num(x + 22)}' y='{num(y + 5)}' dy='0.32em' font-size='11'>"
            f"{for_html(text)}</text>"
        )
        y += 16
    return out


def _histogram(chart: ClassChart, fr: _Frame, x0: float, x1: float) -> list[str]:
    edges, counts = chart.histogram()
    total = counts.sum(axis=0)
    top_count = max(1, int(total.max()))
    scale = (x1 - x0) / (top_count * 1.05)
    out = []
    left = np.zeros(counts.shape[1])
    for (color, _), row in zip(KINDS, counts, strict=True):
        for b in np.flatnonzero(row):
            y_top, y_bottom = fr.y(float(edges[b + 1])), fr.y(float(edges[b]))
            out.append(
                f"<rect x='{num(x0 + left[b] * scale)}' y='{num(y_top)}' "
                f"width='{num(row[b] * scale)}' height='{num(y_bottom - y_top)}' fill='{color}'/>"
            )
        left += row
    y0, bottom = num(fr.y(0.0)), TOP + PLOT_H
    out.append(f"<line x1='{num(x0)}' x2='{num(x1)}' y1='{y0}' y2='{y0}' stroke='black'/>")
    out.append(f"<path d='M{num(x0)} {num(bottom)}H{num(x1)}' stroke='#555' fill='none'/>")
    for c in (0, top_count):
        x = num(x0 + c * scale)
        out.append(
            f"<text x='{x}' y='{num(bottom + 14)}' text-anchor='middle' font-size='11'>{c}</text>"
        )
    out.append(
        f"<text x='{num((x0 + x1) / 2)}' y='{num(bottom + 30)}' text-anchor='middle' "
        "font-size='11'>classes</text>"
    )
    return out


def class_plot_svg(
    classes: Sequence[ClassRow],
    *,
    title: str,
    span: float | None = None,
    threshold: float | None = None,
    errors: Sequence[float | None] | None = None,
) -> str:
    """Bar chart of normalized recall difference per class, sorted, significant bars starred.

    Parameters are those of :func:`~compaudit.report._class_chart.class_chart`,
    plus ``title`` (the user's text: escaped and cut here).

    Returns
    -------
    str
        An ``<svg class='plot'>`` element: up to :data:`~._class_chart.SUMMARY_OVER`
        classes every class as a named bar; above, the worst as bars beside a
        histogram of all classes, as the chart states.
    """
    chart = class_chart(classes, span=span, threshold=threshold, errors=errors)
    right = WIDTH - RIGHT
    hist_x0 = LEFT + 0.75 * (right - LEFT) + 12 if chart.summary else right
    fr = _Frame(chart, LEFT, hist_x0 - (12 if chart.summary else 0))
    names, below = _names(chart, fr)
    parts = [*_axes(chart, fr), *_bars(chart, fr), *names, *_legend(chart, LEFT + 8)]
    height = TOP + PLOT_H + max(below, 38.0) + 8
    if chart.summary:
        parts += _histogram(chart, fr, hist_x0, right)
        parts.append(
            f"<text x='{num(LEFT)}' y='{num(height + 6)}' font-size='12'>"
            f"{for_html(chart.note())}</text>"
        )
        height += 18
    head = for_html(cut(title, TITLE_CHARS))
    return (
        f"<svg class='plot' viewBox='0 0 {num(WIDTH)} "
        f"{num(height)}' width='{num(WIDTH)}' height='{num(height)}' role='img' {FONT}>"
        f"<title>{head}</title><rect width='100%' height='100%' fill='white'/>"
        f"<text x='{num(LEFT)}' y='20' font-size='14'>{head}</text>{''.join(parts)}</svg>"
    )
