"""Properties of the single-model score test (compaudit.analysis._score), by hypothesis.

The statistic is monotone in every count; ``p_worse`` never rises when one more
example of the group is lost (an unchanged one turns lost), all else equal, on
both reference paths and both bootstrap schemes (the seed is fixed; the
bootstrap's draws come from shared uniforms through exact binomial quantiles,
so they move monotonically with the parameters) against a rest of at least
:data:`MIN_MONOTONE_REST` examples (the known exceptions below it are recorded as a
strict xfail); negating every outcome flips
T and keeps the two-sided p; reordering examples changes nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from compaudit.analysis import _score
from compaudit.analysis.stats import paired_shift_test


@st.composite
def two_sides(
    draw: st.DrawFn, max_group: int = 80, max_rest: int = 2000, min_rest: int = 1
) -> list[int]:
    """(n1, l1, g1, n2, l2, g2) with n1 >= 1 and n2 >= min_rest."""
    n1 = draw(st.integers(1, max_group))
    l1 = draw(st.integers(0, n1))
    g1 = draw(st.integers(0, n1 - l1))
    n2 = draw(st.integers(min_rest, max_rest))
    l2 = draw(st.integers(0, min(n2, draw(st.sampled_from([2, 10, 60, n2])))))
    g2 = draw(st.integers(0, min(n2 - l2, draw(st.sampled_from([2, 10, 60, n2])))))
    return [n1, l1, g1, n2, l2, g2]


def stat(rows: np.ndarray) -> np.ndarray:
    return _score.score_statistic(*rows.T.astype(np.float64))[0]


@settings(max_examples=100, deadline=None)
@given(two_sides(max_group=300, max_rest=20_000))
def test_statistic_is_monotone_in_every_count(case: list[int]) -> None:
    base = np.array([case])
    n1, n2 = case[0], case[3]
    t0 = stat(base)[0]
    tol = 1e-9 * max(1.0, abs(t0))
    moves = [(1, -1), (2, 1), (4, 1), (5, -1)]  # (column, sign of dT) for one more count
    for col, sign in moves:
        row = base.copy()
        row[0, col] += 1
        if row[0, 1] + row[0, 2] > n1 or row[0, 4] + row[0, 5] > n2:
            continue
        assert sign * (stat(row)[0] - t0) >= -tol, (col, case)


MIN_MONOTONE_REST = 10
"""Below this the bootstrap's p_worse can rise (see the test of the known cases)."""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    two_sides(min_rest=MIN_MONOTONE_REST), st.sampled_from(["normal", "bootstrap"]),
    st.integers(0, 3),
)  # fmt: skip
def test_p_worse_never_rises_when_one_more_example_is_lost(
    case: list[int], path: str, seed: int
) -> None:
    n1, l1, g1 = case[:3]
    assume(l1 + g1 < n1)  # an unchanged example to turn lost
    rows = np.array([case, [n1, l1 + 1, *case[2:]]])
    t, _, worse, _ = _score.score_test(rows, path=path, seed=seed, n_boot=199, per_row=True)
    assert t[1] <= t[0] + 1e-12
    assert worse[1] <= worse[0], (case, worse.tolist())


@pytest.mark.xfail(strict=True, reason="known: the exact null is refitted to each row")
@pytest.mark.parametrize(("case", "seed"), [([39, 34, 1, 2, 0, 0], 0), ([20, 7, 12, 1, 0, 1], 1)])
def test_p_worse_against_a_rest_of_under_ten_examples_can_rise(case: list[int], seed: int) -> None:
    """Known exception to the property above, found by hypothesis on 2026-12-04.

    Against a "rest" of 1 or 2 examples the bootstrap enumerates the null exactly at
    the restricted fit of each row, and one more loss moves that fit: p_worse rose
    from 0.01471 to 0.01472 ([39, 34, 1, 2, 0, 0]) and from 0.301 to 0.318 ([20, 7, 12,
    1, 0, 1]). A scan of random designs found 1 such pair in 910 with rests of 1-9
    examples and none in 439 with rests of 10-2,000. An audit's rest is every other
    example, so only a dataset of a dozen examples meets it; ``strict``: a fix makes
    this test fail, and the bound above can then go.
    """
    n1, l1 = case[:2]
    rows = np.array([case, [n1, l1 + 1, *case[2:]]])
    _, _, worse, _ = _score.score_test(rows, path="bootstrap", seed=seed, n_boot=199, per_row=True)
    assert worse[1] <= worse[0]


