"""Agreement between reference and candidate: modal predictions, PIEs, CIEs, subsets.

Modal tie rule
--------------
The modal prediction of an example is the label most members predict. When
several labels share the largest number of votes, one of them is chosen
**uniformly at random**: ``numpy.random.default_rng(seed)`` draws one 64-bit
word ``r[i]`` per example (always ``N`` words, so example ``i``'s draw does not
depend on the other examples), and each tied label ``l`` gets the key
``splitmix64(r[i] + (l + 1) * 0x9E3779B97F4A7C15)``, the output of the
SplitMix64 generator started at a random state; the tied label with the
largest key wins. So

* the rule is deterministic given the seed and independent of member order
  (it sees only the vote counts);
* for every example the keys rank the labels in a (pseudo-)uniformly random
  order, so each tied label wins with probability ``1 / (number tied)`` and no
  class index is favoured;
* the ranking depends only on ``(seed, example, label)``: two populations
  modalised with the same seed break a shared tie the same way, so two sides
  tied on the *same* labels never make a PIE by the draw alone (a PIE needs the
  tied sets to differ). The audit uses its one seed for both sides, and a
  seed-noise floor should do the same.

The vote share of the modal label is the same whichever tied label is chosen.

CIEs
----
:func:`cie` and :func:`cie_examples` count and list the examples a reference
and a candidate model classify differently (Dam et al.), per model pair:
exact with one model a side, over the K lineage pairs, or as the mean over
all ``Kr x Kc`` pairs, from vote counts in ``O((Kr + Kc) N log)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from compaudit.analysis._modal import _CHUNK_ENTRIES, modal_of_sorted, modal_predictions, sort_votes
from compaudit.analysis.pie_test import pie_example_test
from compaudit.errors import InputError

__all__ = [
    "ERR_PAIRED_K",
    "TIE_RULE",
    "CIEResult",
    "PairCIE",
    "SubsetTop1",
    "cie",
    "cie_examples",
    "modal_of_sorted",
    "modal_predictions",
    "pie_example_test",
    "pooled_votes",
    "sort_votes",
    "subset_top1",
]

TIE_RULE = (
    "most votes; ties broken uniformly at random by the audit seed (a SplitMix64 key per "
    "example and label, the same for both sides), independent of member order and class index"
)

ERR_PAIRED_K = (
    "lineage pairing compares candidate member k with reference member k, so both sides "
    "need the same number of models; got {kr} reference and {kc} candidate models. Give one "
    "candidate per reference member, in the same order, or drop --paired"
)


@dataclass(frozen=True)
class PairCIE:
    """CIEs of one (reference member k, candidate member k) pair."""

    n: int
    count: float
    cie_u: float
    cie_c: float

    def to_dict(self) -> dict[str, float]:
        """Report form (an entry of ``cie.pairs``)."""
        return {
            "count": self.count,
            "rate": self.count / self.n,
            "cie_u": self.cie_u,
            "cie_c": self.cie_c,
        }


@dataclass(frozen=True)
class CIEResult:
    """Compression Impacted Exemplars (Dam et al.).

    ``basis`` says what the counts are: ``"single-pair"`` (one model per
    side, exact integers), ``"paired"`` (means over the K lineage pairs; the
    pairs are in ``pairs``) or ``"mean-over-pairs"`` (expected counts for a
    reference and a candidate member drawn at random, i.e. the mean over all
    ``Kr x Kc`` pairs).
    """

    basis: str
    n: int
    count: float
    cie_u: float
    """Reference right, candidate wrong (the compressed model forgot it)."""
    cie_c: float
    """Candidate right, reference wrong."""
    both_wrong_different: float
    pairs: tuple[PairCIE, ...] = field(default=())
    """Per-pair results (basis ``"paired"`` only)."""

    @property
    def rate(self) -> float:
        """Share of examples classified differently."""
        return self.count / self.n

    def to_dict(self) -> dict[str, Any]:
        """Report form (``cie`` object of schema v1; ``pairs`` for basis ``"paired"``)."""
        out: dict[str, Any] = {
            "basis": self.basis,
            "count": self.count,
            "rate": self.rate,
            "cie_u": self.cie_u,
            "cie_c": self.cie_c,
            "cie_u_rate": self.cie_u / self.n,
            "cie_c_rate": self.cie_c / self.n,
            "both_wrong_different": self.both_wrong_different,
        }
        if self.basis == "paired":
            out["pairs"] = [p.to_dict() for p in self.pairs]
        return out


def _pair_agreement(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Per example, how many of the ``Kr x Kc`` (reference, candidate) pairs agree."""
    return pooled_votes(np.sort(ref, axis=0), np.sort(cand, axis=0))[1]


