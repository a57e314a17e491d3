"""Per-example test of PIEs: is this example's change of modal label beyond seed noise?

A PIE (Hooker et al.) is an example whose modal prediction differs between the
reference and the candidate population. Under seed noise alone the two
populations are draws of the same training process, so the ``Kr + Kc`` votes
on an example are exchangeable: given the pooled votes, every split into
``Kr`` and ``Kc`` is equally likely. :func:`pie_example_test` tests, per
example, the 2 x 2 table of votes for the *pooled* modal label ``l``

==============  ===================  ==================
side            votes for ``l``      other votes
==============  ===================  ==================
reference       ``a``                ``Kr - a``
candidate       ``b``                ``Kc - b``
==============  ===================  ==================

with Fisher's exact test (two-sided, as ``scipy.stats.fisher_exact``), and
controls the false discovery rate with Benjamini-Hochberg.

Why not the reference's modal label, and BH across the PIEs only
------------------------------------------------------------------
Both select on the very split being tested, and then Fisher's p-value is no
longer valid. The reference's modal label has the most reference votes by
construction (so ``a`` is biased up and ``b`` regresses below it), and being a
PIE means the split already looks extreme. On seed-only populations
(:func:`seed_only_flag_rate`: 20,000 examples, per-example accuracy uniform on
0.3-1, 40 comparisons, ``seed=1``), "reference label, BH over the PIEs"
flagged at least one PIE in 7.5% (binary) and 25% (10 classes) of
comparisons at K = 30 per side, for alpha = 0.05. Instead, the label and the
family are chosen from the pooled votes, which the null leaves fixed: the
label is the pooled mode (ties by the audit seed, see
:mod:`compaudit.analysis.agreement`), and the family is every example whose
pooled count ``a + b`` allows a p-value at or below ``alpha`` (Tarone's
minimum-attainable-p filter; independent of the test under the null, as in
Bourgon et al.'s independent filtering). In the same simulation this flagged
a PIE in 2.5% of comparisons (1 of 40) at K = 30 and in none at K = 10. The
filter keeps unanimous examples (most of a good model's) out of the family,
so little power is lost: with 400 of 20,000 examples damaged (K = 30, 10
classes) it flagged 389 PIEs, against 393 for the invalid variant.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb
from typing import Literal

import numpy as np

from compaudit.analysis._modal import modal_of_sorted, modal_predictions
from compaudit.analysis.stats import adjust_pvalues
from compaudit.errors import InputError

__all__ = ["ERR_PIE_INPUT", "fisher_table", "pie_example_test", "seed_only_flag_rate"]

ERR_PIE_INPUT = (
    "pie_example_test needs predictions of shapes [Kr, N] and [Kc, N] and modal labels and a "
    "PIE mask of shape [N] whose PIEs have different modal labels; got {detail}"
)

# scipy.stats.fisher_exact's relative tolerance for "as likely as the observed table".
_GAMMA = 1 + 1e-14


def _hypergeom_pmf(kr: int, kc: int) -> np.ndarray:
    """``pmf[t, x] = C(kr, x) C(kc, t - x) / C(kr + kc, t)``, zero outside the support.

    ``P(a = x | a + b = t)`` under H0, as ``scipy.stats.hypergeom.pmf(x, kr + kc,
    kr, t)`` (to an ulp) without importing ``scipy.stats`` (0.6 s): exact
    integers, one correctly rounded division, so equally likely tables get
    equal floats.
    """
    m = kr + kc
    pmf = np.zeros((m + 1, kr + 1))
    ways_r = [comb(kr, x) for x in range(kr + 1)]
    ways_c = [comb(kc, y) for y in range(kc + 1)]
    for t in range(m + 1):
        total = comb(m, t)
        for x in range(max(0, t - kc), min(kr, t) + 1):
            pmf[t, x] = ways_r[x] * ways_c[t - x] / total
    return pmf


@lru_cache(maxsize=32)
def _fisher_table_cached(kr: int, kc: int) -> np.ndarray:
    # pmf[t, x]: P(a = x | a + b = t) under H0, hypergeometric (zero outside the support)
    pmf = _hypergeom_pmf(kr, kc)
    # p[t, a] = sum of the pmf over tables no more likely than the observed one
    le = pmf[:, None, :] <= pmf[:, :, None] * _GAMMA
    p_t = np.minimum((pmf[:, None, :] * le).sum(axis=2), 1.0)
    a = np.arange(kr + 1)[:, None]
    b = np.arange(kc + 1)[None, :]
    table = p_t[a + b, np.broadcast_to(a, (kr + 1, kc + 1))]
    table.setflags(write=False)
    return np.asarray(table)


def fisher_table(kr: int, kc: int) -> np.ndarray:
    """Two-sided Fisher p-values of every table ``[[a, kr - a], [b, kc - b]]``.

    Parameters
    ----------
    kr, kc : int
        Models per side (at least 1).

    Returns
    -------
    ndarray of float, shape (kr + 1, kc + 1), read-only
        ``table[a, b]``; equal to ``scipy.stats.fisher_exact`` to round-off.
        Built once per ``(kr, kc)`` from the hypergeometric pmf in
        ``O((kr + kc) kr^2)`` and cached.
    """
    return _fisher_table_cached(int(kr), int(kc))


def _min_p_by_margin(kr: int, kc: int) -> np.ndarray:
    """Smallest attainable p-value for each pooled count ``a + b`` in ``0 .. kr + kc``."""
    table = fisher_table(kr, kc)
    out = np.ones(kr + kc + 1)
    margin = np.add.outer(np.arange(kr + 1), np.arange(kc + 1))
    np.minimum.at(out, margin.ravel(), table.ravel())
    return out


def pie_example_test(
    ref_predictions: np.ndarray,
    cand_predictions: np.ndarray,
    modal_ref: np.ndarray,
    modal_cand: np.ndarray,
    pie_mask: np.ndarray,
    *,
    alpha: float = 0.05,
    seed: int = 0,
    pooled_sorted: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-PIE p-values that the vote split moved beyond seed noise, and BH-adjusted.

    Parameters
    ----------
    ref_predictions, cand_predictions : ndarray of int, shapes (Kr, N), (Kc, N)
        Every member's top-1 labels.
    modal_ref, modal_cand : ndarray of int, shape (N,)
        Each side's modal predictions, as used to find the PIEs; checked
        against ``pie_mask`` (every PIE must have two different modal labels).
    pie_mask : ndarray of bool, shape (N,)
        The PIEs.
    alpha : float
        Level of the decisions ``p_adjusted <= alpha``; sets the family (see
        the module doc).
    seed : int
        Tie-break seed of the pooled modal label (use the audit's seed).
    pooled_sorted : ndarray of int, shape (Kr + Kc, N), optional
        Both sides' votes pooled and sorted along axis 0
        (:func:`compaudit.analysis.agreement.pooled_votes`), when the caller
        has them: the pooled modal label is then read without a sort.

    Returns
    -------
    p_value, p_adjusted : ndarray of float, shape (N_pie,)
        In index order of ``pie_mask``. ``p_value`` is Fisher's two-sided
        p-value; ``p_adjusted`` is Benjamini-Hochberg
        (:func:`compaudit.analysis.stats.adjust_pvalues`, ``"bh"``) over the
        family of examples that can reach ``alpha`` (PIEs or not), and 1 for a
        PIE outside it (it cannot reach ``alpha``). With one model on either
        side the test is undefined (a single vote shows no seed spread): both
        arrays are NaN.

    Notes
    -----
    Fisher's test conditions on the pooled votes for the label, which makes
    it exact (size at most alpha for any K) but discrete. The smallest
    attainable p with ``K`` models per side is ``2 / binom(2K, K)`` (all of one
    side's votes on the label, none of the other's): 0.1 at K = 3, 0.0286 at
    K = 4, 0.00794 at K = 5 and 1.08e-5 at K = 10. So at K <= 3 nothing can be
    beyond noise at alpha = 0.05, and at K = 4 or 5 a PIE can only when many
    examples are that extreme (BH needs ``m p / rank <= alpha`` in a family of
    ``m``); K = 10 or more per side is needed to single out individual PIEs.
    An unconditional test (Barnard, Boschloo) is somewhat more powerful at
    small K but needs a numerical maximisation per table; the conditional
    test is exact and costs one cached table lookup per example.
    """
    kr, n = ref_predictions.shape
    kc = cand_predictions.shape[0]
    pie = np.asarray(pie_mask, dtype=bool)
    shapes = (cand_predictions.shape[1], pie.shape, np.shape(modal_ref), np.shape(modal_cand))
    if shapes != (n, (n,), (n,), (n,)):
        raise InputError(
            ERR_PIE_INPUT.format(
                detail=f"{ref_predictions.shape}, {cand_predictions.shape}, "
                f"{np.shape(modal_ref)}, {np.shape(modal_cand)}, {pie.shape}"
            )
        )
    idx = np.flatnonzero(pie)
    if np.any(np.asarray(modal_ref)[idx] == np.asarray(modal_cand)[idx]):
        raise InputError(ERR_PIE_INPUT.format(detail="a PIE whose two modal labels are equal"))
    if kr < 2 or kc < 2:
        nan = np.full(idx.size, np.nan)
        return nan, nan.copy()
    if pooled_sorted is None:
        pooled_sorted = np.sort(np.concatenate([ref_predictions, cand_predictions]), axis=0)
    elif pooled_sorted.shape != (kr + kc, n):
        raise InputError(ERR_PIE_INPUT.format(detail=f"pooled votes {pooled_sorted.shape}"))
    label, _ = modal_of_sorted(pooled_sorted, seed=seed)
    a = np.count_nonzero(ref_predictions == label[None, :], axis=0)
    b = np.count_nonzero(cand_predictions == label[None, :], axis=0)
    table = fisher_table(kr, kc)
    p = np.array(table[a, b], dtype=np.float64)
    reachable = _min_p_by_margin(kr, kc)[a + b] <= alpha
    family = np.where(reachable, p, np.nan)
    adjusted = np.where(reachable, adjust_pvalues(family, method="bh"), 1.0)
    return p[idx], adjusted[idx]


