"""Planted damage for the policy calibration (issue 9, item 5): make a candidate forget on purpose.

Compression forgets systematically, the same hard examples in every member, so
the damage is planted the same way: one seeded order over the target's
examples, shared by every member (:func:`plant_damage`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["ERR_FRACTION", "ERR_MASK", "lost_count", "plant_damage"]

ERR_FRACTION = "a damage fraction must lie in [0, 1], got {fraction}"
ERR_MASK = "the target mask has {got} entries but there are {n} examples"


def lost_count(n_correct: int, fraction: float) -> int:
    """How many of ``n_correct`` examples a damage of ``fraction`` turns wrong
    (``fraction * n`` rounded half up)."""
    return math.floor(fraction * n_correct + 0.5)


def plant_damage(
    predictions: np.ndarray,
    y: np.ndarray,
    target: np.ndarray,
    fraction: float,
    *,
    num_classes: int,
    seed: int | Sequence[int],
) -> np.ndarray:
    """Turn ``fraction`` of each member's correct examples inside ``target`` wrong.

    Compression forgets systematically (the same hard examples in every
    member), so one seeded priority order over the target's examples is shared
    by all members: member k loses the first ``lost_count(c_k, fraction)`` of
    its ``c_k`` correct target examples in that order, each to one wrong label
    drawn per example (the same in every member). Examples outside ``target``
    and examples a member already gets wrong are untouched. Orders and labels
    do not depend on ``fraction``, so a larger damage contains a smaller one.

    Parameters
    ----------
    predictions : ndarray of int, shape (K, N)
        The candidate members' top-1 predictions.
    y : ndarray of int, shape (N,)
        True labels.
    target : ndarray of bool, shape (N,)
        The examples that may be damaged (one class, or one group).
    fraction : float
        Share of each member's correct target examples to turn wrong, in [0, 1].
    num_classes : int
        Number of classes (at least 2).
    seed : int or sequence of int
        Seed of the priority order and of the wrong labels.

    Returns
    -------
    ndarray, shape (K, N)
        A damaged copy, in the dtype of ``predictions``.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(ERR_FRACTION.format(fraction=fraction))
    if target.shape != y.shape:
        raise ValueError(ERR_MASK.format(got=target.shape[0], n=y.shape[0]))
    rng = np.random.default_rng(seed)
    idx = rng.permutation(np.flatnonzero(target))
    wrong = (y[idx].astype(np.int64) + rng.integers(1, num_classes, idx.size)) % num_classes
    out = predictions.copy()
    for k in range(out.shape[0]):
        ok = out[k, idx] == y[idx]
        chosen = np.flatnonzero(ok)[: lost_count(int(ok.sum()), fraction)]
        out[k, idx[chosen]] = wrong[chosen].astype(out.dtype)
    return out
