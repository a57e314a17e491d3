"""The trinomial score test's fit and statistic (see :mod:`compaudit.analysis._score`).

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
"""

from __future__ import annotations

import numpy as np

from compaudit.analysis._special import ndtr

__all__ = [
    "NORMAL_MIN_EXPECTED",
    "P_FLOOR",
    "restricted_fit",
    "score_statistic",
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
# Statistics evaluated in one vectorised pass (small enough to stay in cache).
_CHUNK = 1 << 15
# Newton's method of the restricted fits: most steps, and the tolerance on delta.
_MAX_ITER = 200
_DELTA_TOL = 4e-16
# ... and where the score is zero within its rounding error: this many ulps of the sum of
# its terms' sizes. Near an ill-conditioned root, Newton's steps are rounding noise a few
# times _DELTA_TOL and would cycle to _MAX_ITER (a side that lost everything: 56 of 56).
_SCORE_ULPS = 16.0


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Profile score dl/d(delta), its derivative, the minority rate of one side, and the
    size of the score's terms (what its rounding error is relative to).

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
    size = np.where(has_u, tM + tu, 0.5 * (tM + tm))
    return S, np.where(has_u, d_u, d_full), p, size


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
        S1, dS1, _, size1 = _side_score(n1[active], l1[active], g1[active], xa)
        S2, dS2, _, size2 = _side_score(n2[active], l2[active], g2[active], xa)
        S, dS = S1 + S2, dS1 + dS2
        la = np.where(S > 0, xa, la)
        ha = np.where(S < 0, xa, ha)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = xa - S / dS
        inside = np.isfinite(newton) & (newton >= la) & (newton <= ha)
        xn = np.where(S == 0, xa, np.where(inside, newton, 0.5 * (la + ha)))
        x[active], lo[active], hi[active] = xn, la, ha
        noise = _SCORE_ULPS * np.finfo(np.float64).eps * (size1 + size2)
        done = (np.abs(xn - xa) <= _DELTA_TOL) | (ha - la <= _DELTA_TOL) | (np.abs(S) <= noise)
        active = active[~done]
    p1, p2 = _side_score(n1, l1, g1, x)[2], _side_score(n2, l2, g2, x)[2]
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
    # stats.norm.sf(x) is ndtr(-x) and stats.norm.cdf ndtr (scipy's formula, see _special).
    return 2.0 * ndtr(-np.abs(t)), ndtr(t)


def _choose(expected: np.ndarray, path: str, per_row: bool) -> np.ndarray:
    """Rows that use the normal reference (one decision per call unless per_row)."""
    if path != "auto":
        return np.full(expected.shape, path == "normal")
    big = expected >= NORMAL_MIN_EXPECTED
    return big if per_row else np.full(expected.shape, bool(big.all()))
