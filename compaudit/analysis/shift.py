"""Did a group's accuracy move more than the model's overall accuracy did?

One machinery serves classes and subgroups. For a partition of the examples
into G groups it computes, per group, the mean accuracy of both populations,
the paper's normalized difference, and a test of it. The test depends on what
the two sides are (``ShiftTable.test``):

* ``"lineage"``: candidate member k was made from reference member k (same K
  >= 2): :func:`~compaudit.analysis.stats.paired_population_shift_test` on the
  K pairs' paired outcomes, the example as the unit;
* ``"welch"``: both sides are populations of K >= 2 models with spread:
  Welch's t-test on the mean-shifted accuracy ``S_k^g = acc_g(model k) -
  top1(model k)`` (Hooker et al.);
* ``"prediction-interval"``: a reference population of K >= 3 against one
  candidate model: :func:`~compaudit.analysis.stats.prediction_interval_test`
  of the candidate's S against the reference's seed spread;
* ``"paired"``: otherwise (a single model on either side, or lineage with
  K = 1): :func:`~compaudit.analysis.stats.paired_shift_test` on the
  per-example outcomes of the two sides as single models (a population by
  its modal prediction).

A population whose members are all identical has no seed spread: it counts
as the single model it is (never Welch's p = 0 from two constant samples).
Columns that Welch or the prediction interval cannot decide (zero spread on
both sides, or in the reference; for the prediction interval also a group
whose count every reference member gets right alike, whose scores then vary
through top-1 alone) are tested by the paired test instead; their ``method``
says so. Raw p-values of the testable groups form one family and
are adjusted together (Holm by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compaudit.analysis.agreement import modal_predictions
from compaudit.analysis.stats import (
    Correction,
    TestResult,
    adjust_pvalues,
    paired_population_shift_test,
    paired_shift_test,
    prediction_interval_test,
    welch_test,
)

__all__ = ["ShiftTable", "group_accuracy", "group_shift", "summary_correct"]


def group_accuracy(
    correct: np.ndarray, groups: np.ndarray, n_groups: int, *, order: np.ndarray | None = None
) -> np.ndarray:
    """Accuracy of every model on every group, shape ``[K, G]`` (NaN for empty groups).

    ``order`` is ``np.argsort(groups, kind="stable")`` when the caller has it.
    """
    support = np.bincount(groups, minlength=n_groups)
    # Sort examples by group, then sum each group's run of columns: much
    # cheaper than a weighted bincount, which would copy K x N bools to float64.
    if order is None:
        order = np.argsort(groups, kind="stable")
    starts = np.concatenate(([0], np.cumsum(support)[:-1]))
    nonempty = support > 0
    hits = np.zeros((correct.shape[0], n_groups))
    if nonempty.any():
        sums = np.add.reduceat(correct[:, order], starts[nonempty], axis=1, dtype=np.int32)
        hits[:, nonempty] = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(hits / support[None, :])


def summary_correct(predictions: np.ndarray, y: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Per-example correctness of one model, or of a population's modal prediction."""
    modal, _ = modal_predictions(predictions, seed=seed)
    return np.asarray(modal == y)


@dataclass(frozen=True)
class ShiftTable:
    """Per-group results; arrays of length G.

    ``test`` is ``"welch"``, ``"paired"``, ``"lineage"`` or
    ``"prediction-interval"``. ``method`` names each group's test
    (``"welch"``, ``"prediction-interval"``, ``"paired-score-normal"``,
    ``"paired-score-bootstrap"``, ``"paired-lineage-normal"``,
    ``"paired-lineage-bootstrap"``), or ``""`` for a group that was not tested
    (then statistic and both p-values are NaN). ``p_worse`` is the raw
    one-sided p-value that the group did worse on the candidate side.
    """

    test: str
    support: np.ndarray
    acc_reference: np.ndarray
    acc_candidate: np.ndarray
    difference: np.ndarray
    method: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray
    p_adjusted: np.ndarray
    significant: np.ndarray
    testable: np.ndarray
    p_worse: np.ndarray


def _single(correct: np.ndarray) -> bool:
    """Whether a population is one model: K = 1, or every member identical."""
    return correct.shape[0] == 1 or bool((correct == correct[:1]).all())


