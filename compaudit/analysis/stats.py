"""Statistical tests of the audit engine: Welch, paired score tests, p-value corrections.

Pure numpy/scipy, vectorised over groups (classes or subgroups): one call tests
every group at once, so 1,000 classes cost one pass over the data.

* :func:`welch_test`: the paper's per-class test when both sides are
  populations of K >= 2 models (Hooker et al., arXiv 1911.05248).
* :func:`paired_shift_test`: one model on each side, on the per-example paired
  outcomes of :func:`paired_outcomes` (a restricted-MLE score test).
* :func:`paired_population_shift_test`: K (parent, child) pairs with lineage,
  combined with the example as the unit.
* :func:`prediction_interval_test`: one candidate model against a reference
  population's seed spread.
* :func:`adjust_pvalues`: Holm (default), Benjamini-Hochberg, Bonferroni or none.

Every result carries a two-sided ``p_value`` and a one-sided ``p_worse``: the
p-value for "the group did worse on the candidate side" (small when the
statistic is very negative).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from compaudit.analysis import _score
from compaudit.analysis._special import t_tails
from compaudit.errors import InputError

__all__ = [
    "CORRECTIONS",
    "Correction",
    "Path",
    "TestResult",
    "adjust_pvalues",
    "paired_outcomes",
    "paired_population_shift_test",
    "paired_shift_test",
    "prediction_interval_test",
    "welch_test",
]

Correction = Literal["holm", "bh", "bonferroni", "none"]
CORRECTIONS: tuple[str, ...] = get_args(Correction)
Path = Literal["auto", "normal", "bootstrap"]
PATHS: tuple[str, ...] = get_args(Path)
# The normal reference is used when every tested group (and its rest) expects at
# least this many changed examples under H0; otherwise the seeded bootstrap.
NORMAL_MIN_EXPECTED = _score.NORMAL_MIN_EXPECTED

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
ERR_PATH = "unknown reference path {path!r}; use one of 'auto', 'normal', 'bootstrap'"
ERR_N_BOOT = "n_boot must be a positive integer, got {value!r}"
ERR_LINEAGE_SHAPE = (
    "lineage outcomes must be an array of shape [K, N] (one row per (reference, candidate) "
    "pair) with N equal to the length of groups, got shapes {d} and {g}"
)
ERR_PI_SHAPE = (
    "the prediction-interval test needs reference scores [K, G] and candidate scores [G] "
    "or [1, G] with the same G, got {a} and {b}"
)
ERR_PI_K = (
    "the prediction-interval test needs at least 3 reference models, got {k}; with "
    "fewer compare single models with paired_shift_test"
)
ERR_CORRECT_SHAPE = (
    "ref_correct and cand_correct must be 1-D arrays of the same length, got shapes {a} and {b}"
)
ERR_CORRECT_VALUES = "correctness arrays must hold booleans or 0/1, got values {bad!r}"


@dataclass(frozen=True, eq=False)
class TestResult:
    """Per-group result of a test.

    Attributes
    ----------
    statistic : ndarray of float, shape (G,)
        Positive when the group fared better on the candidate side (Welch and
        prediction interval: candidate above reference; paired: the group gained
        relative to the rest). Welch gives ``+/-inf`` when both sample variances
        are zero and the means differ.
    p_value : ndarray of float, shape (G,)
        Two-sided p-value in ``[0, 1]`` (unadjusted); NaN where undefined.
    df : ndarray of float, shape (G,)
        Degrees of freedom of a t reference (Welch-Satterthwaite, or K - 1 of
        the prediction interval); NaN for the paired tests and degenerate columns.
    method : ndarray of str, shape (G,)
        ``"welch"``, ``"paired-score-normal"``, ``"paired-score-bootstrap"``,
        ``"paired-lineage-normal"``, ``"paired-lineage-bootstrap"``,
        ``"prediction-interval"`` or ``"prediction-interval-degenerate"``.
    p_worse : ndarray of float, shape (G,)
        One-sided p-value that the group did worse on the candidate side
        (small when the statistic is very negative).
    """

    __test__ = False  # not a pytest test class despite the name

    statistic: np.ndarray
    p_value: np.ndarray
    df: np.ndarray
    method: np.ndarray
    p_worse: np.ndarray


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
        ``p_worse`` is the Student-t CDF at the statistic (0 or 1 on
        degenerate columns); :func:`~compaudit.analysis.shift.group_shift`
        does not trust degenerate columns and falls back to the paired test.

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
    p, worse = _t_pvalues(t, df)
    return TestResult(
        statistic=t,
        p_value=p,
        df=df,
        method=np.full(t.shape, "welch"),
        p_worse=worse,
    )


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


def _t_pvalues(t: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided p-value (``stats.t.sf`` doubled) and ``p_worse`` (``stats.t.cdf``);
    degenerate rows (df NaN) give p 1 at t = 0, else 0, and p_worse 0 at -inf, else 1."""
    ok = np.isfinite(df)
    p = np.where(t == 0, 1.0, 0.0)
    worse = np.where(t < 0, 0.0, 1.0)
    p[ok], worse[ok] = t_tails(df[ok], t[ok])
    return np.asarray(np.clip(p, 0.0, 1.0), dtype=np.float64), worse


