"""Noise of the fairness metrics (private; see :mod:`compaudit.analysis.fairness`):
the bootstrap's draws and the seed-noise null of member relabellings."""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "FEW_RELABELLINGS",
    "TIE_TOLERANCE",
    "against",
    "assignments",
    "fewest_relabellings",
    "members",
    "nulls",
    "relabellings",
    "resample",
]

TIE_TOLERANCE = 1e-12
"""Values this close count as tied (``compaudit._gates_fairness.TOLERANCE``, the same)."""


def resample(
    rng: np.random.Generator, order: np.ndarray, starts: np.ndarray, sizes: np.ndarray, r: int
) -> np.ndarray:
    """Example weights ``[r, N]``: each group's examples drawn with replacement."""
    n = order.size
    group_of = np.repeat(np.arange(sizes.size), sizes)
    draw = starts[group_of] + np.floor(rng.random((r, n)) * sizes[group_of]).astype(np.intp)
    idx = (np.arange(r)[:, None] * n + order[draw]).ravel()
    return np.bincount(idx, minlength=r * n).reshape(r, n).astype(float)


def members(rng: np.random.Generator, k: int, r: int) -> np.ndarray:
    if k == 1:
        return np.ones((r, 1))
    draw = rng.integers(0, k, size=(r, k))
    return np.asarray(
        np.bincount((np.arange(r)[:, None] * k + draw).ravel(), minlength=r * k).reshape(r, k),
        dtype=float,
    )


def against(
    value: np.ndarray, null: np.ndarray, quantile: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Floor, excess and permutation p-value of ``value [P]`` against ``null [M, P]``.

    The floor is the order statistic at ``ceil(quantile * (M - 1))`` (numpy's
    ``method="higher"``), never interpolated: the null holds the observed labelling,
    so under exchangeability a value beyond the floor happens with probability at most
    ``1 - quantile`` (with 4 relabellings the floor is their maximum, which the
    observed value cannot exceed: an interpolated floor would fail a quarter of
    seed-only candidates). ``p = #{null >= value - TIE_TOLERANCE} / M``; NaN entries
    are left out. The tolerance is the fairness gates' own: the null's copy of the
    observed labelling is computed along another path and may differ from ``value`` in
    the last bits, and must still count (so ``p >= 1 / M``, and ``p`` never moves with
    rounding).
    """
    z = np.sort(np.asarray(null, dtype=float), axis=0)  # NaN last
    m = np.count_nonzero(~np.isnan(z), axis=0)
    idx = np.ceil(quantile * np.maximum(m - 1, 0)).astype(np.intp)
    floor = np.take_along_axis(z, idx[None, :], axis=0)[0]
    floor = np.where(m > 0, floor, np.nan)
    v = np.asarray(value, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        hits = np.count_nonzero(z >= v - TIE_TOLERANCE, axis=0)
        p = np.where(np.isnan(v) | (m == 0), np.nan, hits / m)
    return floor, v - floor, p


FEW_RELABELLINGS = (
    "only {m} member relabellings ({how}), too few for a floor at quantile {q:g}: it would "
    "be their largest value, which no change can exceed; {need} or more are needed "
    "(more members on either side)"
)
"""Why a fairness set has no floor although the reference population gives floors."""


def relabellings(kr: int, kc: int, paired: bool, most: int) -> int:
    """How many rows :func:`assignments` gives (the observed labelling among them)."""
    if paired and kr == kc:
        return 2**kr if 2**kr <= most else most + 1
    total = math.comb(kr + kc, kc)
    return total if total <= most else most + 1


def fewest_relabellings(quantile: float) -> int:
    """Fewest relabellings M whose floor (order statistic ``ceil(quantile * (M - 1))``,
    as :func:`against` takes it) lies below their largest value. With fewer the floor is
    the largest, the observed labelling is among them, and no change can lie beyond it:
    a gate reading such a floor could never fail (for lineage with K = 4, 2^4 = 16)."""
    # q (M - 1) <= M - 2 exactly when M >= (2 - q) / (1 - q); start just below, in floats.
    m = max(2, math.floor((2 - quantile) / (1 - quantile)) - 2)
    while math.ceil(quantile * (m - 1)) > m - 2:
        m += 1
    return m


def assignments(kr: int, kc: int, paired: bool, most: int, seed: int) -> np.ndarray:
    """Member relabellings of the null, ``[M, Kr + Kc]`` bool (True: counted as candidate).

    Without lineage: which ``Kc`` of the pooled members are the candidate (all
    ``C(Kr + Kc, Kc)`` when at most ``most``, else ``most`` random draws plus the
    observed one). With lineage: each (parent, child) pair swapped or not (all ``2^K``,
    or draws plus the observed one).
    """
    rng = np.random.default_rng(seed)
    if paired:
        if 2**kr <= most:
            flips = (np.arange(2**kr)[:, None] >> np.arange(kr)[None, :]) & 1
        else:
            flips = np.vstack([np.zeros((1, kr), np.intp), rng.integers(0, 2, (most, kr))])
        return np.asarray(np.hstack([flips, 1 - flips]), dtype=bool)
    total = kr + kc
    if math.comb(total, kc) <= most:
        rows = [list(cand) for cand in itertools.combinations(range(total), kc)]
        out = np.zeros((len(rows), total), dtype=bool)
        out[np.arange(len(rows))[:, None], np.asarray(rows)] = True
        return out
    out = np.zeros((most + 1, total), dtype=bool)
    out[0, kr:] = True  # the observed labelling
    picks = np.argsort(rng.random((most, total)), axis=1)[:, :kc]
    out[1 + np.arange(most)[:, None], picks] = True
    return out


def nulls(
    d_ref: dict[str, np.ndarray], d_cand: dict[str, np.ndarray], paired: bool, most: int,
    seed: int,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Seed-noise null of each disparity's change ``[M, P]``: the change under every
    relabelling of the members (:func:`assignments`), members' ``[1, K, P]`` in."""
    if most <= 0:
        return {}
    first = next(iter(d_ref.values()))
    kr, kc = first.shape[1], next(iter(d_cand.values())).shape[1]
    if paired and kr != kc:
        paired = False
    lab = assignments(kr, kc, paired, most, seed)
    out = {}
    for key in d_ref:
        pool = np.concatenate([d_ref[key][0], d_cand[key][0]])  # [Kr + Kc, P]
        if paired:
            # Swapped pairs: the child's value counts as the parent's and back.
            child = np.where(lab[:, kr:, None], pool[None, kr:], pool[None, :kr])
            parent = np.where(lab[:, kr:, None], pool[None, :kr], pool[None, kr:])
            out[key] = np.asarray((child - parent).mean(axis=1))
            continue
        filled = np.nan_to_num(pool)
        # einsum, not BLAS: small products whose threads only contend on a busy machine.
        cand_sum = np.einsum("mk,kp->mp", lab.astype(float), filled)
        cand_mean = cand_sum / kc
        ref_mean = (filled.sum(axis=0)[None, :] - cand_sum) / kr
        out[key] = np.where(np.isnan(pool).any(axis=0), np.nan, cand_mean - ref_mean)
    return out
