"""Agreement between reference and candidate: modal predictions, PIEs, CIEs, subsets.

Modal tie rule
--------------
The modal prediction of an example is the label most members predict. When
several labels share the largest number of votes, the **smallest class index**
wins. The rule is deterministic, independent of member order, and needs no
random draw; its vote share is the same whichever tied label is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "TIE_RULE",
    "CIEResult",
    "SubsetTop1",
    "cie",
    "modal_predictions",
    "subset_top1",
]

TIE_RULE = "most votes; ties go to the smallest class index"


def modal_predictions(predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Modal label per example and its vote share.

    Parameters
    ----------
    predictions : ndarray of int, shape (K, N)
        Top-1 labels of K models.

    Returns
    -------
    modal : ndarray of shape (N,)
        The most frequent label per example (ties: smallest label, see module doc).
    share : ndarray of float, shape (N,)
        Fraction of the K models that predicted ``modal``.
    """
    k = predictions.shape[0]
    if k == 1:
        return predictions[0].copy(), np.ones(predictions.shape[1])
    # Sort each column; the longest run of equal labels is the mode. Scanning
    # runs in ascending order and replacing only on a strictly longer run
    # keeps the smallest label among ties. K iterations over N-vectors.
    s = np.sort(predictions, axis=0)
    run = np.ones(s.shape[1], dtype=np.int32)
    best_len = run.copy()
    best = s[0].copy()
    for i in range(1, k):
        same = s[i] == s[i - 1]
        run = np.where(same, run + 1, 1)
        longer = run > best_len
        best_len = np.where(longer, run, best_len)
        best = np.where(longer, s[i], best)
    return best, best_len / k


@dataclass(frozen=True)
class CIEResult:
    """Compression Impacted Exemplars (Dam et al.).

    With one model on each side the counts are exact integers (basis
    ``"single-pair"``). With populations they are the expected counts for a
    reference and a candidate member drawn at random, averaged over all
    ``Kr x Kc`` pairs (basis ``"mean-over-pairs"``).
    """

    basis: str
    n: int
    count: float
    cie_u: float
    """Reference right, candidate wrong (the compressed model forgot it)."""
    cie_c: float
    """Candidate right, reference wrong."""
    both_wrong_different: float

    @property
    def rate(self) -> float:
        """Share of examples classified differently."""
        return self.count / self.n

    def to_dict(self) -> dict[str, float | str]:
        """Report form (``cie`` object of schema v1)."""
        return {
            "basis": self.basis,
            "count": self.count,
            "rate": self.rate,
            "cie_u": self.cie_u,
            "cie_c": self.cie_c,
            "cie_u_rate": self.cie_u / self.n,
            "cie_c_rate": self.cie_c / self.n,
            "both_wrong_different": self.both_wrong_different,
        }


def cie(
    ref_predictions: np.ndarray,
    cand_predictions: np.ndarray,
    y: np.ndarray,
    *,
    ref_correct: np.ndarray | None = None,
    cand_correct: np.ndarray | None = None,
) -> CIEResult:
    """Examples that reference and candidate models classify differently.

    Parameters
    ----------
    ref_predictions, cand_predictions : ndarray of int, shapes (Kr, N), (Kc, N)
    y : ndarray of int, shape (N,)
    ref_correct, cand_correct : ndarray of bool, shapes (Kr, N), (Kc, N), optional
        Precomputed correctness (``predictions == y``), to avoid recomputing it.
    """
    n = y.shape[0]
    kr, kc = ref_predictions.shape[0], cand_predictions.shape[0]
    if kr == 1 and kc == 1:
        r, c = ref_predictions[0], cand_predictions[0]
        differ = r != c
        r_ok, c_ok = r == y, c == y
        u = int((r_ok & ~c_ok).sum())
        g = int((~r_ok & c_ok).sum())
        total = int(differ.sum())
        return CIEResult("single-pair", n, float(total), float(u), float(g), float(total - u - g))
    # Expected disagreement of a random pair: 1 - P(agree). Only the total over
    # examples is needed, so each reference member's agreements with all
    # candidate members are counted in one flat pass (memory O(Kc * N)).
    agree = sum(int(np.count_nonzero(cand_predictions == ref_predictions[i])) for i in range(kr))
    disagree = float(n - agree / (kr * kc))
    r_ok = ref_correct if ref_correct is not None else ref_predictions == y
    c_ok = cand_correct if cand_correct is not None else cand_predictions == y
    acc_r = np.count_nonzero(r_ok, axis=0) / kr
    acc_c = np.count_nonzero(c_ok, axis=0) / kc
    lost = float((acc_r * (1 - acc_c)).sum())
    gained = float(((1 - acc_r) * acc_c).sum())
    both = max(disagree - lost - gained, 0.0)
    return CIEResult("mean-over-pairs", n, disagree, lost, gained, both)


@dataclass(frozen=True)
class SubsetTop1:
    """Mean top-1 of both populations on one subset of examples (paper's Fig. 3)."""

    n: int
    top1_reference: float | None
    top1_candidate: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        """Report form."""
        return {
            "n": self.n,
            "top1_reference": self.top1_reference,
            "top1_candidate": self.top1_candidate,
        }


def subset_top1(
    ref_correct: np.ndarray,
    cand_correct: np.ndarray,
    pie: np.ndarray,
    *,
    seed: int,
) -> dict[str, SubsetTop1]:
    """Top-1 of reference and candidate on PIEs, non-PIEs and a random subset.

    The random subset has as many examples as there are PIEs, drawn without
    replacement from all examples with ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    ref_correct, cand_correct : ndarray of bool, shapes (Kr, N), (Kc, N)
        Correctness of every member on every example.
    pie : ndarray of bool, shape (N,)
        PIE mask.
    seed : int
        Seed of the random subset.
    """
    acc_r = ref_correct.mean(axis=0)
    acc_c = cand_correct.mean(axis=0)
    n = pie.shape[0]
    rng = np.random.default_rng(seed)
    rand = np.zeros(n, dtype=bool)
    rand[rng.choice(n, size=int(pie.sum()), replace=False)] = True

    def on(mask: np.ndarray) -> SubsetTop1:
        m = int(mask.sum())
        if m == 0:
            return SubsetTop1(0, None, None)
        return SubsetTop1(m, float(acc_r[mask].mean()), float(acc_c[mask].mean()))

    return {"pie": on(pie), "non_pie": on(~pie), "random": on(rand)}