@settings(max_examples=30, deadline=None)
@given(two_sides(), st.sampled_from(["normal", "bootstrap"]))
def test_p_values_are_valid_and_p_worse_is_one_on_the_better_side(
    case: list[int], path: str
) -> None:
    t, p, worse, _ = _score.score_test(np.array([case]), path=path, seed=0, n_boot=99)
    assert 0 < p[0] <= 1
    assert 0 < worse[0] <= 1
    if t[0] >= 0:
        assert worse[0] == 1.0
    else:  # T <= t < 0 implies |T| >= |t|: the one-sided p is at most the two-sided
        assert worse[0] <= p[0] + 1e-12


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 6), st.sampled_from(["auto", "normal"]))
def test_permutation_and_role_swap_invariance(seed: int, n_groups: int, path: str) -> None:
    rng = np.random.default_rng(seed)
    N = int(rng.integers(n_groups * 3, 400))
    groups = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, N - n_groups)])
    d = rng.choice([-1, 0, 1], size=N, p=rng.dirichlet([1, 3, 1]))
    res = paired_shift_test(d, groups, n_groups, path=path, n_boot=199)  # type: ignore[arg-type]
    perm = rng.permutation(N)
    shuffled = paired_shift_test(d[perm], groups[perm], n_groups, path=path, n_boot=199)  # type: ignore[arg-type]
    np.testing.assert_array_equal(shuffled.statistic, res.statistic)
    np.testing.assert_array_equal(shuffled.p_value, res.p_value)
    np.testing.assert_array_equal(shuffled.p_worse, res.p_worse)
    swapped = paired_shift_test(-d, groups, n_groups, path=path, n_boot=199)  # type: ignore[arg-type]
    np.testing.assert_allclose(swapped.statistic, -res.statistic, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(swapped.p_value, res.p_value, rtol=1e-9, atol=1e-12)


@settings(max_examples=4, deadline=None)
@given(two_sides(max_group=60, max_rest=600))
def test_lattice_with_one_pair_is_the_trinomial(case: list[int]) -> None:
    n1, l1, g1, n2, l2, g2 = case
    c1 = np.array([[l1, n1 - l1 - g1, g1]], dtype=np.float64)
    c2 = np.array([[l2, n2 - l2 - g2, g2]], dtype=np.float64)
    t_lat = _score.lattice_statistic(c1, c2)[0]
    np.testing.assert_allclose(t_lat, stat(np.array([case])), rtol=1e-9, atol=1e-12)


@st.composite
def group_and_rest(draw: st.DrawFn) -> list[int]:
    """A small group and a low-churn rest at least 20 times larger (a class against
    the others: the rest is drawn from the shared uniforms)."""
    n1 = draw(st.integers(1, 20))
    l1 = draw(st.integers(0, n1))
    g1 = draw(st.integers(0, n1 - l1))
    n2 = draw(st.integers(400, 2000))
    return [n1, l1, g1, n2, draw(st.integers(0, 20)), draw(st.integers(0, 20))]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(group_and_rest(), min_size=2, max_size=4), st.integers(0, 3))
