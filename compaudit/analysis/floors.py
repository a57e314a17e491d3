"""Seed-noise floors: what retraining with other seeds alone gives for each gated statistic.

Two populations trained the same way with different seeds already disagree on
many examples, and the disagreement piles up on hard examples, classes and
groups. So a PIE rate, a class shift or a group's PIE-share growth is a
finding only beyond what seed noise gives. :func:`seed_floors` estimates that
from the **reference population alone**, by disjoint splits:

* draw splits of the ``Kr`` reference members into two disjoint sets ``A`` and
  ``B`` of ``k_split`` members each, ``k_split = min(k_candidate, Kr // 2)``;
* treat ``A`` as the reference and ``B`` as the candidate and compute every
  statistic exactly as the audit does for a real comparison (same modal tie
  rule, with the same seed: :func:`~compaudit.analysis.agreement.modal_predictions`);
* the statistics over the splits form the seed-only null sample, and
  :func:`excess` reads a real comparison's value against it.

Sizing
------
When ``Kr >= 2 k_candidate`` the split sets have exactly the candidate's K
(``sized_to_candidate``). Otherwise they are smaller, and a population of
fewer members is noisier: the floor then **overstates** the noise of a
K-member candidate (a conservative floor, less power). Even when sized, the
null compares ``k`` with ``k`` members while the audit compares the full
``Kr`` with ``Kc``, so every floor errs on the side of seed noise:

* class and group shifts (means of per-model values): the null's variance is
  ``2 / k`` per-model variances against ``1 / Kr + 1 / Kc`` for the real
  statistic, always larger (with ``Kr = 2 Kc``: ``2 / Kc`` against ``1.5 / Kc``);
* PIE rates: a modal label of fewer members flips more often, so the floor of
  a ``K`` vs ``K`` comparison (split ``K/2`` vs ``K/2``) lies well above its
  seed-only PIE rates (simulated, ``Kr = Kc = 8``: floor 0.14 against a
  seed-only 95th percentile of 0.083). A PIE rate beyond the floor is beyond
  seed noise; one below it may still not be.

Splits
------
There are ``D = C(Kr, k) C(Kr - k, k) / 2`` distinct (unordered) splits. When
``D <= n_splits`` all of them are used (``Kr = 4, k = 2``: 3 splits), else
``n_splits`` distinct splits are drawn with ``numpy.random.default_rng(seed)``.
A floor needs at least :data:`MIN_SPLITS` distinct splits, so ``Kr >= 3``
(three splits of one member against one). Splits share members, so they are
not independent draws; the p-value is the usual Monte-Carlo one,
``(1 + #{null at least as extreme}) / (S + 1)``, whose minimum is
``1 / (S + 1)`` (:attr:`SeedFloors.min_p_value`; ``1/65`` at the default 64
splits). Small references cannot reach small p at all: ``Kr = 4`` against
``K >= 2`` has 3 splits (minimum p 1/4, shifts 1/7), ``Kr = 5`` 15 splits
(1/16, 1/31), ``Kr = 6`` against ``K >= 3`` 10 splits (1/11, 1/21).

Signed statistics (class and group shifts) change sign when ``A`` and ``B``
swap, and both orientations of a split are equally likely, so their null holds
both: ``2 S`` rows, a null symmetric about zero whose floor in the bad
direction is never on the good side of zero; their minimum p is ``1 / (2 S + 1)``
(:attr:`SeedFloors.min_p_value_signed`).

Cost
----
Examples whose reference votes are so lopsided that every split has the same
modal label on both sides (``top - second > Kr - k`` votes) are never PIEs and
are skipped, and so are labels with too few votes to be modal anywhere. On
the rest, both sides' vote counts for all splits come from one matrix product
of split membership with the members' vote indicators per candidate label;
the modal label (most votes, then the audit's tie key) is a running maximum.
CIE rates come from the ``Kr x Kr`` member agreement matrix (``O(Kr^2 N)``
once, then ``O(k^2)`` a split), class and group shifts from the per-model
accuracy matrices ``[Kr, C]`` (one pass over the examples). At ImageNet scale
(``Kr = 30``, ``N = 50,000``, ``C = 1,000``, 6 groups, one BLAS thread) 64
splits cost about 0.12 s of CPU for ``K = 30`` (``k = 15``), 0.18 s for
``K = 5`` and 0.08 s for ``K = 1``; 128 splits about 0.15-0.23 s, 256 about
0.2-0.35 s. The default of 64 keeps floors a small part of the audit's 2 s
budget; :meth:`SeedFloors.regroup` reuses the splits' PIEs for every further
grouping (about 15 ms).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from compaudit.analysis._modal import _GOLDEN, _splitmix64
from compaudit.analysis.shift import group_accuracy

__all__ = [
    "DEFAULT_SPLITS",
    "ERR_DIRECTION",
    "ERR_K_CANDIDATE",
    "ERR_N_SPLITS",
    "ERR_QUANTILE",
    "ERR_SHAPE",
    "MIN_SPLITS",
    "REASON_TOO_FEW",
    "SeedFloors",
    "excess",
    "seed_floors",
]

DEFAULT_SPLITS = 64
"""Default number of splits: minimum p ``1/65`` (rates) and ``1/129`` (shifts)."""
MIN_SPLITS = 3
"""Fewest distinct splits a floor is computed from (so at least 3 reference members)."""

ERR_SHAPE = "seed floors: {what} must have shape {want}, got {got}"
ERR_K_CANDIDATE = "seed floors: the candidate needs at least one model, got k_candidate={k}"
ERR_N_SPLITS = f"seed floors: n_splits must be at least {MIN_SPLITS}, got {{n}}"
ERR_QUANTILE = "seed floors: quantile must lie strictly between 0 and 1, got {q}"
ERR_DIRECTION = "seed floors: direction must be 'greater' or 'less', got {d!r}"
REASON_TOO_FEW = (
    "the reference population has K={kr} model{s}; a seed-noise floor needs at least 3 "
    f"(two disjoint sets of one model each, in at least {MIN_SPLITS} distinct splits)"
)

# Floats per working block (vote indicators and per-split scores): 16 MiB of float32.
_CHUNK = 1 << 22


@dataclass(frozen=True, eq=False)
class _SplitPies:
    """Which examples are PIEs in which split, kept so other groupings reuse them."""

    examples: np.ndarray
    """``[u]``: the examples that can be a PIE in some split (the others never are)."""
    pie: np.ndarray
    """``[S, u]`` bool: PIE in split s."""
    n: int
    """All examples, N."""


@dataclass(frozen=True, eq=False)
class SeedFloors:
    """Seed-only null samples of every gated statistic (see the module doc).

    ``S`` is :attr:`n_splits`. When :attr:`available` is false, :attr:`reason`
    says why and the null arrays have no rows.
    """

    available: bool
    reason: str | None
    k_split: int
    """Members per side of each split."""
    n_splits: int
    """Distinct splits used (``S``)."""
    quantile: float
    """Quantile of the null reported as the floor, in the bad direction."""
    sized_to_candidate: bool
    """True when ``k_split`` equals the candidate's K (else the floor overstates noise)."""
    pie_rate: np.ndarray
    """``[S]``: share of examples whose modal labels differ between A and B."""
    cie_rate: np.ndarray
    """``[S]``: mean over the ``k x k`` (A, B) pairs of their disagreement rate."""
    class_difference: np.ndarray
    """``[2 S, C]``: normalized recall difference ``mean(S_B) - mean(S_A)``, both orientations."""
    group_pct_growth: np.ndarray
    """``[S, G]``: each group's PIE-share growth in percent (NaN where undefined)."""
    group_shift_difference: np.ndarray
    """``[2 S, G]``: group top-1 change minus overall top-1 change, both orientations."""
    splits: np.ndarray
    """``[S, 2, k_split]``: member indices of A (``[:, 0]``) and B (``[:, 1]``)."""
    _pies: _SplitPies | None = field(default=None, repr=False)
    _correct: np.ndarray | None = field(default=None, repr=False)

    @property
    def min_p_value(self) -> float:
        """Smallest p-value :func:`excess` can give against a ``[S]`` or ``[S, G]``
        null (rates, PIE-share growth): ``1 / (S + 1)``; NaN when unavailable."""
        return 1.0 / (self.n_splits + 1) if self.available else math.nan

    @property
    def min_p_value_signed(self) -> float:
        """Smallest p-value against a ``[2 S, ...]`` null (class and group shifts):
        ``1 / (2 S + 1)``; NaN when unavailable."""
        return 1.0 / (2 * self.n_splits + 1) if self.available else math.nan

    def regroup(self, group_codes: np.ndarray, n_groups: int) -> SeedFloors:
        """The same floors for another grouping of the examples (no split is redone).

        Parameters
        ----------
        group_codes : ndarray of int, shape (N,)
            Subgroup index of each example, in ``[0, n_groups)``.
        n_groups : int
            Number of subgroups G.
        """
        if self._pies is None or self._correct is None:
            return replace(
                self,
                group_pct_growth=np.zeros((0, n_groups)),
                group_shift_difference=np.zeros((0, n_groups)),
            )
        codes = np.asarray(group_codes, dtype=np.intp)
        _check_shape("group_codes", codes, (self._pies.n,))
        growth, shift = _group_nulls(self._pies, self._correct, self.splits, codes, n_groups)
        return replace(self, group_pct_growth=growth, group_shift_difference=shift)


