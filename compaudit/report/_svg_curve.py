"""The compression curve as inline SVG, for the HTML report.

Four panels against compression level, as :func:`curve_plot_svg` says; text
markup like :mod:`._svg`, so the HTML report never imports matplotlib for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from compaudit._text import for_html
from compaudit.report._class_chart import BETTER, NEUTRAL, WORSE
from compaudit.report._curve import curve_x
from compaudit.report._svg import FONT, cut, nice_step, num

if TYPE_CHECKING:
    from compaudit.report._curve import CurvePoint

__all__ = ["curve_plot_svg"]

WIDTH, PANEL_H = 1000.0, 210.0
LEFT, RIGHT, TOP, GAP_X, GAP_Y = 70.0, 16.0, 40.0, 80.0, 30.0
LABEL_CHARS = 14

Series = tuple[str, Sequence[float], str, bool, str]  # label, ys, colour, dashed, marker


def ticks(lo: float, hi: float, n: int = 5, *, integer: bool = False) -> list[float]:
    """About ``n`` 1-2-5 ticks covering [lo, hi] (whole numbers when ``integer``)."""
    if not hi > lo:
        lo, hi = lo - 1.0, hi + 1.0
    step = nice_step((hi - lo) / n, (1, 2, 2.5, 5, 10))
    if integer:
        step = max(1.0, round(step))
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(math.ceil((hi - first) / step - 1e-9) + 1)]


class _Panel:
    """One panel: its box, its y range and the shared x positions."""

    def __init__(
        self, x0: float, y0: float, w: float, xs: Sequence[float], values: Sequence[float],
        *, integer: bool = False, zero: bool = False,
    ) -> None:  # fmt: skip
        finite = [v for v in values if math.isfinite(v)] or [0.0]
        lo, hi = min(finite), max(finite)
        if zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        self.ticks = ticks(lo, hi, integer=integer)
        self.lo, self.hi = self.ticks[0], self.ticks[-1]
        self.x0, self.y0, self.w = x0, y0, w
        a, b = min(xs), max(xs)
        pad = 0.06 * (b - a) if b > a else 1.0
        self.xa, self.xb = a - pad, b + pad

    def x(self, v: float) -> float:
        return self.x0 + (v - self.xa) / (self.xb - self.xa) * self.w

    def y(self, v: float) -> float:
        return self.y0 + (self.hi - v) / (self.hi - self.lo) * PANEL_H

    def frame(self, ylabel: str) -> list[str]:
        out = []
        for t in self.ticks:
            y = num(self.y(t))
            out.append(
                f"<line x1='{num(self.x0)}' x2='{num(self.x0 + self.w)}' y1='{y}' y2='{y}' "
                f"stroke='#e5e7e9'/><text x='{num(self.x0 - 6)}' y='{y}' dy='0.32em' "
                f"text-anchor='end' font-size='11'>{t:.6g}</text>"
            )
        bottom = num(self.y0 + PANEL_H)
        out.append(
            f"<path d='M{num(self.x0)} {num(self.y0)}V{bottom}H{num(self.x0 + self.w)}' "
            "stroke='#555' fill='none'/>"
            f"<text transform='translate({num(self.x0 - 48)} {num(self.y0 + PANEL_H / 2)}) "
            f"rotate(-90)' text-anchor='middle' font-size='12'>{for_html(ylabel)}</text>"
        )
        return out

    def line(self, xs: Sequence[float], s: Series) -> list[str]:
        _, ys, color, dashed, marker = s
        pts = [(self.x(x), self.y(y)) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
        dash = " stroke-dasharray='6 3'" if dashed else ""
        out = [
            f"<polyline points='{' '.join(f'{num(a)},{num(b)}' for a, b in pts)}' fill='none' "
            f"stroke='{color}' stroke-width='1.8'{dash}/>"
        ]
        out += [_marker(marker, a, b, color) for a, b in pts]
        return out


def _marker(kind: str, x: float, y: float, color: str) -> str:
    if kind == "s":
        return f"<rect x='{num(x - 4)}' y='{num(y - 4)}' width='8' height='8' fill='{color}'/>"
    if kind == "^":
        d = f"M{num(x)} {num(y - 5)}L{num(x + 4.5)} {num(y + 3.5)}H{num(x - 4.5)}Z"
        return f"<path d='{d}' fill='{color}'/>"
    return f"<circle cx='{num(x)}' cy='{num(y)}' r='4' fill='{color}'/>"


def _legend(p: _Panel, series: Sequence[Series]) -> list[str]:
    out, y = [], p.y0 + 10
    for label, _, color, dashed, marker in series:
        x = p.x0 + 12
        dash = " stroke-dasharray='6 3'" if dashed else ""
        out.append(
            f"<line x1='{num(x)}' x2='{num(x + 22)}' y1='{num(y)}' y2='{num(y)}' "
            f"stroke='{color}' stroke-width='1.8'{dash}/>{_marker(marker, x + 11, y, color)}"
            f"<text x='{num(x + 30)}' y='{num(y)}' dy='0.32em' font-size='11'>"
            f"{for_html(label)}</text>"
        )
        y += 16
    return out


def _x_axis(p: _Panel, xs: Sequence[float], labels: Sequence[str], title: str) -> list[str]:
    bottom = p.y0 + PANEL_H
    tilt = len(labels) > 4
    out = []
    for x, text in zip(xs, labels, strict=True):
        px = num(p.x(x))
        anchor = f"transform='translate({px} {num(bottom + 8)}) rotate(-30)' text-anchor='end'"
        upright = f"x='{px}' y='{num(bottom + 8)}' text-anchor='middle'"
        out.append(
            f"<text {anchor if tilt else upright} dy='0.8em' font-size='11'>{for_html(text)}</text>"
        )
    out.append(
        f"<text x='{num(p.x0 + p.w / 2)}' y='{num(bottom + (62 if tilt else 40))}' "
        f"text-anchor='middle' font-size='12'>{for_html(title)}</text>"
    )
    return out


def curve_plot_svg(points: list[CurvePoint]) -> str:
    """Four panels against compression level: top-1 and top-5; classes significantly
    worse (red bars: candidates that failed or errored); PIEs and PIEs over the seed
    floor; CIE rate.

    Returns
    -------
    str
        An ``<svg class='plot-curve'>`` element.
    """
    xs, labels, xlabel = curve_x(points)
    labels = [cut(s, LABEL_CHARS) for s in labels]
    cands = [(x, p.comparison, p) for x, p in zip(xs, points, strict=True) if p.comparison]
    cx = [x for x, _, _ in cands]
    w = (WIDTH - LEFT - RIGHT - GAP_X) / 2
    y1 = TOP + PANEL_H + GAP_Y
    col2 = LEFT + w + GAP_X
    nan = math.nan
    parts: list[str] = []

    def panel(
        x0: float, y0: float, series: list[Series], ylabel: str, at: Sequence[float],
        extra: Callable[[_Panel], list[str]] | None = None, **kw: bool,
    ) -> _Panel:  # fmt: skip
        p = _Panel(x0, y0, w, xs, [v for s in series for v in s[1]], **kw)
        parts.extend(p.frame(ylabel))
        if extra is not None:
            parts.extend(extra(p))
        for s in series:
            parts.extend(p.line(at, s))
        if any(s[0] for s in series):
            parts.extend(_legend(p, [s for s in series if s[0]]))
        return p

    acc: list[Series] = [("top-1", [100 * p.top1 for p in points], BETTER, False, "o")]
    if any(p.top5 is not None for p in points):
        top5 = [nan if p.top5 is None else 100 * p.top5 for p in points]
        acc.append(("top-5", top5, NEUTRAL, True, "s"))
    panel(LEFT, TOP, acc, "accuracy (%)", xs)

    n_worse = [float(len(c.significantly_worse_classes)) for _, c, _ in cands]
    colors = [WORSE if p.verdict in ("fail", "error") else BETTER for _, _, p in cands]

    def bars(p: _Panel) -> list[str]:
        gaps = sorted({abs(b - a) for a in cx for b in cx if b != a}) or [1.0]
        half = 0.3 * (p.x(gaps[0]) - p.x(0.0))
        out = []
        for x, n, color in zip(cx, n_worse, colors, strict=True):
            top, zero = p.y(n), p.y(0.0)
            out.append(
                f"<rect x='{num(p.x(x) - half)}' y='{num(top)}' width='{num(2 * half)}' "
                f"height='{num(zero - top)}' fill='{color}'/><text x='{num(p.x(x))}' "
                f"y='{num(top - 4)}' text-anchor='middle' font-size='11'>{n:.0f}</text>"
            )
        return out

    bar_ys = [*n_worse, max([1.0, *n_worse]) * 1.15]  # room for the counts above the bars
    worse = _Panel(col2, TOP, w, xs, bar_ys, integer=True, zero=True)
    parts.extend(worse.frame("classes significantly worse"))
    parts.extend(bars(worse))

    pie: list[Series] = [("PIEs", [float(c.pie.count) for _, c, _ in cands], WORSE, False, "o")]
    if any(p.excess_pies is not None for _, _, p in cands):
        excess = [nan if p.excess_pies is None else p.excess_pies for _, _, p in cands]
        pie.append(("PIEs over seed floor", excess, BETTER, True, "^"))

    def zero_line(p: _Panel) -> list[str]:
        if not p.lo < 0 < p.hi:
            return []
        y = num(p.y(0.0))
        return [f"<line x1='{num(p.x0)}' x2='{num(p.x0 + w)}' y1='{y}' y2='{y}' stroke='#707b7c'/>"]

    bottom_l = panel(LEFT, y1, pie, "examples", cx, zero_line, zero=True)
    rate: list[Series] = [("", [100 * c.cie.rate for _, c, _ in cands], WORSE, False, "o")]
    bottom_r = panel(col2, y1, rate, "CIE rate (%)", cx)
    parts += _x_axis(bottom_l, xs, labels, xlabel) + _x_axis(bottom_r, xs, labels, xlabel)
    height = y1 + PANEL_H + (78 if len(labels) > 4 else 54)
    return (
        f"<svg class='plot-curve' viewBox='0 0 {num(WIDTH)} {num(height)}' width='{num(WIDTH)}' "
        f"height='{num(height)}' role='img' {FONT}><title>Compression curve</title>"
        "<rect width='100%' height='100%' fill='white'/>"
        f"<text x='{num(LEFT)}' y='22' font-size='14'>Compression curve</text>"
        f"{''.join(parts)}</svg>"
    )
