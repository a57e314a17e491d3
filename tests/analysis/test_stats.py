"""compaudit.analysis.stats against references: scipy, statsmodels, brute force, hand work.

Tolerances: 1e-12 against exact enumeration and statsmodels; 1e-10 against scipy's
t-tests (same formula, different evaluation order); 3 binomial standard errors
against Monte-Carlo estimates.
"""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests

from compaudit.analysis import _exact as exact
from compaudit.analysis import stats as cs
from compaudit.analysis.stats import (
    adjust_pvalues,
    paired_outcomes,
    paired_shift_test,
    welch_test,
)
from compaudit.errors import InputError

SM_METHOD = {"holm": "holm", "bh": "fdr_bh", "bonferroni": "bonferroni"}


# -- reference implementations used by the tests ------------------------------------
def welch_t_from_samples(x: np.ndarray, y: np.ndarray) -> float:
    """Welch T of x against y from raw samples, with the documented degenerate rules."""
    vx = x.var(ddof=1) / x.size if x.size >= 2 else 0.0
    vy = y.var(ddof=1) / y.size if y.size >= 2 else 0.0
    diff = x.mean() - y.mean()
    if vx + vy == 0:
        return 0.0 if abs(diff) < 1e-12 else float(np.sign(diff) * np.inf)
    return float(diff / np.sqrt(vx + vy))


def brute_force_p(d: np.ndarray, members: np.ndarray) -> float:
    """Exact permutation p-value by enumerating every subset of the group's size."""
    N, n = d.size, members.size
    t_obs = abs(welch_t_from_samples(d[members], np.delete(d, members)))
    hits = 0
    for subset in itertools.combinations(range(N), n):
        idx = np.array(subset)
        t = abs(welch_t_from_samples(d[idx], np.delete(d, idx)))
        hits += t >= t_obs * (1 - 1e-9)
    return hits / comb(N, n)


