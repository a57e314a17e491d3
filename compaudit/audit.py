"""Populations in, findings out: the audit engine's one entry point.

:func:`audit` compares a reference population with one or more candidate
populations on the same examples and returns an :class:`AuditResult`, whose
:meth:`~AuditResult.to_report` is the ``compaudit.report/v1`` document.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from compaudit import __version__
from compaudit.analysis.agreement import TIE_RULE, cie, modal_predictions, subset_top1
from compaudit.analysis.shift import ShiftTable, group_accuracy, group_shift
from compaudit.analysis.stats import Correction
from compaudit.analysis.subgroups import group_codes, pie_shares
from compaudit.analysis.topline import TopLine, correct_matrix, summarize
from compaudit.errors import InputError
from compaudit.population import Population

__all__ = ["SCHEMA", "AuditResult", "AuditSettings", "Side", "audit"]

SCHEMA = "compaudit.report/v1"
CORRECTIONS = ("holm", "bh", "bonferroni", "none")

ERR_NO_CANDIDATES = "nothing to compare: give at least one candidate (--candidate [NAME=]SPEC)"
ERR_Y_DIFFERS = (
    "{a} and {b} are not predictions on the same examples: their labels 'y' differ at "
    "{count} of {n} positions; predict both on the same data, in the same order"
)
ERR_N_DIFFERS = (
    "{a} has {na} examples but {b} has {nb}; predict both on the same data, in the same order"
)
ERR_IDS_DIFFER = (
    "{a} and {b} list different example ids (or a different order); predict both on the "
    "same data, in the same order"
)
ERR_CLASSES_DIFFER = "{a} has {ca} classes but {b} has {cb}; both must use the same label space"
ERR_EMPTY_CLASS = (
    "{src}: class(es) {classes} have no examples, so their recall cannot be tested; "
    "evaluate on data that contains every class, or set empty_classes='skip'"
)


@dataclass(frozen=True)
class AuditSettings:
    """Statistical settings of an audit.

    Attributes
    ----------
    alpha : float
        Significance level applied to adjusted p-values.
    correction : {"holm", "bh", "bonferroni", "none"}
        Multiple-testing correction, applied per comparison to the family of
        class tests and, separately, to the family of subgroup tests.
    seed : int
        Seed of every random choice (the random subset of the Fig. 3 comparison).
    min_support : int
        Subgroups with fewer examples are reported as not testable.
    attributes : tuple of str
        Attributes to cross for the subgroup table (``"label"`` is the true label).
    empty_classes : {"error", "skip"}
        What to do with classes that have no examples.
    """

    alpha: float = 0.05
    correction: Correction = "holm"
    seed: int = 0
    min_support: int = 30
    attributes: tuple[str, ...] = ()
    empty_classes: Literal["error", "skip"] = "error"

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise InputError(f"alpha must lie in (0, 1), got {self.alpha}")
        if self.correction not in CORRECTIONS:
            raise InputError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        if self.min_support < 1:
            raise InputError(f"min_support must be at least 1, got {self.min_support}")

    def to_dict(self) -> dict[str, Any]:
        """Report form."""
        return {
            "alpha": self.alpha,
            "correction": self.correction,
            "seed": self.seed,
            "min_support": self.min_support,
            "attributes": list(self.attributes),
        }


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


@dataclass(eq=False)
class AuditResult:
    """Everything one audit found; :meth:`to_report` is the JSON document."""

    settings: AuditSettings
    reference: Side
    candidates: list[Side]
    comparisons: list[dict[str, Any]]
    pie_masks: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        """Names of all classes."""
        pop = self.reference.population
        return [pop.class_name(c) for c in range(pop.num_classes)]

    def to_report(
        self,
        *,
        gates: Sequence[Mapping[str, Any]] = (),
        verdict: Literal["pass", "fail", "error"] | None = None,
        errors: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The ``compaudit.report/v1`` document (JSON-serialisable)."""
        if verdict is None:
            # Without a policy nothing is gated; with one, the caller passes the
            # verdict decided by compaudit.gates.decide_verdict.
            if gates:
                raise ValueError("pass the verdict of compaudit.gates.decide_verdict with gates")
            verdict = "error" if errors else "pass"
        pop = self.reference.population
        return {
            "schema": SCHEMA,
            "tool": {"name": "compaudit", "version": __version__},
            "verdict": verdict,
            "settings": self.settings.to_dict(),
            "data": {"n": pop.n, "num_classes": pop.num_classes, "class_names": self.class_names},
            "populations": {s.name: s.to_dict() for s in [self.reference, *self.candidates]},
            "comparisons": self.comparisons,
            "gates": [dict(g) for g in gates],
            "errors": list(errors),
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


def _check_same_examples(ref: Population, cand: Population) -> None:
    a, b = ref.source, cand.source
    if ref.n != cand.n:
        raise InputError(ERR_N_DIFFERS.format(a=a, na=ref.n, b=b, nb=cand.n))
    if not np.array_equal(ref.y, cand.y):
        count = int((ref.y != cand.y).sum())
        raise InputError(ERR_Y_DIFFERS.format(a=a, b=b, count=count, n=ref.n))
    default = np.arange(ref.n)
    explicit = [not np.array_equal(p.ids, default) for p in (ref, cand)]
    if all(explicit) and not np.array_equal(ref.ids.astype(str), cand.ids.astype(str)):
        raise InputError(ERR_IDS_DIFFER.format(a=a, b=b))
    if ref.num_classes != cand.num_classes:
        raise InputError(
            ERR_CLASSES_DIFFER.format(a=a, ca=ref.num_classes, b=b, cb=cand.num_classes)
        )


@dataclass(frozen=True, eq=False)
class _Partition:
    """A grouping of the examples (classes, or subgroups) and the reference's
    accuracy on it, computed once and reused for every candidate."""

    codes: np.ndarray
    keys: list[Any]
    order: np.ndarray
    ref_accuracy: np.ndarray

    @classmethod
    def of(cls, codes: np.ndarray, keys: list[Any], ref: Side) -> _Partition:
        order = np.argsort(codes, kind="stable")
        return cls(codes, keys, order, group_accuracy(ref.correct, codes, len(keys), order=order))


def _compare(
    ref: Side,
    cand: Side,
    settings: AuditSettings,
    class_part: _Partition,
    group_part: _Partition | None,
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


def _merged_attributes(ref: Population, candidates: Sequence[Population]) -> Population:
    """Attributes may arrive with any population; the reference's win on conflict."""
    extra: dict[str, np.ndarray] = {}
    for cand in candidates:
        for name, values in cand.attributes.items():
            if name not in ref.attributes and name not in extra:
                extra[name] = values
    return ref.with_attributes(extra) if extra else ref


def audit(
    reference: Population,
    candidates: Mapping[str, Population],
    *,
    reference_name: str = "reference",
    settings: AuditSettings | None = None,
) -> AuditResult:
    """Audit candidate populations against a reference population.

    Parameters
    ----------
    reference : Population
        The uncompressed model(s).
    candidates : mapping of str to Population
        Compressed model(s) by name, predicted on the same examples.
    reference_name : str
        Name of the reference in the report.
    settings : AuditSettings, optional
        Statistical settings; defaults to :class:`AuditSettings()`.

    Returns
    -------
    AuditResult
        Populations, one comparison per candidate (in the given order).

    Raises
    ------
    InputError
        When the populations do not describe the same examples, a class is
        empty (unless skipped), or a requested attribute is missing.
    """
    settings = settings or AuditSettings()
    if not candidates:
        raise InputError(ERR_NO_CANDIDATES)
    if reference_name in candidates:
        raise InputError(
            f"candidate name '{reference_name}' is also the reference's name; rename it (NAME=SPEC)"
        )
    for cand in candidates.values():
        _check_same_examples(reference, cand)
    ref_pop = _merged_attributes(reference, list(candidates.values()))
    support = np.bincount(ref_pop.y, minlength=ref_pop.num_classes)
    if settings.empty_classes == "error" and (support == 0).any():
        empty = np.flatnonzero(support == 0)
        listed = ", ".join(ref_pop.class_name(int(i)) for i in empty[:10])
        more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
        raise InputError(ERR_EMPTY_CLASS.format(src=ref_pop.source, classes=listed + more))

    ref_side = Side.of(reference_name, ref_pop)
    y = ref_pop.y.astype(np.intp)
    class_part = _Partition.of(y, list(range(ref_pop.num_classes)), ref_side)
    group_part = None
    if settings.attributes:
        codes, keys = group_codes(
            ref_pop.attributes,
            settings.attributes,
            y=y,
            class_names=[ref_pop.class_name(i) for i in range(ref_pop.num_classes)],
            source=ref_pop.source,
        )
        group_part = _Partition.of(codes, keys, ref_side)
    sides = [Side.of(name, pop) for name, pop in candidates.items()]
    comparisons: list[dict[str, Any]] = []
    masks: dict[str, np.ndarray] = {}
    for side in sides:
        comp, pie = _compare(ref_side, side, settings, class_part, group_part)
        comparisons.append(comp)
        masks[side.name] = pie
    return AuditResult(settings, ref_side, sides, comparisons, masks)
