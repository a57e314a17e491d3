"""Per-example PIE test: Fisher's exact test against scipy, BH against statsmodels,
size on seed-only populations and power on planted damage (Monte-Carlo)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import fisher_exact
from statsmodels.stats.multitest import multipletests

from compaudit.analysis.agreement import modal_predictions
from compaudit.analysis.pie_test import (
    ERR_PIE_INPUT,
    fisher_table,
    pie_example_test,
    seed_only_flag_rate,
)
from compaudit.errors import InputError


@pytest.mark.parametrize(
    ("kr", "kc"), [(1, 1), (1, 6), (2, 2), (3, 12), (4, 4), (5, 5), (7, 2), (10, 10), (16, 9)]
)
def test_fisher_table_equals_scipy(kr: int, kc: int) -> None:
    table = fisher_table(kr, kc)
    assert table.shape == (kr + 1, kc + 1)
    for a in range(kr + 1):
        for b in range(kc + 1):
            expected = fisher_exact([[a, kr - a], [b, kc - b]]).pvalue
            assert table[a, b] == pytest.approx(expected, abs=1e-12)


def test_fisher_table_large_k_on_random_cells() -> None:
    rng = np.random.default_rng(0)
    table = fisher_table(30, 30)
    for a, b in rng.integers(0, 31, (60, 2)):
        expected = fisher_exact([[a, 30 - a], [b, 30 - b]]).pvalue
        assert table[a, b] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("k", "smallest"), [(3, 0.1), (4, 0.0286), (5, 0.00794), (10, 1.08e-5)])
def test_smallest_attainable_p_is_as_documented(k: int, smallest: float) -> None:
    table = fisher_table(k, k)
    assert table.min() == pytest.approx(2 / math.comb(2 * k, k), rel=1e-12)
    assert table.min() == pytest.approx(smallest, rel=5e-3)


def _populations(
    k: int, n: int, c: int, seed: int, damaged: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seed-only populations (member accuracy q_i ~ U(0.3, 1)); on ``damaged``
    examples the candidate's members vote for the next class with chance 0.9."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    q = rng.uniform(0.3, 1.0, n)

    def pop() -> np.ndarray:
        wrong = (y + rng.integers(1, c, (k, n))) % c
        return np.where(rng.random((k, n)) < q, y, wrong)

    ref, cand = pop(), pop()
    if damaged is not None:
        flip = rng.random((k, damaged.size)) < 0.9
        cand[:, damaged] = np.where(flip, (y[damaged] + 1) % c, cand[:, damaged])
    return ref, cand


def test_pie_test_equals_fisher_on_the_pooled_mode_and_bh_on_its_family() -> None:
    ref, cand = _populations(8, 3000, 4, seed=1, damaged=np.arange(300))
    ref, cand = ref[:6], cand  # unequal K
    m_r, m_c = modal_predictions(ref, seed=3)[0], modal_predictions(cand, seed=3)[0]
    pie = m_r != m_c
    p, p_adj = pie_example_test(ref, cand, m_r, m_c, pie, seed=3)
    assert p.shape == p_adj.shape == (int(pie.sum()),)
    label = modal_predictions(np.concatenate([ref, cand]), seed=3)[0]
    a, b = (ref == label).sum(axis=0), (cand == label).sum(axis=0)
    full = np.array(
        [fisher_exact([[x, 6 - x], [z, 8 - z]]).pvalue for x, z in zip(a, b, strict=True)]
    )
    np.testing.assert_allclose(p, full[pie], rtol=0, atol=1e-12)
    # family: every example whose pooled count a + b can reach alpha = 0.05
    table = fisher_table(6, 8)
    reach = np.array([min(table[x, t - x] for x in range(7) if 0 <= t - x <= 8) for t in a + b])
    family = reach <= 0.05
    bh = np.ones_like(full)
    bh[family] = multipletests(full[family], method="fdr_bh")[1]
    np.testing.assert_allclose(p_adj, bh[pie], rtol=0, atol=1e-12)
    assert (p_adj < 0.05).sum() > 50  # much of the damage is found (K = 6 and 8)


def test_pie_test_with_one_model_on_a_side_is_undefined() -> None:
    ref, cand = _populations(5, 200, 3, seed=2)
    for r, c in ((ref[:1], cand), (ref, cand[:1])):
        m_r, m_c = modal_predictions(r)[0], modal_predictions(c)[0]
        pie = m_r != m_c
        p, p_adj = pie_example_test(r, c, m_r, m_c, pie)
        assert p.shape == (int(pie.sum()),)
        assert np.isnan(p).all()
        assert np.isnan(p_adj).all()


def test_pie_test_rejects_inconsistent_input() -> None:
    ref = np.zeros((3, 4), dtype=int)
    modal = np.zeros(4, dtype=int)
    with pytest.raises(InputError) as exc:
        pie_example_test(ref, ref, modal, modal, np.array([True, False, False, False]))
    assert str(exc.value) == ERR_PIE_INPUT.format(detail="a PIE whose two modal labels are equal")
    with pytest.raises(InputError, match="pie_example_test needs"):
        pie_example_test(ref, ref[:, :3], modal, modal, np.zeros(4, dtype=bool))


def test_pie_test_size_on_seed_only_populations() -> None:
    # Complete null: two seed-only populations. BH controls the family-wise
    # error at alpha = 0.05 here (FDR = FWER when nothing is real), so at most
    # ~5% of comparisons may flag any PIE. 40 comparisons (K = 10, binary and
    # 10 classes, 3,000 examples, ~1,000 PIEs each): expected <= 2, asserting
    # <= 5 (P(Bin(40, 0.05) >= 6) = 0.014; fixed seeds, so deterministic).
    rates = [seed_only_flag_rate(10, 3000, c, reps=20, seed=c) for c in (2, 10)]
    assert 20 * sum(rates) <= 5
    ref, cand = _populations(10, 3000, 2, seed=0)  # the same kind of populations
    pie = modal_predictions(ref)[0] != modal_predictions(cand)[0]
    assert pie.sum() > 500  # many PIEs to be fooled by


def test_pie_test_power_on_planted_damage() -> None:
    # 200 of 3,000 examples damaged in the candidate (K = 10 per side): most of
    # the damaged PIEs are beyond noise, and almost none of the others.
    damaged = np.arange(200)
    ref, cand = _populations(10, 3000, 10, seed=5, damaged=damaged)
    m_r, m_c = modal_predictions(ref, seed=0)[0], modal_predictions(cand, seed=0)[0]
    pie = m_r != m_c
    _, p_adj = pie_example_test(ref, cand, m_r, m_c, pie)
    hit = np.zeros(3000, dtype=bool)
    hit[np.flatnonzero(pie)] = p_adj <= 0.05
    is_damaged = np.zeros(3000, dtype=bool)
    is_damaged[damaged] = True
    assert hit[is_damaged & pie].mean() > 0.5
    assert hit[~is_damaged].sum() <= 0.05 * max(int(hit.sum()), 1) + 2