def group_shift(
    ref_correct: np.ndarray,
    cand_correct: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    *,
    ref_summary: np.ndarray,
    cand_summary: np.ndarray,
    testable: np.ndarray,
    alpha: float,
    correction: Correction,
    ref_accuracy: np.ndarray | None = None,
    order: np.ndarray | None = None,
    seed: int = 0,
    lineage: bool = False,
    ref_top1: np.ndarray | None = None,
    cand_top1: np.ndarray | None = None,
) -> ShiftTable:
    """Compare the accuracy shift of each group with the overall shift.

    Parameters
    ----------
    ref_correct, cand_correct : ndarray of bool, shapes (Kr, N), (Kc, N)
        Correctness of every member on every example.
    groups : ndarray of int, shape (N,)
        Group index of each example, in ``[0, n_groups)``.
    n_groups : int
        Number of groups G.
    ref_summary, cand_summary : ndarray of bool, shape (N,)
        Per-example correctness of each side as one model (the model itself,
        or the modal prediction of a population); used by the paired test.
        A side whose members are all identical uses its member instead.
    testable : ndarray of bool, shape (G,)
        Groups to test (enough support); the others get NaN and are left
        out of the correction family.
    alpha : float
        Significance level applied to the adjusted p-values.
    correction : {"holm", "bh", "bonferroni", "none"}
        Multiple-testing correction over the tested groups.
    ref_accuracy : ndarray of shape (Kr, G), optional
        Precomputed ``group_accuracy(ref_correct, groups, n_groups)``, reused
        across candidates.
    order : ndarray, optional
        Precomputed ``np.argsort(groups, kind="stable")``.
    seed : int
        Seed of the paired tests' bootstrap.
    lineage : bool
        Candidate member k was made from reference member k; with Kr == Kc the
        lineage test is used (K = 1: the paired test of the two models).
    ref_top1, cand_top1 : ndarray of shape (Kr,) and (Kc,), optional
        Precomputed ``ref_correct.mean(axis=1)`` and ``cand_correct.mean(axis=1)``
        (each member's top-1, :attr:`~compaudit.analysis.topline.TopLine.top1_per_model`).
    """
    support = np.bincount(groups, minlength=n_groups)
    if order is None:
        order = np.argsort(groups, kind="stable")
    acc_r = (
        ref_accuracy
        if ref_accuracy is not None
        else group_accuracy(ref_correct, groups, n_groups, order=order)
    )
    acc_c = group_accuracy(cand_correct, groups, n_groups, order=order)
    top1_r = ref_top1 if ref_top1 is not None else ref_correct.mean(axis=1)
    top1_c = cand_top1 if cand_top1 is not None else cand_correct.mean(axis=1)
    s_r = acc_r - top1_r[:, None]
    s_c = acc_c - top1_c[:, None]
    difference = s_c.mean(axis=0) - s_r.mean(axis=0)

    testable = testable & (support > 0)
    stat, p, worse = (np.full(n_groups, np.nan) for _ in range(3))
    method = np.full(n_groups, "", dtype=object)
    kr, kc = ref_correct.shape[0], cand_correct.shape[0]
    one_r, one_c = _single(ref_correct), _single(cand_correct)
    ref_one = ref_correct[0] if one_r else ref_summary
    cand_one = cand_correct[0] if one_c else cand_summary
    nonempty = support > 0
    remap = np.cumsum(nonempty) - 1  # the paired tests need every group non-empty

    def paired() -> TestResult:
        d = cand_one.astype(np.int8) - ref_one.astype(np.int8)
        return paired_shift_test(d, remap[groups], int(nonempty.sum()), seed=seed)

    def put(res: TestResult, where: np.ndarray, cols: np.ndarray) -> None:
        stat[where], p[where], worse[where] = (
            res.statistic[cols],
            res.p_value[cols],
            res.p_worse[cols],
        )
        method[where] = res.method[cols]

    if lineage and kr == kc:
        test = "paired" if kr == 1 else "lineage"
    elif not one_r and not one_c:
        test = "welch"
    elif not one_r and one_c and kr >= 3:
        test = "prediction-interval"
    else:
        test = "paired"
    cols = np.flatnonzero(testable)
    if cols.size:
        undecided = np.zeros(n_groups, dtype=bool)
        if test == "lineage":
            d = cand_correct.astype(np.int8) - ref_correct.astype(np.int8)
            # The family's smallest level must lie above the bootstrap's floor, or no
            # group could be significant (Holm over 100 groups needs p <= 0.0005).
            resolve = alpha / max(1, cols.size) if correction != "none" else alpha
            res = paired_population_shift_test(
                d, remap[groups], int(nonempty.sum()), seed=seed, resolve=resolve
            )
            put(res, cols, remap[cols])
        elif test == "paired":
            put(paired(), cols, remap[cols])
        else:
            if test == "welch":
                res = welch_test(s_r[:, cols], s_c[:, cols])
                flat = np.isnan(res.df) & (res.statistic != 0)  # two constant samples
            else:
                res = prediction_interval_test(s_r[:, cols], s_c[0, cols])
                # A group every member gets the same count right on (52 of 54 in all
                # ten) has seed spread through top-1 only, so one more lost example
                # looked like t = -20: 10% of seed-only digits comparisons (10 vs 1)
                # failed. Such groups have no usable spread; the paired test decides.
                same_count = (acc_r[:, cols] == acc_r[:1, cols]).all(axis=0)
                flat = (res.method == "prediction-interval-degenerate") | same_count
            put(res, cols, np.arange(cols.size))
            undecided[cols[flat]] = True
        if undecided.any():
            where = np.flatnonzero(undecided)
            put(paired(), where, remap[where])
    p_adj = adjust_pvalues(p, method=correction)
    significant = np.where(np.isnan(p_adj), False, p_adj <= alpha)
    return ShiftTable(
        test=test,
        support=support,
        acc_reference=acc_r.mean(axis=0),
        acc_candidate=acc_c.mean(axis=0),
        difference=difference,
        method=method,
        statistic=stat,
        p_value=p,
        p_adjusted=p_adj,
        significant=significant,
        testable=testable,
        p_worse=worse,
    )
