"""What the HTML report's pictures show, computed (drawn by :mod:`._views` and :mod:`._plot`).

* :func:`shift_errors` (and :class:`Spreads` over an audit result): the spread
  behind each class's (or group's) normalized difference, for error bars and
  intervals;
* :func:`confusion_shifts`: the (true -> predicted) pairs whose confusion grew
  most ("Shirt -> T-shirt: 57 PIEs");
* :func:`gate_threshold`: the threshold a chart draws.

Pure numpy on arrays the audit already holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from compaudit.analysis.shift import group_accuracy

if TYPE_CHECKING:
    from compaudit.engine import AuditResult
    from compaudit.results import Comparison, GateResult, GroupSetResult

__all__ = [
    "CONFUSIONS_SHOWN",
    "Z95",
    "ConfusionShift",
    "Spreads",
    "confusion_shifts",
    "gate_threshold",
    "shift_errors",
]

Z95 = 1.959963984540054
"""Normal 97.5% quantile: error bars and intervals are +- Z95 standard errors."""
CONFUSIONS_SHOWN = 10
WELCH = "welch"  # ClassRow.test / GroupRow.test of the populations' Welch test


def shift_errors(
    ref_correct: np.ndarray,
    cand_correct: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    *,
    _cache: dict[int, np.ndarray] | None = None,
) -> np.ndarray:
    """Standard error of each group's normalized difference (classes: ``codes = y``).

    The difference is ``mean_k(acc_g(k) - top1(k))`` of the candidate minus
    the same of the reference (the paper's, as the audit computes it). With
    K >= 2 on a side, that side adds its models' spread, ``var_k / K``
    (Welch's standard error; one model adds none). With one model on both
    sides there is no spread of models, and the examples' spread is used: the
    standard deviation of the per-example change in correctness in the group
    over the square root of its size.

    Parameters
    ----------
    ref_correct, cand_correct : ndarray of bool, shape (K, N)
        Per-model correctness of the two sides on the same examples.
    codes : ndarray of int, shape (N,)
        Group (or class) index of each example.
    n_groups : int
        Number of groups.
    _cache : dict, optional
        Per-side variances by ``id`` of the correctness array, for callers that
        pass the same reference and codes for every candidate (private).

    Returns
    -------
    ndarray of shape (n_groups,)
        Standard errors, as fractions; NaN where a group has too few examples
        (under two) or nothing varies.
    """
    cache = {} if _cache is None else _cache
    order: np.ndarray | None = None
    support = np.bincount(codes, minlength=n_groups)
    var = np.zeros(n_groups)
    sides = [c for c in (ref_correct, cand_correct) if c.shape[0] >= 2]
    for correct in sides:
        if id(correct) not in cache:
            if order is None:
                order = np.argsort(codes, kind="stable")
            acc = group_accuracy(correct, codes, n_groups, order=order)
            shifted = acc - correct.mean(axis=1)[:, None]
            cache[id(correct)] = shifted.var(axis=0, ddof=1) / correct.shape[0]
        var += cache[id(correct)]
    if not sides:
        change = cand_correct[0].astype(float) - ref_correct[0].astype(float)
        total = np.bincount(codes, weights=change, minlength=n_groups)
        squares = np.bincount(codes, weights=change * change, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / support
            sample_var = (squares - support * mean * mean) / (support - 1)
            var = np.where(support >= 2, np.maximum(sample_var, 0.0) / support, np.nan)
    se = np.sqrt(var)
    return np.where((support >= 2) & (se > 0), se, np.nan)


class Spreads:
    """Error-bar half-widths (``Z95`` standard errors) from an in-memory audit result.

    Rows tested with Welch's test carry their standard error already
    (difference / statistic); the others need the per-model predictions, which
    a report read back from ``report.json`` lacks: without ``result`` they get
    no bar (None), and a comparison with none at all gets None.
    """

    def __init__(self, result: AuditResult | None) -> None:
        self._result = result
        self._codes: dict[tuple[str, ...], tuple[np.ndarray, list[dict[str, Any]]]] = {}
        # The reference's variances, per partition (classes: ``()``), reused by every candidate.
        self._var: dict[tuple[str, ...] | None, dict[int, np.ndarray]] = {}

    def _sides(self, c: Comparison) -> tuple[np.ndarray, np.ndarray] | None:
        r = self._result
        if r is None or r.reference.name != c.reference:
            return None
        cand = next((s for s in r.candidates if s.name == c.candidate), None)
        return None if cand is None else (r.reference.correct, cand.correct)

    def basis(self, c: Comparison) -> str | None:
        """What the error bars of ``c`` measure, in words (None: no bars)."""
        sides = self._sides(c)
        if sides is None:
            return "the models' spread (Welch)" if c.class_test == WELCH else None
        spread = [
            f"{name} K={x.shape[0]}"
            for name, x in zip(("reference", "candidate"), sides, strict=True)
            if x.shape[0] >= 2
        ]
        if not spread:
            return "the examples' spread (one model on each side)"
        return f"the models' spread ({', '.join(spread)})"

    def classes(self, c: Comparison) -> list[float | None] | None:
        """Per class row of ``c``, aligned with ``c.classes``."""
        rows = [(r.normalized_recall_difference, r.test, r.statistic) for r in c.classes]
        return self._fill(c, rows, lambda: self._class_se(c), [r.class_index for r in c.classes])

    def groups(self, c: Comparison, gs: GroupSetResult) -> list[float | None] | None:
        """Per subgroup row of ``gs``, aligned with ``gs.subgroups``."""
        rows = [(g.shift_difference, g.test, g.statistic) for g in gs.subgroups]
        return self._fill(c, rows, lambda: self._group_se(c, gs), list(range(len(rows))))

    def _fill(
        self,
        c: Comparison,
        rows: Sequence[tuple[float | None, str | None, float | None]],
        compute: Callable[[], np.ndarray | None],
        index: list[int],
    ) -> list[float | None] | None:
        # A Welch row's standard error is its difference over its statistic (exactly
        # what shift_errors computes, tested), so no predictions are needed for it.
        halves = [_welch(*row) for row in rows]
        missing = [i for i, (d, _, _) in enumerate(rows) if halves[i] is None and _finite(d)]
        if missing and self._sides(c) is not None:
            se = compute()
            if se is not None:
                for i in missing:
                    halves[i] = _half(se, index[i])
        return halves if any(h is not None for h in halves) else None

    def _class_se(self, c: Comparison) -> np.ndarray | None:
        sides = self._sides(c)
        if sides is None or self._result is None:
            return None
        pop = self._result.reference.population
        ref = self._var.setdefault(None, {})
        se = shift_errors(*sides, pop.y, pop.num_classes, _cache=ref)
        ref.pop(id(sides[1]), None)  # keep the reference's only
        return se

    def _group_se(self, c: Comparison, gs: GroupSetResult) -> np.ndarray | None:
        sides = self._sides(c)
        if sides is None or self._result is None:
            return None
        from compaudit.analysis.subgroups import group_codes

        if gs.attributes not in self._codes:
            pop = self._result.reference.population
            self._codes[gs.attributes] = group_codes(
                pop.attributes, list(gs.attributes), y=pop.y,
                class_names=self._result.class_names, source=pop.source,
            )  # fmt: skip
        codes, keys = self._codes[gs.attributes]
        if keys != [g.group for g in gs.subgroups]:  # not the audit's partition: draw none
            return None
        ref = self._var.setdefault(gs.attributes, {})
        se = shift_errors(*sides, codes, len(keys), _cache=ref)
        ref.pop(id(sides[1]), None)
        return se


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _welch(d: float | None, test: str | None, statistic: float | None) -> float | None:
    """``Z95 * |d / t|`` of a Welch-tested row (None otherwise, or when t says nothing)."""
    if test != WELCH or not _finite(d) or not _finite(statistic) or statistic == 0:
        return None
    assert d is not None
    assert statistic is not None
    se = abs(d / statistic)
    return Z95 * se if math.isfinite(se) and se > 0 else None


def _half(se: np.ndarray, i: int) -> float | None:
    v = float(se[i]) if 0 <= i < se.size else math.nan
    return Z95 * v if math.isfinite(v) else None


@dataclass(frozen=True)
class ConfusionShift:
    """Examples of one true class predicted as another class, before and after.

    Attributes
    ----------
    true, predicted : int
        Class indices (``true != predicted``).
    before, after : int
        How many examples of class ``true`` the reference (``before``) and the
        candidate (``after``) predict as ``predicted``.
    """

    true: int
    predicted: int
    before: int
    after: int

    @property
    def growth(self) -> int:
        """``after - before``: how much this confusion grew."""
        return self.after - self.before


def confusion_shifts(
    labels: np.ndarray,
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    limit: int = CONFUSIONS_SHOWN,
) -> list[ConfusionShift]:
    """The off-diagonal confusions (true -> predicted) that grew most.

    Given the PIEs' true labels and modal predictions, ``after`` counts the
    PIEs the candidate now puts in ``predicted``; every other example has the
    same modal prediction on both sides, so the growth equals that of the full
    confusion matrices of the modal predictions.

    Parameters
    ----------
    labels, reference, candidate : ndarray of int, shape (M,)
        True label and the two sides' predictions of each example.
    limit : int
        Most pairs returned.

    Returns
    -------
    list of ConfusionShift
        Pairs that grew (``growth > 0``), largest growth first, then larger
        ``after``, then by (true, predicted).
    """
    labels, reference, candidate = (
        np.asarray(a, dtype=np.int64) for a in (labels, reference, candidate)
    )
    if labels.size == 0:
        return []
    width = int(max(labels.max(), reference.max(), candidate.max())) + 1
    keys = np.concatenate([labels * width + candidate, labels * width + reference])
    after_w = np.concatenate([np.ones(labels.size), np.zeros(labels.size)])
    uniq, inv = np.unique(keys, return_inverse=True)
    after = np.bincount(inv, weights=after_w).astype(np.int64)
    before = np.bincount(inv, weights=1.0 - after_w).astype(np.int64)
    true, pred = uniq // width, uniq % width
    keep = (true != pred) & (after > before)
    idx = np.flatnonzero(keep)
    order = np.lexsort((pred[idx], true[idx], -after[idx], -(after - before)[idx]))[:limit]
    return [
        ConfusionShift(int(true[i]), int(pred[i]), int(before[i]), int(after[i]))
        for i in idx[order]
    ]


def gate_threshold(
    gates: Sequence[GateResult], name: str, candidate: str, *, suffix: str = ""
) -> float | None:
    """Threshold of gate ``name`` (or ``name[suffix]``) for ``candidate``, if it ran."""
    names = {name, f"{name}[{suffix}]"} if suffix else {name}
    for g in gates:
        if g.name in names and g.candidate in (candidate, None) and g.threshold is not None:
            return float(g.threshold)
    return None