def _check_shape(what: str, arr: np.ndarray, want: tuple[int, ...]) -> None:
    if arr.shape != want:
        raise ValueError(ERR_SHAPE.format(what=what, want=want, got=arr.shape))


def _n_distinct(kr: int, k: int) -> int:
    return math.comb(kr, k) * math.comb(kr - k, k) // 2


def _draw_splits(kr: int, k: int, n_splits: int, seed: int) -> np.ndarray:
    """Distinct unordered splits, shape ``[S, 2, k]`` (all of them when few enough)."""
    rows: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    if _n_distinct(kr, k) <= n_splits:
        for a in itertools.combinations(range(kr), k):
            rest = [i for i in range(a[0] + 1, kr) if i not in a]
            rows.extend((a, b) for b in itertools.combinations(rest, k))
        return np.asarray(rows, dtype=np.intp).reshape(-1, 2, k)
    rng = np.random.default_rng(seed)
    seen: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    while len(rows) < n_splits:
        perm = rng.permutation(kr)
        a, b = tuple(sorted(perm[:k].tolist())), tuple(sorted(perm[k : 2 * k].tolist()))
        key = (a, b) if a[0] < b[0] else (b, a)
        if key not in seen:
            seen.add(key)
            rows.append((a, b))
    return np.asarray(rows, dtype=np.intp).reshape(-1, 2, k)


