"""One comparison of a candidate population with the reference, in report form.

:func:`compare` builds the ``comparisons[i]`` object of ``compaudit.report/v1``
from two :class:`Side` objects; the work shared by every candidate (the
reference's correctness, modal predictions and per-group accuracy) is computed
once, in :class:`Side` and :class:`Partition`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from compaudit.analysis.agreement import TIE_RULE, cie, modal_predictions, subset_top1
from compaudit.analysis.shift import ShiftTable, group_accuracy, group_shift
from compaudit.analysis.subgroups import pie_shares
from compaudit.analysis.topline import TopLine, correct_matrix, summarize
from compaudit.population import Population

if TYPE_CHECKING:
    from compaudit.audit import AuditSettings

__all__ = ["Partition", "Side", "compare"]


@dataclass(frozen=True, eq=False)
class Side:
    """A population with what every comparison reuses (computed once)."""

    name: str
    population: Population
    correct: np.ndarray
    topline: TopLine
    modal: np.ndarray
    share: np.ndarray

    @classmethod
    def of(cls, name: str, population: Population) -> Side:
        """Precompute correctness, accuracy and modal predictions."""
        correct = correct_matrix(population.predictions, population.y)
        modal, share = modal_predictions(population.predictions)
        return cls(name, population, correct, summarize(population, correct=correct), modal, share)

    @property
    def summary_correct(self) -> np.ndarray:
        """Per-example correctness as one model (itself, or its modal prediction)."""
        if self.population.k == 1:
            return np.asarray(self.correct[0])
        return np.asarray(self.modal == self.population.y)

    def to_dict(self) -> dict[str, Any]:
        """``populations`` entry of the report."""
        t = self.topline
        return {
            "k": t.k,
            "top1": t.top1,
            "top1_std": t.top1_std,
            "top5": t.top5,
            "top5_std": t.top5_std,
            "top1_per_model": [float(v) for v in t.top1_per_model],
            "source": self.population.source,
            "fingerprint": self.population.fingerprint(),
        }


def _num(x: float | np.floating[Any] | None) -> float | None:
    """JSON-safe float: NaN (not computed) and the infinite statistic of a
    zero-variance comparison (its p-value says it all) become None."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _test_fields(t: ShiftTable, i: int) -> dict[str, Any]:
    return {
        "test": t.method[i] or None,
        "statistic": _num(t.statistic[i]),
        "p_value": _num(t.p_value[i]),
        "p_adjusted": _num(t.p_adjusted[i]),
        "significant": bool(t.significant[i]),
    }


@dataclass(frozen=True, eq=False)
class Partition:
    """A grouping of the examples (classes, or subgroups) and the reference's
    accuracy on it, computed once and reused for every candidate."""

    codes: np.ndarray
    keys: list[Any]
    order: np.ndarray
    ref_accuracy: np.ndarray

    @classmethod
    def of(cls, codes: np.ndarray, keys: list[Any], ref: Side) -> Partition:
        order = np.argsort(codes, kind="stable")
        return cls(codes, keys, order, group_accuracy(ref.correct, codes, len(keys), order=order))


def compare(
    ref: Side,
    cand: Side,
    settings: AuditSettings,
    class_part: Partition,
    group_part: Partition | None,
) -> tuple[dict[str, Any], np.ndarray]:
    pop = ref.population
    y = class_part.codes
    pie = ref.modal != cand.modal
    pie_idx = np.flatnonzero(pie)
    c = pop.num_classes

    classes = group_shift(
        ref.correct,
        cand.correct,
        y,
        c,
        ref_summary=ref.summary_correct,
        cand_summary=cand.summary_correct,
        testable=np.ones(c, dtype=bool),
        alpha=settings.alpha,
        correction=settings.correction,
        ref_accuracy=class_part.ref_accuracy,
        order=class_part.order,
    )
    names = [pop.class_name(i) for i in range(c)]
    class_rows = [
        {
            "class": i,
            "name": names[i],
            "support": support,
            "recall_reference": _num(r),
            "recall_candidate": _num(cd),
            "normalized_recall_difference": _num(d),
            **_test_fields(classes, i),
        }
        for i, (support, r, cd, d) in enumerate(
            zip(
                classes.support.tolist(),
                classes.acc_reference.tolist(),
                classes.acc_candidate.tolist(),
                classes.difference.tolist(),
                strict=True,
            )
        )
    ]

    subgroup_rows: list[dict[str, Any]] = []
    if group_part is not None:
        codes, keys = group_part.codes, group_part.keys
        g = len(keys)
        shares = pie_shares(codes, g, pie)
        shift = group_shift(
            ref.correct,
            cand.correct,
            codes,
            g,
            ref_summary=ref.summary_correct,
            cand_summary=cand.summary_correct,
            testable=shares["n"] >= settings.min_support,
            alpha=settings.alpha,
            correction=settings.correction,
            ref_accuracy=group_part.ref_accuracy,
            order=group_part.order,
        )
        subgroup_rows = [
            {
                "group": keys[i],
                "n": int(shares["n"][i]),
                "n_non_pie": int(shares["n_non_pie"][i]),
                "n_pie": int(shares["n_pie"][i]),
                "pct_non_pie": _num(shares["pct_non_pie"][i]),
                "pct_pie": _num(shares["pct_pie"][i]),
                "pct_growth": _num(shares["pct_growth"][i]),
                "top1_reference": float(shift.acc_reference[i]),
                "top1_candidate": float(shift.acc_candidate[i]),
                "shift_difference": float(shift.difference[i]),
                "testable": bool(shift.testable[i]),
                **_test_fields(shift, i),
            }
            for i in range(g)
        ]

    ids = pop.ids
    # Column-wise tolist() is far cheaper than indexing numpy per PIE.
    columns = (
        ids[pie_idx].tolist(),
        y[pie_idx].tolist(),
        ref.modal[pie_idx].tolist(),
        cand.modal[pie_idx].tolist(),
        ref.share[pie_idx].tolist(),
        cand.share[pie_idx].tolist(),
    )
    fields = (
        "id",
        "label",
        "modal_reference",
        "modal_candidate",
        "share_reference",
        "share_candidate",
    )
    examples = [dict(zip(fields, row, strict=True)) for row in zip(*columns, strict=True)]
    t_r, t_c = ref.topline, cand.topline
    comparison = {
        "reference": ref.name,
        "candidate": cand.name,
        "top1_delta": t_c.top1 - t_r.top1,
        "top5_delta": t_c.top5 - t_r.top5
        if t_c.top5 is not None and t_r.top5 is not None
        else None,
        "class_test": classes.test,
        "cie": cie(
            ref.population.predictions,
            cand.population.predictions,
            y,
            ref_correct=ref.correct,
            cand_correct=cand.correct,
        ).to_dict(),
        "pie": {
            "count": len(pie_idx),
            "rate": len(pie_idx) / pop.n,
            "tie_rule": TIE_RULE,
            "examples": examples,
        },
        "subsets": {
            **{
                k: v.to_dict()
                for k, v in subset_top1(ref.correct, cand.correct, pie, seed=settings.seed).items()
            },
            "seed": settings.seed,
        },
        "classes": class_rows,
        "subgroup_attributes": list(settings.attributes),
        "subgroups": subgroup_rows,
    }
    return comparison, pie