def test_a_rows_p_values_do_not_depend_on_its_batch_or_the_memo(
    cases: list[list[int]], seed: int
) -> None:
    # The bootstrap memo is exact only if each row's p-values are a function of
    # its own counts: computed in a batch, alone, or read back, bit for bit.
    rows = np.array(cases)
    _score._MEMO.clear()
    _, p_batch, w_batch, _ = _score.score_test(rows, path="bootstrap", seed=seed, n_boot=199)
    _, p_again, w_again, _ = _score.score_test(rows, path="bootstrap", seed=seed, n_boot=199)
    assert np.array_equal(p_batch, p_again)
    assert np.array_equal(w_batch, w_again)
    for i in range(len(rows)):
        _score._MEMO.clear()
        _, p_one, w_one, _ = _score.score_test(
            rows[i : i + 1], path="bootstrap", seed=seed, n_boot=199
        )
        assert p_one[0] == p_batch[i], cases[i]
        assert w_one[0] == w_batch[i], cases[i]
    _score._MEMO.clear()
    _score.score_test(rows[:1], path="bootstrap", seed=seed + 1, n_boot=199)
    assert _score._MEMO  # filled, and keyed by the seed
    assert all(k[0] == seed + 1 for k in _score._MEMO)


def test_resolve_redraws_only_the_rows_near_the_bootstrap_floor() -> None:
    """K = 3 lattice rows: a group of 50 that lost 12 examples in every pair (p at the
    1 / (n_boot + 1) floor) and groups with p far above the cut. With ``resolve`` only the
    first is drawn again, its p falls under the floor, and the others are unchanged."""
    from compaudit.analysis._lattice import REFINE_HITS, lattice_test, refine_replicates

    k = 3
    j = 2 * k + 1
    rest = np.zeros(j)
    rest[k], rest[k - 1], rest[k + 1] = 2900, 6, 5
    rows1 = []
    for lost in (12, 1, 0):
        g = np.zeros(j)
        g[0], g[k] = lost, 50 - lost  # lost in all 3 pairs: outcome -1
        rows1.append(g)
    c1 = np.asarray(rows1)
    c2 = np.repeat(rest[None, :], 3, axis=0)
    plain = lattice_test(c1, c2, path="bootstrap", seed=0, n_boot=199)
    fine = lattice_test(c1, c2, path="bootstrap", seed=0, n_boot=199, resolve=1e-4)
    cut = (REFINE_HITS + 1) / 200
    assert plain[1][0] == pytest.approx(1 / 200)  # at the floor
    assert fine[1][0] < 1 / 200
    assert fine[1][0] >= 1 / (refine_replicates(199, 1e-4) + 1)
    far = plain[1] > cut
    assert far[1:].all()
    np.testing.assert_array_equal(fine[1][far], plain[1][far])
    np.testing.assert_array_equal(fine[0], plain[0])  # the statistic is not redrawn


@st.composite
def lattice_sides(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray]:
    """K pairs, a group's and the rest's counts on the 2K + 1 lattice points, with an
    unchanged example (cell K) in the group to lose."""
    k = draw(st.integers(1, 6))
    j = 2 * k + 1
    cells = st.lists(st.integers(0, 30), min_size=j, max_size=j)
    g = np.asarray(draw(cells), dtype=np.float64)
    r = np.asarray(draw(cells), dtype=np.float64)
    g[k] += 1 + draw(st.integers(0, 60))
    r[k] += 200 + draw(st.integers(0, 2000))
    return k, g, r


@settings(max_examples=60, deadline=None)
@given(lattice_sides())
def test_lineage_statistic_falls_and_normal_p_worse_never_rises_when_one_more_is_lost(
    case: tuple[int, np.ndarray, np.ndarray],
) -> None:
    """The lineage (lattice) test: an unchanged example of the group turns lost in every
    pair (cell K -> cell 0). T must not rise, and on the normal path p_worse must not
    rise. (The bootstrap path's p_worse is a Monte Carlo estimate: at 1,999 replicates it
    rose by one replicate's worth, 5e-4, in 5 of 270 adjacent pairs of a one-off scan;
    with ``resolve`` set, in none.)"""
    from compaudit.analysis._lattice import lattice_test

    k, g, r = case
    lost = g.copy()
    lost[k] -= 1
    lost[0] += 1
    c1 = np.stack([g, lost])
    c2 = np.stack([r, r])
    t = _score.lattice_statistic(c1, c2)[0]
    assert t[1] <= t[0] + 1e-12 * max(1.0, abs(t[0]))
    _, _, worse, _ = lattice_test(c1, c2, path="normal", seed=0, n_boot=99)
    assert worse[1] <= worse[0] + 1e-12
