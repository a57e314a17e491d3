"""Group fairness of two populations: per-group error rates and their disparities.

For every group of a partition of the examples (one protected attribute: the
*marginal* groups; several crossed: the *intersections*) this computes, on the
reference and on the candidate population, the rates fairlearn's
:class:`~fairlearn.metrics.MetricFrame` reports with ``true_positive_rate``,
``false_positive_rate``, ``false_negative_rate`` and ``selection_rate``, and
the two disparities ``demographic_parity_difference`` (largest minus smallest
selection rate over the groups) and ``equalized_odds_difference`` (fairlearn's
``agg="worst_case"``: the larger of the TPR range and the FPR range).

Tasks
-----
* Binary (2 classes): class 1 is the positive class (fairlearn's ``pos_label=1``).
* Multi-class (C > 2): every class ``c`` in turn is the positive class,
  **one-vs-rest**: ``y_true = (y == c)`` and ``y_pred = (prediction == c)``.
  Each class gets its own rates and disparities; a set's summary disparity is
  the worst (largest) over the classes.

Populations
-----------
A population of K models: each group's rate is the mean of its members' rates
(the members share the examples, so this is also the pooled rate: fairlearn on
the K members' predictions stacked, the examples repeated K times), and each
disparity is the **mean of the members' disparities**, the expected disparity of
one model trained this way. (The disparity of the pooled rates would be biased by
the population's size: a range over groups grows with noise, and a smaller
population is noisier, so seed-only candidates of fewer members would look less
fair.) One model is the ordinary case; the tests check both against fairlearn.

Judged groups
-------------
Every group gets its rates; the disparities are taken over the *judged* groups
only (``n >= min_support``, as the subgroup tests), since the range over groups
of a handful of examples is noise. A rate a group cannot have (TPR without
positives, FPR without negatives) is NaN and left out of the range. With fewer
than two judged groups the disparities are NaN.

Intervals and noise
-------------------
Each change (candidate minus reference) gets a seeded percentile bootstrap
interval: every replicate resamples the examples within each group (group sizes
stay fixed; both sides see the same resampled examples) and, for a population,
its members with replacement (lineage-paired sides draw the same member
indices). The *increase* of a disparity is judged against a seed-noise null
built from the members themselves: if compression changed nothing, the reference
and candidate members are exchangeable seeds, so the change under every
relabelling of the pooled members (which ``Kc`` of them count as the candidate;
with lineage, which (parent, child) pairs swap) is what seed noise alone gives. Its
``quantile`` is the floor. Unlike disjoint splits of the reference alone, whose
floor from a handful of members is itself noisy and let a seed-only candidate
through more often than alpha (7-10% in the calibration study), this null is
exact under exchangeability. For the largest increase over classes the null takes
the largest over classes of each relabelling, so the floor accounts for the
maximum (one family).

Cost
----
The bootstrap's work is members x (examples + 8 x groups x classes) per replicate;
it draws :data:`BOOTSTRAP_REPLICATES` replicates within :data:`BOOTSTRAP_BUDGET`,
fewer beyond it and none (null intervals, ``replicates`` 0) below
:data:`MIN_REPLICATES`: digits- or Adult-sized audits get 200 replicates, an
ImageNet-sized one (N = 50,000, K = 30 a side, 1,000 classes) none. Point
estimates and the permutation null cost one bincount and a small matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from compaudit.analysis import _fairness_noise as noise
from compaudit.analysis.floors import _nanquantile

if TYPE_CHECKING:
    from scipy import sparse

__all__ = [
    "BOOTSTRAP_BUDGET",
    "BOOTSTRAP_LEVEL",
    "BOOTSTRAP_REPLICATES",
    "DISPARITIES",
    "MIN_REPLICATES",
    "PERMUTATIONS",
    "RATES",
    "Disparity",
    "FairnessTable",
    "fairness_table",
    "positive_classes",
]

RATES = ("tpr", "fpr", "fnr", "selection_rate")
"""Per-group rates, in report order."""
DISPARITIES = ("demographic_parity_difference", "equalized_odds_difference")
"""Between-group disparities, in report order."""
BOOTSTRAP_REPLICATES = 200
"""Bootstrap replicates per interval."""
BOOTSTRAP_LEVEL = 0.95
"""Coverage of the percentile intervals."""
PERMUTATIONS = 999
"""Most member relabellings in the seed-noise null (all of them when there are fewer)."""
MIN_PERMUTATIONS = 199
"""Fewest relabellings drawn when many members and classes make the null costly."""
BOOTSTRAP_BUDGET = 10_000_000
"""Most work of one table's bootstrap, members x (examples + 8 x groups x classes) x
replicates: about 0.05 s. Beyond it fewer replicates are drawn, and none below
:data:`MIN_REPLICATES`
(the intervals are then null and ``bootstrap.replicates`` is 0): at ImageNet scale
(N = 50,000, K = 30 a side) a bootstrap would cost seconds per attribute set and candidate."""
MIN_REPLICATES = 50
"""Fewest replicates worth an interval."""
_BUDGET = 5_000_000  # floats of the permutation null ([M, Kr + Kc] @ [Kr + Kc, P])

# Floats per bootstrap working block ([replicates, vote pairs]): 4 Mi float64, 32 MiB.
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Disparity:
    """One disparity, per positive class and as the set's worst case, with noise.

    Arrays of shape ``[P]`` (P positive classes); ``*_low`` / ``*_high`` bound
    the change ``candidate - reference``. ``floor`` / ``excess`` / ``p_floor``
    are per class against the seed-noise null (NaN without one).
    """

    reference: np.ndarray
    candidate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    floor: np.ndarray
    excess: np.ndarray
    p_floor: np.ndarray
    worst_reference: float
    """Largest over classes on the reference (the set's summary)."""
    worst_candidate: float
    worst_low: float
    worst_high: float
    increase: float
    """Largest change over classes (what the gate judges)."""
    increase_class: int
    """Index into the positive classes of the largest change (-1 when none)."""
    increase_floor: float
    """Seed-noise floor of the largest change over classes (NaN without one)."""
    increase_excess: float
    increase_p: float


@dataclass(frozen=True)
class FairnessTable:
    """Rates of every group and positive class on both sides, and the disparities."""

    classes: np.ndarray
    """``[P]``: the positive classes (``[1]`` for a binary task, every class otherwise)."""
    n: np.ndarray
    """``[G]``: examples per group."""
    n_positive: np.ndarray
    """``[G, P]``: examples of the positive class per group."""
    judged: np.ndarray
    """``[G]``: groups the disparities are taken over (``n >= min_support``)."""
    rates: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    """Per rate of :data:`RATES`: reference, candidate, change low, change high, ``[G, P]``."""
    disparities: dict[str, Disparity]
    """Per name of :data:`DISPARITIES`."""
    replicates: int
    level: float
    resampled: Literal["examples", "members and examples"]
    seed: int
    floor_note: str | None = None
    """Why there is no floor although one was asked for (too few member relabellings)."""


def positive_classes(num_classes: int) -> np.ndarray:
    """``[1]`` for a binary task (class 1 positive), else every class (one-vs-rest)."""
    return np.asarray([1] if num_classes == 2 else range(num_classes), dtype=np.intp)


def _indicators(
    pred: np.ndarray, y: np.ndarray, codes: np.ndarray, gc: int, c: int
) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Sparse ``[K * G * C, N]`` indicators: member k predicts class c on example i of
    group g (all predictions, and the correct ones only)."""
    from scipy import sparse  # lazily: ImageNet-sized audits draw no replicates (0.15 s)

    k, n = pred.shape
    row = (np.arange(k)[:, None] * gc + codes[None, :] * c + pred).ravel()
    col = np.broadcast_to(np.arange(n), (k, n)).ravel()
    ok = (pred == y[None, :]).ravel()
    shape = (k * gc, n)
    every = sparse.csr_matrix((np.ones(row.size), (row, col)), shape=shape)
    right = sparse.csr_matrix((np.ones(int(ok.sum())), (row[ok], col[ok])), shape=shape)
    return every, right


def _member_counts(
    mats: tuple[sparse.csr_matrix, sparse.csr_matrix], w: np.ndarray, k: int, gc: int
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true positives ``[R, K, G*C]`` of every member under example
    weights ``w [R, N]`` (integer counts, summed exactly): two sparse products."""
    r = w.shape[0]
    wt = np.ascontiguousarray(w.T)
    pp = np.asarray(mats[0] @ wt).T.reshape(r, k, gc)
    tp = np.asarray(mats[1] @ wt).T.reshape(r, k, gc)
    return pp, tp


def _rates(
    pp: np.ndarray, tp: np.ndarray, pos: np.ndarray, n: np.ndarray, cols: np.ndarray
) -> dict[str, np.ndarray]:
    """Rates ``[R, G, P]`` from counts ``[R, G, C]`` (``n`` is ``[R, G]``); NaN where a
    rate's denominator is 0."""
    if cols.size != pp.shape[-1] or not np.array_equal(cols, np.arange(pp.shape[-1])):
        pp, tp, pos = pp[..., cols], tp[..., cols], pos[..., cols]
    size = n[..., None]
    shape = np.broadcast_shapes(pp.shape, pos.shape, size.shape)

    def ratio(num: np.ndarray, den: np.ndarray, defined: np.ndarray) -> np.ndarray:
        # Divides only where defined: half the work of np.where over both branches.
        out: np.ndarray = np.divide(num, den, out=np.full(shape, np.nan), where=defined)
        return out

    has_pos = pos > 0
    return {
        "tpr": ratio(tp, pos, has_pos),
        "fpr": ratio(pp - tp, size - pos, size > pos),
        "fnr": ratio(pos - tp, pos, has_pos),
        "selection_rate": ratio(pp, size, size > 0),
    }


def _range(x: np.ndarray, judged: np.ndarray) -> np.ndarray:
    """Largest minus smallest over the judged groups (axis -2), NaN entries left out."""
    sub = x[..., judged, :]
    if int(judged.sum()) < 2:
        return np.full(sub.shape[:-2] + sub.shape[-1:], np.nan)
    return np.asarray(np.fmax.reduce(sub, axis=-2) - np.fmin.reduce(sub, axis=-2))


def _disparities(rates: dict[str, np.ndarray], judged: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "demographic_parity_difference": _range(rates["selection_rate"], judged),
        "equalized_odds_difference": np.fmax(
            _range(rates["tpr"], judged), _range(rates["fpr"], judged)
        ),
    }


def _fmax(x: np.ndarray) -> np.ndarray:
    """Largest over the last axis, NaN left out (NaN when all are)."""
    return np.asarray(np.fmax.reduce(x, axis=-1)) if x.shape[-1] else np.full(x.shape[:-1], np.nan)


def _side(
    mats: tuple[sparse.csr_matrix, sparse.csr_matrix], k: int, w: np.ndarray, pos: np.ndarray,
    n: np.ndarray, g: int, c: int, cols: np.ndarray,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Every member's rates ``[R, K, G, P]`` under example weights ``w [R, N]``
    (``pos [R, G, C]`` and ``n [R, G]`` are the weighted positives and sizes)."""
    pp, tp = _member_counts(mats, w, k, g * c)
    r = pp.shape[0]
    return _rates(pp.reshape(r, k, g, c), tp.reshape(r, k, g, c), pos[:, None], n[:, None], cols)


def _point(
    pred: np.ndarray, y: np.ndarray, codes: np.ndarray, pos: np.ndarray, n: np.ndarray,
    g: int, c: int, cols: np.ndarray,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Every member's rates ``[1, K, G, P]`` on the examples as given (one bincount)."""
    k = pred.shape[0]
    gc = g * c
    # One bincount over (cell, correct) pairs: twice as fast as indexing the correct ones.
    cell = np.arange(k)[:, None] * (2 * gc) + codes[None, :] * (2 * c) + 2 * pred.astype(np.intp)
    cell += pred == y[None, :]
    both = np.bincount(cell.ravel(), minlength=2 * k * gc).reshape(1, k, g, c, 2)
    tp = both[..., 1].astype(float)
    pp = tp + both[..., 0]
    return _rates(pp, tp, pos[:, None], n[:, None], cols)


def _member_means(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each array's mean over the members (axis 1)."""
    return {k: v.mean(axis=1) for k, v in x.items()}


def _affordable(replicates: int, draws: int) -> int:
    """Replicates within :data:`BOOTSTRAP_BUDGET` member-example draws; 0 (no interval)
    when fewer than :data:`MIN_REPLICATES` fit."""
    fit = min(replicates, BOOTSTRAP_BUDGET // max(1, draws))
    return fit if fit >= min(replicates, MIN_REPLICATES) else 0


def _mean(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Mean over the members (axis 1) with member weights ``m [R, K]``."""
    # einsum: no [R, K, ...] temporary (3x faster), members summed in the same order.
    total = np.einsum("rk,rk...->r...", m, x)
    return np.asarray(total / m.sum(axis=1).reshape((-1,) + (1,) * (x.ndim - 2)))


def fairness_table(
    ref_predictions: np.ndarray,
    cand_predictions: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    *,
    num_classes: int,
    min_support: int = 1,
    paired: bool = False,
    permutations: int = 0,
    quantile: float = 0.95,
    replicates: int = BOOTSTRAP_REPLICATES,
    level: float = BOOTSTRAP_LEVEL,
    seed: int = 0,
    cache: dict[Any, Any] | None = None,
) -> FairnessTable:
    """Per-group rates and disparities of both sides, their changes and noise.

    Parameters
    ----------
    ref_predictions, cand_predictions : ndarray of int, shape (Kr, N) and (Kc, N)
        Top-1 labels of the members.
    y : ndarray of int, shape (N,)
        True labels.
    codes : ndarray of int, shape (N,)
        Group of each example, in ``[0, n_groups)``.
    n_groups : int
        Number of groups G.
    num_classes : int
        Number of classes C (2: binary, class 1 positive; more: one-vs-rest).
    min_support : int
        Groups with fewer examples are not judged (left out of the disparities).
    paired : bool
        Lineage pairing (member k of both sides): the bootstrap draws the same members.
    permutations : int
        Most member relabellings of the seed-noise null (0: no floors, NaN). With fewer
        relabellings than a floor at ``quantile`` needs (:func:`~compaudit.analysis.
        _fairness_noise.fewest_relabellings`: 21 at 0.95) there is none either, and
        ``floor_note`` says why.
    quantile : float
        Floor quantile of the increase.
    replicates : int
        Bootstrap replicates (0: no intervals, NaN).
    level : float
        Interval coverage.
    seed : int
        Seed of the bootstrap.
    cache : dict, optional
        Reused across calls with the same reference predictions, labels and grouping
        (the audit passes one per attribute set): the reference's rates and bootstrap
        replicates are computed once for every candidate.

    Returns
    -------
    FairnessTable
    """
    ref = np.asarray(ref_predictions)
    cand = np.asarray(cand_predictions)
    y = np.asarray(y, dtype=np.intp)
    codes = np.asarray(codes, dtype=np.intp)
    g, c = int(n_groups), int(num_classes)
    cols = positive_classes(c)
    sizes = np.bincount(codes, minlength=g)
    judged = sizes >= min_support
    pos_full = np.bincount(codes * c + y, minlength=g * c).reshape(1, g, c).astype(float)
    n_full = sizes[None, :].astype(float)
    # Every member's rates [1, K, G, P] and disparities [1, K, P] on the data as given.
    kr, kc = ref.shape[0], cand.shape[0]
    memo: dict[Any, Any] = cache if cache is not None else {}
    if ("point", min_support) not in memo:
        # The reference's rates, disparities and their member means: once per grouping.
        point = _point(ref, y, codes, pos_full, n_full, g, c, cols)
        disp = _disparities(point, judged)
        memo[("point", min_support)] = (disp, _member_means(point), _member_means(disp))
    md_ref, r_ref, d_ref = memo[("point", min_support)]
    mr_cand = _point(cand, y, codes, pos_full, n_full, g, c, cols)
    # The bootstrap's cost is members x examples x replicates: capped (report says how many).
    # Per replicate: the members' example weights and their rates of every group and class.
    replicates = _affordable(replicates, (kr + kc) * (y.size + 8 * g * cols.size))
    permutations = min(permutations, max(MIN_PERMUTATIONS, _BUDGET // ((kr + kc) * cols.size)))
    floor_note = None
    m = noise.relabellings(kr, kc, paired, permutations)
    if permutations and m < (need := noise.fewest_relabellings(quantile)):
        # The floor would be the null's largest value, the observed labelling's among
        # them: nothing could exceed it, and a gate reading it could never fail.
        how = f"2^{kr} parent-child swaps" if paired and kr == kc else f"{kr} + {kc} members"
        floor_note = noise.FEW_RELABELLINGS.format(m=m, how=how, q=quantile, need=need)
        permutations = 0
    if replicates:
        if "indicators" not in memo:
            memo["indicators"] = _indicators(ref, y, codes, g * c, c)
        mats_ref = memo["indicators"]
        mats_cand = _indicators(cand, y, codes, g * c, c)
    md_cand = _disparities(mr_cand, judged)
    r_cand, d_cand = _member_means(mr_cand), _member_means(md_cand)

    # Bootstrap: examples within groups, members with replacement. The examples and the
    # reference members come from one stream and the candidate's members from another, so
    # the reference side's replicates are the same for every candidate (memoised).
    rng = np.random.default_rng([seed, 0])
    rng_cand = np.random.default_rng([seed, 1])
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    boot_rates: dict[str, list[np.ndarray]] = {k: [] for k in RATES}
    boot_d: dict[str, list[np.ndarray]] = {k: [] for k in DISPARITIES}
    boot_worst: dict[str, list[np.ndarray]] = {k: [] for k in DISPARITIES}
    step = max(1, min(replicates, _CHUNK // max(1, y.size, 4 * g * c * kr)))
    draws_key = ("draws", seed, replicates, step)
    if draws_key not in memo:
        # The example weights and reference members of every chunk, drawn once for all
        # candidates (the same stream each time: memoised whole, never in part).
        chunks = []
        for lo in range(0, replicates, step):
            r = min(step, replicates - lo)
            w = noise.resample(rng, order, starts, sizes, r)
            m_ref = noise.members(rng, ref.shape[0], r)
            pos = np.bincount(
                (np.arange(r)[:, None] * g * c + (codes * c + y)[None, :]).ravel(),
                weights=w.ravel(), minlength=r * g * c,
            ).reshape(r, g, c)  # fmt: skip
            n = np.bincount(
                (np.arange(r)[:, None] * g + codes[None, :]).ravel(), weights=w.ravel(),
                minlength=r * g,
            ).reshape(r, g)  # fmt: skip
            chunks.append((w, m_ref, pos, n))
        memo[draws_key] = chunks
    chunks = memo[draws_key]
    for lo, (w, m_ref, pos, n) in zip(range(0, replicates, step), chunks, strict=True):
        m_cand = m_ref if paired and kr == kc else noise.members(rng_cand, kc, w.shape[0])
        key = ("boot", min_support, seed, replicates, lo)
        if key not in memo:
            br = _side(mats_ref, kr, w, pos, n, g, c, cols)
            memo[key] = (
                {k: _mean(br[k], m_ref) for k in RATES},
                {k: _mean(v, m_ref) for k, v in _disparities(br, judged).items()},
            )
        rr, dr = memo[key]
        bc = _side(mats_cand, kc, w, pos, n, g, c, cols)
        for k in RATES:
            boot_rates[k].append(_mean(bc[k], m_cand) - rr[k])
        dc = {k: _mean(v, m_cand) for k, v in _disparities(bc, judged).items()}
        for k in DISPARITIES:
            boot_d[k].append(dc[k] - dr[k])
            boot_worst[k].append(_fmax(dc[k]) - _fmax(dr[k]))

    def interval(parts: list[np.ndarray], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if not parts:
            return np.full(shape, np.nan), np.full(shape, np.nan)
        z = np.concatenate(parts)
        # Vectorised over columns, NaN ignored (numpy's nanquantile loops in Python).
        q = (_nanquantile(z, lo_q), _nanquantile(z, hi_q))
        return np.asarray(q[0]), np.asarray(q[1])

    rates = {
        k: (r_ref[k][0], r_cand[k][0], *interval(boot_rates[k], (g, cols.size))) for k in RATES
    }
    nulls = noise.nulls(md_ref, md_cand, paired, permutations, seed)
    disparities = {}
    for k in DISPARITIES:
        ref_k, cand_k = d_ref[k][0], d_cand[k][0]
        change = cand_k - ref_k
        low, high = interval(boot_d[k], (cols.size,))
        w_low, w_high = interval([b[:, None] for b in boot_worst[k]], (1,))
        null = nulls.get(k)
        if null is None:
            nan = np.full(cols.size, np.nan)
            floor, exc, p = nan, nan, nan
            inc_floor = inc_exc = inc_p = np.full(1, np.nan)
        else:
            floor, exc, p = noise.against(change, null, quantile)
        finite = np.isfinite(change)
        best = int(np.argmax(np.where(finite, change, -np.inf))) if finite.any() else -1
        inc = float(change[best]) if best >= 0 else float("nan")
        if null is not None:
            inc_floor, inc_exc, inc_p = noise.against(
                np.asarray([inc]), _fmax(null)[:, None], quantile
            )
        disparities[k] = Disparity(
            reference=ref_k, candidate=cand_k, low=low, high=high,
            floor=floor, excess=exc, p_floor=p,
            worst_reference=float(_fmax(ref_k)), worst_candidate=float(_fmax(cand_k)),
            worst_low=float(w_low[0]), worst_high=float(w_high[0]),
            increase=inc, increase_class=best, increase_floor=float(inc_floor[0]),
            increase_excess=float(inc_exc[0]), increase_p=float(inc_p[0]),
        )  # fmt: skip
    return FairnessTable(
        classes=cols,
        n=sizes,
        n_positive=pos_full[0][:, cols].astype(np.int64),
        judged=judged,
        rates=rates,
        disparities=disparities,
        replicates=replicates,
        level=level,
        resampled="members and examples" if max(ref.shape[0], cand.shape[0]) > 1 else "examples",
        seed=seed,
        floor_note=floor_note,
    )
