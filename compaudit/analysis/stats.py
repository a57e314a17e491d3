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
from scipy import special, stats

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

# Relative slack when comparing |T| of a permutation cell with |T_obs|: cells that
# tie mathematically may differ by a few ulps after floating-point arithmetic.
_TIE_RTOL = 1e-9
# Cells of the exact test whose l or g marginal probability is below this are
# skipped for speed; their total mass (< 2 (n + 1) * 1e-30) is added to p, so p
# never errs on the small side.
_LOG_SKIP = float(np.log(1e-30))
# A size shared by at least this many groups is summed by sorting the groups'
# thresholds once (cheaper than each group scanning all of the size's cells).
_SHARED_SIZE = 4
# Cells of at most this many (l, g) pairs (before skipping) are built at once.
_CHUNK_CELLS = 1 << 22


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

    t_obs, w1, w2 = _welch_counts(n.astype(np.float64), np.arange(n_groups), lost, gained, N, L, G)
    whole = n == N  # a single group: nothing to differ from
    t_obs[whole] = 0.0
    exact = ((np.minimum(L, n) + 1) * (np.minimum(G, n) + 1) <= max_exact_cells) | whole
    df = np.where(exact, np.nan, _satterthwaite(w1, w2, n, N - n))
    p = _two_sided_t(t_obs, df)
    idx = np.flatnonzero(exact & ~whole)
    if idx.size:
        p[idx] = _exact_pvalues(n[idx], t_obs[idx], N, L, G)
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