# -- paired score tests ------------------------------------------------------------
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
    seed: int = 0,
    path: Path = "auto",
    n_boot: int = 4999,
) -> TestResult:
    """Did each group's accuracy move more than the rest's did? (one model per side).

    Each example is lost (-1), unchanged (0) or gained (+1); group g holds
    ``n_1`` examples, ``l_1`` lost and ``g_1`` gained, the other examples
    ``n_2, l_2, g_2``. Each side is a trinomial sample. The null hypothesis is
    the paper's question turned around: the group's net rate ``delta =
    P(gain) - P(loss)`` equals the rest's, while each side keeps its own churn
    ``P(gain) + P(loss)`` (a hard class flips far more examples, in both
    directions, than an easy one, even under pure seed noise).

    Statistic. ``T = (dhat_1 - dhat_2) / sqrt(V_1 / n_1 + V_2 / n_2)``, the
    trinomial analogue of the Miettinen-Nurminen / Farrington-Manning score
    statistic: ``dhat_i = (g_i - l_i) / n_i`` and ``V_i = c_i - delta^2`` is the
    trinomial variance at the *restricted* MLE (both likelihoods maximised
    subject to a common delta; each side's churn c_i is refitted). The
    restricted churn is at least ``|delta|``, so a small group where nothing
    changed still has ``V_1 >= |delta| (1 - |delta|) > 0`` when the rest moved:
    "nothing happened" is never the most extreme outcome, as it is for a
    studentized (Welch) statistic whose variance collapses to zero there.
    T > 0 when the group gained relative to the rest; T = 0 when both net
    rates are equal (also when nothing changed anywhere).

    Reference distribution, chosen once per call. "normal" when every group
    and its rest expect at least ``NORMAL_MIN_EXPECTED`` (10) changed examples
    under the restricted MLE; otherwise a seeded parametric bootstrap at H0 for
    every group: the smaller side's trinomial is enumerated exactly (the other
    one too when both are small, else drawn), so p resolves far below
    ``1 / n_boot`` (p >= 1e-12, the accuracy of the sums); two comparable
    sides that are not both small draw both. A churn estimated from a handful
    of changes is often too low and makes the restricted-MLE reference too
    narrow, so each bootstrap p is the larger of that world's and a guard's (a
    world with the churns at their 75% upper confidence bounds, or the normal
    reference where both sides are drawn); simulated size is then at or under
    alpha (:mod:`compaudit.analysis.calibration_sim`). ``p_value`` is
    two-sided (``|T*| >= |T|``); ``p_worse`` one-sided (``T* <= T``) and 1
    when ``T >= 0`` (no evidence of "worse"; this also keeps it monotone: it
    never rises when one more example of the group is lost, tested against rests
    of 10 examples or more; against a rest of 1-9 examples the exactly enumerated
    null moves with its refit and p_worse has been seen to rise, once in 910
    random designs). Groups with the same counts share their p-values.

    Scope. Only the test examples are random; both models are fixed. That is
    the right null for a candidate derived from the reference (quantized, or
    pruned and fine-tuned from its weights). Models trained from different
    seeds carry class-level differences of their own that this test detects
    once classes are large; compare retrained models as populations. A
    permutation of T is no substitute: it assumes exchangeable outcomes, which
    groups with different churn do not have. A group holding every example
    (``n_groups == 1``) has nothing to differ from: T = 0, p = 1.

    Parameters
    ----------
    d : array-like of int in {-1, 0, 1}, shape (N,)
        Paired outcomes from :func:`paired_outcomes`.
    groups : array-like of int, shape (N,)
        Group index of each example, in ``[0, n_groups)``.
    n_groups : int
        Number of groups G; every group must have at least one example.
    seed : int
        Seed of the bootstrap draws (common to every group).
    path : {"auto", "normal", "bootstrap"}
        Reference distribution; "auto" applies the rule above.
    n_boot : int
        Paired bootstrap draws where both sides are drawn; the drawn side of an
        enumerated comparison takes ``min(n_boot, 999)``.

    Returns
    -------
    TestResult
        One row per group; ``method`` is ``"paired-score-normal"`` or
        ``"paired-score-bootstrap"``; ``df`` is NaN.

    Raises
    ------
    InputError
        On invalid outcomes, labels, path or n_boot, or a group with no examples.
    """
    dd, gg = _check_paired(d, groups, n_groups, path, n_boot)
    N = dd.shape[0]
    n = _group_sizes(gg, n_groups)
    lost = np.bincount(gg[dd == -1], minlength=n_groups).astype(np.int64)
    gained = np.bincount(gg[dd == 1], minlength=n_groups).astype(np.int64)
    counts = np.stack([n, lost, gained, N - n, lost.sum() - lost, gained.sum() - gained], axis=1)
    return _paired_result(counts[:, 0] == N, "paired-score", path, seed, n_boot, counts=counts)


