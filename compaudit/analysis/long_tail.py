"""Is a flagged subset the long tail? Per-example scores of flagged against the rest.

Dam et al. show that Compression Impacted Exemplars are the memorized long
tail by comparing a per-example score (mean influence, memorization, a
C-score, a loss) on CIEs against the other examples; Hooker et al. do the same
for PIEs. :func:`long_tail_comparison` does that comparison for any boolean
mask of flagged examples (PIEs, CIEs, CIE-U, CIE-C) over the ``N`` audited
examples:

* Welch's t-test of flagged against the rest (``statistic`` has the sign of
  ``mean_subset - mean_rest``; equal to ``scipy.stats.ttest_ind(subset, rest,
  equal_var=False)``);
* the two-sided Mann-Whitney U p-value (``scipy.stats.mannwhitneyu(subset,
  rest, alternative="two-sided")`` with scipy's default method selection:
  exact for small samples without ties, else the normal approximation with
  tie and continuity corrections);
* Cohen's d with the pooled standard deviation
  ``sqrt(((n1 - 1) s1^2 + (n2 - 1) s2^2) / (n1 + n2 - 2))``;
* Cliff's delta ``P(x > y) - P(x < y)`` over (flagged ``x``, rest ``y``)
  pairs, from mid-ranks in ``O(N log N)``: ``delta = 2 U / (n1 n2) - 1`` with
  ``U`` the Mann-Whitney statistic of the flagged side;
* the share of flagged examples in each score decile against the base rate.

Deciles
-------
Decile ``d`` (1 = lowest scores, 10 = highest) holds the examples whose
mid-distribution value ``F(x) = (#{scores < x} + #{scores == x} / 2) / N``
lies in ``[(d - 1) / 10, d / 10)``, i.e. ``d = floor(10 F(x)) + 1``, computed
in integers. Tied scores share ``F`` and so always share a decile (the rule
depends only on the values, not on the order of the examples); without ties
and with ``N`` a multiple of 10 every decile holds ``N / 10`` examples. Heavy
ties leave some deciles empty (constant scores put every example in decile
6); an empty decile's ``share_flagged`` is NaN. ``share_flagged`` is the
fraction of the decile's examples that are flagged; ``base_rate`` the
fraction of all examples that are flagged (the same in every decile).

Degenerate cases give NaN (``None`` in :meth:`LongTailResult.to_dict`, JSON
null), never an exception: an empty subset or rest (every statistic); fewer
than two examples on a side (the t-test); both sides constant (the t-test,
Cohen's d); constant scores overall (also the Mann-Whitney p, where scipy
would say 1). Cliff's delta stays defined whenever both sides are non-empty
(0 for constant scores: no pair differs).

:func:`read_scores` (from :mod:`compaudit.analysis.score_files`, re-exported
here) reads per-example scores from a CSV (``id`` and one numeric column) or an
``.npz`` (``ids``, ``scores``) and joins them to the audit's example ids.
scipy.stats is imported inside the functions that need it (the CLI avoids
importing it).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from compaudit.analysis.score_files import read_scores
from compaudit.errors import InputError

__all__ = [
    "N_DECILES",
    "DecileShare",
    "LongTailResult",
    "RankedScores",
    "long_tail_comparison",
    "rank_scores",
    "read_scores",
]

N_DECILES = 10

ERR_SCORES_SHAPE = (
    "scores and flagged must be 1-D arrays with one entry per audited example; "
    "got shapes {scores} and {flagged}"
)
ERR_SCORES_DTYPE = "scores must be real numbers, got dtype {dtype}"
ERR_FLAGGED_DTYPE = (
    "flagged must be a boolean mask over the audited examples, got dtype {dtype}; "
    "build it with e.g. np.isin(np.arange(n), indices)"
)
ERR_SCORES_NONFINITE = (
    "scores must be finite; {count} are NaN or infinite (first at example {index}); "
    "give every audited example a score, or leave those examples out of both arrays"
)


@dataclass(frozen=True)
class DecileShare:
    """Flagged share of one score decile.

    Attributes
    ----------
    decile : int
        1 (lowest scores) to 10 (highest).
    size : int
        Examples in the decile.
    share_flagged : float
        Fraction of them that are flagged (NaN for an empty decile).
    base_rate : float
        Fraction of all examples that are flagged (NaN when there are none).
    """

    decile: int
    size: int
    share_flagged: float
    base_rate: float

    def to_dict(self) -> dict[str, Any]:
        """``{"decile", "share_flagged", "base_rate"}``, NaN as ``None``."""
        return {
            "decile": self.decile,
            "share_flagged": _json(self.share_flagged),
            "base_rate": _json(self.base_rate),
        }


@dataclass(frozen=True)
class LongTailResult:
    """Comparison of a per-example score on flagged examples against the rest.

    Attributes
    ----------
    n : int
        Number of flagged examples.
    n_rest : int
        Number of the other examples.
    mean_subset, mean_rest : float
        Mean score of each side (NaN if empty).
    statistic, p_value : float
        Welch's t statistic (sign of ``mean_subset - mean_rest``) and its
        two-sided p-value.
    mann_whitney_p : float
        Two-sided Mann-Whitney U p-value.
    cohens_d : float
        ``(mean_subset - mean_rest) / pooled_sd``.
    cliffs_delta : float
        ``P(flagged > rest) - P(flagged < rest)`` over all pairs, in [-1, 1].
    deciles : tuple of DecileShare
        Ten entries, decile 1 first.
    """

    n: int
    n_rest: int
    mean_subset: float
    mean_rest: float
    statistic: float
    p_value: float
    mann_whitney_p: float
    cohens_d: float
    cliffs_delta: float
    deciles: tuple[DecileShare, ...]

    def to_dict(self) -> dict[str, Any]:
        """Report form: keys ``n, mean_subset, mean_rest, statistic, p_value,
        mann_whitney_p, cohens_d, cliffs_delta, deciles``; NaN as ``None``."""
        return {
            "n": self.n,
            "mean_subset": _json(self.mean_subset),
            "mean_rest": _json(self.mean_rest),
            "statistic": _json(self.statistic),
            "p_value": _json(self.p_value),
            "mann_whitney_p": _json(self.mann_whitney_p),
            "cohens_d": _json(self.cohens_d),
            "cliffs_delta": _json(self.cliffs_delta),
            "deciles": [d.to_dict() for d in self.deciles],
        }


def _json(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _check(scores: npt.ArrayLike, flagged: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s, f = np.asarray(scores), np.asarray(flagged)
    if s.ndim != 1 or f.ndim != 1 or s.shape != f.shape:
        raise InputError(ERR_SCORES_SHAPE.format(scores=s.shape, flagged=f.shape))
    if f.dtype != np.bool_:
        raise InputError(ERR_FLAGGED_DTYPE.format(dtype=f.dtype))
    if s.dtype.kind not in "biuf":
        raise InputError(ERR_SCORES_DTYPE.format(dtype=s.dtype))
    s = s.astype(np.float64)
    bad = ~np.isfinite(s)
    if bad.any():
        raise InputError(
            ERR_SCORES_NONFINITE.format(count=int(bad.sum()), index=int(np.argmax(bad)))
        )
    return s, f


@dataclass(frozen=True, eq=False)
class RankedScores:
    """A score's rank and tie structure: it depends on the scores alone, so it is
    computed once (``O(N log N)``) and shared by every mask (each then ``O(N)``).

    Build it with :func:`rank_scores`; :func:`long_tail_comparison` and
    :func:`compaudit.analysis.long_tail_seed.long_tail_splits` accept it in
    place of the scores.

    Attributes
    ----------
    values : ndarray of float64, shape (N,)
        The checked scores.
    less, upto : ndarray of int64, shape (N,)
        Per example ``#{scores < x}`` and ``#{scores <= x}``; twice the
        mid-rank is ``less + upto + 1``.
    order : ndarray of intp, shape (N,)
        A stable sort order of the scores.
    tie_term : float
        ``sum(t**3 - t)`` over the tie groups (sizes ``t``) of all scores:
        the Mann-Whitney variance's tie correction.
    ties : bool
        Whether any two scores are equal.
    max_tie : int
        Size of the largest tie group (1 without ties, 0 without scores).
    """

    values: np.ndarray
    less: np.ndarray
    upto: np.ndarray
    order: np.ndarray
    tie_term: float
    ties: bool
    max_tie: int

    @property
    def n(self) -> int:
        """Number of examples, ``N``."""
        return int(self.values.size)

    @property
    def constant(self) -> bool:
        """No two scores differ (or there are none)."""
        return self.n == 0 or bool(np.ptp(self.values) == 0)

    @property
    def decile(self) -> np.ndarray:
        """Each example's decile index, 0 (lowest) to 9 (see the module doc)."""
        n = self.n
        # floor(10 F) with F = (less + (upto - less) / 2) / n = (less + upto) / (2 n)
        return (N_DECILES * (self.less + self.upto)) // (2 * n) if n else np.zeros(0, np.int64)


