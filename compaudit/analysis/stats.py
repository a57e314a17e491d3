"""Statistical tests of the audit engine: Welch, the paired shift test, p-value corrections.

Pure numpy/scipy, vectorised over groups (classes or subgroups): one call tests
every group at once, so 1,000 classes cost one pass over the data.

* :func:`welch_test`: the paper's per-class test when both sides are
  populations of K >= 2 models (Hooker et al., arXiv 1911.05248).
* :func:`paired_shift_test`: the test for one model on either side, on the
  per-example paired outcomes of :func:`paired_outcomes`.
* :func:`adjust_pvalues`: Holm (default), Benjamini-Hochberg, Bonferroni or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from scipy import stats

from compaudit.analysis._exact import exact_pvalues, welch_counts
from compaudit.errors import InputError

__all__ = [
    "CORRECTIONS",
    "Correction",
    "TestResult",
    "adjust_pvalues",
    "paired_outcomes",
    "paired_shift_test",
    "welch_test",
]

Correction = Literal["holm", "bh", "bonferroni", "none"]
CORRECTIONS: tuple[str, ...] = get_args(Correction)

# Error messages live here so tests can assert them exactly (fairlearn style).
ERR_CORRECTION = (
    "unknown p-value correction {method!r}; use one of 'holm', 'bh', 'bonferroni', 'none' "
    "(the policy's 'correction' key)"
)
ERR_PVALUES = "p-values must lie in [0, 1] or be NaN for 'not tested'; got {bad!r}"
ERR_WELCH_SHAPE = (
    "Welch's t-test needs arrays of shape [K, G] with the same G on both sides; "
    "got reference {a} and candidate {b}"
)
ERR_WELCH_K = (
    "Welch's t-test needs at least 2 models on each side, got {ka} reference and {kb} "
    "candidate models; with a single model on either side use paired_shift_test"
)
ERR_NONFINITE = "the {name} scores contain NaN or infinite values; every model needs a finite score"
ERR_OUTCOMES = (
    "paired outcomes must be -1 (lost), 0 (unchanged) or +1 (gained), got {bad!r}; "
    "build them with paired_outcomes(ref_correct, cand_correct)"
)
ERR_PAIRED_SHAPE = (
    "outcomes and groups must be 1-D arrays of the same length, got shapes {d} and {g}"
)
ERR_GROUP_LABELS = "group labels must be integers in [0, {n_groups}), got values from {lo} to {hi}"
ERR_N_GROUPS = "n_groups must be a positive integer, got {n_groups!r}"
ERR_EMPTY_GROUP = (
    "groups {groups} have no examples; drop empty groups (or relabel) before "
    "calling paired_shift_test"
)
ERR_MAX_CELLS = "max_exact_cells must be a non-negative integer, got {value!r}"
ERR_CORRECT_SHAPE = (
    "ref_correct and cand_correct must be 1-D arrays of the same length, got shapes {a} and {b}"
)
ERR_CORRECT_VALUES = "correctness arrays must hold booleans or 0/1, got values {bad!r}"


@dataclass(frozen=True, eq=False)
class TestResult:
    """Per-group result of a two-sided test.

    Attributes
    ----------
    statistic : ndarray of float, shape (G,)
        Welch t statistic, positive when the group fared better on the
        candidate side (Welch: mean(b) > mean(a); paired: the group gained
        relative to the rest). ``+/-inf`` when both sample variances are zero
        and the means differ.
    p_value : ndarray of float, shape (G,)
        Two-sided p-value in ``[0, 1]`` (unadjusted).
    df : ndarray of float, shape (G,)
        Welch-Satterthwaite degrees of freedom; NaN where the test has no
        degrees of freedom (exact permutation rows, degenerate columns).
    method : ndarray of str, shape (G,)
        ``"welch"``, ``"paired-exact"`` or ``"paired-normal"``.
    """

    __test__ = False  # not a pytest test class despite the name

    statistic: np.ndarray
    p_value: np.ndarray
    df: np.ndarray
    method: np.ndarray


# -- multiple-testing correction ------------------------------------------------
def adjust_pvalues(p: npt.ArrayLike, *, method: Correction = "holm") -> np.ndarray:
    """Adjust a family of p-values for multiple testing.

    Parameters
    ----------
    p : array-like of float
        Raw p-values, any shape. NaN means "not tested": such entries are left
        out of the family (the family size m counts finite entries only) and
        come back as NaN.
    method : {"holm", "bh", "bonferroni", "none"}
        Holm step-down (family-wise error, the default), Benjamini-Hochberg
        step-up (false discovery rate), Bonferroni, or no correction.

    Returns
    -------
    ndarray of float, same shape as ``p``
        Adjusted p-values, capped at 1; identical to statsmodels'
        ``multipletests`` ('holm', 'fdr_bh', 'bonferroni').

    Raises
    ------
    InputError
        On an unknown method or p-values outside ``[0, 1]``.
    """
    if method not in CORRECTIONS:
        raise InputError(ERR_CORRECTION.format(method=method))
    arr = np.asarray(p, dtype=np.float64)
    flat = arr.ravel()
    tested = ~np.isnan(flat)
    vals = flat[tested]
    bad = vals[(vals < 0) | (vals > 1)]
    if bad.size:
        raise InputError(ERR_PVALUES.format(bad=float(bad[0])))
    out = np.full(flat.shape, np.nan)
    m = vals.size
    if method == "none" or m == 0:
        out[tested] = vals
    elif method == "bonferroni":
        out[tested] = np.minimum(vals * m, 1.0)
    else:
        order = np.argsort(vals, kind="stable")
        ranked = vals[order]
        if method == "holm":  # step-down: (m - i + 1) p_(i), running max from the smallest
            adj = np.maximum.accumulate(ranked * np.arange(m, 0, -1))
        else:  # bh step-up: m / i p_(i), running min from the largest
            adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
        res = np.empty(m)
        res[order] = np.minimum(adj, 1.0)
        out[tested] = res
    return out.reshape(arr.shape)


# -- Welch ------------------------------------------------------------------------
def welch_test(a: npt.ArrayLike, b: npt.ArrayLike) -> TestResult:
    """Two-sided Welch t-test per column: candidate ``b`` against reference ``a``.

    Parameters
    ----------
    a : array-like of float, shape (Ka, G) or (Ka,)
        Reference scores, one row per model, one column per group (for the
        paper's test, ``recall_c(model) - top1(model)``). Ka >= 2.
    b : array-like of float, shape (Kb, G) or (Kb,)
        Candidate scores, same layout. Kb >= 2. A 1-D input is one group.

    Returns
    -------
    TestResult
        ``statistic`` has the sign of ``mean(b) - mean(a)``; equals
        ``scipy.stats.ttest_ind(b, a, equal_var=False)`` on non-degenerate
        columns. A degenerate column (both sample variances zero, where scipy
        gives NaN) is decided by its means: equal means give statistic 0 and
        p 1; different means give ``+/-inf`` and p 0, since two constant
        samples with different values differ beyond any noise. Its df is NaN.

    Raises
    ------
    InputError
        On mismatched shapes, fewer than 2 models on a side, or non-finite scores.
    """
    xa, xb = _as_scores(a, "reference"), _as_scores(b, "candidate")
    if xa.ndim != 2 or xb.ndim != 2 or xa.shape[1] != xb.shape[1]:
        raise InputError(ERR_WELCH_SHAPE.format(a=xa.shape, b=xb.shape))
    ka, kb = xa.shape[0], xb.shape[0]
    if ka < 2 or kb < 2:
        raise InputError(ERR_WELCH_K.format(ka=ka, kb=kb))
    (ma, wa), (mb, wb) = _moments(xa), _moments(xb)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mb - ma) / np.sqrt(wa + wb)
    t = np.where(np.isnan(t), 0.0, t)  # 0 / 0: equal constant columns
    df = _satterthwaite(wb, wa, np.full(t.shape, kb), np.full(t.shape, ka))
    return TestResult(t, _two_sided_t(t, df), df, np.full(t.shape, "welch"))


def _as_scores(x: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if not np.isfinite(arr).all():
        raise InputError(ERR_NONFINITE.format(name=name))
    return arr


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and squared standard errors s^2 / K; a constant column gets its
    value as mean and exactly 0 variance (float sums can be off by an ulp)."""
    const = np.ptp(x, axis=0) == 0
    mean = np.where(const, x[0], x.mean(axis=0))
    return mean, np.where(const, 0.0, x.var(axis=0, ddof=1)) / x.shape[0]


def _satterthwaite(w1: np.ndarray, w2: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Welch-Satterthwaite df from the squared standard errors w = s^2 / n; NaN when
    both are zero. A side with n < 2 has w = 0 and adds nothing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        den = np.where(n1 >= 2, w1 * w1 / (n1 - 1), 0.0) + np.where(
            n2 >= 2, w2 * w2 / (n2 - 1), 0.0
        )
        return np.where(den > 0, (w1 + w2) ** 2 / den, np.nan)


def _two_sided_t(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided Student-t p-value; degenerate rows (df NaN) give 1 at t = 0, else 0."""
    ok = np.isfinite(df)
    p = np.where(t == 0, 1.0, 0.0)
    p[ok] = 2.0 * stats.t.sf(np.abs(t[ok]), df[ok])
    return np.asarray(np.clip(p, 0.0, 1.0), dtype=np.float64)


# -- paired shift test --------------------------------------------------------------
def paired_outcomes(ref_correct: npt.ArrayLike, cand_correct: npt.ArrayLike) -> np.ndarray:
    """Per-example paired outcome of one reference and one candidate model.

    Parameters
    ----------
    ref_correct, cand_correct : array-like of bool or {0, 1}, shape (N,)
        Whether each model classified each example correctly.

    Returns
    -------
    ndarray of int8, shape (N,)
        +1 gained (reference wrong, candidate right), -1 lost (reference
        right, candidate wrong), 0 unchanged.
    """
    r, c = np.asarray(ref_correct), np.asarray(cand_correct)
    if r.ndim != 1 or r.shape != c.shape:
        raise InputError(ERR_CORRECT_SHAPE.format(a=r.shape, b=c.shape))
    for arr in (r, c):
        bad = arr[(arr != 0) & (arr != 1)]
        if bad.size:
            raise InputError(ERR_CORRECT_VALUES.format(bad=bad[0].item()))
    return (c.astype(np.int8) - r.astype(np.int8)).astype(np.int8)


def paired_shift_test(
    d: npt.ArrayLike,
    groups: npt.ArrayLike,
    n_groups: int,
    *,
    max_exact_cells: int = 250_000,
) -> TestResult:
    """Did each group's accuracy move more than the rest's did? (one model per side).

    For each group g, the paired outcomes ``d`` of its ``n_g`` examples are
    compared with those of the other ``N - n_g`` examples by the Welch
    statistic ``T = (mean_g - mean_rest) / sqrt(s_g^2 / n_g + s_rest^2 / n_rest)``
    (sample variances, ddof 1); T > 0 when the group gained relative to the rest.

    Why studentized. Under pure seed noise a hard class flips far more
    examples, in both directions, than an easy one: the groups' outcomes are
    not exchangeable, and a permutation test of the raw mean difference is not
    calibrated (it flags hard classes far beyond alpha). A permutation test
    of the studentized statistic is exact when outcomes are exchangeable and
    asymptotically valid when only the means are equal and the variances
    differ (Janssen 1997; Chung & Romano 2013, "Exact and asymptotically
    robust permutation tests"). A sign (McNemar) test of the discordant
    pairs' direction does not answer the question at all: a class can lose
    ten times more examples than the others in the same lost/gained proportion.

    Exact path. Conditioning on the totals (L lost, G gained, U unchanged) and
    n_g, the group's counts (l, g) are multivariate hypergeometric under the
    permutation null, ``P(l, g) = C(L, l) C(G, g) C(U, n_g - l - g) / C(N, n_g)``,
    and T depends on (l, g) only, so p = sum of P over cells with
    ``|T| >= |T_obs|`` (relative tie slack 1e-9) is the exact permutation
    p-value. Cells whose l or g marginal probability is below 1e-30 are
    skipped and that mass (at most 2 (n_g + 1) 1e-30) is added to p, which
    keeps p conservative. Used when
    ``(min(L, n_g) + 1) * (min(G, n_g) + 1) <= max_exact_cells``; cells are
    built once per distinct group size, so 1,000 equal-size classes cost
    about as much as one.

    Large-sample path. Otherwise T is referred to Student's t with
    Welch-Satterthwaite df, i.e. ``scipy.stats.ttest_ind(d[in_g], d[~in_g],
    equal_var=False)``.

    Degenerate cells: a side with fewer than 2 examples has variance 0; when
    both variances are 0, T = 0 for equal means and ``+/-inf`` otherwise
    (p 0 on the large-sample path). A group holding every example
    (``n_groups == 1``) has nothing to differ from: T = 0, p = 1.

    Calibration (tests/analysis/test_calibration.py): under seed noise with
    one hard class, family-wise false alarms after Holm stay below alpha. The
    validity is asymptotic: with ~30 examples per class, a hard class was
    rejected at the 0.01 level about twice as often as nominal.

    Scope. Only the test examples are random here; both models are fixed. That
    is the right null for a candidate derived from the reference (quantized,
    or pruned and fine-tuned from its weights). Two models trained from
    different seeds carry class-level differences of their own, which this
    test detects once classes are large (examples/calibration: 17.8% family-
    wise false alarms after Holm between seed-only Fashion-MNIST CNNs with
    1,000 examples per class); compare retrained models as populations.

    Parameters
    ----------
    d : array-like of int in {-1, 0, 1}, shape (N,)
        Paired outcomes from :func:`paired_outcomes`.
    groups : array-like of int, shape (N,)
        Group index of each example, in ``[0, n_groups)``.
    n_groups : int
        Number of groups G; every group must have at least one example.
    max_exact_cells : int
        Largest (l, g) grid for which the exact test is used; 0 forces the
        large-sample test everywhere.

    Returns
    -------
    TestResult
        One row per group; ``method`` is ``"paired-exact"`` or ``"paired-normal"``.

    Raises
    ------
    InputError
        On invalid outcomes or labels, or a group with no examples.
    """
    dd, gg = _check_paired(d, groups, n_groups, max_exact_cells)
    N = dd.shape[0]
    n = np.bincount(gg, minlength=n_groups).astype(np.int64)
    empty = np.flatnonzero(n == 0)
    if empty.size:
        raise InputError(ERR_EMPTY_GROUP.format(groups=empty[:10].tolist()))
    lost = np.bincount(gg[dd == -1], minlength=n_groups).astype(np.int64)
    gained = np.bincount(gg[dd == 1], minlength=n_groups).astype(np.int64)
    L, G = int(lost.sum()), int(gained.sum())

    t_obs, w1, w2 = welch_counts(n.astype(np.float64), np.arange(n_groups), lost, gained, N, L, G)
    whole = n == N  # a single group: nothing to differ from
    t_obs[whole] = 0.0
    exact = ((np.minimum(L, n) + 1) * (np.minimum(G, n) + 1) <= max_exact_cells) | whole
    df = np.where(exact, np.nan, _satterthwaite(w1, w2, n, N - n))
    p = _two_sided_t(t_obs, df)
    idx = np.flatnonzero(exact & ~whole)
    if idx.size:
        p[idx] = exact_pvalues(n[idx], t_obs[idx], N, L, G)
    p[whole] = 1.0
    method = np.where(exact, "paired-exact", "paired-normal")
    return TestResult(t_obs, p, df, method)


def _check_paired(
    d: npt.ArrayLike, groups: npt.ArrayLike, n_groups: int, max_exact_cells: int
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(n_groups, bool) or not isinstance(n_groups, int | np.integer) or n_groups < 1:
        raise InputError(ERR_N_GROUPS.format(n_groups=n_groups))
    if not isinstance(max_exact_cells, int | np.integer) or max_exact_cells < 0:
        raise InputError(ERR_MAX_CELLS.format(value=max_exact_cells))
    dd, gg = np.asarray(d), np.asarray(groups)
    if dd.ndim != 1 or dd.shape != gg.shape:
        raise InputError(ERR_PAIRED_SHAPE.format(d=dd.shape, g=gg.shape))
    bad = dd[(dd != -1) & (dd != 0) & (dd != 1)]
    if bad.size:
        raise InputError(ERR_OUTCOMES.format(bad=bad[0].item()))
    if gg.size and (gg.dtype.kind not in "iu" or int(gg.min()) < 0 or int(gg.max()) >= n_groups):
        lo, hi = (gg.min().item(), gg.max().item())
        raise InputError(ERR_GROUP_LABELS.format(n_groups=n_groups, lo=lo, hi=hi))
    return dd.astype(np.int8), gg.astype(np.intp)
