"""Did a group's accuracy move more than the model's overall accuracy did?

One machinery serves classes and subgroups. For a partition of the examples
into G groups it computes, per group, the mean accuracy of both populations,
the paper's normalized difference, and a test of it:

* both sides with K >= 2 models: Welch's t-test on the mean-shifted accuracy
  ``S_k^g = acc_g(model k) - top1(model k)`` of the candidate population
  against the reference population (Hooker et al.);
* a single model on either side, where Welch is undefined: the paired test
  :func:`~compaudit.analysis.stats.paired_shift_test` on the per-example
  outcomes (lost, gained, unchanged) of the group against the other groups.
  A side with K >= 2 is represented there by its modal prediction.

Raw p-values of the testable groups form one family and are adjusted
together (Holm by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compaudit.analysis.agreement import modal_predictions
from compaudit.analysis.stats import Correction, adjust_pvalues, paired_shift_test, welch_test

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


def summary_correct(predictions: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-example correctness of one model, or of a population's modal prediction."""
    modal, _ = modal_predictions(predictions)
    return np.asarray(modal == y)


@dataclass(frozen=True)
class ShiftTable:
    """Per-group results; arrays of length G.

    ``method`` is ``"welch"``, ``"paired-exact"``, ``"paired-normal"``, or
    ``""`` for a group that was not tested (then statistic and p are NaN).
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
    top1_r = ref_correct.mean(axis=1)
    top1_c = cand_correct.mean(axis=1)
    s_r = acc_r - top1_r[:, None]
    s_c = acc_c - top1_c[:, None]
    difference = s_c.mean(axis=0) - s_r.mean(axis=0)

    testable = testable & (support > 0)
    stat = np.full(n_groups, np.nan)
    p = np.full(n_groups, np.nan)
    method = np.full(n_groups, "", dtype=object)
    welch = ref_correct.shape[0] >= 2 and cand_correct.shape[0] >= 2
    if welch and testable.any():
        res = welch_test(s_r[:, testable], s_c[:, testable])
        stat[testable], p[testable], method[testable] = res.statistic, res.p_value, res.method
    elif testable.any():
        # The paired test needs every group non-empty: renumber the non-empty ones.
        nonempty = support > 0
        remap = np.cumsum(nonempty) - 1
        d = cand_summary.astype(np.int8) - ref_summary.astype(np.int8)
        res = paired_shift_test(d, remap[groups], int(nonempty.sum()))
        stat[nonempty], p[nonempty], method[nonempty] = res.statistic, res.p_value, res.method
        stat[~testable], p[~testable], method[~testable] = np.nan, np.nan, ""
    p_adj = adjust_pvalues(p, method=correction)
    significant = np.where(np.isnan(p_adj), False, p_adj <= alpha)
    return ShiftTable(
        test="welch" if welch else "paired",
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
    )
