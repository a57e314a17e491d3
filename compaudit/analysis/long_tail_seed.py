"""The long-tail test under seed noise: every floor split at once.

The seed-noise control of the long-tail test (Dam et al.'s comparison of a
per-example score on flagged examples against the rest) draws its flagged
subsets from the floor splits of the reference population (two disjoint
halves A and B, :mod:`compaudit.analysis.floors`). One split is one random
draw, so the control summarises all of them:

:func:`long_tail_splits`
    :func:`~compaudit.analysis.long_tail.long_tail_comparison` of one score
    on ``S`` masks at once. The rank and tie structure of the score is
    computed once (:func:`~compaudit.analysis.long_tail.rank_scores`); each
    mask is then ``O(N)``: one product of the masks (and their complements)
    with per-example columns (centred score, its square, twice the mid-rank,
    decile indicators) gives every statistic, with the same definitions,
    degenerate cases and scipy equivalences (to about 1e-14 relative; the
    one-pass variances of centred scores lose digits only for a side whose
    mean lies many of its standard deviations from the overall mean).
    Mann-Whitney p-values use the normal approximation (tie and continuity
    corrected) exactly where scipy's default does; the few masks where scipy
    would use its exact distribution (a side of at most 8 examples and no
    tied scores) are passed to scipy. 64 splits of N = 50,000 take about
    80 ms of CPU time per score and subset (one scipy-based
    ``long_tail_comparison`` of that size about 95 ms).
:func:`summarise_splits`
    One row for the seed counterpart: each statistic is the **median over
    the splits where it is defined** (NaN splits, e.g. a split without PIEs,
    are left out; NaN when none is defined); ``n`` is the lower median of the
    split sizes (an actual split's size, so an integer); each decile's
    ``share_flagged`` and ``base_rate`` are the means over splits.
:func:`seed_position`
    Where an observed Cliff's delta falls against the splits': their 5th and
    95th percentiles (numpy's linear interpolation) and ``p_beyond_seed``,
    the two-sided normal p of

    ``z = (delta_obs - median_s delta_s) / sqrt(se_obs^2 + se_seed^2)``

    over the ``S'`` splits with a defined delta, where ``se`` is the null
    standard error of Cliff's delta at a subset's sizes, ``2 sqrt(var U) /
    (n1 n2)`` with the tie-corrected Mann-Whitney variance ``var U = n1 n2 /
    12 ((N + 1) - sum(t^3 - t) / (N (N - 1)))``: ``se_obs`` at the observed
    subset's sizes, ``se_seed`` at the splits' median sizes. It is NaN when
    either delta or standard error is undefined.

Why not the rank of the observed delta among the split deltas: the splits
share reference members and flag mostly the same unstable examples, so their
deltas spread far less than one flagged subset's delta varies with which
examples it happens to hold (the sampling noise the ``se`` terms measure).
Under pure seed noise (the candidate retrained like the reference, a score
unrelated to the models; 10 reference members, 3 candidate members, N = 1000,
about 100 replicates) the rank p rejected at 0.05 in 36% of replicates for
PIEs (15% for CIE-U, where the sizes match), the rule above in 0-3%: it is
conservative (the median of the splits varies less than one split). The
percentiles describe the splits' spread, not an interval for one subset's
delta. No rule fixes a structural mismatch: without lineage the candidate's
CIEs are examples changed among ``Kr + K`` models but a split's among ``2 k``,
and its PIEs compare a modal label of ``Kr`` members with one of ``K``, a
split's two of ``k``; with a score tied to difficulty, that alone can put the
``cie`` and ``cie_c`` rows beyond seed (PIE and CIE-U rows stayed calibrated
in the same simulation).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from compaudit.analysis.long_tail import (
    N_DECILES,
    DecileShare,
    LongTailResult,
    RankedScores,
    rank_scores,
)
from compaudit.errors import InputError

__all__ = [
    "SeedPosition",
    "SplitStatistics",
    "long_tail_splits",
    "seed_position",
    "summarise_splits",
]

ERR_MASKS = (
    "masks must be a boolean array of shape (splits, N) with N = {n} scored examples; "
    "got shape {shape} and dtype {dtype}"
)

# Mask entries per working block (float64 copies): 8 MiB.
_BLOCK = 1 << 20
_EXACT_MAX = 8  # scipy's mannwhitneyu is exact when a side has at most 8 and no ties


@dataclass(frozen=True, eq=False)
class SplitStatistics:
    """:func:`long_tail_splits`' statistics, one entry per mask (``[S]`` arrays).

    Attributes mirror :class:`~compaudit.analysis.long_tail.LongTailResult`;
    ``share_flagged`` is ``[S, 10]`` (NaN for an empty decile) and
    ``base_rate`` ``[S]``. ``null_se`` is the null standard error of each
    Cliff's delta (see the module doc), NaN where the delta is undefined.
    """

    n: np.ndarray
    n_rest: np.ndarray
    mean_subset: np.ndarray
    mean_rest: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray
    mann_whitney_p: np.ndarray
    cohens_d: np.ndarray
    cliffs_delta: np.ndarray
    share_flagged: np.ndarray
    base_rate: np.ndarray
    null_se: np.ndarray
    decile_size: np.ndarray
    """``[10]``: examples per decile (the same for every mask)."""

    @property
    def n_splits(self) -> int:
        """Number of masks, ``S``."""
        return int(self.n.size)


@dataclass(frozen=True)
class SeedPosition:
    """An observed Cliff's delta against the seed splits' (see the module doc).

    Attributes
    ----------
    splits : int
        Splits with a defined delta (``S'``); 0 when there are none.
    delta_q05, delta_q95 : float
        5th and 95th percentiles of the split deltas (NaN without any).
    p_beyond_seed : float
        Two-sided p of the observed delta against their median, in units of both
        deltas' null standard errors (NaN when undefined).
    """

    splits: int
    delta_q05: float
    delta_q95: float
    p_beyond_seed: float


def _null_se(n1: np.ndarray, n2: np.ndarray, ranked: RankedScores) -> np.ndarray:
    n = ranked.n
    with np.errstate(divide="ignore", invalid="ignore"):
        var_u = n1 * n2 / 12.0 * ((n + 1) - ranked.tie_term / (n * (n - 1.0)))
        se = 2.0 * np.sqrt(var_u) / (n1 * n2)
    return np.where((n1 > 0) & (n2 > 0) & (se > 0), se, math.nan)


def long_tail_splits(scores: npt.ArrayLike | RankedScores, masks: npt.ArrayLike) -> SplitStatistics:
    """:func:`~compaudit.analysis.long_tail.long_tail_comparison` of one score on many masks.

    Parameters
    ----------
    scores : array-like of float, shape (N,), or RankedScores
        The score (ranked once here when not already).
    masks : array-like of bool, shape (S, N)
        One flagged subset per row (e.g. the seed PIEs of each floor split).

    Returns
    -------
    SplitStatistics
        Row ``s`` equals ``long_tail_comparison(scores, masks[s])`` (to rounding).

    Raises
    ------
    InputError
        Scores as :func:`~compaudit.analysis.long_tail.rank_scores` refuses them, or
        masks that are not boolean of shape ``(S, N)``.
    """
    ranked = rank_scores(scores)
    m = np.asarray(masks)
    n = ranked.n
    if m.ndim != 2 or m.shape[1] != n or m.dtype != np.bool_:
        raise InputError(ERR_MASKS.format(n=n, shape=m.shape, dtype=m.dtype))
    s_count = m.shape[0]
    # Per-example columns whose masked sums give every statistic: centred scores and
    # their squares (one-pass variances without a large offset), twice the mid-rank
    # (exact in float64 below 2^53) and the decile indicators.
    c = ranked.values - (ranked.values.mean() if n else 0.0)
    cols = np.zeros((n, 3 + N_DECILES))
    cols[:, 0], cols[:, 1] = c, c * c
    cols[:, 2] = ranked.less + ranked.upto + 1
    cols[np.arange(n), 3 + ranked.decile] = 1.0
    sizes = cols[:, 3:].sum(axis=0)
    flagged = np.empty((s_count, cols.shape[1]))
    rest = np.empty_like(flagged)
    step = max(1, min(s_count, _BLOCK // max(n, 1)))
    buf = np.empty((step, n))  # reused: a fresh float copy per block costs more than the sums
    for lo in range(0, s_count, step):
        hi = min(s_count, lo + step)
        np.copyto(buf[: hi - lo], m[lo:hi])
        flagged[lo:hi] = buf[: hi - lo] @ cols
        np.copyto(buf[: hi - lo], ~m[lo:hi])
        rest[lo:hi] = buf[: hi - lo] @ cols
    n1 = flagged[:, 3:].sum(axis=1)
    n2 = n - n1
    const = np.stack([_constant(ranked, m, n1, True), _constant(ranked, m, n2, False)])
    out = _statistics(flagged, rest, n1, n2, const, ranked)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(sizes > 0, flagged[:, 3:] / sizes, math.nan)
        base = n1 / n if n else np.full(s_count, math.nan)
    _exact_mann_whitney(ranked.values, m, n1, n2, ranked, out["mann_whitney_p"])
    return SplitStatistics(
        n=np.rint(n1).astype(np.int64),
        n_rest=np.rint(n2).astype(np.int64),
        share_flagged=share,
        base_rate=base,
        null_se=_null_se(n1, n2, ranked),
        decile_size=np.rint(sizes).astype(np.int64),
        **out,
    )


def _constant(ranked: RankedScores, m: np.ndarray, size: np.ndarray, side: bool) -> np.ndarray:
    """Per mask, whether one side's scores are all equal (or it is empty). Only a side no
    larger than the largest tie group can be, so only those few masks are looked at."""
    out: np.ndarray = size == 0
    for i in np.flatnonzero((size > 0) & (size <= ranked.max_tie)):
        vals = ranked.values[m[i] == side]
        out[i] = bool(vals.max() == vals.min())
    return out


def _statistics(
    flagged: np.ndarray,
    rest: np.ndarray,
    n1: np.ndarray,
    n2: np.ndarray,
    const: np.ndarray,
    ranked: RankedScores,
) -> dict[str, np.ndarray]:
    """long_tail_comparison's statistics from each side's column sums, NaN where it says."""
    from scipy import special

    n, shift = ranked.n, float(ranked.values.mean()) if ranked.n else 0.0
    const_x, const_y = const
    both = (n1 > 0) & (n2 > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cx, cy = flagged[:, 0] / n1, rest[:, 0] / n2
        # A constant side has no spread: exactly 0, not the rounding of a one-pass sum.
        ss_x = np.where(const_x, 0.0, np.maximum(flagged[:, 1] - n1 * cx * cx, 0.0))
        ss_y = np.where(const_y, 0.0, np.maximum(rest[:, 1] - n2 * cy * cy, 0.0))
        two_u = flagged[:, 2] - n1 * (n1 + 1)
        delta = (two_u - n1 * n2) / (n1 * n2)
        ss = ss_x + ss_y
        d = (cx - cy) / np.sqrt(ss / (n1 + n2 - 2))
        vn1 = ss_x / (n1 - 1) / n1
        vn2 = ss_y / (n2 - 1) / n2
        df = (vn1 + vn2) ** 2 / (vn1**2 / (n1 - 1) + vn2**2 / (n2 - 1))
        df = np.where(np.isnan(df), 1.0, df)  # as scipy: both variances zero
        t = (cx - cy) / np.sqrt(vn1 + vn2)
        p = 2.0 * special.stdtr(df, -np.abs(t))
        u = np.maximum(two_u / 2.0, n1 * n2 - two_u / 2.0)
        se_u = np.sqrt(n1 * n2 / 12.0 * ((n + 1) - ranked.tie_term / (n * (n - 1.0))))
        mw = np.clip(2.0 * special.ndtr(-(u - n1 * n2 / 2.0 - 0.5) / se_u), 0.0, 1.0)
    not_both_const = ~(const_x & const_y)
    welch = both & (n1 >= 2) & (n2 >= 2) & not_both_const
    nan = math.nan
    return {
        "mean_subset": np.where(n1 > 0, cx + shift, nan),
        "mean_rest": np.where(n2 > 0, cy + shift, nan),
        "statistic": np.where(welch, t, nan),
        "p_value": np.where(welch, p, nan),
        "mann_whitney_p": np.where(both & (not ranked.constant), mw, nan),
        "cohens_d": np.where(both & (n1 + n2 > 2) & not_both_const & (ss > 0), d, nan),
        "cliffs_delta": np.where(both, delta, nan),
    }


def _exact_mann_whitney(
    s: np.ndarray,
    m: np.ndarray,
    n1: np.ndarray,
    n2: np.ndarray,
    ranked: RankedScores,
    out: np.ndarray,
) -> None:
    """scipy's exact p where its default method would use it (rare: tiny sides)."""
    if ranked.ties or ranked.constant:
        return
    small = np.flatnonzero((n1 > 0) & (n2 > 0) & (np.minimum(n1, n2) <= _EXACT_MAX))
    if small.size == 0:
        return
    from scipy import stats

    for i in small:
        x, y = s[m[i]], s[~m[i]]
        out[i] = float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)


