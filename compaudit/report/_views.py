"""The HTML report's views beyond the per-class bars, drawn in HTML and CSS.

* :func:`heatmap_html`: class x candidate normalized recall difference;
* :func:`confusion_html`: the confusions that grew most, with a bar each;
* :func:`forest_html`: each group's top-1 shift beyond the overall shift,
  with its interval and the gate's threshold (a forest plot).

HTML, not images: text stays selectable and they cost nothing to draw (a
matplotlib figure costs ~50 ms, and the report has one forest per candidate
and attribute set). Classes are styled by ``templates/report.css``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from compaudit._text import for_html
from compaudit.report._class_chart import BETTER, WORSE

if TYPE_CHECKING:
    from compaudit.report._charts import ConfusionShift
    from compaudit.results import Comparison, GroupRow

__all__ = ["HEATMAP_ROWS", "SUBGROUPS_SHOWN", "confusion_html", "forest_html", "heatmap_html"]

HEATMAP_ROWS = 30
SUBGROUPS_SHOWN = 25


def _mix(value: float, span: float) -> tuple[str, str]:
    """Background and text colour of a heatmap cell: white to red (worse) or blue (better)."""
    t = 0.0 if span <= 0 or not math.isfinite(value) else min(1.0, abs(value) / span)
    end = WORSE if value < 0 else BETTER
    rgb = [round(255 + (int(end[i : i + 2], 16) - 255) * t) for i in (1, 3, 5)]
    return "#{:02x}{:02x}{:02x}".format(*rgb), "#fff" if t > 0.55 else "#1c2833"


def heatmap_html(comparisons: Sequence[Comparison], *, rows: int = HEATMAP_ROWS) -> str:
    """Class x candidate table of normalized recall difference, coloured by value.

    Classes shown: those significantly worse for any candidate first, then by
    their lowest difference over the candidates; at most ``rows`` of them
    (the page says how many were left out). One colour scale for the table.
    """
    by_class: dict[int, list[Any]] = {}
    for j, c in enumerate(comparisons):
        for r in c.classes:
            by_class.setdefault(r.class_index, [None] * len(comparisons))[j] = r

    def key(item: tuple[int, list[Any]]) -> tuple[bool, float, int]:
        cells = [r for r in item[1] if r is not None]
        diffs = [r.normalized_recall_difference for r in cells]
        low = min((d for d in diffs if d is not None), default=math.inf)
        return (not any(r.significantly_worse for r in cells), low, item[0])

    ranked = sorted(by_class.items(), key=key)
    shown = ranked[:rows]
    values = [
        abs(r.normalized_recall_difference)
        for _, cells in shown
        for r in cells
        if r is not None and r.normalized_recall_difference is not None
    ]
    span = max(values, default=0.0)
    head = "".join(f"<th class='num'>{for_html(c.candidate)}</th>" for c in comparisons)
    body = []
    for _, cells in shown:
        name = next(r for r in cells if r is not None).name
        tds = []
        for r in cells:
            d = None if r is None else r.normalized_recall_difference
            if d is None:
                tds.append("<td class='num'>-</td>")
                continue
            bg, fg = _mix(d, span)
            star = " *" if r.significant else ""
            tds.append(
                f"<td class='num hm' style='background:{bg};color:{fg}'>{100 * d:+z.1f}{star}</td>"
            )
        body.append(f"<tr><td>{for_html(name)}</td>{''.join(tds)}</tr>")
    note = ""
    if len(ranked) > len(shown):
        note = (
            f"<p class='note'>Showing {len(shown)} of {len(ranked)} classes: the significantly "
            "worse first, then the lowest; report.json has them all.</p>"
        )
    return (
        f"<table class='heatmap'><thead><tr><th>class</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{note}"
    )


def confusion_html(shifts: Sequence[ConfusionShift], names: Mapping[int, str]) -> str:
    """The confusion shifts as a table with a bar per row (growth against the largest)."""
    if not shifts:
        return "<p class='muted'>No confusion grew: no PIE moved into a wrong class.</p>"
    top = max(s.growth for s in shifts)
    rows = []
    for s in shifts:
        width = 100.0 * s.growth / top
        true, pred = (for_html(names.get(i, str(i))) for i in (s.true, s.predicted))
        rows.append(
            f"<tr><td>{true} &rarr; {pred}</td><td class='num'>{s.after}</td>"
            f"<td class='num'>{s.before}</td><td class='num'>+{s.growth}</td>"
            f"<td class='barcell'><span class='cbar' style='width:{width:.0f}%'></span></td></tr>"
        )
    head = (
        "<tr><th>true &rarr; predicted</th><th class='num'>PIEs now</th>"
        "<th class='num'>before</th><th class='num'>growth</th><th></th></tr>"
    )
    return f"<table class='confusions'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def forest_html(
    rows: Sequence[GroupRow],
    *,
    errors: Sequence[float | None] | None = None,
    threshold: float | None = None,
) -> str:
    """Forest plot in HTML and CSS: each group's top-1 shift beyond the overall shift.

    One row per group in the given order (worst first): a dot at the shift
    (pp), a line for its interval, the zero line, and the ``accuracy_gap``
    gate's threshold dashed at minus it. Drawn by the browser, not matplotlib:
    no figure to render, and the labels stay text.

    Parameters
    ----------
    rows : sequence of GroupRow
        The groups, in drawing order.
    errors : sequence of float or None, optional
        Half-width of each group's interval (a fraction, aligned with ``rows``).
    threshold : float, optional
        The gate's threshold (a fraction).

    Returns
    -------
    str
        An HTML fragment (classes styled by the report's CSS).
    """
    x = [100.0 * r.shift_difference for r in rows]
    err = [
        None if (e := (errors or [None] * len(rows))[i]) is None else 100.0 * e
        for i in range(len(rows))
    ]
    reach = [abs(v) + (e or 0.0) for v, e in zip(x, err, strict=True) if math.isfinite(v)]
    span = _nice(max([*reach, 100.0 * (threshold or 0.0)], default=0.0) * 1.1)

    def pos(v: float) -> float:
        return 50.0 + 50.0 * max(-1.0, min(1.0, v / span))

    out = []
    for r, v, e in zip(rows, x, err, strict=True):
        kind = ("worse" if v < 0 else "better") if r.significant else "ns"
        marks = ""
        if e is not None and math.isfinite(v):
            lo, hi = pos(v - e), pos(v + e)
            marks += f"<span class='fi' style='left:{lo:.2f}%;width:{hi - lo:.2f}%'></span>"
        if math.isfinite(v):
            hollow = "" if r.testable else " hollow"
            marks += f"<span class='fd {kind}{hollow}' style='left:{pos(v):.2f}%'></span>"
        note = "" if r.testable else " <span class='muted'>(n small)</span>"
        ci = "" if e is None else f" ± {e:.1f}"
        value = "-" if not math.isfinite(v) else f"{v:+z.1f}{ci}"
        out.append(
            f"<div class='frow'><div class='fname'>{for_html(r.label)}{note}</div>"
            f"<div class='fplot'>{marks}</div><div class='fval'>{value}</div></div>"
        )
    gate = ""
    if threshold is not None:
        at = pos(-100.0 * threshold)
        gate = (
            f"<span class='fgate' style='left:{at:.2f}%'></span>"
            f"<span class='fgl' style='left:{at:.2f}%'>gate -{100 * threshold:.3g} pp</span>"
        )
    ends = {-span: " ft0", span: " ft1"}  # the end labels stay inside the plot
    ticks = "".join(
        "<span class='ft" + ends.get(t, "") + f"' style='left:{pos(t):.2f}%'>{t:+g}</span>"
        for t in (-span, -span / 2, 0.0, span / 2, span)
    )
    return (
        f"<div class='forest'><div class='fbg'><span class='fzero'></span>{gate}</div>"
        f"{''.join(out)}<div class='frow faxis'><div class='fname'>pp</div>"
        f"<div class='fplot'>{ticks}</div><div class='fval'></div></div></div>"
    )


def _nice(v: float) -> float:
    """Smallest of 1, 2, 2.5, 5 x 10^k at least ``v`` (axis ends that read well)."""
    if not v > 0 or not math.isfinite(v):
        return 1.0
    base = 10.0 ** math.floor(math.log10(v))
    return next(m * base for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * base >= v - 1e-12)