def paired_population_shift_test(
    d: npt.ArrayLike,
    groups: npt.ArrayLike,
    n_groups: int,
    *,
    seed: int = 0,
    path: Path = "auto",
    n_boot: int = 1999,
    resolve: float | None = None,
) -> TestResult:
    """:func:`paired_shift_test` for K (reference, candidate) pairs with lineage.

    Row k of ``d`` holds the paired outcomes of candidate member k against the
    reference member it was made from. The K pairs are independent models but
    share the examples, so the example is the unit: its outcome is the mean
    ``x = (sum_k d_k) / K``, a value on the lattice ``{-1, -1 + 1/K, ..., 1}``,
    and each side is a multinomial on that lattice. H0: the group's mean
    outcome equals the rest's, each side keeping its own distribution
    otherwise. ``T = (xbar_1 - xbar_2) / sqrt(V_1 / n_1 + V_2 / n_2)`` with
    ``V_i`` the variance about the common mean of side i's restricted MLE
    (both multinomials maximised subject to a common mean). As for K = 1, a
    group that did not change gets restricted mass at the lattice end, so its
    variance cannot collapse. Outcomes of one example correlate across pairs
    (fragile examples flip in every pair); taking the example as the unit
    accounts for that without modelling it.

    Reference: "normal" when every group and its rest expect at least 10
    changed examples (``x != 0``) under the restricted MLE, else a seeded
    parametric bootstrap drawing both sides from their restricted
    distributions, ``p = (1 + hits) / (n_boot + 1)`` (so p >= 1 / (n_boot + 1):
    pass ``resolve`` when a correction runs over many groups). K = 1 is exactly
    :func:`paired_shift_test`'s statistic (use that: it resolves small p).

    Parameters
    ----------
    d : array-like of int in {-1, 0, 1}, shape (K, N)
        ``paired_outcomes(ref_k, cand_k)`` of every pair, one row per pair.
    groups, n_groups, seed, path, n_boot
        As for :func:`paired_shift_test`.
    resolve : float, optional
        The smallest p-value the caller must tell from the bootstrap's floor
        ``1 / (n_boot + 1)`` (``alpha / m`` for Holm over m groups). Where ``n_boot``
        cannot, the groups whose p lies within 10 replicates of the floor are drawn
        again with more replicates (:func:`compaudit.analysis._lattice.lattice_test`).

    Returns
    -------
    TestResult
        ``method`` is ``"paired-lineage-normal"`` or ``"paired-lineage-bootstrap"``.
    """
    dd = np.asarray(d)
    gg0 = np.asarray(groups)
    if dd.ndim != 2 or dd.shape[1] != gg0.shape[0] or dd.shape[0] < 1:
        raise InputError(ERR_LINEAGE_SHAPE.format(d=dd.shape, g=gg0.shape))
    K = dd.shape[0]
    _, gg = _check_paired(dd[0], gg0, n_groups, path, n_boot)
    x = _check_paired(dd.ravel(), np.zeros(dd.size, dtype=np.intp), 1, path, n_boot)[0]
    s = x.reshape(dd.shape).sum(axis=0, dtype=np.int64) + K  # lattice index 0..2K
    n = _group_sizes(gg, n_groups)
    J = 2 * K + 1
    c1 = np.bincount(gg * J + s, minlength=n_groups * J).reshape(n_groups, J)
    c2 = c1.sum(axis=0)[None, :] - c1
    return _paired_result(
        n == gg.size, "paired-lineage", path, seed, n_boot, lattice=(c1, c2), resolve=resolve
    )