def rank_scores(scores: npt.ArrayLike | RankedScores) -> RankedScores:
    """Rank and tie structure of ``scores`` (returned as is when already ranked).

    Raises
    ------
    InputError
        If ``scores`` is not 1-D or holds a non-finite or non-real value.
    """
    if isinstance(scores, RankedScores):
        return scores
    s, _ = _check(scores, np.zeros(np.shape(scores), dtype=bool))
    order, less, upto = _tie_groups(s)
    sizes = np.diff(np.unique(upto), prepend=0) if s.size else upto
    tie_term = float(np.sum(sizes.astype(np.float64) ** 3 - sizes))
    ties = bool(sizes.size < s.size)
    return RankedScores(s, less, upto, order, tie_term, ties, int(sizes.max(initial=0)))


def _tie_groups(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order, and per example ``#less`` and ``#less + #equal`` (``int64``)."""
    order = np.argsort(x, kind="stable")
    if x.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return order, empty, empty
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], x.size]
    sizes = ends - starts
    less = np.empty(x.size, dtype=np.int64)
    upto = np.empty(x.size, dtype=np.int64)
    less[order] = np.repeat(starts, sizes)
    upto[order] = np.repeat(ends, sizes)
    return order, less, upto


def _deciles(flagged: np.ndarray, d: np.ndarray) -> tuple[DecileShare, ...]:
    n = flagged.size
    size = np.bincount(d, minlength=N_DECILES)
    hits = np.bincount(d, weights=flagged, minlength=N_DECILES)
    base = float(flagged.sum()) / n if n else math.nan
    return tuple(
        DecileShare(
            decile=i + 1,
            size=int(size[i]),
            share_flagged=float(hits[i]) / int(size[i]) if size[i] else math.nan,
            base_rate=base,
        )
        for i in range(N_DECILES)
    )