def _median(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(np.median(x)) if x.size else math.nan


def summarise_splits(stats: SplitStatistics) -> LongTailResult:
    """One :class:`~compaudit.analysis.long_tail.LongTailResult` for all splits.

    Each statistic is its median over the splits where it is defined, ``n`` and
    ``n_rest`` the lower medians of the split sizes, and each decile's shares the
    means over splits (see the module doc).

    Parameters
    ----------
    stats : SplitStatistics
        :func:`long_tail_splits` of the seed masks (at least one split).

    Returns
    -------
    LongTailResult
        The summary, in the form of a single comparison.
    """
    if stats.n_splits == 0:
        raise ValueError("summarise_splits needs at least one split")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN (empty) decile
        share = np.nanmean(stats.share_flagged, axis=0)
        base = float(np.nanmean(stats.base_rate))
    deciles = tuple(
        DecileShare(
            decile=i + 1,
            size=int(stats.decile_size[i]),
            share_flagged=float(share[i]),
            base_rate=base,
        )
        for i in range(N_DECILES)
    )
    return LongTailResult(
        n=int(np.quantile(stats.n, 0.5, method="lower")),
        n_rest=int(np.quantile(stats.n_rest, 0.5, method="lower")),
        mean_subset=_median(stats.mean_subset),
        mean_rest=_median(stats.mean_rest),
        statistic=_median(stats.statistic),
        p_value=_median(stats.p_value),
        mann_whitney_p=_median(stats.mann_whitney_p),
        cohens_d=_median(stats.cohens_d),
        cliffs_delta=_median(stats.cliffs_delta),
        deciles=deciles,
    )


def seed_position(
    delta: float, n: int, stats: SplitStatistics, ranked: RankedScores
) -> SeedPosition:
    """Where an observed Cliff's delta falls against the seed splits' (module doc).

    Parameters
    ----------
    delta : float
        The observed (compression) subset's Cliff's delta; NaN when undefined.
    n : int
        Its flagged examples (for its null standard error).
    stats : SplitStatistics
        :func:`long_tail_splits` of the seed masks, on the same score.
    ranked : RankedScores
        That score's ranking (for the tie correction).

    Returns
    -------
    SeedPosition
        The split count, the deltas' 5th and 95th percentiles, and ``p_beyond_seed``.
    """
    from scipy import special

    ok = ~np.isnan(stats.cliffs_delta)
    deltas = stats.cliffs_delta[ok]
    if deltas.size == 0:
        return SeedPosition(0, math.nan, math.nan, math.nan)
    q05, q95 = (float(q) for q in np.quantile(deltas, [0.05, 0.95]))
    n1 = np.asarray([float(n), float(np.median(stats.n[ok]))])
    se_obs, se_seed = _null_se(n1, ranked.n - n1, ranked)
    spread = math.hypot(float(se_obs), float(se_seed))
    if math.isnan(delta) or math.isnan(spread):
        return SeedPosition(int(deltas.size), q05, q95, math.nan)
    z = abs(delta - float(np.median(deltas))) / spread
    return SeedPosition(int(deltas.size), q05, q95, float(2.0 * special.ndtr(-z)))
