"""The score test's parametric bootstrap at H0 (see :mod:`compaudit.analysis._score`).

p-values under the parametric bootstrap at H0, per distinct row of
counts (groups with equal counts share them). The smaller side is enumerated
exactly (cells of mass >= 1e-20; the mass left out is added to p, keeping it
conservative; p is floored at P_FLOOR = 1e-12, the accuracy of the sums), so
p resolves far below 1 / n_boot (Holm over 1,000 groups needs that). The other
side is enumerated too when both are small, else represented by its observed
counts and 999 draws when it is at least 20x larger. A cell whose statistic is
on one side of the threshold at two corners of those points' bounding box (T is
monotone in every count) is decided without the points. Two comparable sides
that are not both small are drawn together instead (n_boot paired draws,
``(1 + hits) / (n_boot + 1)``). All draws come from uniforms shared by every
row through exact binomial quantiles, so they move monotonically with the
parameters (common random numbers).

Calibration guards. The restricted MLE of a small side's churn rests on a
handful of changes and is often too low, which makes its reference too narrow
(measured: up to 7% rejections at alpha = 5%). So each p is the larger of the
restricted-MLE world's and a guard's: where a side is enumerated, a world whose
churns are raised to their 75% upper Clopper-Pearson bounds; where both sides
are drawn, the normal reference (conservative in every simulated null). With
the guards the simulated size is at or under alpha (calibration_sim).
"""

from __future__ import annotations

import numpy as np

from compaudit.analysis._special import ndtr
from compaudit.analysis._trinomial import _CHUNK, _TIE_ATOL, _TIE_RTOL, P_FLOOR, score_statistic

__all__ = ["bootstrap_pvalues"]

# Exact enumeration keeps cells of at least this probability.
_CELL_MIN_P = 1e-20
_LOG_CELL_MIN_P = float(np.log(_CELL_MIN_P))
# Rows whose group side would need more cells than this are bootstrapped by
# paired Monte-Carlo draws instead of enumeration.
_MAX_CELLS = 100_000
# ... and whose other side is not at least this many times larger (then the other
# side's noise matters too and most cells would need every draw of it).
_ENUM_RATIO = 20
# Draws of the other side when one side is enumerated; it is enumerated as well
# when it has at most _EXACT_OTHER candidate cells.
_REST_DRAWS = 999
_EXACT_OTHER = 20_000
# Confidence level of the guard world's churn (see bootstrap_pvalues).
GUARD_LEVEL = 0.75
# Candidate cells built at once (small enough to stay in cache).
_CELLS_PER_PASS = 1 << 21


def _ragged(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, position) of each element when rows of the given lengths are concatenated."""
    owner = np.repeat(np.arange(lengths.size), lengths)
    starts = np.cumsum(lengths) - lengths
    return owner, np.arange(owner.size) - starts[owner]


def _window(mean: np.ndarray, var: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer window [lo, hi] holding all binomial mass above 1e-20 (Chernoff-safe)."""
    half = 10.0 * np.sqrt(var) + 50.0
    return np.maximum(np.floor(mean - half), 0).astype(np.int64), np.minimum(
        np.ceil(mean + half), top
    ).astype(np.int64)


