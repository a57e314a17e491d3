"""Numerics of :func:`compaudit.analysis.stats.paired_shift_test`: the trinomial score test.

Two sides (a group and the rest of the examples) each hold a trinomial sample:
``n`` examples of which ``l`` were lost, ``g`` gained and ``u = n - l - g``
unchanged. Under H0 both sides share the net rate ``delta = P(gain) - P(loss)``
while each keeps its own churn ``c = P(gain) + P(loss)``.

Restricted MLE. For a fixed delta >= 0 a side's profile MLE of the minority rate
``p = P(loss)`` (``P(gain) = p + delta``) is the root in ``[0, (1 - delta) / 2]`` of
``2 n p^2 - B p - l delta (1 - delta) = 0`` with ``B = l (1 - 3 delta) + g (1 - delta)
- 2 u delta`` (delta < 0 swaps the roles of losses and gains). The profile
log-likelihood is concave in delta (partial maximum of a jointly concave
function), so its derivative, the profile score
``S(delta) = sum_i sign(delta) (x_maj / p_maj - u / p_unchanged)``, is decreasing;
its root lies between the two sides' own net rates and is found by Newton's
method safeguarded by bisection, vectorised over all rows.

Statistic. ``T = (dhat_1 - dhat_2) / sqrt(V_1 / n_1 + V_2 / n_2)`` with
``V_i = c_i - delta^2`` at the restricted MLE. ``c_i >= |delta|``, so a small
side with no change still gets ``V_i >= |delta| (1 - |delta|)``.

Bootstrap. p-values under the parametric bootstrap at H0, per distinct row of
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
from scipy import special

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

# A side is "large" when its expected number of changed examples under H0 is at
# least this; the normal reference is used only when every side of every row is.
NORMAL_MIN_EXPECTED = 10.0
# Bootstrap p-values are computed to about this absolute accuracy (cells below
# 1e-20 are dropped and their mass added); smaller ones are reported as this.
P_FLOOR = 1e-12
# Relative slack for ties between a bootstrap statistic and the observed one.
_TIE_RTOL = 1e-9
_TIE_ATOL = 1e-12
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
# Candidate cells built at once, and statistics evaluated in one vectorised pass
# (small enough to stay in cache).
_CELLS_PER_PASS = 1 << 21
_CHUNK = 1 << 15
_MAX_ITER = 200
_DELTA_TOL = 4e-16


def _minority(
    n: np.ndarray, xm: np.ndarray, xM: np.ndarray, u: np.ndarray, dp: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Profile MLE of the minority rate p (``p_maj = p + dp``) and ``sqrt(disc)``."""
    B = xm * (1.0 - 3.0 * dp) + xM * (1.0 - dp) - 2.0 * u * dp
    q = xm * dp * (1.0 - dp)
    r = np.sqrt(B * B + 8.0 * n * q)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Stable root: (B + r) / 4n when B >= 0, else 2q / (r - B) (no cancellation).
        p = np.where(B >= 0, (B + r) / (4.0 * n), 2.0 * q / (r - B))
    p = np.where(np.isfinite(p), p, 0.0)
    return np.clip(p, 0.0, np.maximum((1.0 - dp) / 2.0, 0.0)), r