def long_tail_comparison(
    scores: npt.ArrayLike | RankedScores, flagged: npt.ArrayLike
) -> LongTailResult:
    """Compare a per-example score on the flagged examples against the rest.

    Parameters
    ----------
    scores : array-like of float, shape (N,), or RankedScores
        One finite score per audited example (e.g. mean influence, memorization);
        a :class:`RankedScores` skips re-ranking when one score meets many masks.
    flagged : array-like of bool, shape (N,)
        The subset (PIEs, CIEs, CIE-U or CIE-C).

    Returns
    -------
    LongTailResult
        See the module docstring for each statistic, the deciles and the NaN cases.

    Raises
    ------
    InputError
        If the shapes differ or are not 1-D, ``flagged`` is not boolean, or a
        score is not a finite real number.
    """
    ranked = rank_scores(scores)
    s, f = _check(ranked.values, flagged)
    x, y = s[f], s[~f]
    n1, n2 = x.size, y.size
    less, upto = ranked.less, ranked.upto
    nan = math.nan
    mean_x = float(x.mean()) if n1 else nan
    mean_y = float(y.mean()) if n2 else nan
    const_x = n1 == 0 or bool(np.ptp(x) == 0)
    const_y = n2 == 0 or bool(np.ptp(y) == 0)
    constant = ranked.constant

    statistic = p_value = mw_p = d = delta = nan
    if n1 and n2:
        # 2 U = sum over flagged of 2 * midrank - n1 (n1 + 1), with 2 * midrank = less + upto + 1
        two_u = int((less[f] + upto[f] + 1).sum()) - n1 * (n1 + 1)
        delta = (two_u - n1 * n2) / (n1 * n2)
        ss = float(((x - mean_x) ** 2).sum() + ((y - mean_y) ** 2).sum())
        if n1 + n2 > 2 and not (const_x and const_y) and ss > 0:
            d = (mean_x - mean_y) / math.sqrt(ss / (n1 + n2 - 2))
        from scipy import stats  # lazily: the CLI avoids importing scipy.stats

        with warnings.catch_warnings():
            # one constant side: its variance is ~0 up to rounding, which scipy flags
            warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
            if n1 >= 2 and n2 >= 2 and not (const_x and const_y):
                welch = stats.ttest_ind(x, y, equal_var=False)
                statistic, p_value = float(welch.statistic), float(welch.pvalue)
            if not constant:
                mw_p = float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    return LongTailResult(
        n=int(n1),
        n_rest=int(n2),
        mean_subset=mean_x,
        mean_rest=mean_y,
        statistic=statistic,
        p_value=p_value,
        mann_whitney_p=mw_p,
        cohens_d=d,
        cliffs_delta=delta,
        deciles=_deciles(f, ranked.decile),
    )


# -- score files -------------------------------------------------------------------