def outcomes(counts: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Build (d, groups) from per-group (lost, gained, unchanged) counts."""
    d, g = [], []
    for k, (lost, gained, same) in enumerate(counts):
        d += [-1] * lost + [1] * gained + [0] * same
        g += [k] * (lost + gained + same)
    return np.array(d, dtype=np.int8), np.array(g)


# -- adjust_pvalues -------------------------------------------------------------------
@pytest.mark.parametrize("method", ["holm", "bh", "bonferroni"])
@pytest.mark.parametrize("seed", range(5))
def test_adjust_matches_statsmodels_with_ties_and_nans(method: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.round(rng.beta(0.5, 2.0, size=40), 2)  # rounding makes ties
    p[rng.choice(40, size=6, replace=False)] = np.nan
    got = adjust_pvalues(p, method=method)  # type: ignore[arg-type]
    finite = ~np.isnan(p)
    want = multipletests(p[finite], method=SM_METHOD[method])[1]
    np.testing.assert_allclose(got[finite], want, rtol=0, atol=1e-12)
    assert np.isnan(got[~finite]).all()


def test_adjust_hand_computed() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # Holm: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06.
    np.testing.assert_allclose(adjust_pvalues(p), [0.03, 0.06, 0.06, 0.02], atol=1e-15)
    # BH: 0.005*4/1=0.02, 0.01*4/2=0.02, 0.03*4/3=0.04, 0.04*4/4=0.04 (running min from top).
    np.testing.assert_allclose(adjust_pvalues(p, method="bh"), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, method="bonferroni"), [0.04, 0.16, 0.12, 0.02])
    np.testing.assert_array_equal(adjust_pvalues(p, method="none"), p)
    # A NaN is not part of the family: m stays 4, not 5.
    with_nan = adjust_pvalues(np.append(p, np.nan))
    np.testing.assert_allclose(with_nan[:4], [0.03, 0.06, 0.06, 0.02], atol=1e-15)
    assert np.isnan(with_nan[4])
    assert adjust_pvalues([0.6, 0.7], method="bonferroni").tolist() == [1.0, 1.0]


def test_adjust_edge_cases_and_errors() -> None:
    assert adjust_pvalues(np.array([])).shape == (0,)
    assert np.isnan(adjust_pvalues([np.nan, np.nan])).all()
    assert adjust_pvalues(np.full((2, 3), 0.01)).shape == (2, 3)
    with pytest.raises(InputError) as err:
        adjust_pvalues([0.1], method="sidak")  # type: ignore[arg-type]
    assert str(err.value) == cs.ERR_CORRECTION.format(method="sidak")
    with pytest.raises(InputError) as err:
        adjust_pvalues([0.1, 1.5])
    assert str(err.value) == cs.ERR_PVALUES.format(bad=1.5)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=30))
def test_adjust_properties(raw: list[float]) -> None:
    p = np.array(raw)
    finite = ~np.isnan(p)
    holm, bh = adjust_pvalues(p), adjust_pvalues(p, method="bh")
    assert (holm[finite] >= p[finite]).all()
    assert (holm[finite] <= 1).all()
    assert (bh[finite] <= holm[finite] + 1e-15).all()
    order = np.argsort(p[finite], kind="stable")  # adjustment keeps the ranking
    assert (np.diff(holm[finite][order]) >= 0).all()
    assert (np.diff(bh[finite][order]) >= 0).all()
    # Bonferroni bounds Holm from above; NaNs stay NaN.
    assert (holm[finite] <= adjust_pvalues(p, method="bonferroni")[finite]).all()
    assert np.isnan(holm[~finite]).all()


# -- welch_test -----------------------------------------------------------------------
@pytest.mark.parametrize(("ka", "kb"), [(2, 2), (5, 5), (3, 30), (30, 4)])
def test_welch_matches_scipy(ka: int, kb: int) -> None:
    rng = np.random.default_rng(ka * 100 + kb)
    a = rng.normal(0.0, rng.uniform(0.1, 2.0, 50), size=(ka, 50))
    b = rng.normal(rng.normal(0, 1, 50), rng.uniform(0.1, 2.0, 50), size=(kb, 50))
    res = welch_test(a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    np.testing.assert_allclose(res.statistic, ref.statistic, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.p_value, ref.pvalue, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.df, ref.df, rtol=1e-10)
    assert res.method.tolist() == ["welch"] * 50


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy, col 1
def test_welch_degenerate_columns() -> None:
    a = np.array([[0.1, 0.1, 0.3, 0.0], [0.1, 0.2, 0.3, 1.0], [0.1, 0.3, 0.3, 2.0]])
    b = np.array([[0.1, 0.5, 0.2, 0.0], [0.1, 0.5, 0.2, 1.0]])
    res = welch_test(a, b)
    # col 0: equal constants -> 0, p 1. col 2: b below a, both constant -> -inf, p 0.
    assert res.statistic[0] == 0.0
    assert res.p_value[0] == 1.0
    assert np.isnan(res.df[0])
    assert res.statistic[2] == -np.inf
    assert res.p_value[2] == 0.0
    assert np.isnan(res.df[2])
    # col 1 has a constant candidate side only: ordinary Welch, as scipy.
    ref = stats.ttest_ind(b[:, 1], a[:, 1], equal_var=False)
    assert res.statistic[1] == pytest.approx(ref.statistic, abs=1e-10)
    assert res.p_value[1] == pytest.approx(ref.pvalue, abs=1e-10)
    # 0.1 + 0.2 style rounding must not make a constant column look noisy.
    res = welch_test(np.full((3, 1), 0.1 + 0.2), np.full((4, 1), 0.7))
    assert res.statistic[0] == np.inf
    assert res.p_value[0] == 0.0


def test_welch_one_dimensional_input_is_one_group() -> None:
    res = welch_test([1.0, 2.0, 4.0], [3.0, 5.0])
    ref = stats.ttest_ind([3.0, 5.0], [1.0, 2.0, 4.0], equal_var=False)
    assert res.statistic.shape == (1,)
    assert res.p_value[0] == pytest.approx(ref.pvalue, abs=1e-10)


def test_welch_errors() -> None:
    with pytest.raises(InputError) as err:
        welch_test(np.zeros((1, 3)), np.zeros((4, 3)))
    assert str(err.value) == cs.ERR_WELCH_K.format(ka=1, kb=4)
    with pytest.raises(InputError) as err:
        welch_test(np.zeros((2, 3)), np.zeros((2, 4)))
    assert str(err.value) == cs.ERR_WELCH_SHAPE.format(a=(2, 3), b=(2, 4))
    with pytest.raises(InputError) as err:
        welch_test(np.zeros((2, 3)), np.array([[0.0, np.nan, 0.0]] * 2))
    assert str(err.value) == cs.ERR_NONFINITE.format(name="candidate")


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 6), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_welch_swapping_sides_flips_sign(ka: int, kb: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(ka, 7)), rng.normal(size=(kb, 7))
    a[:, 0], b[:, 0] = 1.0, 2.0  # one degenerate column
    ab, ba = welch_test(a, b), welch_test(b, a)
    np.testing.assert_array_equal(ab.statistic, -ba.statistic)
    np.testing.assert_allclose(ab.p_value, ba.p_value, rtol=0, atol=1e-14)


# -- paired_outcomes ------------------------------------------------------------------
def test_paired_outcomes() -> None:
    d = paired_outcomes([True, True, False, False], np.array([1, 0, 1, 0]))
    assert d.dtype == np.int8
    assert d.tolist() == [0, -1, 1, 0]
    with pytest.raises(InputError) as err:
        paired_outcomes([1, 2], [1, 0])
    assert str(err.value) == cs.ERR_CORRECT_VALUES.format(bad=2)
    with pytest.raises(InputError) as err:
        paired_outcomes([1, 0], [1, 0, 1])
    assert str(err.value) == cs.ERR_CORRECT_SHAPE.format(a=(2,), b=(3,))


# -- paired_shift_test: exactness --------------------------------------------------------
BRUTE_CASES = [
    np.array([-1, -1, -1, 0, 0, 1, 0, 0, 1, 0, -1, 1]),
    np.array([-1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0]),  # group 0 all lost, rest unchanged
    np.zeros(12, dtype=int),  # nothing changed
    np.array([1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1]),  # no unchanged examples
    np.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, -1]),  # group 0 constant, few discordant
]


@pytest.mark.parametrize("case", range(len(BRUTE_CASES) + 4))
def test_exact_equals_brute_force_enumeration(case: int) -> None:
    if case < len(BRUTE_CASES):
        d = BRUTE_CASES[case]
    else:
        d = np.random.default_rng(case).choice([-1, 0, 1], size=12, p=[0.3, 0.45, 0.25])
    groups = np.repeat([0, 1, 2], 4)
    res = paired_shift_test(d, groups, 3)
    assert res.method.tolist() == ["paired-exact"] * 3
    for k in range(3):
        want = brute_force_p(d, np.flatnonzero(groups == k))
        assert res.p_value[k] == pytest.approx(want, abs=1e-12), k


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from([-1, 0, 1]), min_size=4, max_size=10),
    st.integers(1, 5),
)
def test_exact_equals_brute_force_property(values: list[int], n_g: int) -> None:
    d = np.array(values)
    n_g = min(n_g, d.size - 1)
    groups = (np.arange(d.size) >= n_g).astype(int)
    res = paired_shift_test(d, groups, 2)
    assert res.p_value[0] == pytest.approx(brute_force_p(d, np.arange(n_g)), abs=1e-12)


def test_exact_hand_computed_cases() -> None:
    # N = 6: group 0 = [-1, -1, 0], rest = [0, 0, +1]; L = 2, G = 1, U = 3, n_g = 3,
    # C(6, 3) = 20. Cells (l, g): weight C(2,l) C(1,g) C(3,3-l-g), T:
    #   (0,0): 1, +0.5   (1,0): 6, -0.5   (2,0): 3, -3/sqrt(2)   (0,1): 3, +3/sqrt(2)
    #   (1,1): 6, +0.5   (2,1): 1, -0.5
    # e.g. (2,0): means -2/3 vs 1/3, variances 1/3 and 1/3 -> T = -1 / sqrt(2/9).
    # Observed (2,0): p = P(|T| >= 3/sqrt(2)) = (3 + 3) / 20 = 0.3.
    res = paired_shift_test([-1, -1, 0, 0, 0, 1], [0, 0, 0, 1, 1, 1], 2)
    assert res.statistic[0] == pytest.approx(-3 / np.sqrt(2), abs=1e-12)
    assert res.statistic[1] == pytest.approx(3 / np.sqrt(2), abs=1e-12)
    assert res.p_value.tolist() == pytest.approx([0.3, 0.3], abs=1e-12)
    # Degenerate: N = 4, group 0 = [-1, -1], rest = [0, 0]; L = 2, C(4, 2) = 6.
    # l = 2 (weight 1): -inf; l = 0 (1): +inf; l = 1 (4): equal means, T = 0.
    # Observed -inf: p = (1 + 1) / 6 = 1/3.
    res = paired_shift_test([-1, -1, 0, 0], [0, 0, 1, 1], 2)
    assert res.statistic.tolist() == [-np.inf, np.inf]
    assert res.p_value.tolist() == pytest.approx([1 / 3, 1 / 3], abs=1e-12)


def test_exact_agrees_with_monte_carlo_permutations() -> None:
    d, groups = outcomes([(6, 1, 23), (20, 15, 235)])  # N = 300, group 0 has 30
    res = paired_shift_test(d, groups, 2)
    assert res.method[0] == "paired-exact"
    p = res.p_value[0]
    assert 0.005 < p < 0.5  # a p-value the Monte-Carlo estimate can resolve
    rng = np.random.default_rng(7)
    B, n, N = 20_000, 30, d.size
    members = rng.permuted(np.tile(np.arange(N), (B, 1)), axis=1)[:, :n]
    x = d[members].astype(float)
    s1, q1 = x.sum(1), (x * x).sum(1)
    s2, q2 = d.sum() - s1, (d * d).sum() - q1
    v1 = (q1 - s1**2 / n) / (n - 1) / n
    v2 = (q2 - s2**2 / (N - n)) / (N - n - 1) / (N - n)
    t = (s1 / n - s2 / (N - n)) / np.sqrt(v1 + v2)
    p_mc = np.mean(np.abs(t) >= abs(res.statistic[0]) * (1 - 1e-9))
    assert abs(p_mc - p) <= 3 * np.sqrt(p * (1 - p) / B)


def test_normal_path_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    d = rng.choice([-1, 0, 1], size=4000, p=[0.07, 0.85, 0.08])
    groups = rng.integers(0, 8, size=4000)
    d[groups == 5] = rng.choice([-1, 0, 1], size=(groups == 5).sum(), p=[0.3, 0.5, 0.2])
    res = paired_shift_test(d, groups, 8, max_exact_cells=0)
    assert res.method.tolist() == ["paired-normal"] * 8
    for k in range(8):
        ref = stats.ttest_ind(d[groups == k], d[groups != k], equal_var=False)
        assert res.statistic[k] == pytest.approx(ref.statistic, abs=1e-10)
        assert res.p_value[k] == pytest.approx(ref.pvalue, abs=1e-10)
        assert res.df[k] == pytest.approx(ref.df, rel=1e-10)


def test_exact_and_normal_agree_at_moderate_sizes() -> None:
    # Exact p-values are discrete: atoms of ~1 / sd(sum of d) in the middle of the
    # distribution. With 2,000 examples per class they are small enough for 0.02.
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(5), 2000)
    flip = np.repeat(np.linspace(0.04, 0.3, 5), 2000)  # per-class churn, no true shift
    d = np.where(rng.random(10_000) < flip, rng.choice([-1, 1], size=10_000), 0)
    d[:2000][rng.random(2000) < 0.05] = -1  # class 0 loses extra examples
    exact = paired_shift_test(d, groups, 5, max_exact_cells=10**7)
    normal = paired_shift_test(d, groups, 5, max_exact_cells=0)
    assert exact.method.tolist() == ["paired-exact"] * 5
    np.testing.assert_array_equal(exact.statistic, normal.statistic)
    np.testing.assert_allclose(exact.p_value, normal.p_value, rtol=0, atol=0.02)
    assert exact.p_value.min() < 1e-6
    assert normal.p_value.min() < 1e-6


def test_method_follows_cell_count() -> None:
    # Group 0: n = 1000 with L = G = 1500 overall -> 1001^2 cells > 250,000: normal.
    d, groups = outcomes([(150, 150, 700), (1350, 1350, 7300), (3, 2, 45)])
    res = paired_shift_test(d, groups, 3)
    assert res.method.tolist() == ["paired-normal", "paired-normal", "paired-exact"]
    assert np.isfinite(res.df[:2]).all()
    assert np.isnan(res.df[2])
    res = paired_shift_test(d, groups, 3, max_exact_cells=10**7)
    assert res.method.tolist() == ["paired-exact"] * 3


# -- paired_shift_test: the paper's question -------------------------------------------
def test_key_case_more_losses_in_same_proportion() -> None:
    # The class loses ten times more examples than the others, in the same 2:1
    # lost:gained proportion. The direction of discordant pairs (McNemar/sign) is
    # identical, so a direction test sees nothing; the accuracy shift test does.
    d, groups = outcomes([(200, 100, 700), (180, 90, 8730)])
    direction = stats.binomtest(200, 300, p=180 / 270)
    assert direction.pvalue > 0.5
    res = paired_shift_test(d, groups, 2)
    assert res.method[0] == "paired-exact"
    assert res.statistic[0] < 0
    assert res.p_value[0] < 0.001


def test_high_churn_small_class_is_weighed_by_its_own_noise() -> None:
    # The same proportions at a tenth of the size (100 examples: 20 lost, 10 gained;
    # others 900: 18 lost, 9 gained). The class flips 30% of its examples, so its
    # mean moves by 0.054 per standard error: T = -1.65, p ~ 0.1. A raw-mean
    # (unstudentized) permutation z-test would call it p < 0.001 by treating the
    # class as if it churned like the rest; that is what miscalibrates it.
    d, groups = outcomes([(20, 10, 70), (18, 9, 873)])
    res = paired_shift_test(d, groups, 2)
    assert res.statistic[0] == pytest.approx(-1.6535, abs=1e-3)
    assert 0.05 < res.p_value[0] < 0.2
    z = (d[:100].mean() - d[100:].mean()) / np.sqrt(d.var(ddof=1) * (1 / 100 + 1 / 900))
    assert 2 * stats.norm.sf(abs(z)) < 0.001


@pytest.mark.parametrize("sizes", [[1, 2, 5, 50, 100, 300, 3000], [20] * 12])
def test_identical_outcomes_everywhere(sizes: list[int]) -> None:
    # Distinct sizes take the per-group path, equal sizes the shared-size path.
    G = len(sizes)
    groups = np.repeat(np.arange(G), sizes)
    for cells in (250_000, 0):
        res = paired_shift_test(np.zeros(groups.size, dtype=int), groups, G, max_exact_cells=cells)
        assert res.statistic.tolist() == [0.0] * G
        assert res.p_value.tolist() == [1.0] * G


def test_single_group_and_singletons() -> None:
    res = paired_shift_test([1, -1, 0, 0], [0, 0, 0, 0], 1)
    assert res.statistic.tolist() == [0.0]
    assert res.p_value.tolist() == [1.0]
    # A single-example group has variance 0; so does a constant rest: T = +/-inf.
    res = paired_shift_test([1, 0, 0, 0], [0, 1, 1, 1], 2)
    assert res.statistic.tolist() == [np.inf, -np.inf]
    assert res.p_value.tolist() == pytest.approx([0.25, 0.25], abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 6))
def test_permutation_and_role_swap_invariance(seed: int, n_groups: int) -> None:
    rng = np.random.default_rng(seed)
    N = int(rng.integers(n_groups * 3, 400))
    groups = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, N - n_groups)])
    d = rng.choice([-1, 0, 1], size=N, p=rng.dirichlet([1, 3, 1]))
    res = paired_shift_test(d, groups, n_groups)
    perm = rng.permutation(N)
    shuffled = paired_shift_test(d[perm], groups[perm], n_groups)
    np.testing.assert_array_equal(shuffled.statistic, res.statistic)
    np.testing.assert_array_equal(shuffled.p_value, res.p_value)
    swapped = paired_shift_test(-d, groups, n_groups)
    np.testing.assert_allclose(swapped.statistic, -res.statistic, rtol=1e-12, atol=0)
    np.testing.assert_allclose(swapped.p_value, res.p_value, rtol=0, atol=1e-12)
    assert ((res.p_value >= 0) & (res.p_value <= 1)).all()


def test_vectorised_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    # Shared-size sorting vs per-group gathering, and chunked vs single-pass cells.
    rng = np.random.default_rng(5)
    sizes = np.concatenate([np.full(20, 40), rng.integers(5, 90, 30)])
    groups = np.repeat(np.arange(sizes.size), sizes)
    d = np.where(rng.random(groups.size) < 0.2, rng.choice([-1, 1], groups.size), 0)
    base = paired_shift_test(d, groups, sizes.size)
    for name, value in (("_SHARED_SIZE", 1), ("_SHARED_SIZE", 10**9), ("_CHUNK_CELLS", 500)):
        with monkeypatch.context() as m:
            m.setattr(exact, name, value)
            other = paired_shift_test(d, groups, sizes.size)
        np.testing.assert_allclose(other.p_value, base.p_value, rtol=1e-12, atol=1e-15)


# -- paired_shift_test: errors -----------------------------------------------------------
def test_paired_errors() -> None:
    with pytest.raises(InputError) as err:
        paired_shift_test([1, 0, 0], [0, 0, 2], 3)
    assert str(err.value) == cs.ERR_EMPTY_GROUP.format(groups=[1])
    with pytest.raises(InputError) as err:
        paired_shift_test([1, 2, 0], [0, 0, 1], 2)
    assert str(err.value) == cs.ERR_OUTCOMES.format(bad=2)
    with pytest.raises(InputError) as err:
        paired_shift_test([1, 0, 0], [0, 0, 3], 2)
    assert str(err.value) == cs.ERR_GROUP_LABELS.format(n_groups=2, lo=0, hi=3)
    with pytest.raises(InputError) as err:
        paired_shift_test([1, 0], [0, 0, 1], 2)
    assert str(err.value) == cs.ERR_PAIRED_SHAPE.format(d=(2,), g=(3,))
    with pytest.raises(InputError) as err:
        paired_shift_test([1, 0], [0, 0], 0)
    assert str(err.value) == cs.ERR_N_GROUPS.format(n_groups=0)
    with pytest.raises(InputError) as err:
        paired_shift_test([1, 0], [0, 0], 1, max_exact_cells=-1)
    assert str(err.value) == cs.ERR_MAX_CELLS.format(value=-1)
