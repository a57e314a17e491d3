"""Modal predictions with an unbiased, seeded tie rule (see :mod:`compaudit.analysis.agreement`).

Private: :func:`modal_predictions` is public through ``compaudit.analysis.agreement``;
the tie keys (:func:`_splitmix64`, :data:`_GOLDEN`) are shared with the seed-noise
floors so that both break ties exactly the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["modal_of_sorted", "modal_predictions", "sort_votes"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# (member, example) entries per chunk in the mean-over-pairs CIE (bounds its memory).
_CHUNK_ENTRIES = 1 << 20


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 output function (a bijection of uint64), elementwise, wrapping."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return np.asarray(z ^ (z >> np.uint64(31)))


def sort_votes(predictions: npt.ArrayLike) -> np.ndarray:
    """Each example's votes in ascending order (a copy sorted along axis 0).

    What :func:`modal_of_sorted` reads; kept by the audit so that the modal
    prediction, the pooled modal label and the pair agreement of every
    comparison sort each population once. Labels that fit are stored as
    ``uint16`` (a quarter of ``int64``'s memory, and sorted faster).
    """
    preds = np.asarray(predictions)
    if preds.size and preds.dtype.kind in "iu" and preds.min() >= 0 and preds.max() < 2**16:
        preds = preds.astype(np.uint16, copy=False)
    return np.sort(preds, axis=0)


def modal_predictions(
    predictions: npt.ArrayLike, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Modal label per example and its vote share.

    Parameters
    ----------
    predictions : array-like of int, shape (K, N)
        Top-1 labels of K models.
    seed : int
        Seed of the tie-break (see the module doc): deterministic given the
        seed, independent of member order, favours no class index.

    Returns
    -------
    modal : ndarray of shape (N,)
        The most frequent label per example, ties broken at random.
    share : ndarray of float, shape (N,)
        Fraction of the K models that predicted ``modal``.

    Notes
    -----
    One sort of each column and in-place passes over the K rows (no loop over
    examples); the tie-break touches only the examples with a tie.
    """
    return modal_of_sorted(np.sort(np.asarray(predictions), axis=0), seed=seed)


def modal_of_sorted(s: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`modal_predictions` of votes already sorted along axis 0 (:func:`sort_votes`).

    The result depends only on each column's multiset of votes, so it is the
    same however the columns were sorted; ``modal`` has ``s``'s dtype.
    """
    k, n = s.shape
    if k == 1:
        return s[0].copy(), np.ones(n)
    same = (s[1:] == s[:-1]).view(np.int8)  # same[i - 1]: row i continues a run
    it: type[np.signedinteger[Any]] = np.int16 if k < 2**15 else np.int32
    # Longest run per column and how many runs reach it. A run that ties the
    # best is counted on its last row; one that goes on to be longer resets
    # the count on its next row, so no end-of-run test is needed.
    run: np.ndarray = np.ones(n, dtype=it)
    best: np.ndarray = run.copy()
    n_best: np.ndarray = run.copy()
    modal: np.ndarray = s[0].copy()
    for i in range(1, k):
        run *= same[i - 1]
        run += 1
        longer = run > best
        n_best += run == best
        n_best *= ~longer
        n_best += longer
        np.maximum(best, run, out=best)
        modal += (s[i] - modal) * longer  # modal = s[i] where longer (wraps exactly)
    r = np.asarray(np.random.default_rng(seed).integers(0, 2**64, size=n, dtype=np.uint64))
    cols = np.flatnonzero(n_best > 1)
    if cols.size:
        modal[cols] = _break_ties(s[:, cols], same[:, cols], best[cols], r[cols])
    return modal, best / k


def _break_ties(s: np.ndarray, same: np.ndarray, best: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Among the labels with ``best`` votes in each sorted column, the largest key wins."""
    k, m = s.shape
    pick: np.ndarray = s[0].copy()
    top = np.zeros(m, dtype=np.uint64)
    have = np.zeros(m, dtype=bool)
    run: np.ndarray = np.ones(m, dtype=best.dtype)
    for i in range(k):
        if i:
            run *= same[i - 1]
            run += 1
        at = np.flatnonzero(run == best)  # the last row of a longest run
        if at.size == 0:
            continue
        key = _splitmix64(r[at] + (s[i, at].astype(np.uint64) + np.uint64(1)) * _GOLDEN)
        take = ~have[at] | (key > top[at])
        hit = at[take]
        pick[hit] = s[i, hit]
        top[hit] = key[take]
        have[at] = True
    return pick
