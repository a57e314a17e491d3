"""The audit engine end to end: reference checks, invariances, and failing closed."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests

from compaudit.comparable import (
    ERR_DIFFERENT_DATA,
    ERR_DIFFERENT_EXAMPLES,
    ERR_DIFFERENT_PREPROCESSING,
)
from compaudit.engine import (
    ERR_EMPTY_CLASS,
    ERR_NO_CANDIDATES,
    AuditSettings,
    audit,
)
from compaudit.errors import InputError
from compaudit.population import Population
from compaudit.report.base import validate_report
from tests.conftest import synthetic_population


def _comparison(ref: Population, cand: Population, **kw: Any) -> dict[str, Any]:
    report = audit(ref, {"cand": cand}, settings=AuditSettings(**kw)).to_report()
    validate_report(report)
    comparison: dict[str, Any] = report["comparisons"][0]
    return comparison


def test_welch_classes_match_scipy_and_statsmodels(small_case: dict[str, Any]) -> None:
    ref, cand, y = small_case["reference"], small_case["candidate"], small_case["y"]
    comp = _comparison(ref, cand)
    assert comp["class_test"] == "welch"

    def shifted(pop: Population) -> np.ndarray:
        ok = pop.predictions == y
        recall = np.stack([ok[:, y == c].mean(axis=1) for c in range(10)], axis=1)
        return np.asarray(recall - ok.mean(axis=1, keepdims=True))

    s_r, s_c = shifted(ref), shifted(cand)
    t, p = stats.ttest_ind(s_c, s_r, equal_var=False, axis=0)
    p_holm = multipletests(p, method="holm")[1]
    rows = comp["classes"]
    np.testing.assert_allclose([r["statistic"] for r in rows], t, rtol=1e-10)
    np.testing.assert_allclose([r["p_value"] for r in rows], p, rtol=1e-10)
    np.testing.assert_allclose([r["p_adjusted"] for r in rows], p_holm, rtol=1e-10)
    np.testing.assert_allclose(
        [r["normalized_recall_difference"] for r in rows], s_c.mean(0) - s_r.mean(0), atol=1e-12
    )
    # the damaged class is found, and only a significant class is flagged
    worst = min(rows, key=lambda r: r["normalized_recall_difference"])
    assert worst["class"] == 3
    assert worst["significant"]


def test_single_models_use_the_paired_test(small_case: dict[str, Any]) -> None:
    ref, cand, y = small_case["reference"], small_case["candidate"], small_case["y"]
    one_ref = Population.create(ref.predictions[0], y)
    one_cand = Population.create(cand.predictions[0], y)
    comp = _comparison(one_ref, one_cand)
    assert comp["class_test"] == "paired"
    assert {r["test"] for r in comp["classes"]} <= {"paired-score-normal", "paired-score-bootstrap"}
    assert comp["cie"]["basis"] == "single-pair"
    # Only the damaged class is significantly worse than the overall shift (the
    # others may legitimately beat an overall shift that the damaged class drags down).
    worse = [
        r["class"]
        for r in comp["classes"]
        if r["significant"] and r["normalized_recall_difference"] < 0
    ]
    assert worse == [3]
    # A population (K >= 3) against one model: the model against the population's seed spread.
    assert _comparison(ref, one_cand)["class_test"] == "prediction-interval"


def _random_case(seed: int, k_ref: int, k_cand: int) -> tuple[Population, Population]:
    rng = np.random.default_rng(seed)
    n, c = 300, 4
    y = rng.integers(0, c, n)
    y[:c] = np.arange(c)  # every class present
    diff = rng.uniform(0.5, 0.95, n)
    attrs = {"g": rng.choice(["a", "b"], n)}
    ref = synthetic_population(rng, y=y, k=k_ref, num_classes=c, difficulty=diff)
    cand = synthetic_population(rng, y=y, k=k_cand, num_classes=c, difficulty=diff, damage={1: 0.3})
    return Population.create(ref, y, attributes=attrs), Population.create(cand, y, attributes=attrs)


def _class_key(comp: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            r["support"],
            r["recall_reference"],
            r["recall_candidate"],
            r["normalized_recall_difference"],
            r["p_value"],
            r["significant"],
        )
        for r in comp["classes"]
    ]


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([(1, 1), (4, 3), (1, 5)]))
def test_permuting_examples_changes_no_class_result(seed: int, ks: tuple[int, int]) -> None:
    ref, cand = _random_case(seed, *ks)
    perm = np.random.default_rng(seed + 1).permutation(ref.n)

    def permuted(p: Population) -> Population:
        attrs = {k: v[perm] for k, v in p.attributes.items()}
        return Population.create(p.predictions[:, perm], p.y[perm], attributes=attrs)

    a = _comparison(ref, cand, attributes=("g",), min_support=1)
    b = _comparison(permuted(ref), permuted(cand), attributes=("g",), min_support=1)
    # Modal ties are broken by a seeded draw per example position, so a modal
    # label can move with the order of examples only where its vote is tied.
    tied = _has_modal_ties(ref.predictions) or _has_modal_ties(cand.predictions)
    for x, z in zip(_class_key(a), _class_key(b), strict=True):
        assert x[:3] == pytest.approx(z[:3])
        assert x[3] == pytest.approx(z[3], abs=1e-12)
        if not tied:
            assert x[4] == pytest.approx(z[4], rel=1e-9, abs=1e-12)
            assert x[5] == z[5]
    if not tied:
        assert a["pie"]["count"] == b["pie"]["count"]
        assert [g["p_value"] for g in a["subgroups"]] == pytest.approx(
            [g["p_value"] for g in b["subgroups"]]
        )


def _has_modal_ties(predictions: np.ndarray) -> bool:
    """Whether any example's top vote count is shared by two labels."""
    k, n = predictions.shape
    if k == 1:
        return False
    counts = np.zeros((n, int(predictions.max()) + 1), dtype=np.int64)
    for row in predictions:
        counts[np.arange(n), row] += 1
    top = counts.max(axis=1)
    return bool(((counts == top[:, None]).sum(axis=1) > 1).any())


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([(1, 1), (3, 4)]))
def test_swapping_sides_flips_every_normalized_difference(seed: int, ks: tuple[int, int]) -> None:
    ref, cand = _random_case(seed, *ks)
    fwd = _comparison(ref, cand, attributes=("g",), min_support=1)
    back = _comparison(cand, ref, attributes=("g",), min_support=1)
    for f, b in zip(fwd["classes"], back["classes"], strict=True):
        assert b["normalized_recall_difference"] == pytest.approx(
            -f["normalized_recall_difference"], abs=1e-12
        )
        assert b["p_value"] == pytest.approx(f["p_value"], rel=1e-9, abs=1e-12)
        if f["statistic"] is not None:
            assert b["statistic"] == pytest.approx(-f["statistic"], rel=1e-9, abs=1e-12)
    assert back["top1_delta"] == pytest.approx(-fwd["top1_delta"])
    assert back["cie"]["cie_u"] == pytest.approx(fwd["cie"]["cie_c"])
    for f, b in zip(fwd["subgroups"], back["subgroups"], strict=True):
        assert b["shift_difference"] == pytest.approx(-f["shift_difference"], abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_identical_populations_find_nothing(seed: int, k: int) -> None:
    ref, _ = _random_case(seed, k, 1)
    comp = _comparison(ref, ref, attributes=("g",), min_support=1)
    assert comp["cie"]["count"] == pytest.approx(0) if k == 1 else True
    assert comp["pie"]["count"] == 0
    assert comp["top1_delta"] == 0
    assert not any(r["significant"] for r in comp["classes"])
    assert all(r["normalized_recall_difference"] == 0 for r in comp["classes"])
    assert not any(g["significant"] for g in comp["subgroups"])


def test_small_subgroups_are_not_testable(small_case: dict[str, Any]) -> None:
    comp = _comparison(
        small_case["reference"], small_case["candidate"], attributes=("sex", "age"), min_support=100
    )
    assert comp["subgroup_attributes"] == ["sex", "age"]
    small = [g for g in comp["subgroups"] if g["n"] < 100]
    assert small  # the 60+ groups are small by construction
    for g in small:
        assert not g["testable"]
        assert g["p_value"] is None
        assert g["significant"] is False
    big = [g for g in comp["subgroups"] if g["n"] >= 100]
    assert all(g["testable"] and g["p_value"] is not None for g in big)
    assert sum(g["n"] for g in comp["subgroups"]) == 2000
    assert sum(g["n_pie"] for g in comp["subgroups"]) == comp["pie"]["count"]


def test_several_candidates_each_get_a_comparison(small_case: dict[str, Any]) -> None:
    ref, cand = small_case["reference"], small_case["candidate"]
    report = audit(ref, {"a": cand, "b": ref}).to_report()
    assert [c["candidate"] for c in report["comparisons"]] == ["a", "b"]
    assert set(report["populations"]) == {"reference", "a", "b"}


def test_bad_inputs_fail_closed(small_case: dict[str, Any]) -> None:
    ref, cand, y = small_case["reference"], small_case["candidate"], small_case["y"]
    with pytest.raises(InputError) as exc:
        audit(ref, {})
    assert str(exc.value) == ERR_NO_CANDIDATES
    shorter = Population.create(cand.predictions[:, :-1], y[:-1], source="short.npz")
    with pytest.raises(InputError) as exc:
        audit(ref, {"c": shorter})
    assert str(exc.value) == ERR_DIFFERENT_EXAMPLES.format(
        a="ref.npz", b="short.npz", what="N = 2000 vs 1999"
    )
    other_y = Population.create(cand.predictions, np.roll(y, 1), source="rolled.npz")
    with pytest.raises(
        InputError, match=r"ref\.npz and rolled\.npz are not predictions on the same examples"
    ):
        audit(ref, {"c": other_y})
    with pytest.raises(InputError, match="no attribute 'race'"):
        audit(ref, {"c": cand}, settings=AuditSettings(attributes=("race",)))
    with pytest.raises(InputError, match="alpha must lie in"):
        AuditSettings(alpha=1.5)


def test_one_same_examples_rule_ids_on_one_side_only(small_case: dict[str, Any]) -> None:
    # A side without ids means positions 0..N-1: a candidate whose ids run in
    # reverse order is not on the same examples (it was audited silently before).
    ref, cand, y = small_case["reference"], small_case["candidate"], small_case["y"]
    reversed_ids = Population.create(
        cand.predictions, y, ids=np.arange(y.size)[::-1], source="rev.npz"
    )
    with pytest.raises(InputError) as exc:
        audit(ref, {"c": reversed_ids})
    assert str(exc.value) == ERR_DIFFERENT_EXAMPLES.format(
        a="ref.npz", b="rev.npz", what="example ids differ"
    )
    same_ids = Population.create(cand.predictions, y, ids=np.arange(y.size), source="ids.npz")
    assert audit(ref, {"c": same_ids}).comparisons[0].candidate == "c"


def test_one_same_examples_rule_preprocessing(small_case: dict[str, Any]) -> None:
    # Both files record their preprocessing: they must agree, as for model runs.
    ref, cand = small_case["reference"], small_case["candidate"]
    a = dataclasses.replace(ref, meta={"preprocessing": {"scale": 1 / 16}})
    b = dataclasses.replace(cand, meta={"preprocessing": {"scale": 1 / 255}})
    with pytest.raises(InputError) as exc:
        audit(a, {"c": b})
    assert str(exc.value) == ERR_DIFFERENT_PREPROCESSING.format(
        a="ref.npz", b="cand.npz", what=f"scale: {1 / 16!r} vs {1 / 255!r}"
    )
    fa = dataclasses.replace(ref, meta={"dataset_fingerprint": "a" * 64})
    fb = dataclasses.replace(cand, meta={"dataset_fingerprint": "b" * 64})
    with pytest.raises(InputError) as exc:
        audit(fa, {"c": fb})
    assert str(exc.value) == ERR_DIFFERENT_DATA.format(
        a="ref.npz", b="cand.npz", fa="a" * 64, fb="b" * 64
    )


def test_empty_class_where_a_test_is_asked() -> None:
    y = np.array([0, 0, 1, 1])
    ref = Population.create([[0, 0, 1, 1]], y, num_classes=3, source="r.npz")
    with pytest.raises(InputError) as exc:
        audit(ref, {"c": ref})
    assert str(exc.value) == ERR_EMPTY_CLASS.format(src="r.npz", classes="2")
    report = audit(ref, {"c": ref}, settings=AuditSettings(empty_classes="skip")).to_report()
    row = report["comparisons"][0]["classes"][2]
    assert row["support"] == 0
    assert row["p_value"] is None
    assert row["recall_reference"] is None
    validate_report(report)


def test_thousands_of_attributes_need_subgroups_named() -> None:
    """Each carried attribute is a subgroup set of its own by default (floors, fairness
    nulls): a table's 10,000 metadata columns would run for hours, so name the sets."""
    import compaudit
    from compaudit.engine import ERR_TOO_MANY_ATTRIBUTES, MAX_DEFAULT_ATTRIBUTES

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    ref = np.where(rng.random((3, 200)) < 0.8, y, rng.integers(0, 3, (3, 200)))
    many = {f"c{i}": rng.integers(0, 2, 200) for i in range(MAX_DEFAULT_ATTRIBUTES + 1)}
    with pytest.raises(InputError) as info:
        compaudit.audit(ref, {"cand": ref[::-1]}, y=y, attributes=many)
    assert str(info.value) == ERR_TOO_MANY_ATTRIBUTES.format(
        src="reference", n=MAX_DEFAULT_ATTRIBUTES + 1, limit=MAX_DEFAULT_ATTRIBUTES
    )
    named = compaudit.audit(ref, {"cand": ref[::-1]}, y=y, attributes=many, subgroups=["c0"])
    assert [gs.attributes for gs in named.comparisons[0].subgroup_sets] == [("c0",)]


def test_scores_beyond_1e50_are_refused_not_overflowed() -> None:
    import compaudit
    from compaudit.engine import MAX_SCORE

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 100)
    ref = np.where(rng.random((3, 100)) < 0.8, y, rng.integers(0, 3, (3, 100)))
    scores = rng.random(100)
    scores[7] = 1e308
    with pytest.raises(InputError, match=r"magnitude 1e\+308 \(at most 1e\+50\)"):
        compaudit.audit(ref, {"c": ref[::-1]}, y=y, example_scores={"s": scores})
    scores[7] = MAX_SCORE
    compaudit.audit(ref, {"c": ref[::-1]}, y=y, example_scores={"s": scores}).to_json()