def _welch_counts(
    sizes: np.ndarray, size: np.ndarray, l1: np.ndarray, g1: np.ndarray, N: int, L: int, G: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Welch T, s1^2 / n1 and s2^2 / n2 of groups of ``sizes[size]`` examples with l1 lost
    and g1 gained against the rest. Numerators are integers exact in float64, so zero
    variances and equal means are detected exactly."""
    n1 = sizes.astype(np.float64)
    n2 = N - n1
    with np.errstate(divide="ignore", invalid="ignore"):
        # s^2 / n = (n q - s^2) / (n^2 (n - 1)); a side with n < 2 has variance 0.
        c1 = np.where(n1 >= 2, 1.0 / (n1 * n1 * (n1 - 1)), 0.0)[size]
        c2 = np.where(n2 >= 2, 1.0 / (n2 * n2 * (n2 - 1)), 0.0)[size]
        n1, n2 = n1[size], n2[size]
        lf, gf = l1.astype(np.float64), g1.astype(np.float64)
        s1, q1 = gf - lf, gf + lf  # sums of d and of d^2
        s2, q2 = (G - L) - s1, (G + L) - q1
        w1, w2 = (n1 * q1 - s1 * s1) * c1, (n2 * q2 - s2 * s2) * c2
        # Zero variances: x / 0 = +/-inf for different means; 0 / 0 (equal means) -> 0.
        t = (s1 * n2 - s2 * n1) / (n1 * n2) / np.sqrt(w1 + w2)
    return np.where(np.isnan(t), 0.0, t), w1, w2


def _lncomb(m: float | np.ndarray, k: np.ndarray) -> np.ndarray:
    """log C(m, k) via gammaln."""
    return np.asarray(
        special.gammaln(m + 1.0) - special.gammaln(k + 1.0) - special.gammaln(m - k + 1.0)
    )


def _ragged(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, position) of each element when rows of the given lengths are concatenated."""
    owner = np.repeat(np.arange(lengths.size), lengths)
    starts = np.cumsum(lengths) - lengths
    return owner, np.arange(owner.size) - starts[owner]


def _marginal_range(
    n: np.ndarray, K: int, N: int, lncn: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per size n, the interval of counts k whose hypergeometric mass (n drawn from N,
    K marked) is at least 1e-30, and the total mass outside it."""
    kk = np.arange(int(min(K, n.max())) + 1, dtype=np.float64)
    tab_k, tab_rest = _lncomb(K, kk), _lncomb(N - K, np.arange(int(n.max()) + 1.0))
    owner, k = _ragged(np.minimum(K, n) + 1)
    rest = n[owner] - k
    valid = rest <= N - K
    logp = tab_k[k] + tab_rest[np.where(valid, rest, 0)] - lncn[owner]
    keep = valid & (logp >= _LOG_SKIP)
    lo = np.full(n.size, np.iinfo(np.int64).max)
    hi = np.full(n.size, -1)
    np.minimum.at(lo, owner[keep], k[keep])
    np.maximum.at(hi, owner[keep], k[keep])
    drop = valid & ~keep
    return lo, hi, np.bincount(owner[drop], np.exp(logp[drop]), minlength=n.size)


def _size_cells(
    sizes: np.ndarray, N: int, L: int, G: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (l, g) cells of each distinct group size, built in one ragged pass.

    Rows are (size, l) pairs; a row holds the g with ``0 <= n - l - g <= U``, so
    impossible cells are never made, and cells of one size are contiguous.
    Returns per-size cell counts, each cell's probability and ``|T|``, and the
    per-size skipped mass.
    """
    U = N - L - G
    lncn = _lncomb(N, sizes.astype(np.float64))
    lo_l, hi_l, skip_l = _marginal_range(sizes, L, N, lncn)
    lo_g, hi_g, skip_g = _marginal_range(sizes, G, N, lncn)
    row_size, off = _ragged(hi_l - lo_l + 1)
    row_l = lo_l[row_size] + off
    row_m = sizes[row_size] - row_l  # g + u of the row's cells
    row_glo = np.maximum(lo_g[row_size], row_m - U)
    row_len = np.maximum(np.minimum(hi_g[row_size], row_m) - row_glo + 1, 0)
    ks = np.arange(int(sizes.max()) + 1, dtype=np.float64)
    tab_l, tab_g, tab_u = (_lncomb(m, ks[: min(m, ks.size - 1) + 1]) for m in (L, G, U))
    row_logp = tab_l[row_l] - lncn[row_size]
    cell_row, pos = _ragged(row_len)
    g = row_glo[cell_row] + pos
    prob = np.exp(row_logp[cell_row] + tab_g[g] + tab_u[row_m[cell_row] - g])
    abs_t = np.abs(_welch_counts(sizes, row_size[cell_row], row_l[cell_row], g, N, L, G)[0])
    size_len = np.bincount(row_size, weights=row_len, minlength=sizes.size).astype(np.int64)
    return size_len, prob, abs_t, skip_l + skip_g


def _exact_pvalues(n: np.ndarray, t_obs: np.ndarray, N: int, L: int, G: int) -> np.ndarray:
    """Exact studentized permutation p-values of groups of sizes ``n``."""
    sizes, size_of = np.unique(n, return_inverse=True)
    # Bound memory: build cells for at most ~_CHUNK_CELLS (l, g) pairs of sizes at once.
    bound = (np.minimum(L, sizes) + 1) * (np.minimum(G, sizes) + 1)
    chunk = (np.cumsum(bound) - bound) // _CHUNK_CELLS
    p = np.empty(n.size)
    thr = np.abs(t_obs) * (1.0 - _TIE_RTOL)  # inf * (1 - rtol) is inf: only inf cells match
    for c in np.unique(chunk):
        ks = np.flatnonzero(chunk == c)
        mine = (size_of >= ks[0]) & (size_of <= ks[-1])
        p[mine] = _chunk_pvalues(sizes[ks], size_of[mine] - ks[0], thr[mine], N, L, G)
    return np.clip(p, 0.0, 1.0)


def _chunk_pvalues(
    sizes: np.ndarray, size_of: np.ndarray, thr: np.ndarray, N: int, L: int, G: int
) -> np.ndarray:
    """p-values of the groups whose sizes are ``sizes[size_of]`` (one chunk of sizes)."""
    size_len, prob, abs_t, skipped = _size_cells(sizes, N, L, G)
    first = np.cumsum(size_len) - size_len
    p = np.empty(size_of.size)
    members = np.bincount(size_of, minlength=sizes.size)
    shared = members >= _SHARED_SIZE
    for k in np.flatnonzero(shared):
        # Many groups of one size: sort their thresholds once; a cell counts for the
        # groups whose threshold is <= its |T|, a prefix of the sorted thresholds.
        grp = np.flatnonzero(size_of == k)
        order = np.argsort(thr[grp], kind="stable")
        cells = slice(first[k], first[k] + size_len[k])
        hits = np.searchsorted(thr[grp][order], abs_t[cells], side="right")
        mass = np.bincount(hits, prob[cells], minlength=grp.size + 1)
        p[grp[order]] = np.cumsum(mass[::-1])[::-1][1:]  # mass of cells with hits > rank
    grp = np.flatnonzero(~shared[size_of])
    if grp.size:  # the others gather their size's cells into their own contiguous runs
        glen = size_len[size_of[grp]]
        gstart = np.cumsum(glen) - glen
        cell = np.arange(int(glen.sum())) + np.repeat(first[size_of[grp]] - gstart, glen)
        hit = abs_t[cell] >= np.repeat(thr[grp], glen)
        p[grp] = np.add.reduceat(np.where(hit, prob[cell], 0.0), gstart)
    return np.asarray(p + skipped[size_of], dtype=np.float64)
