"""What the per-class chart shows, apart from how it is drawn.

One model (:func:`class_chart`) of the paper's per-class figure, drawn by two
backends: inline SVG in the HTML report (:mod:`._svg`, no matplotlib import)
and PNG files for studies (:mod:`._plot`). Both draw exactly these bars,
colours, error bars, legend entries and summary note.

Up to :data:`SUMMARY_OVER` classes, every class is a named bar. Above, the
chart says so and draws :data:`WORST_SHOWN` classes as named bars (the
significantly worse ones first, then the lowest others, sorted) beside a
histogram of every class on the same scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from compaudit.results import ClassRow

__all__ = [
    "BETTER",
    "KINDS",
    "NEUTRAL",
    "SUMMARY_OVER",
    "WORSE",
    "WORST_SHOWN",
    "ClassChart",
    "class_chart",
    "class_span",
]

WORSE = "#c0392b"
BETTER = "#2471a3"
NEUTRAL = "#b8bcc0"
SUMMARY_OVER = 60
"""More classes than this: :data:`WORST_SHOWN` of them as bars, all of them in a histogram."""
WORST_SHOWN = 30
HIST_BINS = 40
YLIM = 1.18  # y limits: this times the span
KINDS = (
    (WORSE, "* significantly worse"),
    (BETTER, "* significantly better"),
    (NEUTRAL, "not significant"),
)


@dataclass(frozen=True)
class ClassChart:
    """The per-class chart's content, in percentage points, sorted by value.

    ``values``, ``colors``, ``errors`` and ``names`` hold every class with a
    normalized recall difference; ``shown`` indexes the ones drawn as bars.
    """

    values: np.ndarray  # [n] pp, ascending
    colors: tuple[str, ...]  # WORSE / BETTER if significant, else NEUTRAL
    errors: np.ndarray  # [n] pp half-widths, NaN for none
    names: tuple[str, ...]  # the user's class names, unescaped
    shown: np.ndarray  # indices drawn as bars, ascending
    span: float  # half-height of the y-axis before the YLIM margin (pp)
    threshold: float | None  # the class_recall_drop gate (a fraction)

    @property
    def summary(self) -> bool:
        """Too many classes for a bar each: bars for :attr:`shown`, a histogram for all."""
        return self.values.size > SUMMARY_OVER

    @property
    def counts(self) -> dict[str, int]:
        """Classes per colour."""
        return {color: self.colors.count(color) for color, _ in KINDS}

    def legend(self) -> list[tuple[str, str]]:
        """(colour, label) of every kind present (with counts in a summary)."""
        counts = self.counts
        return [
            (color, f"{label} ({counts[color]})" if self.summary else label)
            for color, label in KINDS
            if counts[color]
        ]

    def note(self) -> str:
        """What a summary chart leaves out ("" when every class is a bar)."""
        if not self.summary:
            return ""
        n, shown, worse = self.values.size, self.shown.size, self.counts[WORSE]
        if worse == 0:
            which = f"the {shown} lowest"
        elif worse < shown:
            which = f"the {worse} significantly worse and the lowest others, {shown} in all"
        else:
            which = f"the {shown} lowest of the {worse} significantly worse"
        return (
            f"{n} classes, too many for a bar each: {which}, sorted; "
            "every class in the histogram on the right"
        )

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin edges [HIST_BINS + 1] (pp) and counts [3, HIST_BINS], one row per kind."""
        edges = np.linspace(-YLIM * self.span, YLIM * self.span, HIST_BINS + 1)
        kinds = np.array(self.colors)
        counts = np.stack(
            [np.histogram(self.values[kinds == color], bins=edges)[0] for color, _ in KINDS]
        )
        return edges, counts


def class_span(
    classes: Sequence[ClassRow],
    errors: Sequence[float | None] | None = None,
    threshold: float | None = None,
) -> float:
    """Half-height (pp) of the y-axis that fits every bar, error bar and the gate's line:
    the largest of these over several candidates puts their charts on one scale."""
    span = 0.0
    for i, r in enumerate(classes):
        d = r.normalized_recall_difference
        if d is not None:
            e = errors[i] if errors is not None else None
            span = max(span, 100.0 * (abs(d) + (e or 0.0)))
    if threshold is not None:
        span = max(span, 100.0 * threshold)
    return span


def _shown(values: np.ndarray, colors: Sequence[str]) -> np.ndarray:
    """Indices (sorted by value) of the classes drawn as bars in a summary chart:
    the significantly worse first, then the lowest others, :data:`WORST_SHOWN` in all."""
    worse = np.array([c == WORSE for c in colors], dtype=bool)
    order = np.lexsort((values, ~worse))  # worse first, each part by value
    return np.sort(order[:WORST_SHOWN])  # values are sorted, so index order is value order


def class_chart(
    classes: Sequence[ClassRow],
    *,
    span: float | None = None,
    threshold: float | None = None,
    errors: Sequence[float | None] | None = None,
) -> ClassChart:
    """The chart of ``classes``' normalized recall differences.

    Parameters
    ----------
    classes : sequence of ClassRow
        The comparison's class rows; rows without a normalized recall
        difference are left out.
    span : float, optional
        Half-height of the y-axis in percentage points (:func:`class_span` over
        every candidate, so their charts share one scale); default: this chart's own.
    threshold : float, optional
        The ``class_recall_drop`` gate's threshold (a fraction).
    errors : sequence of float or None, optional
        Half-width of each class's error bar (a fraction, aligned with ``classes``;
        None draws none for that class).

    Returns
    -------
    ClassChart
        Sorted by value (ties by class order).
    """
    pairs = sorted(
        (
            (r.normalized_recall_difference, i, r)
            for i, r in enumerate(classes)
            if r.normalized_recall_difference is not None
        ),
        key=lambda t: (t[0], t[1]),
    )
    values = np.array([100.0 * d for d, _, _ in pairs], dtype=float)
    colors = tuple(
        (WORSE if v < 0 else BETTER) if r.significant else NEUTRAL
        for (_, _, r), v in zip(pairs, values, strict=True)
    )
    err = np.full(values.size, np.nan)
    if errors is not None:
        err = np.array(
            [np.nan if (e := errors[i]) is None else 100 * e for _, i, _ in pairs], dtype=float
        )
    if span is None:
        rows = [r for _, _, r in pairs]
        span = class_span(rows, [None if np.isnan(e) else e / 100 for e in err], threshold)
    shown = _shown(values, colors) if values.size > SUMMARY_OVER else np.arange(values.size)
    return ClassChart(
        values=values,
        colors=colors,
        errors=err,
        names=tuple(r.name for _, _, r in pairs),
        shown=shown,
        span=span or 1.0,
        threshold=threshold,
    )