def seed_only_flag_rate(
    k: int,
    n: int,
    n_classes: int,
    *,
    reps: int = 40,
    seed: int = 0,
    rule: Literal["pooled", "reference-pies"] = "pooled",
    alpha: float = 0.05,
) -> float:
    """Share of seed-only comparisons in which any PIE is flagged (a study helper).

    Each repetition draws two populations of ``k`` members that differ only in
    seed (per-example member accuracy uniform on 0.3-1, wrong votes uniform
    over the other classes) and counts whether any PIE has ``p_adjusted <=
    alpha``: under this complete null that is the family-wise false-alarm
    rate, which a valid rule keeps at or under ``alpha``. ``rule`` is this
    module's test (``"pooled"``) or the naive one (``"reference-pies"``:
    reference's modal label, BH over the PIEs only).
    """

    rng = np.random.default_rng(seed)
    flagged = 0
    for rep in range(reps):
        y = rng.integers(0, n_classes, n)
        q = rng.uniform(0.3, 1.0, n)
        ref, cand = (
            np.where(
                rng.random((k, n)) < q, y, (y + rng.integers(1, n_classes, (k, n))) % n_classes
            )
            for _ in range(2)
        )
        m_r, m_c = modal_predictions(ref, seed=rep)[0], modal_predictions(cand, seed=rep)[0]
        pie = m_r != m_c
        if rule == "pooled":
            _, p_adj = pie_example_test(ref, cand, m_r, m_c, pie, alpha=alpha, seed=rep)
        else:
            a = np.count_nonzero(ref == m_r, axis=0)
            b = np.count_nonzero(cand == m_r, axis=0)
            p_adj = adjust_pvalues(fisher_table(k, k)[a, b][pie], method="bh")
        flagged += bool((p_adj <= alpha).any())
    return flagged / reps