def pooled_votes(ref_sorted: np.ndarray, cand_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sides' votes pooled and sorted, and per example the agreeing member pairs.

    Parameters
    ----------
    ref_sorted, cand_sorted : ndarray of int, shapes (Kr, N), (Kc, N)
        Each side's votes sorted along axis 0 (:func:`sort_votes`).

    Returns
    -------
    pooled : ndarray, shape (Kr + Kc, N)
        The pooled votes sorted along axis 0 (what
        :func:`~compaudit.analysis._modal.modal_of_sorted` takes for the pooled
        modal label).
    agreement : ndarray of int64, shape (N,)
        How many of the ``Kr x Kc`` (reference, candidate) pairs agree, that
        is ``sum_l votes_ref(l) * votes_cand(l)``.

    Notes
    -----
    One merge per column of the tagged labels ``2 label + side`` (a stable
    sort of two sorted runs, which is a merge: 3x cheaper than sorting the
    pooled votes afresh). A column's runs of equal labels hold ``(n_r +
    n_c)^2`` ordered member pairs and its runs of equal tags ``n_r^2 +
    n_c^2``, and the sum of squared run lengths of a sorted column of length
    ``L`` is ``L^2 - 2 sum_i start_i`` (``start_i``: first row of row ``i``'s
    run), so agreement is ``sum_i (start_tag_i - start_label_i)``. Memory is
    bounded by chunks of examples.
    """
    kr, n = ref_sorted.shape
    kt = kr + cand_sorted.shape[0]
    top = int(max(ref_sorted.max(initial=0), cand_sorted.max(initial=0)))
    # 32-bit tags: numpy sorts 16-bit types stably by radix, which does not merge.
    kd = np.uint32 if top < 2**31 else np.uint64
    it = np.int16 if kt < 2**15 else np.int32
    rows = np.arange(1, kt, dtype=it)[:, None]
    pooled = np.empty((kt, n), dtype=np.result_type(ref_sorted, cand_sorted))
    agree = np.zeros(n, dtype=np.int64)
    step = max(1, _CHUNK_ENTRIES // kt)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        tag = np.empty((kt, hi - lo), dtype=kd)
        tag[:kr] = ref_sorted[:, lo:hi]
        tag[kr:] = cand_sorted[:, lo:hi]
        tag <<= 1
        tag[kr:] |= 1
        tag.sort(axis=0, kind="stable")
        w_tag = (tag[1:] != tag[:-1]).view(np.int8) * rows  # row index where a run starts
        w_lab = ((tag[1:] ^ tag[:-1]) > 1).view(np.int8) * rows
        s_tag = np.zeros(hi - lo, dtype=it)
        s_lab = s_tag.copy()
        acc = np.zeros(hi - lo, dtype=np.int64)
        for i in range(kt - 1):
            np.maximum(s_tag, w_tag[i], out=s_tag)
            np.maximum(s_lab, w_lab[i], out=s_lab)
            acc += s_tag
            acc -= s_lab
        agree[lo:hi] = acc
        tag >>= 1
        pooled[:, lo:hi] = tag
    return pooled, agree


def _correct(pred: np.ndarray, y: np.ndarray, given: np.ndarray | None) -> np.ndarray:
    return np.asarray(given if given is not None else pred == y[None, :], dtype=bool)


def cie(
    ref_predictions: np.ndarray,
    cand_predictions: np.ndarray,
    y: np.ndarray,
    *,
    ref_correct: np.ndarray | None = None,
    cand_correct: np.ndarray | None = None,
    paired: bool = False,
    agreement: np.ndarray | None = None,
) -> CIEResult:
    """Examples that reference and candidate models classify differently.

    Parameters
    ----------
    ref_predictions, cand_predictions : ndarray of int, shapes (Kr, N), (Kc, N)
    y : ndarray of int, shape (N,)
    ref_correct, cand_correct : ndarray of bool, shapes (Kr, N), (Kc, N), optional
        Precomputed correctness (``predictions == y``), to avoid recomputing it.
    paired : bool
        Lineage: candidate member k was made from reference member k. Compare
        member with member (basis ``"paired"``: means over the K pairs, each
        pair in ``pairs``). Needs ``Kr == Kc``. With one model per side the
        basis is ``"single-pair"`` either way.
    agreement : ndarray of int, shape (N,), optional
        Precomputed agreeing pairs per example (:func:`pooled_votes`), for
        the mean over all pairs.

    Raises
    ------
    InputError
        ``paired=True`` with different numbers of models (:data:`ERR_PAIRED_K`).
    """
    y = np.asarray(y)
    n = y.shape[0]
    kr, kc = ref_predictions.shape[0], cand_predictions.shape[0]
    if paired and kr != kc:
        raise InputError(ERR_PAIRED_K.format(kr=kr, kc=kc))
    r_ok = _correct(ref_predictions, y, ref_correct)
    c_ok = _correct(cand_predictions, y, cand_correct)
    if paired or (kr == 1 and kc == 1):
        count = np.count_nonzero(ref_predictions != cand_predictions, axis=1)
        u = np.count_nonzero(r_ok & ~c_ok, axis=1)
        g = np.count_nonzero(~r_ok & c_ok, axis=1)
        if kr == 1:
            t, uu, gg = float(count[0]), float(u[0]), float(g[0])
            return CIEResult("single-pair", n, t, uu, gg, t - uu - gg)
        pairs = tuple(
            PairCIE(n, float(a), float(b), float(c)) for a, b, c in zip(count, u, g, strict=True)
        )
        m_count, m_u, m_g = float(count.mean()), float(u.mean()), float(g.mean())
        # From the integer counts: a difference of means would leave rounding (1e-14), not 0.
        m_other = float((count - u - g).mean())
        return CIEResult("paired", n, m_count, m_u, m_g, m_other, pairs)
    changed, lost, gained = (
        int(v.sum())
        for v in _expected(r_ok, c_ok, ref_predictions, cand_predictions, agreement=agreement)
    )
    pairs_n = kr * kc
    return CIEResult(
        "mean-over-pairs",
        n,
        changed / pairs_n,
        lost / pairs_n,
        gained / pairs_n,
        (changed - lost - gained) / pairs_n,
    )


def _expected(
    r_ok: np.ndarray,
    c_ok: np.ndarray,
    ref: np.ndarray,
    cand: np.ndarray,
    *,
    agreement: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per example, how many of the ``Kr x Kc`` pairs differ, are U and are C (integers)."""
    kr, kc = ref.shape[0], cand.shape[0]
    hits_r = np.count_nonzero(r_ok, axis=0).astype(np.int64)
    hits_c = np.count_nonzero(c_ok, axis=0).astype(np.int64)
    if agreement is None:
        agreement = _pair_agreement(ref, cand)
    changed = kr * kc - agreement
    return changed, hits_r * (kc - hits_c), (kr - hits_r) * hits_c


