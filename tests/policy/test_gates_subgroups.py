"""Subgroup gates that read the tests: significance, seed-noise excess, several attribute sets."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

from compaudit import gates as g
from compaudit.errors import InputError
from compaudit.gates import GateResult, evaluate_gates
from compaudit.policy import Policy

FA = {"sex": "F", "race": "A"}
SUB = {"attributes": ["sex", "race"], "min_support": 30}
# (group, n, n_pie, top1_reference, top1_candidate); the overall change is -0.02.
ROWS = [
    (FA, 100, 10, 0.90, 0.85),  # +61.1% PIE share growth, 3 points behind the overall change
    ({"sex": "M", "race": "A"}, 200, 5, 0.90, 0.90),
    ({"sex": "F", "race": "B"}, 10, 5, 0.90, 0.50),  # below min_support
]
DELTA = -0.02
GROWTH_FA = 550 / 9  # 50% of PIEs against 90/290 of non-PIEs


def policy(**gates: Any) -> Policy:
    extra = {k: gates.pop(k) for k in ("on_unevaluable",) if k in gates}
    return Policy.model_validate({"version": 1, "gates": gates, **extra})


def one(report: dict[str, Any], pol: Policy) -> GateResult:
    (result,) = evaluate_gates(report, pol)
    return result


def comp(rb: SimpleNamespace, significant: bool, **kw: Any) -> dict[str, Any]:
    rows = rb.groups(ROWS, DELTA, significant=[FA] if significant else [], p_adjusted=0.41, **kw)
    return rb.comparison(  # type: ignore[no-any-return]
        top1_delta=DELTA, subgroup_attributes=["sex", "race"], subgroups=rows
    )


# -- require_significance ------------------------------------------------------------------------


def test_growth_counts_a_significantly_worse_group(rb: SimpleNamespace) -> None:
    r = one(rb.report(comp(rb, True)), policy(subgroups={**SUB, "pie_share_growth": 50}))
    assert (r.value, r.passed) == (pytest.approx(GROWTH_FA, rel=1e-12), False)
    assert r.detail == (
        "largest PIE share growth among significantly worse groups +61.1% for sex=F, race=A; "
        "not testable (n < 30): sex=F, race=B (n=10) (threshold 50.0%)"
    )


def test_growth_within_noise_passes_and_names_the_group(rb: SimpleNamespace) -> None:
    r = one(rb.report(comp(rb, False)), policy(subgroups={**SUB, "pie_share_growth": 50}))
    assert (r.value, r.passed, r.status) == (None, True, "passed")
    assert r.detail == (
        "no group is significantly worse than the overall shift; over the threshold but not "
        "significantly worse (within noise): sex=F, race=A (+61.1%, p_adj 0.41); "
        "not testable (n < 30): sex=F, race=B (n=10) (threshold 50.0%)"
    )
    # The explicit key turns the filter off: size alone, as before.
    off = one(
        rb.report(comp(rb, False)),
        policy(subgroups={**SUB, "pie_share_growth": 50, "require_significance": False}),
    )
    assert (off.value, off.passed) == (pytest.approx(GROWTH_FA, rel=1e-12), False)
    assert off.detail.startswith("largest PIE share growth +61.1% for sex=F, race=A")


def test_a_group_whose_accuracy_rose_is_not_judged(rb: SimpleNamespace) -> None:
    # Significant, but better than the overall change: 6 PIEs in a group that gained.
    rows = [(FA, 100, 10, 0.85, 0.95), ({"sex": "M", "race": "A"}, 200, 5, 0.90, 0.86)]
    c = rb.comparison(
        top1_delta=DELTA,
        subgroup_attributes=["sex", "race"],
        subgroups=rb.groups(rows, DELTA, significant=[FA]),
    )
    pol = policy(subgroups={**SUB, "pie_share_growth": 50, "accuracy_gap": 0.01})
    growth, gap = evaluate_gates(rb.report(c), pol)
    assert (growth.passed, growth.value) == (True, None)
    assert "sex=F, race=A (+" in growth.detail
    assert "p_adj 0.001, better than overall)" in growth.detail
    # M, A is 2 points behind the overall change but not significant: named, not counted.
    assert (gap.passed, gap.value) == (True, 0.0)
    assert gap.detail == (
        "no group is significantly worse than the overall shift; over the threshold but not "
        "significantly worse (within noise): sex=M, race=A (extra drop 2.0 pp, p_adj 0.5) "
        "(threshold 1.0 pp)"
    )


def test_accuracy_gap_counts_only_significantly_worse_groups(rb: SimpleNamespace) -> None:
    pol = policy(subgroups={**SUB, "accuracy_gap": 0.02})
    bad = one(rb.report(comp(rb, True)), pol)
    assert (bad.value, bad.passed) == (pytest.approx(0.03, abs=1e-15), False)
    assert bad.detail.startswith(
        "largest extra top-1 drop among significantly worse groups 3.0 pp for sex=F, race=A"
    )
    noise = one(rb.report(comp(rb, False)), pol)
    assert (noise.value, noise.passed) == (0.0, True)
    assert "sex=F, race=A (extra drop 3.0 pp, p_adj 0.41)" in noise.detail


def test_old_rows_without_significance_are_an_input_error(rb: SimpleNamespace) -> None:
    c = comp(rb, True)
    for row in c["subgroups"]:
        del row["significant"]
    report = rb.report(c, validate=False)  # today's schema requires the key
    with pytest.raises(InputError):
        evaluate_gates(report, policy(subgroups={**SUB, "accuracy_gap": 0.5}))


# -- pie_share_growth_excess ---------------------------------------------------------------------


def test_growth_excess_over_the_floor(rb: SimpleNamespace) -> None:
    c = comp(rb, True, floor_growth=20.0)
    c["floors"] = rb.comparison(floors=True)["floors"]
    report = rb.report(c)
    r = one(report, policy(subgroups={**SUB, "pie_share_growth_excess": 40}))
    assert (r.value, r.passed) == (pytest.approx(GROWTH_FA - 20.0, rel=1e-12), False)
    assert r.detail == (
        "largest PIE share growth beyond the seed-noise floor among significantly worse groups "
        "+41.1 pp for sex=F, race=A (growth +61.1%, floor +20.0%); "
        "not testable (n < 30): sex=F, race=B (n=10) (threshold 40.0 pp)"
    )
    assert one(report, policy(subgroups={**SUB, "pie_share_growth_excess": 45})).passed is True
    # Within noise: named with its excess, not judged.
    c2 = copy.deepcopy(c)
    for row in c2["subgroups"]:
        row["significant"] = False
    quiet = one(rb.report(c2), policy(subgroups={**SUB, "pie_share_growth_excess": 40}))
    assert quiet.passed is True
    assert "sex=F, race=A (+41.1 pp beyond the floor, p_adj 0.001)" in quiet.detail


def test_growth_excess_without_floors_is_unevaluable(rb: SimpleNamespace) -> None:
    pol = policy(subgroups={**SUB, "pie_share_growth_excess": 40})
    none = one(rb.report(comp(rb, True)), pol)  # no floors computed, rows without floor keys
    assert none.detail == g.UNEVALUABLE_ERROR.format(
        reason=g.REASON_NO_FLOOR.format(reason="no floor computed")
    )
    bare = comp(rb, True)  # floors, but rows without the floor keys (they parse as None)
    bare["floors"] = rb.comparison(floors=True)["floors"]
    assert one(rb.report(bare), pol).detail == g.UNEVALUABLE_ERROR.format(
        reason=g.REASON_GROUP_FLOOR_NULL.format(groups="sex=F, race=A")
    )
    why = "the reference population has 1 model; a floor needs 2 or more"
    c = comp(rb, True, floor_growth=None)
    c["floors"] = rb.comparison(floors=why)["floors"]
    r = one(rb.report(c), pol)
    assert r.detail == g.UNEVALUABLE_ERROR.format(reason=g.REASON_NO_FLOOR.format(reason=why))
    # Floors exist but not for the judged group.
    c["floors"] = rb.comparison(floors=True)["floors"]
    r = one(rb.report(c), pol)
    assert r.detail == g.UNEVALUABLE_ERROR.format(
        reason=g.REASON_GROUP_FLOOR_NULL.format(groups="sex=F, race=A")
    )


# -- attribute sets ------------------------------------------------------------------------------


def sets_comparison(rb: SimpleNamespace) -> dict[str, Any]:
    """Marginal sex and race sets and their crossing; only sex=F is significantly worse."""
    sex = rb.groups(
        [({"sex": "F"}, 110, 15, 0.9, 0.84), ({"sex": "M"}, 200, 5, 0.9, 0.9)],
        DELTA,
        significant=[{"sex": "F"}],
    )
    race = rb.groups([({"race": "A"}, 300, 15, 0.9, 0.88), ({"race": "B"}, 10, 5, 0.9, 0.5)], DELTA)
    crossed = rb.groups(ROWS, DELTA)
    return rb.comparison(  # type: ignore[no-any-return]
        top1_delta=DELTA,
        subgroup_sets=[(["sex"], sex), (["race"], race), (["sex", "race"], crossed)],
    )


def test_each_attribute_set_is_gated_on_its_own(rb: SimpleNamespace) -> None:
    pol = policy(
        subgroups={
            "attribute_sets": [["sex"], ["race", "sex"]],
            "min_support": 30,
            "accuracy_gap": 0.02,
        }
    )
    results = evaluate_gates(rb.report(sets_comparison(rb)), pol)
    assert [(r.name, r.passed) for r in results] == [
        ("subgroups.accuracy_gap[sex]", False),
        ("subgroups.accuracy_gap[race,sex]", True),
    ]
    assert results[0].value == pytest.approx(0.04)
    assert results[0].detail.startswith("largest extra top-1 drop among significantly worse groups")
    assert "sex=F, race=A (extra drop 3.0 pp, p_adj 0.5)" in results[1].detail


def test_a_missing_attribute_is_named_and_the_other_sets_still_gated(rb: SimpleNamespace) -> None:
    pol = policy(
        subgroups={"attribute_sets": [["sex"], ["age"]], "accuracy_gap": 0.05},
        on_unevaluable="fail",
    )
    sex, age = evaluate_gates(rb.report(sets_comparison(rb)), pol)
    assert (sex.name, sex.status) == ("subgroups.accuracy_gap[sex]", "passed")
    reason = g.REASON_MISSING_ATTRIBUTE.format(name="age", available="label, race, sex")
    assert (age.name, age.status) == ("subgroups.accuracy_gap[age]", "failed")
    assert age.detail == g.UNEVALUABLE_FAIL.format(reason=reason)
    assert reason == (
        "the data have no attribute 'age' (available: label, race, sex); "
        "add it with --attributes CSV"
    )


def test_available_attributes_come_from_the_report_data_when_given(rb: SimpleNamespace) -> None:
    pol = policy(subgroups={"attribute_sets": [["sex"], ["age"]], "accuracy_gap": 0.05})
    # The data carry 'age' but the audit did not cross it: a different reason and flag.
    report = rb.report(sets_comparison(rb), data_attributes=["age", "race", "sex"])
    _, age = evaluate_gates(report, pol)
    assert age.detail == g.UNEVALUABLE_ERROR.format(
        reason=g.REASON_ATTRIBUTES.format(
            got="[sex]; [race]; [sex, race]", want="[age]", want_csv="age"
        )
    )
    report = rb.report(sets_comparison(rb), data_attributes=["race", "sex"])
    _, age = evaluate_gates(report, pol)
    assert "the data have no attribute 'age' (available: label, race, sex)" in age.detail


def test_one_set_keeps_the_plain_name_and_old_reports_fall_back(rb: SimpleNamespace) -> None:
    # attribute_sets with one set, and a report with only subgroup_attributes/subgroups.
    pol = policy(
        subgroups={"attribute_sets": [["race", "sex"]], "accuracy_gap": 0.02, "min_support": 30}
    )
    r = one(rb.report(comp(rb, True)), pol)
    assert (r.name, r.passed) == ("subgroups.accuracy_gap", False)
    c = sets_comparison(rb)
    assert c["subgroup_attributes"] == ["sex"]  # the first set, for back-compat
    r = one(rb.report(c), pol)
    assert (r.name, r.passed) == ("subgroups.accuracy_gap", True)


def test_growth_excess_on_a_lineage_pair_is_unevaluable_and_names_the_plain_gate(
    rb: SimpleNamespace,
) -> None:
    """A lineage pair has no seed floors (no seed noise separates a child from its parent):
    even with floor values in its rows, the excess gate is not judged, and says which is."""
    from compaudit._gates_subgroups import REASON_PAIRED_GROUP_FLOOR

    c = comp(rb, True, floor_growth=20.0)
    c["floors"] = rb.comparison(floors=True)["floors"]
    c["lineage"] = "paired"
    r = one(rb.report(c), policy(subgroups={**SUB, "pie_share_growth_excess": 40}))
    assert r.passed is None
    assert r.detail == g.UNEVALUABLE_ERROR.format(reason=REASON_PAIRED_GROUP_FLOOR)
    assert "gate pie_share_growth instead" in r.detail