def _weights(splits: np.ndarray, kr: int, value: float) -> tuple[np.ndarray, np.ndarray]:
    """Membership of A and B per split, ``[S, Kr]`` each, entries 0 or ``value``."""
    rows = np.arange(splits.shape[0])[:, None]
    w_a = np.zeros((splits.shape[0], kr))
    w_b = np.zeros((splits.shape[0], kr))
    w_a[rows, splits[:, 0]] = value
    w_b[rows, splits[:, 1]] = value
    return w_a, w_b


def _agreement_matrix(preds: np.ndarray) -> np.ndarray:
    """``M[i, j]``: examples on which members i and j predict the same label."""
    kr, n = preds.shape
    m = np.zeros((kr, kr))
    step = max(1, _CHUNK // kr)
    for lo in range(0, n, step):
        block = preds[:, lo : lo + step]
        for i in range(kr - 1):
            m[i, i + 1 :] += np.count_nonzero(block[i + 1 :] == block[i], axis=1)
    return np.asarray(m + m.T + n * np.eye(kr))


def _candidates(preds: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Examples that can be a PIE in some split, and the labels that can be modal there.

    Returns the examples ``[u]`` (most candidate labels first) and their
    candidate labels ``[u, width]`` (ascending, -1 padded).
    Any ``k`` of the ``Kr`` members give the top label at least
    ``t = k - (Kr - top)`` votes, so a label with fewer than ``t`` votes in all
    is never modal (nor tied), and where ``t`` exceeds the second label's
    votes both sides of every split have the same modal label.
    """
    kr, n = preds.shape
    step = max(1, _CHUNK // kr)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for lo in range(0, n, step):
        srt = np.sort(np.ascontiguousarray(preds[:, lo : lo + step].T), axis=1)
        m = srt.shape[0]
        rank = np.zeros((m, kr), dtype=np.intp)
        np.cumsum(srt[:, 1:] != srt[:, :-1], axis=1, out=rank[:, 1:])
        flat = (np.arange(m, dtype=np.intp)[:, None] * kr + rank).ravel()
        counts = np.bincount(flat, minlength=m * kr).reshape(m, kr)
        top2 = np.partition(counts, kr - 2, axis=1)[:, kr - 2 :]
        t_min = k - kr + top2[:, 1]
        ex = np.flatnonzero(t_min <= top2[:, 0])
        labels = np.full((ex.size, kr), -1, dtype=np.int64)
        labels[np.arange(ex.size)[:, None], rank[ex]] = srt[ex]
        keep = counts[ex] >= np.maximum(t_min[ex], 1)[:, None]
        # Kept labels first in each row, still ascending.
        cols = np.argsort(~keep, axis=1, kind="stable")
        width = int(keep.sum(axis=1).max(initial=1))
        labels = np.take_along_axis(np.where(keep, labels, -1), cols, axis=1)[:, :width]
        parts.append((ex + lo, labels))
    width = max(p[1].shape[1] for p in parts)
    ex = np.concatenate([p[0] for p in parts])
    labels = np.concatenate(
        [np.pad(p[1], ((0, 0), (0, width - p[1].shape[1])), constant_values=-1) for p in parts]
    )
    order = np.argsort(-(labels >= 0).sum(axis=1), kind="stable")  # most labels first
    return ex[order], labels[order]


def _split_pies(preds: np.ndarray, splits: np.ndarray, seed: int) -> _SplitPies:
    """PIEs of every split: modal label of A differs from modal label of B.

    The modal label of a side is the label with most votes, ties broken by the
    largest SplitMix64 key of ``(seed, example, label)``: exactly
    :func:`~compaudit.analysis.agreement.modal_predictions` with ``seed``.
    Each side's vote counts for every split come from one matrix product of
    split membership with the members' vote indicators, label by label.
    """
    kr, n = preds.shape
    s_count, _, k = splits.shape
    if k == 1:  # one member a side: its prediction is its modal label
        ex = np.flatnonzero((preds[1:] != preds[0]).any(axis=0))
        votes_t = preds[:, ex]
        return _SplitPies(ex, votes_t[splits[:, 0, 0]] != votes_t[splits[:, 1, 0]], n)
    ex, labels = _candidates(preds, k)
    u, width = labels.shape
    votes_t = np.ascontiguousarray(preds[:, ex])  # [Kr, u]
    n_lab = (labels >= 0).sum(axis=1)
    # The audit's tie-break words: one per example of the full N, as modal_predictions draws them.
    words = np.asarray(np.random.default_rng(seed).integers(0, 2**64, size=n, dtype=np.uint64))
    with np.errstate(over="ignore"):
        keys = _splitmix64(words[ex, None] + (labels + 1).astype(np.uint64) * _GOLDEN)
    keys[labels < 0] = 0
    # score = scale * votes + (rank of the label's key in its example): unique
    # per example, and its low bits name the winning label (scale a power of 2).
    prio = np.argsort(np.argsort(keys, axis=1), axis=1).astype(np.float32).T.copy()
    labels_t = labels.T.copy()
    scale = 1 << max(width - 1, 0).bit_length()
    w_a, w_b = _weights(splits, kr, float(scale))
    w = np.ones((2 * s_count, kr + 1), dtype=np.float32)
    w[:, :kr] = np.concatenate([w_a, w_b])
    pie = np.zeros((s_count, u), dtype=bool)
    step = max(1, _CHUNK // (2 * s_count + kr + 1))
    x = np.empty((kr + 1, min(step, u)), dtype=np.float32)
    for lo in range(0, u, step):
        hi = min(u, lo + step)
        best = np.empty((2 * s_count, hi - lo), dtype=np.float32)
        for r in range(int(n_lab[lo])):
            # Rows are sorted by how many candidate labels they have: a prefix has label r.
            p = int(np.count_nonzero(n_lab[lo:hi] > r))
            np.equal(votes_t[:, lo : lo + p], labels_t[r, lo : lo + p], out=x[:kr, :p])
            x[kr, :p] = prio[r, lo : lo + p]
            score = w @ x[:, :p]
            if r == 0:
                best[:] = score
            else:
                np.maximum(best[:, :p], score, out=best[:, :p])
        win = best.astype(np.int32) & (scale - 1)
        pie[:, lo:hi] = win[:s_count] != win[s_count:]
    return _SplitPies(ex, pie, n)


def _shift_null(correct: np.ndarray, codes: np.ndarray, n: int, diff: np.ndarray) -> np.ndarray:
    """``mean(S_B) - mean(S_A)`` per split and group, both orientations, ``[2 S, n]``."""
    acc = group_accuracy(correct, codes, n)
    d = diff @ (acc - correct.mean(axis=1)[:, None])
    return np.asarray(np.concatenate([d, -d]))


def _group_nulls(
    pies: _SplitPies, correct: np.ndarray, splits: np.ndarray, codes: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """PIE-share growth ``[S, G]`` (as :func:`~compaudit.analysis.subgroups.pie_shares`)
    and shift difference ``[2 S, G]`` of every split."""
    s_count = splits.shape[0]
    split_idx, ex = np.nonzero(pies.pie)
    n_pie = np.bincount(
        split_idx * n_groups + codes[pies.examples[ex]], minlength=s_count * n_groups
    ).reshape(s_count, n_groups)
    n_non = np.bincount(codes, minlength=n_groups)[None, :] - n_pie
    tot_pie = n_pie.sum(axis=1, keepdims=True)
    tot_non = n_non.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct_pie = np.where(tot_pie > 0, n_pie / tot_pie * 100, np.nan)
        pct_non = np.where(tot_non > 0, n_non / tot_non * 100, np.nan)
        growth = np.where(pct_non > 0, (pct_pie / pct_non - 1) * 100, np.nan)
    w_a, w_b = _weights(splits, correct.shape[0], 1.0 / splits.shape[2])
    return np.asarray(growth, dtype=float), _shift_null(correct, codes, n_groups, w_b - w_a)


def seed_floors(
    ref_predictions: np.ndarray,
    y: np.ndarray,
    *,
    k_candidate: int,
    class_codes: np.ndarray,
    n_classes: int,
    group_codes: np.ndarray | None = None,
    n_groups: int = 0,
    n_splits: int = DEFAULT_SPLITS,
    seed: int = 0,
    quantile: float = 0.95,
) -> SeedFloors:
    """Seed-noise null samples of the gated statistics, from the reference alone.

    Parameters
    ----------
    ref_predictions : ndarray of int, shape (Kr, N)
        Top-1 labels (non-negative) of the reference members.
    y : ndarray of int, shape (N,)
        True labels.
    k_candidate : int
        Members of the candidate population the floors are for.
    class_codes : ndarray of int, shape (N,)
        Class index of each example (``y`` as ``intp``).
    n_classes : int
        Number of classes C.
    group_codes : ndarray of int, shape (N,), optional
        Subgroup index of each example, in ``[0, n_groups)``. Other groupings
        reuse the splits through :meth:`SeedFloors.regroup`.
    n_groups : int
        Number of subgroups G (0 without groups).
    n_splits : int
        Most splits to use (all of them when there are no more distinct ones).
    seed : int
        Seed of the split draw and of the modal tie-break (use the audit's seed).
    quantile : float
        Quantile reported as the floor, in the bad direction.

    Returns
    -------
    SeedFloors
        Unavailable (with the reason) when the reference has fewer than 3 members.

    Raises
    ------
    ValueError
        Shapes that do not match, ``k_candidate < 1``, ``n_splits <`` :data:`MIN_SPLITS`,
        or a quantile outside ``(0, 1)``.
    """
    preds = np.asarray(ref_predictions)
    if preds.ndim != 2:
        raise ValueError(ERR_SHAPE.format(what="ref_predictions", want="(Kr, N)", got=preds.shape))
    kr, n = preds.shape
    y = np.asarray(y)
    classes = np.asarray(class_codes, dtype=np.intp)
    _check_shape("y", y, (n,))
    _check_shape("class_codes", classes, (n,))
    if k_candidate < 1:
        raise ValueError(ERR_K_CANDIDATE.format(k=k_candidate))
    if n_splits < MIN_SPLITS:
        raise ValueError(ERR_N_SPLITS.format(n=n_splits))
    if not 0.0 < quantile < 1.0:
        raise ValueError(ERR_QUANTILE.format(q=quantile))
    groups = None
    if group_codes is not None and n_groups > 0:
        groups = np.asarray(group_codes, dtype=np.intp)
        _check_shape("group_codes", groups, (n,))
    else:
        n_groups = 0
    k = min(k_candidate, kr // 2)
    sized = kr >= 2 * k_candidate
    if kr < 3:
        reason = REASON_TOO_FEW.format(kr=kr, s="" if kr == 1 else "s")
        e, eg = np.zeros(0), np.zeros((0, n_groups))
        return SeedFloors(
            False, reason, k, 0, quantile, sized, e, e, np.zeros((0, n_classes)), eg, eg,
            np.zeros((0, 2, k), dtype=np.intp),
        )  # fmt: skip
    splits = _draw_splits(kr, k, n_splits, seed)
    pies = _split_pies(preds, splits, seed)
    w_a, w_b = _weights(splits, kr, 1.0)
    disagree = n - _agreement_matrix(preds)  # integer counts, summed exactly
    cie = np.einsum("si,ij,sj->s", w_a, disagree, w_b) / (k * k * n)
    correct = preds == y[None, :]
    floors = SeedFloors(
        available=True,
        reason=None,
        k_split=k,
        n_splits=splits.shape[0],
        quantile=quantile,
        sized_to_candidate=sized,
        pie_rate=pies.pie.sum(axis=1) / n,
        cie_rate=np.asarray(cie),
        class_difference=_shift_null(correct, classes, n_classes, (w_b - w_a) / k),
        group_pct_growth=np.zeros((splits.shape[0], 0)),
        group_shift_difference=np.zeros((2 * splits.shape[0], 0)),
        splits=splits,
        _pies=pies,
        _correct=correct,
    )
    return floors.regroup(groups, n_groups) if groups is not None else floors


def _nanquantile(z: np.ndarray, q: float) -> np.ndarray:
    """``np.nanquantile(z, q, axis=0)`` (linear), vectorised over columns.

    numpy falls back to one Python-level call per column when any NaN is
    present (0.4 s at 1,000 classes x 5 candidates); this sorts once (NaN
    last) and interpolates with numpy's own lerp, so results are identical.
    """
    if not np.isnan(z).any():
        return np.asarray(np.quantile(z, q, axis=0), dtype=float)
    srt = np.sort(z, axis=0)
    n = np.count_nonzero(~np.isnan(z), axis=0)
    h = (np.maximum(n, 1) - 1) * q
    lo = np.floor(h).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    t = h - lo
    a = np.take_along_axis(srt, lo[None], axis=0)[0]
    b = np.take_along_axis(srt, hi[None], axis=0)[0]
    diff = b - a
    out = np.asarray(a + diff * t, dtype=float)
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return np.where(n == 0, np.nan, out)


def excess(
    value: np.ndarray | float,
    null: np.ndarray,
    *,
    direction: Literal["greater", "less"],
    quantile: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A value against its seed-noise null: floor, excess over it, and a p-value.

    Parameters
    ----------
    value : float or ndarray, shape (C,)
        Observed statistic (one per column of ``null``).
    null : ndarray, shape (S,) or (S, C)
        Seed-only null sample, one row per split; NaN entries are ignored.
    direction : {"greater", "less"}
        Which way is bad: ``"greater"`` (a rate, a PIE-share growth) or
        ``"less"`` (a recall or accuracy shift).
    quantile : float
        Floor quantile in the bad direction (0.95: the 95th percentile for
        ``"greater"``, the 5th for ``"less"``), linear interpolation.

    Returns
    -------
    floor : ndarray
        The null's quantile in the bad direction (NaN for an all-NaN column).
    excess : ndarray
        How far the value lies beyond the floor, positive = beyond seed noise:
        ``value - floor`` (``"greater"``) or ``floor - value`` (``"less"``).
    p_value : ndarray
        ``(1 + #{null at least as extreme as value}) / (S + 1)``, ``S`` the
        non-NaN null entries of the column; NaN for a NaN value or empty null.
    """
    if direction not in ("greater", "less"):
        raise ValueError(ERR_DIRECTION.format(d=direction))
    if not 0.0 < quantile < 1.0:
        raise ValueError(ERR_QUANTILE.format(q=quantile))
    z = np.asarray(null, dtype=float)
    v = np.broadcast_to(np.asarray(value, dtype=float), z.shape[1:])
    q = quantile if direction == "greater" else 1.0 - quantile
    valid = np.count_nonzero(~np.isnan(z), axis=0)
    floor = _nanquantile(z, q) if z.shape[0] else np.full(z.shape[1:], np.nan)
    if direction == "greater":
        beyond, extreme = v - floor, np.count_nonzero(z >= v, axis=0)
    else:
        beyond, extreme = floor - v, np.count_nonzero(z <= v, axis=0)
    p = np.where(np.isnan(v) | (valid == 0), np.nan, (1.0 + extreme) / (valid + 1.0))
    return floor, np.asarray(beyond, dtype=float), np.asarray(p, dtype=float)