def _cells(
    n: np.ndarray, p_min: np.ndarray, dp: np.ndarray, pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact trinomial cells of each row: (owner, l, g, probability) and left-out mass."""
    from scipy import special  # lazily: only single-model (K = 1) bootstraps pay for it

    c = 2.0 * p_min + dp
    r = np.divide(p_min, c, out=np.zeros_like(c), where=c > 0)  # P(minority | changed)
    m_lo, m_hi = _window(n * c, n * c * (1 - c), n.astype(np.int64))
    row, pos_m = _ragged(m_hi - m_lo + 1)
    m = m_lo[row] + pos_m
    x_lo, x_hi = _window(m * r[row], m * r[row] * (1 - r[row]), m)
    cell_row, pos_x = _ragged(x_hi - x_lo + 1)
    owner = row[cell_row]
    mm = m[cell_row].astype(np.float64)
    xm = (x_lo[cell_row] + pos_x).astype(np.float64)
    xM = mm - xm
    nn = n[owner]
    pm, pM = p_min[owner], p_min[owner] + dp[owner]
    logp = (
        special.gammaln(nn + 1)
        - special.gammaln(xm + 1)
        - special.gammaln(xM + 1)
        - special.gammaln(nn - mm + 1)
        + special.xlogy(xm, pm)
        + special.xlogy(xM, pM)
        + special.xlog1py(nn - mm, -(pm + pM))
    )
    keep = logp >= _LOG_CELL_MIN_P
    dropped = np.bincount(owner[~keep], np.exp(logp[~keep]), minlength=n.size)
    prob = np.exp(logp[keep])
    owner = owner[keep]
    ps = pos[owner]
    xm, xM = xm[keep], xM[keep]
    return owner, np.where(ps, xm, xM), np.where(ps, xM, xm), prob, dropped


def _binom_ppf(u: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Exact Binomial(n, p) quantiles ``min{k : CDF(k) >= u}``, elementwise.

    Tables of each distinct (n, p) over its window of mass above 1e-15 are
    searched at once; the quantile is non-decreasing in u and in p, so draws
    from shared uniforms move monotonically with the parameters.
    """
    from scipy import special  # lazily: only single-model (K = 1) bootstraps pay for it

    pairs, inv = np.unique(np.stack([n.astype(np.float64), p]), axis=1, return_inverse=True)
    inv = inv.ravel()
    pn, pp = pairs
    lo, hi = _window(pn * pp, pn * pp * (1 - pp), pn.astype(np.int64))
    seg, pos = _ragged(hi - lo + 1)
    k = (lo[seg] + pos).astype(np.float64)
    nn, q = pn[seg], pp[seg]
    logp = (
        special.gammaln(nn + 1)
        - special.gammaln(k + 1)
        - special.gammaln(nn - k + 1)
        + special.xlogy(k, q)
        + special.xlog1py(nn - k, -q)
    )
    cum = np.cumsum(np.exp(logp))
    start = np.cumsum(hi - lo + 1) - (hi - lo + 1)
    base = np.concatenate(([0.0], cum))[start]
    cdf = cum - base[seg]
    at = np.searchsorted(2.0 * seg + cdf, 2.0 * inv + u, side="left") - start[inv]
    return np.asarray(np.minimum(lo[inv] + at, hi[inv]), dtype=np.float64)


def _draws(
    n: np.ndarray, p_min: np.ndarray, dp: np.ndarray, pos: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Trinomial draws (l, g) [R, B] from uniforms u [B, 2] shared by all rows: the
    changed count, then the minority count (swap-symmetric: negating the outcomes
    swaps l and g exactly)."""
    R, B = n.size, u.shape[0]
    c = np.clip(2.0 * p_min + dp, 0.0, 1.0)
    r = np.divide(p_min, c, out=np.zeros_like(c), where=c > 0)
    m = _binom_ppf(np.tile(u[:, 0], R), np.repeat(n, B), np.repeat(c, B))
    xm = _binom_ppf(np.tile(u[:, 1], R), m, np.repeat(r, B))
    xm, xM = xm.reshape(R, B), (m - xm).reshape(R, B)
    ps = pos[:, None]
    return np.where(ps, xm, xM), np.where(ps, xM, xm)


def _stat(
    n1: np.ndarray,
    l1: np.ndarray,
    g1: np.ndarray,
    n2: np.ndarray,
    l2: np.ndarray,
    g2: np.ndarray,
) -> np.ndarray:
    """score_statistic's T, evaluated in bounded chunks."""
    out = np.empty(n1.shape)
    for s in range(0, n1.size, _CHUNK):
        sl = slice(s, s + _CHUNK)
        out[sl] = score_statistic(n1[sl], l1[sl], g1[sl], n2[sl], l2[sl], g2[sl])[0]
    return out


def _cell_bound(n: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Upper bound on the candidate cells :func:`_cells` builds for a row."""
    m_lo, m_hi = _window(n * c, n * c * (1 - c), n.astype(np.int64))
    x_width = np.minimum(m_hi + 1, 2 * (10.0 * np.sqrt(m_hi / 4.0) + 50.0) + 1)
    return np.asarray((m_hi - m_lo + 1) * x_width, dtype=np.float64)


def _events(t: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Indicators [..., 3] of T <= thr_0, T >= thr_1, |T| >= thr_2; ``t`` is [A] or
    [A, B], ``thr`` is [A, 3]."""
    th = thr.reshape(thr.shape[0], *([1] * (t.ndim - 1)), 3)
    te = t[..., None]
    return np.concatenate(
        [te <= th[..., :1], te >= th[..., 1:2], np.abs(te) >= th[..., 2:]], axis=-1
    )


def _enum_pvalues(
    rows: np.ndarray,
    n1: np.ndarray,
    p1: np.ndarray,
    dp: np.ndarray,
    pos: np.ndarray,
    n2: np.ndarray,
    pts_l: np.ndarray,
    pts_g: np.ndarray,
    w: np.ndarray,
    thr: np.ndarray,
) -> np.ndarray:
    """Probabilities [rows, 3] of the :func:`_events`: exact cells of side 1 against
    weighted points [rows, P] of side 2 (padding repeats a point with weight 0)."""
    owner, cl, cg, prob, left = _cells(n1[rows], p1[rows], dp[rows], pos[rows])
    r = rows[owner]
    # Corners of side 2's box of points: T is increasing in l2 and decreasing in g2,
    # so a cell's event is decided when both corners agree.
    t_hi = _stat(n1[r], cl, cg, n2[r], pts_l.max(axis=1)[r], pts_g.min(axis=1)[r])
    t_lo = _stat(n1[r], cl, cg, n2[r], pts_l.min(axis=1)[r], pts_g.max(axis=1)[r])
    at_hi, at_lo = _events(t_hi, thr[r]), _events(t_lo, thr[r])
    q = (at_hi & at_lo).astype(np.float64)
    und = np.flatnonzero((at_hi != at_lo).any(axis=1))
    width = pts_l.shape[1]
    step = max(_CHUNK // width, 1)
    for s in range(0, und.size, step):
        cells = und[s : s + step]
        cr = r[cells]
        t = _stat(
            np.repeat(n1[cr], width),
            np.repeat(cl[cells], width),
            np.repeat(cg[cells], width),
            np.repeat(n2[cr], width),
            pts_l[cr].ravel(),
            pts_g[cr].ravel(),
        ).reshape(cells.size, width)
        q[cells] = np.einsum("cpk,cp->ck", _events(t, thr[cr]), w[cr])
    out = np.stack([np.bincount(owner, prob * q[:, k], minlength=rows.size) for k in range(3)])
    return np.asarray(out.T + left[:, None])


def _exact_points(
    n: np.ndarray, p_min: np.ndarray, dp: np.ndarray, pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A side's exact cells as padded points [R, P] with their probabilities, and the
    mass left out per row."""
    owner, cl, cg, prob, left = _cells(n, p_min, dp, pos)
    size = np.bincount(owner, minlength=n.size)
    _, at = _ragged(size)
    P = max(int(size.max()), 1)
    first = np.cumsum(size) - size
    pts_l = np.repeat(cl[first][:, None], P, axis=1)
    pts_g = np.repeat(cg[first][:, None], P, axis=1)
    w = np.zeros((n.size, P))
    pts_l[owner, at], pts_g[owner, at], w[owner, at] = cl, cg, prob
    return pts_l, pts_g, w, left


def _world_pvalues(
    c: np.ndarray,
    thr: np.ndarray,
    dp: np.ndarray,
    pos: np.ndarray,
    q1: np.ndarray,
    q2: np.ndarray,
    *,
    seed: int,
    n_boot: int,
    draw_both: bool = True,
) -> np.ndarray:
    """Probabilities [R, 3] of the :func:`_events` when side i's minority rate is
    q_i and the net rate is +/-dp, for rows ``c`` [R, 6] whose side 1 is the
    smaller one. Rows that need paired draws of both sides are NaN unless
    ``draw_both``."""
    n1, n2 = c[:, 0], c[:, 3]
    R = c.shape[0]
    prob = np.full((R, 3), np.nan)
    exact, draws = _scheme(c, dp, q1, q2)
    bound1 = _cell_bound(n1, 2.0 * q1 + dp)
    for rows_e, kind in ((np.flatnonzero(exact), "exact"), (np.flatnonzero(draws), "draws")):
        if not rows_e.size:
            continue
        e = rows_e
        if kind == "exact":  # both sides enumerated: exact at these parameters
            pts_l, pts_g, w, left2 = _exact_points(n2[e], q2[e], dp[e], pos[e])
        else:  # the other side's observed counts and draws (so p > 0, as (1 + hits) / (B + 1))
            u = np.random.default_rng([seed, 2]).random((min(n_boot, _REST_DRAWS), 2))
            pts_l, pts_g = _draws(n2[e], q2[e], dp[e], pos[e], u)
            pts_l = np.concatenate([c[e, 4:5], pts_l], axis=1)
            pts_g = np.concatenate([c[e, 5:6], pts_g], axis=1)
            w = np.full(pts_l.shape, 1.0 / pts_l.shape[1])
            left2 = np.zeros(e.size)
        sub = (n1[e], q1[e], dp[e], pos[e], n2[e], pts_l, pts_g, w, thr[e])
        chunk = np.cumsum(bound1[e] * max(1.0, pts_l.shape[1] / 64)) // _CELLS_PER_PASS
        for k in np.unique(chunk):
            rows = np.flatnonzero(chunk == k)
            part = tuple(x[rows] if x.ndim else x for x in sub)
            prob[e[rows]] = _enum_pvalues(np.arange(rows.size), *part) + left2[rows, None]
    m = np.flatnonzero(~exact & ~draws) if draw_both else np.zeros(0, dtype=np.intp)
    if m.size:  # paired draws of both sides
        u = np.random.default_rng([seed, 1]).random((n_boot, 4))
        l1, g1 = _draws(n1[m], q1[m], dp[m], pos[m], u[:, :2])
        l2, g2 = _draws(n2[m], q2[m], dp[m], pos[m], u[:, 2:])
        tb = _stat(
            np.repeat(n1[m], n_boot),
            l1.ravel(),
            g1.ravel(),
            np.repeat(n2[m], n_boot),
            l2.ravel(),
            g2.ravel(),
        ).reshape(m.size, n_boot)
        prob[m] = (1.0 + _events(tb, thr[m]).sum(axis=1)) / (n_boot + 1.0)
    return prob


def _scheme(
    c: np.ndarray, dp: np.ndarray, q1: np.ndarray, q2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose other side is enumerated too, and rows that draw it (the rest
    draw both sides)."""
    n1, n2 = c[:, 0], c[:, 3]
    enum = _cell_bound(n1, 2.0 * q1 + dp) <= _MAX_CELLS
    exact = enum & (_cell_bound(n2, 2.0 * q2 + dp) <= _EXACT_OTHER)
    return exact, enum & ~exact & (n1 * _ENUM_RATIO <= n2)


def _drawn(c: np.ndarray, dp: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    exact, draws = _scheme(c, dp, q1, q2)
    return np.asarray(~exact & ~draws)


def _guard(n: np.ndarray, changed: np.ndarray, q: np.ndarray, dp: np.ndarray) -> np.ndarray:
    """Minority rate of a side whose churn is raised to the GUARD_LEVEL upper
    Clopper-Pearson bound of its changed share (never below the restricted MLE)."""
    from scipy import special  # lazily: only single-model (K = 1) bootstraps pay for it

    # stats.beta.ppf(q, a, b), bit for bit, without importing scipy.stats
    up = special.betaincinv(changed + 1, np.maximum(n - changed, 1), GUARD_LEVEL)
    churn = np.maximum(2 * q + dp, np.where(changed < n, np.minimum(up, 1.0), 1.0))
    return np.asarray(np.maximum((churn - dp) / 2, 0.0))


def bootstrap_pvalues(
    counts: np.ndarray,
    t_obs: np.ndarray,
    delta: np.ndarray,
    p1: np.ndarray,
    p2: np.ndarray,
    *,
    seed: int,
    n_boot: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided and lower (worse) p-values of the distinct rows ``counts`` [R, 6] =
    (n1, l1, g1, n2, l2, g2) under the parametric bootstrap at H0.

    Two null worlds share the restricted net rate ``delta``: the restricted MLE
    ``(p1, p2)`` and a guard world whose churns are raised to their GUARD_LEVEL
    upper confidence bounds; each p is the larger of the two (a churn estimated
    from a handful of changes is often too low, and a low churn makes the
    reference too narrow). In each world the smaller side is enumerated (a group
    larger than its rest swaps roles, ``T -> -T``); the other side is enumerated
    too when small, else represented by its observed counts and draws from
    uniforms common to every row, or both sides are drawn.
    """
    swap = counts[:, 3] < counts[:, 0]
    c = np.where(swap[:, None], counts[:, [3, 4, 5, 0, 1, 2]], counts).astype(np.float64)
    t = np.where(swap, -t_obs, t_obs)
    q1, q2 = np.where(swap, p2, p1), np.where(swap, p1, p2)
    dp, pos = np.abs(delta), delta >= 0
    tol = _TIE_RTOL * np.abs(t) + _TIE_ATOL
    thr = np.stack([t + tol, t - tol, np.abs(t) - tol], axis=1)
    prob = _world_pvalues(c, thr, dp, pos, q1, q2, seed=seed, n_boot=n_boot)
    g1 = _guard(c[:, 0], c[:, 1] + c[:, 2], q1, dp)
    g2 = _guard(c[:, 3], c[:, 4] + c[:, 5], q2, dp)
    # The guard applies where side 1 is enumerated (few changes on a small side);
    # paired draws of two comparable sides keep the restricted MLE alone.
    guard = _world_pvalues(c, thr, dp, pos, g1, g2, seed=seed, n_boot=n_boot, draw_both=False)
    # Where both sides are drawn (two comparable sides, not both small), the
    # normal reference guards instead: the larger of the two p-values.
    normal = np.stack([ndtr(t), ndtr(-t), 2.0 * ndtr(-np.abs(t))], axis=1)
    prob = np.where(_drawn(c, dp, q1, q2)[:, None], np.maximum(prob, normal), np.fmax(prob, guard))
    p_two = np.where(thr[:, 2] <= 0, 1.0, prob[:, 2])
    p_low = np.where(swap, prob[:, 1], prob[:, 0])
    return np.clip(p_two, P_FLOOR, 1.0), np.clip(p_low, P_FLOOR, 1.0)
