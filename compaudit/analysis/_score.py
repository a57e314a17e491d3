"""Numerics of :func:`compaudit.analysis.stats.paired_shift_test`: the trinomial score test.

Two sides (a group and the rest of the examples) each hold a trinomial sample:
``n`` examples of which ``l`` were lost, ``g`` gained and ``u = n - l - g``
unchanged. Under H0 both sides share the net rate ``delta = P(gain) - P(loss)``
while each keeps its own churn ``c = P(gain) + P(loss)``.

* :mod:`compaudit.analysis._trinomial`: the restricted MLE and the statistic ``T``;
* :mod:`compaudit.analysis._score_bootstrap`: p-values under the parametric
  bootstrap at H0 and their calibration guards;
* this module: :func:`score_test` (the normal reference or the bootstrap, per the
  expected number of changes) and its in-process memo of bootstrap rows;
* :mod:`compaudit.analysis._lattice`: the lineage test on per-pair outcomes.

The names :mod:`compaudit.analysis.stats` and the simulations read are re-exported here.
"""

from __future__ import annotations

import numpy as np

from compaudit.analysis._lattice import lattice_fit, lattice_statistic, lattice_test
from compaudit.analysis._score_bootstrap import bootstrap_pvalues
from compaudit.analysis._trinomial import (
    NORMAL_MIN_EXPECTED,
    P_FLOOR,
    _choose,
    _normal,
    restricted_fit,
    score_statistic,
)

__all__ = [
    "NORMAL_MIN_EXPECTED",
    "P_FLOOR",
    "bootstrap_pvalues",
    "lattice_fit",
    "lattice_statistic",
    "lattice_test",
    "restricted_fit",
    "score_statistic",
    "score_test",
]


def score_test(
    counts: np.ndarray, *, path: str, seed: int, n_boot: int, per_row: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(T, p two-sided, p_worse, normal)`` of rows ``counts`` [R, 6] of integers
    (n1, l1, g1, n2, l2, g2), each side with n >= 1.

    ``path`` is "auto" (normal iff every side of every row expects at least
    NORMAL_MIN_EXPECTED changed examples under H0; per row when ``per_row``, for
    simulations that stack independent comparisons), "normal" or "bootstrap".
    """
    c = counts.astype(np.float64)
    t, delta, p1, p2 = score_statistic(*c.T)
    dp = np.abs(delta)
    expected = np.minimum(c[:, 0] * (2 * p1 + dp), c[:, 3] * (2 * p2 + dp))
    normal = _choose(expected, path, per_row)
    p_two, p_low = _normal(t)
    boot = np.flatnonzero(~normal)
    if boot.size:
        uniq, first, inv = np.unique(counts[boot], axis=0, return_index=True, return_inverse=True)
        j = boot[first]
        b_two, b_low = _memo_bootstrap(uniq, t[j], delta[j], p1[j], p2[j], seed=seed, n_boot=n_boot)
        p_two[boot], p_low[boot] = b_two[inv.ravel()], b_low[inv.ravel()]
    return t, p_two, np.where(t >= 0, 1.0, p_low), normal


# A row's bootstrap p-values depend only on its counts, the seed and the number of
# draws (every row uses the same uniforms), so repeated rows (one audit under
# several policies, floor splits that reproduce a count) are computed once.
_MEMO: dict[tuple[int, int, bytes], tuple[float, float]] = {}
_MEMO_MAX = 1 << 16


def _memo_bootstrap(
    uniq: np.ndarray,
    t: np.ndarray,
    delta: np.ndarray,
    p1: np.ndarray,
    p2: np.ndarray,
    *,
    seed: int,
    n_boot: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bootstrap_pvalues` of distinct rows ``uniq``, reading rows seen before
    (same counts, seed and ``n_boot``) from a bounded in-process memo."""
    rows = np.ascontiguousarray(uniq, dtype=np.int64)
    keys = [(seed, n_boot, r.tobytes()) for r in rows]
    hits = [_MEMO.get(k) for k in keys]
    miss = np.array([h is None for h in hits], dtype=bool)
    p_two, p_low = np.empty(len(keys)), np.empty(len(keys))
    for i, h in enumerate(hits):
        if h is not None:
            p_two[i], p_low[i] = h
    if miss.any():
        m = np.flatnonzero(miss)
        b_two, b_low = bootstrap_pvalues(
            uniq[m], t[m], delta[m], p1[m], p2[m], seed=seed, n_boot=n_boot
        )
        p_two[m], p_low[m] = b_two, b_low
        if len(_MEMO) + m.size > _MEMO_MAX:
            _MEMO.clear()
        _MEMO.update(
            (keys[i], (float(a), float(b))) for i, a, b in zip(m, b_two, b_low, strict=True)
        )
    return p_two, p_low