def _side_score(
    n: np.ndarray, lost: np.ndarray, g: np.ndarray, delta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profile score dl/d(delta), its derivative, and the minority rate of one side.

    With unchanged examples (u > 0) the optimum has P(unchanged) > 0 and the score
    is ``x_maj / p_maj - u / p_unch`` (also where the minority rate sits at its
    bound 0); with u = 0 the churn is 1 and the score is ``(x_maj / p_maj -
    x_min / p_min) / 2``. Both carry the sign of delta.
    """
    u = n - lost - g
    pos = delta >= 0
    xm, xM = np.where(pos, lost, g), np.where(pos, g, lost)
    dp = np.abs(delta)
    p, r = _minority(n, xm, xM, u, dp)
    pM, pu = p + dp, 1.0 - 2.0 * p - dp
    has_u = u > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        tM = np.where(xM > 0, xM / pM, 0.0)
        tm = np.where(xm > 0, xm / p, 0.0)
        tu = np.where(has_u, u / pu, 0.0)
        dpdd = np.where(r > 0, (xm * (1.0 - 2.0 * dp) - (3.0 * xm + xM + 2.0 * u) * p) / r, 0.0)
        d_u = -np.where(xM > 0, tM / pM, 0.0) * (dpdd + 1.0) - np.where(has_u, tu / pu, 0.0) * (
            2.0 * dpdd + 1.0
        )
        d_full = -np.where(xM > 0, xM / (1.0 + dp) ** 2, 0.0) - np.where(
            xm > 0, xm / (1.0 - dp) ** 2, 0.0
        )
    S = np.where(pos, 1.0, -1.0) * np.where(has_u, tM - tu, 0.5 * (tM - tm))
    return S, np.where(has_u, d_u, d_full), p


def _total_score(
    n1: np.ndarray,
    l1: np.ndarray,
    g1: np.ndarray,
    n2: np.ndarray,
    l2: np.ndarray,
    g2: np.ndarray,
    delta: np.ndarray,
) -> np.ndarray:
    return np.asarray(_side_score(n1, l1, g1, delta)[0] + _side_score(n2, l2, g2, delta)[0])


def restricted_fit(
    n1: np.ndarray,
    l1: np.ndarray,
    g1: np.ndarray,
    n2: np.ndarray,
    l2: np.ndarray,
    g2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Restricted MLE (common net rate): ``(delta, p_min_1, p_min_2)``, all float arrays.

    ``p_min_i`` is side i's rate of the minority outcome (losses when delta >= 0,
    gains otherwise); its churn is ``2 p_min_i + |delta|``. Inputs are float
    arrays of one shape; every side needs ``n >= 1``.
    """
    d1, d2 = (g1 - l1) / n1, (g2 - l2) / n2
    lo, hi = np.minimum(d1, d2), np.maximum(d1, d2)
    x = np.clip((n1 * d1 + n2 * d2) / (n1 + n2), lo, hi)
    # S is smooth on each side of 0 but may kink or jump at 0 (a side without
    # change): settle the sign of the root first, so Newton never straddles 0.
    span = np.flatnonzero((lo < 0) & (hi > 0))
    if span.size:
        args = (n1[span], l1[span], g1[span], n2[span], l2[span], g2[span])
        up = _total_score(*args, np.zeros(span.size))  # S(0+)
        down = _total_score(*args, np.full(span.size, -1e-300))  # S(0-)
        zero = (up <= 0) & (down >= 0)
        x[span] = np.where(zero, 0.0, x[span])
        lo[span] = np.where(zero | (up > 0), 0.0, lo[span])
        hi[span] = np.where(zero, 0.0, np.where(down < 0, -1e-300, hi[span]))
        x[span] = np.clip(x[span], lo[span], hi[span])
    # A bracket that ends at 0 (one side without change) may have its root exactly
    # there, at the jump: Newton cannot reach it and bisection takes ~45 halvings.
    # The score falls with delta, so the root is 0 when S keeps its sign up to 0.
    for edge, probe, sign in (
        ((lo < 0) & (hi == 0), -1e-300, 1.0),  # S(0-) >= 0: the maximum is at 0
        ((lo == 0) & (hi > 0), 0.0, -1.0),  # S(0+) <= 0: likewise
    ):
        rows = np.flatnonzero(edge)
        if rows.size:
            args = (n1[rows], l1[rows], g1[rows], n2[rows], l2[rows], g2[rows])
            at0 = rows[sign * _total_score(*args, np.full(rows.size, probe)) >= 0]
            x[at0], lo[at0], hi[at0] = 0.0, 0.0, 0.0
    active = np.flatnonzero(hi > lo)
    for _ in range(_MAX_ITER):
        if active.size == 0:
            break
        xa, la, ha = x[active], lo[active], hi[active]
        S1, dS1, _ = _side_score(n1[active], l1[active], g1[active], xa)
        S2, dS2, _ = _side_score(n2[active], l2[active], g2[active], xa)
        S, dS = S1 + S2, dS1 + dS2
        la = np.where(S > 0, xa, la)
        ha = np.where(S < 0, xa, ha)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = xa - S / dS
        inside = np.isfinite(newton) & (newton >= la) & (newton <= ha)
        xn = np.where(S == 0, xa, np.where(inside, newton, 0.5 * (la + ha)))
        x[active], lo[active], hi[active] = xn, la, ha
        done = (np.abs(xn - xa) <= _DELTA_TOL) | (ha - la <= _DELTA_TOL) | (S == 0)
        active = active[~done]
    _, _, p1 = _side_score(n1, l1, g1, x)
    _, _, p2 = _side_score(n2, l2, g2, x)
    return x, p1, p2


def score_statistic(
    n1: np.ndarray,
    l1: np.ndarray,
    g1: np.ndarray,
    n2: np.ndarray,
    l2: np.ndarray,
    g2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """T and the restricted MLE ``(delta, p_min_1, p_min_2)``, per row.

    Counts are float arrays (integers exact in float64). ``T = 0`` where both
    sides have the same observed net rate (including "nothing changed").
    """
    delta, p1, p2 = restricted_fit(n1, l1, g1, n2, l2, g2)
    dp = np.abs(delta)
    var = (2.0 * p1 + dp * (1.0 - dp)) / n1 + (2.0 * p2 + dp * (1.0 - dp)) / n2
    # Integer numerator: equal net rates give exactly 0.
    num = (g1 - l1) * n2 - (g2 - l2) * n1
    with np.errstate(divide="ignore", invalid="ignore"):
        t = num / (n1 * n2) / np.sqrt(var)
    return np.where(num == 0, 0.0, t), delta, p1, p2


def _normal(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # stats.norm.sf(x) is special.ndtr(-x) and stats.norm.cdf special.ndtr, bit for bit.
    return 2.0 * special.ndtr(-np.abs(t)), special.ndtr(t)


def _choose(expected: np.ndarray, path: str, per_row: bool) -> np.ndarray:
    """Rows that use the normal reference (one decision per call unless per_row)."""
    if path != "auto":
        return np.full(expected.shape, path == "normal")
    big = expected >= NORMAL_MIN_EXPECTED
    return big if per_row else np.full(expected.shape, bool(big.all()))


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


# -- bootstrap ---------------------------------------------------------------------
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
    normal = np.stack([special.ndtr(t), special.ndtr(-t), 2.0 * special.ndtr(-np.abs(t))], axis=1)
    prob = np.where(_drawn(c, dp, q1, q2)[:, None], np.maximum(prob, normal), np.fmax(prob, guard))
    p_two = np.where(thr[:, 2] <= 0, 1.0, prob[:, 2])
    p_low = np.where(swap, prob[:, 1], prob[:, 0])
    return np.clip(p_two, P_FLOOR, 1.0), np.clip(p_low, P_FLOOR, 1.0)


# -- lattice (lineage): per-example mean outcome over K pairs ----------------------
def _psi(cnt: np.ndarray, a: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``psi = sum cnt a / (1 + lam a)`` and its derivative in lam (observed cells only)."""
    den = 1.0 + lam[:, None] * a
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(cnt > 0, 1.0 / den, 0.0)
    w = np.where((cnt > 0) & (den <= 0), np.inf, w)
    with np.errstate(invalid="ignore"):
        f = np.sum(np.where(cnt > 0, cnt * a * w, 0.0), axis=1)
        df = -np.sum(np.where(cnt > 0, cnt * a * a * w * w, 0.0), axis=1)
    return f, df


def _lattice_lambda(
    cnt: np.ndarray, a: np.ndarray, lam0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A side's multiplier at a fixed common mean: ``(lam, clamp)``, clamp in {-1, 0, 1}.

    The side MLE on the lattice with mean mu is ``p_j = cnt_j / (n (1 + lam a_j))``,
    ``a_j = v_j - mu``, lam the root of psi within ``[-1 / (1 - mu), 1 / (1 + mu)]``
    (there ``1 + lam a >= 0`` on every lattice point). When the root lies beyond,
    lam is clamped there and the missing mass sits on the lattice end v = -1
    (upper clamp, +1) or v = +1 (lower clamp, -1), as the KKT conditions require.
    """
    lo, hi = -1.0 / a[:, -1], -1.0 / a[:, 0]
    f_hi = np.nan_to_num(_psi(cnt, a, hi)[0], nan=-np.inf)
    f_lo = np.nan_to_num(_psi(cnt, a, lo)[0], nan=np.inf)
    clamp = np.where(f_hi >= 0, 1, np.where(f_lo <= 0, -1, 0))
    x = np.where((lam0 > lo) & (lam0 < hi), lam0, 0.5 * (lo + hi))
    blo, bhi = lo.copy(), hi.copy()
    act = np.flatnonzero(clamp == 0)
    for _ in range(_MAX_ITER):
        if act.size == 0:
            break
        xa = x[act]
        f, df = _psi(cnt[act], a[act], xa)
        la, ha = np.where(f > 0, xa, blo[act]), np.where(f < 0, xa, bhi[act])
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = xa - f / df
        inside = np.isfinite(newton) & (newton >= la) & (newton <= ha)
        xn = np.where(f == 0, xa, np.where(inside, newton, 0.5 * (la + ha)))
        x[act], blo[act], bhi[act] = xn, la, ha
        done = (np.abs(xn - xa) <= 1e-15 * np.maximum(1.0, np.abs(xn))) | (f == 0)
        done |= ha - la <= 1e-15 * np.maximum(1.0, np.abs(xn))
        act = act[~done]
    return np.where(clamp == 1, hi, np.where(clamp == -1, lo, x)), clamp


def _lattice_score(
    cnt: np.ndarray, n: np.ndarray, v: np.ndarray, mu: np.ndarray, lam0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Side profile score ``n lam``, its derivative in mu, lam and the clamp flag."""
    a = v[None, :] - mu[:, None]
    lam, clamp = _lattice_lambda(cnt, a, lam0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w2 = np.where(cnt > 0, 1.0 / (1.0 + lam[:, None] * a) ** 2, 0.0)
        dlam = -np.sum(cnt * w2, axis=1) / np.sum(cnt * a * a * w2, axis=1)
    dlam = np.where(clamp == 1, -1.0 / (1.0 + mu) ** 2, dlam)
    dlam = np.where(clamp == -1, -1.0 / (1.0 - mu) ** 2, dlam)
    return n * lam, n * dlam, lam, clamp


def lattice_fit(c1: np.ndarray, c2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Restricted MLE of two multinomials on the lattice ``v_j = (j - K) / K``,
    ``j = 0..2K``, with a common mean: ``(mu, P1, P2)``, P_i of shape [R, 2K + 1].

    ``c1``, ``c2``: float counts [R, 2K + 1], each row with a positive total. For
    K = 1 this is the trinomial fit of :func:`restricted_fit`.
    """
    J = c1.shape[1]
    K = (J - 1) // 2
    v = (np.arange(J) - K) / K
    n1, n2 = c1.sum(axis=1), c2.sum(axis=1)
    m1, m2 = c1 @ v / n1, c2 @ v / n2
    lo, hi = np.minimum(m1, m2), np.maximum(m1, m2)
    mu = np.clip((n1 * m1 + n2 * m2) / (n1 + n2), lo, hi)
    lam1, lam2 = np.zeros_like(mu), np.zeros_like(mu)
    act = np.flatnonzero(hi > lo)
    for _ in range(_MAX_ITER):
        if act.size == 0:
            break
        xa = mu[act]
        S1, dS1, lam1[act], _ = _lattice_score(c1[act], n1[act], v, xa, lam1[act])
        S2, dS2, lam2[act], _ = _lattice_score(c2[act], n2[act], v, xa, lam2[act])
        S, dS = S1 + S2, dS1 + dS2
        la, ha = np.where(S > 0, xa, lo[act]), np.where(S < 0, xa, hi[act])
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = xa - S / dS
        inside = np.isfinite(newton) & (newton >= la) & (newton <= ha)
        xn = np.where(S == 0, xa, np.where(inside, newton, 0.5 * (la + ha)))
        mu[act], lo[act], hi[act] = xn, la, ha
        done = (np.abs(xn - xa) <= _DELTA_TOL) | (ha - la <= _DELTA_TOL) | (S == 0)
        act = act[~done]
    return mu, _lattice_probs(c1, n1, v, mu, lam1), _lattice_probs(c2, n2, v, mu, lam2)


def _lattice_probs(
    cnt: np.ndarray, n: np.ndarray, v: np.ndarray, mu: np.ndarray, lam0: np.ndarray
) -> np.ndarray:
    """A side's restricted distribution on the lattice at the common mean mu."""
    a = v[None, :] - mu[:, None]
    lam, clamp = _lattice_lambda(cnt, a, lam0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(cnt > 0, cnt / (n[:, None] * (1.0 + lam[:, None] * a)), 0.0)
    rest = np.maximum(1.0 - p.sum(axis=1), 0.0)
    p[:, 0] += np.where(clamp == 1, rest, 0.0)
    p[:, -1] += np.where(clamp == -1, rest, 0.0)
    return np.asarray(p / p.sum(axis=1, keepdims=True))


def lattice_statistic(c1: np.ndarray, c2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T of the lineage test and both restricted distributions, per row of counts.

    ``T = (xbar_1 - xbar_2) / sqrt(V_1 / n_1 + V_2 / n_2)``, ``V_i`` the variance of
    side i's restricted distribution about the common mean; 0 where the observed
    means are equal.
    """
    J = c1.shape[1]
    K = (J - 1) // 2
    v = (np.arange(J) - K) / K
    mu, P1, P2 = lattice_fit(c1, c2)
    a2 = (v[None, :] - mu[:, None]) ** 2
    n1, n2 = c1.sum(axis=1), c2.sum(axis=1)
    var = (P1 * a2).sum(axis=1) / n1 + (P2 * a2).sum(axis=1) / n2
    idx = np.arange(J) - K  # integer sums: equal means are detected exactly
    num = (c1 @ idx) * n2 - (c2 @ idx) * n1
    with np.errstate(divide="ignore", invalid="ignore"):
        t = num / (K * n1 * n2) / np.sqrt(var)
    return np.where(num == 0, 0.0, t), P1, P2


def lattice_bootstrap(
    c1: np.ndarray,
    c2: np.ndarray,
    t_obs: np.ndarray,
    P1: np.ndarray,
    P2: np.ndarray,
    *,
    seed: int,
    n_boot: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided and lower p-values of distinct rows by paired draws of both sides
    from their restricted distributions: ``(1 + #{T* as extreme}) / (n_boot + 1)``."""
    R, J = c1.shape
    n1, n2 = c1.sum(axis=1).astype(np.int64), c2.sum(axis=1).astype(np.int64)
    thr_lo = t_obs + _TIE_RTOL * np.abs(t_obs) + _TIE_ATOL
    thr_abs = np.abs(t_obs) * (1 - _TIE_RTOL) - _TIE_ATOL
    p_two, p_low = np.empty(R), np.empty(R)
    step = max(_CHUNK // (n_boot * J), 1)
    for s in range(0, R, step):
        rows = np.arange(s, min(s + step, R))
        d1 = np.concatenate(
            [np.random.default_rng([seed, 1]).multinomial(n1[i], P1[i], size=n_boot) for i in rows]
        )
        d2 = np.concatenate(
            [np.random.default_rng([seed, 2]).multinomial(n2[i], P2[i], size=n_boot) for i in rows]
        )
        t = lattice_statistic(d1.astype(np.float64), d2.astype(np.float64))[0]
        t = t.reshape(rows.size, n_boot)
        p_low[rows] = (1.0 + np.sum(t <= thr_lo[rows][:, None], axis=1)) / (n_boot + 1.0)
        p_two[rows] = (1.0 + np.sum(np.abs(t) >= thr_abs[rows][:, None], axis=1)) / (n_boot + 1.0)
    return p_two, p_low


def lattice_test(
    c1: np.ndarray, c2: np.ndarray, *, path: str, seed: int, n_boot: int, per_row: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`score_test` for lattice counts [R, 2K + 1] of both sides (lineage)."""
    t, P1, P2 = lattice_statistic(c1, c2)
    K = (c1.shape[1] - 1) // 2
    changed1, changed2 = 1.0 - P1[:, K], 1.0 - P2[:, K]
    expected = np.minimum(c1.sum(axis=1) * changed1, c2.sum(axis=1) * changed2)
    normal = _choose(expected, path, per_row)
    p_two, p_low = _normal(t)
    boot = np.flatnonzero(~normal)
    if boot.size:
        both = np.concatenate([c1[boot], c2[boot]], axis=1)
        _, first, inv = np.unique(both, axis=0, return_index=True, return_inverse=True)
        j = boot[first]
        b_two, b_low = lattice_bootstrap(c1[j], c2[j], t[j], P1[j], P2[j], seed=seed, n_boot=n_boot)
        p_two[boot], p_low[boot] = b_two[inv.ravel()], b_low[inv.ravel()]
    return t, p_two, np.where(t >= 0, 1.0, p_low), normal
