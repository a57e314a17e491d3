"""The exact path of :func:`compaudit.analysis.stats.paired_shift_test`.

Enumerates, per distinct group size, every (lost, gained) cell of the
multivariate hypergeometric permutation distribution and sums the
probabilities of the cells whose Welch statistic is at least as extreme as
the observed one. Vectorised: no Python loop over cells.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["exact_pvalues", "welch_counts"]

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


def welch_counts(
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
    abs_t = np.abs(welch_counts(sizes, row_size[cell_row], row_l[cell_row], g, N, L, G)[0])
    size_len = np.bincount(row_size, weights=row_len, minlength=sizes.size).astype(np.int64)
    return size_len, prob, abs_t, skip_l + skip_g


def exact_pvalues(n: np.ndarray, t_obs: np.ndarray, N: int, L: int, G: int) -> np.ndarray:
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