_KINDS = ("U", "C", "both-wrong")


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def cie_examples(
    ref_predictions: np.ndarray,
    cand_predictions: np.ndarray,
    y: np.ndarray,
    ids: npt.ArrayLike,
    *,
    paired: bool,
    cap: int = 200,
    seed: int = 0,
    modal_reference: np.ndarray | None = None,
    modal_candidate: np.ndarray | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The CIE list (Dam et al.'s analysis), capped, and how many there are.

    Rows hold ``id``, ``label``, ``prediction_reference``,
    ``prediction_candidate`` and ``kind``: ``"U"`` (reference right, candidate
    wrong), ``"C"`` (candidate right, reference wrong) or ``"both-wrong"``.

    * One model per side: the examples the two predict differently.
    * ``paired`` (K lineage pairs): an example is listed when it changed in at
      least one pair; rows add ``n_pairs`` (pairs where it changed), ``n_u``
      and ``n_c``.
    * Populations without lineage: an example is listed when at least one of
      the ``Kr x Kc`` pairs classifies it differently; rows add ``pair_rate``,
      ``pair_rate_u`` and ``pair_rate_c``, the shares of all pairs that differ
      on it, are U and are C (its expected CIE, the mean-over-pairs basis).

    For populations the predictions shown are each side's modal ones, and
    ``kind`` is the majority over the changed pairs (U, C or both wrong);
    equal counts go to U, then C (conservative: an example forgotten in as
    many pairs as it was fixed is shown as forgotten). Order: most pairs
    changed first (largest ``pair_rate`` without lineage), then U, C,
    both-wrong, then example index.

    Parameters
    ----------
    ref_predictions, cand_predictions : ndarray of int, shapes (Kr, N), (Kc, N)
    y : ndarray of int, shape (N,)
    ids : array-like, shape (N,)
        Example ids (ints or strings); rows hold plain Python values.
    paired : bool
        Lineage, as in :func:`cie` (needs ``Kr == Kc``).
    cap : int
        At most this many rows.
    seed : int
        Tie-break seed of the modal predictions (when they are not given).
    modal_reference, modal_candidate : ndarray of shape (N,), optional
        Precomputed modal predictions.

    Returns
    -------
    rows : list of dict
    total : int
        Number of CIEs before the cap.
    """
    y = np.asarray(y)
    id_arr = np.asarray(ids)
    kr, kc = ref_predictions.shape[0], cand_predictions.shape[0]
    if paired and kr != kc:
        raise InputError(ERR_PAIRED_K.format(kr=kr, kc=kc))
    r_ok = ref_predictions == y[None, :]
    c_ok = cand_predictions == y[None, :]
    scale = 1.0
    if paired or (kr == 1 and kc == 1):
        changed = np.count_nonzero(ref_predictions != cand_predictions, axis=0)
        n_u = np.count_nonzero(r_ok & ~c_ok, axis=0)
        n_c = np.count_nonzero(~r_ok & c_ok, axis=0)
        names = ("n_pairs", "n_u", "n_c") if kr > 1 else ()
    else:
        changed, n_u, n_c = _expected(r_ok, c_ok, ref_predictions, cand_predictions)
        scale = 1.0 / (kr * kc)
        names = ("pair_rate", "pair_rate_u", "pair_rate_c")
    idx = np.flatnonzero(changed > 0)
    ch, u, c = changed[idx], n_u[idx], n_c[idx]
    kind = np.argmax(np.stack([u, c, ch - u - c]), axis=0)  # first maximum: U, then C
    pos = np.lexsort((idx, kind, -ch))[: max(cap, 0)]
    m_r = modal_reference
    if m_r is None:
        m_r = modal_predictions(ref_predictions, seed=seed)[0]
    m_c = modal_candidate
    if m_c is None:
        m_c = modal_predictions(cand_predictions, seed=seed)[0]
    rows: list[dict[str, Any]] = []
    for j in pos.tolist():
        i = int(idx[j])
        row: dict[str, Any] = {
            "id": _plain(id_arr[i]),
            "label": int(y[i]),
            "prediction_reference": int(m_r[i]),
            "prediction_candidate": int(m_c[i]),
            "kind": _KINDS[int(kind[j])],
        }
        for name, v in zip(names, (ch[j], u[j], c[j]), strict=False):
            row[name] = int(v) if scale == 1.0 else float(v) * scale
        rows.append(row)
    return rows, int(idx.size)


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
