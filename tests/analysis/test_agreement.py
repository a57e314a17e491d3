"""Modal predictions, CIEs, subsets and subgroup shares against brute force and hand cases."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from compaudit.analysis.agreement import cie, modal_predictions, subset_top1
from compaudit.analysis.subgroups import group_codes, pie_shares


def test_modal_hand_cases_and_tie_rule() -> None:
    preds = np.array(
        [
            [2, 1, 3, 0],
            [2, 3, 1, 0],
            [1, 3, 1, 4],
            [1, 1, 3, 4],
        ]
    )
    modal, share = modal_predictions(preds)
    # columns: (2,2,1,1) tie -> 1; (1,3,3,1) tie -> 1; (3,1,1,3) tie -> 1; (0,0,4,4) tie -> 0
    np.testing.assert_array_equal(modal, [1, 1, 1, 0])
    np.testing.assert_allclose(share, [0.5, 0.5, 0.5, 0.5])
    modal, share = modal_predictions(np.array([[5, 2], [5, 2], [1, 2]]))
    np.testing.assert_array_equal(modal, [5, 2])
    np.testing.assert_allclose(share, [2 / 3, 1.0])


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.int64, st.tuples(st.integers(1, 9), st.integers(1, 30)), elements=st.integers(0, 6))
)
def test_modal_equals_counter_with_smallest_label_tie_break(preds: np.ndarray) -> None:
    modal, share = modal_predictions(preds)
    for i in range(preds.shape[1]):
        counts = Counter(preds[:, i].tolist())
        top = max(counts.values())
        assert modal[i] == min(c for c, v in counts.items() if v == top)
        assert share[i] == pytest.approx(top / preds.shape[0])
    # independent of member order
    np.testing.assert_array_equal(modal_predictions(preds[::-1])[0], modal)


def test_cie_single_pair_hand_case() -> None:
    y = np.array([0, 1, 2, 3, 0, 1])
    ref = np.array([[0, 1, 2, 0, 1, 1]])  # right on 0,1,2,5
    cand = np.array([[0, 2, 2, 3, 2, 0]])  # right on 0,2,3
    r = cie(ref, cand, y)
    # differ at 1 (ref right), 3 (cand right), 4 (both wrong, different), 5 (ref right)
    assert (r.basis, r.count, r.cie_u, r.cie_c, r.both_wrong_different) == (
        "single-pair",
        4,
        2,
        1,
        1,
    )
    assert r.rate == pytest.approx(4 / 6)


def test_cie_population_is_mean_over_all_pairs() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 200)
    ref = np.where(rng.random((3, 200)) < 0.7, y, rng.integers(0, 4, (3, 200)))
    cand = np.where(rng.random((4, 200)) < 0.6, y, rng.integers(0, 4, (4, 200)))
    r = cie(ref, cand, y)
    pairs = [cie(ref[[i]], cand[[j]], y) for i, j in itertools.product(range(3), range(4))]
    assert r.basis == "mean-over-pairs"
    for field in ("count", "cie_u", "cie_c", "both_wrong_different"):
        assert getattr(r, field) == pytest.approx(
            np.mean([getattr(p, field) for p in pairs]), abs=1e-9
        )


def test_subsets_are_seeded_and_sized() -> None:
    rng = np.random.default_rng(0)
    ref_ok = rng.random((3, 500)) < 0.8
    cand_ok = rng.random((2, 500)) < 0.7
    pie = rng.random(500) < 0.1
    a = subset_top1(ref_ok, cand_ok, pie, seed=7)
    b = subset_top1(ref_ok, cand_ok, pie, seed=7)
    c = subset_top1(ref_ok, cand_ok, pie, seed=8)
    assert a == b
    assert a["random"] != c["random"]
    assert a["pie"].n == a["random"].n == int(pie.sum())
    assert a["non_pie"].n == 500 - int(pie.sum())
    assert a["pie"].top1_reference == pytest.approx(ref_ok[:, pie].mean())
    assert a["non_pie"].top1_candidate == pytest.approx(cand_ok[:, ~pie].mean())


def test_subsets_without_pies() -> None:
    ok = np.ones((2, 10), dtype=bool)
    r = subset_top1(ok, ok, np.zeros(10, dtype=bool), seed=0)
    assert r["pie"].n == 0
    assert r["pie"].top1_reference is None
    assert r["non_pie"].top1_reference == 1.0


def test_pie_shares_hand_case() -> None:
    # groups: 0 has 6 examples (1 PIE), 1 has 4 examples (3 PIEs)
    codes = np.array([0] * 6 + [1] * 4)
    pie = np.array([1, 0, 0, 0, 0, 0, 1, 1, 1, 0], dtype=bool)
    s = pie_shares(codes, 2, pie)
    np.testing.assert_array_equal(s["n_pie"], [1, 3])
    np.testing.assert_array_equal(s["n_non_pie"], [5, 1])
    np.testing.assert_allclose(s["pct_pie"], [25.0, 75.0])
    np.testing.assert_allclose(s["pct_non_pie"], [500 / 6, 100 / 6])
    np.testing.assert_allclose(
        s["pct_growth"], [(25 / (500 / 6) - 1) * 100, (75 / (100 / 6) - 1) * 100]
    )


def test_group_codes_cross_attributes_and_label() -> None:
    y = np.array([0, 1, 0, 1, 1])
    attrs = {"sex": np.array(["M", "F", "F", "M", "F"])}
    codes, keys = group_codes(attrs, ["label", "sex"], y=y, class_names=["cat", "dog"])
    assert keys == [
        {"label": "cat", "sex": "F"},
        {"label": "cat", "sex": "M"},
        {"label": "dog", "sex": "F"},
        {"label": "dog", "sex": "M"},
    ]
    np.testing.assert_array_equal(codes, [1, 2, 0, 3, 2])