def _paired_result(
    whole: np.ndarray,
    name: str,
    path: str,
    seed: int,
    n_boot: int,
    *,
    counts: np.ndarray | None = None,
    lattice: tuple[np.ndarray, np.ndarray] | None = None,
    resolve: float | None = None,
) -> TestResult:
    """Run the score test on the groups that have a rest; whole groups get T 0, p 1."""
    G = whole.size
    t, p, worse = np.zeros(G), np.ones(G), np.ones(G)
    normal = np.full(G, path != "bootstrap")
    idx = np.flatnonzero(~whole)
    if idx.size and counts is not None:
        t[idx], p[idx], worse[idx], normal[idx] = _score.score_test(
            counts[idx], path=path, seed=seed, n_boot=n_boot
        )
    elif idx.size and lattice is not None:
        c1, c2 = (c[idx].astype(np.float64) for c in lattice)
        t[idx], p[idx], worse[idx], normal[idx] = _score.lattice_test(
            c1, c2, path=path, seed=seed, n_boot=n_boot, resolve=resolve
        )
    if idx.size:  # one path per call: whole groups report the path the others took
        normal[whole] = normal[idx[0]]
    method = np.where(normal, f"{name}-normal", f"{name}-bootstrap")
    return TestResult(statistic=t, p_value=p, df=np.full(G, np.nan), method=method, p_worse=worse)


def _group_sizes(gg: np.ndarray, n_groups: int) -> np.ndarray:
    n = np.bincount(gg, minlength=n_groups).astype(np.int64)
    empty = np.flatnonzero(n == 0)
    if empty.size:
        raise InputError(ERR_EMPTY_GROUP.format(groups=empty[:10].tolist()))
    return n


def _check_paired(
    d: npt.ArrayLike, groups: npt.ArrayLike, n_groups: int, path: str, n_boot: int
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(n_groups, bool) or not isinstance(n_groups, int | np.integer) or n_groups < 1:
        raise InputError(ERR_N_GROUPS.format(n_groups=n_groups))
    if path not in PATHS:
        raise InputError(ERR_PATH.format(path=path))
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise InputError(ERR_N_BOOT.format(value=n_boot))
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


# -- prediction interval ------------------------------------------------------------
def prediction_interval_test(ref_scores: npt.ArrayLike, cand_scores: npt.ArrayLike) -> TestResult:
    """One candidate model against a reference population's seed spread.

    Per column g, if the candidate were one more member drawn like the Kr
    reference members, ``t = (c - mean_r) / (s_r sqrt(1 + 1 / Kr))`` would follow
    Student's t with ``Kr - 1`` df (a prediction interval; normal scores
    assumed). So the candidate is judged against what retraining alone does to
    the group, not against example noise only. Kr >= 3.

    Zero spread. A column where every reference member has the same score has
    ``s_r = 0`` and no usable spread: it gets statistic 0 and p 1 when the
    candidate has that score too, and otherwise statistic, p and p_worse NaN
    with method ``"prediction-interval-degenerate"`` (never p = 0 from x / 0);
    :func:`~compaudit.analysis.shift.group_shift` tests such columns with the
    paired test instead.

    Parameters
    ----------
    ref_scores : array-like of float, shape (Kr, G)
        Reference scores (``recall_g(model) - top1(model)``), Kr >= 3.
    cand_scores : array-like of float, shape (G,) or (1, G)
        The candidate's scores.

    Returns
    -------
    TestResult
        ``method`` ``"prediction-interval"``, ``df`` = Kr - 1; positive
        statistic when the candidate is above the population.
    """
    r = _as_scores(ref_scores, "reference")
    c = np.asarray(cand_scores, dtype=np.float64)
    c = c[0] if c.ndim == 2 and c.shape[0] == 1 else c
    if r.ndim != 2 or c.ndim != 1 or c.shape[0] != r.shape[1]:
        raise InputError(ERR_PI_SHAPE.format(a=np.shape(ref_scores), b=np.shape(cand_scores)))
    if not np.isfinite(c).all():
        raise InputError(ERR_NONFINITE.format(name="candidate"))
    k = r.shape[0]
    if k < 3:
        raise InputError(ERR_PI_K.format(k=k))
    mean, w = _moments(r)  # w = s^2 / k, exactly 0 on constant columns
    flat = w == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (c - mean) / np.sqrt(w * k * (1.0 + 1.0 / k))
    same = flat & (c == mean)
    t = np.where(same, 0.0, np.where(flat, np.nan, t))
    df = np.full(t.shape, float(k - 1))
    p = np.where(same, 1.0, np.nan)
    worse = p.copy()
    ok = ~flat
    p[ok], worse[ok] = t_tails(df[ok], t[ok])  # stats.t.sf doubled, stats.t.cdf
    method = np.where(flat & ~same, "prediction-interval-degenerate", "prediction-interval")
    return TestResult(statistic=t, p_value=p, df=df, method=method, p_worse=worse)
