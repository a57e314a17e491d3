"""Gate values, thresholds, unevaluable handling and the verdict, on hand-built reports."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from compaudit import gates as g
from compaudit.errors import ExitStatus, InputError
from compaudit.gates import GateResult, decide_verdict, evaluate_gates, exit_status_for
from compaudit.policy import Policy
from compaudit.results import AuditReport


def policy(**gates: Any) -> Policy:
    extra = {k: gates.pop(k) for k in ("on_unevaluable", "candidates") if k in gates}
    return Policy.model_validate({"version": 1, "gates": gates, **extra})


def one(report: dict[str, Any], pol: Policy) -> GateResult:
    (result,) = evaluate_gates(report, pol)
    return result


def test_top1_drop_value_and_detail(rb: SimpleNamespace) -> None:
    r = one(rb.report(rb.comparison(top1_delta=-0.0123)), policy(top1_drop=0.01))
    assert (r.name, r.candidate, r.threshold, r.passed, r.status) == (
        "top1_drop",
        "cand",
        0.01,
        False,
        "failed",
    )
    assert r.value == pytest.approx(0.0123, abs=1e-15)
    assert r.detail == "top-1 fell by 1.2 pp (threshold 1.0 pp)"
    up = one(rb.report(rb.comparison(top1_delta=0.002)), policy(top1_drop=0.0))
    assert (up.value, up.passed, up.detail) == (
        -0.002,
        True,
        "top-1 rose by 0.20 pp (threshold 0.0 pp)",
    )


def test_unchanged_top1_is_zero_not_negative_zero(rb: SimpleNamespace) -> None:
    r = one(rb.report(rb.comparison(top1_delta=0.0)), policy(top1_drop=0.01))
    assert (r.value, r.passed, r.detail) == (0.0, True, "top-1 unchanged (threshold 1.0 pp)")
    assert math.copysign(1.0, r.value) == 1.0  # -0.0 would print as "-0.0 pp"


def test_boundary_equality_passes_with_round_off(rb: SimpleNamespace) -> None:
    # 0.9 - 0.91 is -0.01000000000000001 in binary floating point.
    delta = 0.9 - 0.91
    assert -delta > 0.01
    assert one(rb.report(rb.comparison(top1_delta=delta)), policy(top1_drop=0.01)).passed is True
    just_over = one(rb.report(rb.comparison(top1_delta=-0.01 - 1e-9)), policy(top1_drop=0.01))
    assert just_over.passed is False
    at = one(rb.report(rb.comparison(cie_rate=0.05, cie_u_rate=0.01)), policy(cie_rate=0.05))
    assert at.passed is True


def test_top5_drop(rb: SimpleNamespace) -> None:
    r = one(rb.report(rb.comparison(top5_delta=-0.02)), policy(top5_drop=0.01))
    assert (r.value, r.passed, r.detail) == (0.02, False, "top-5 fell by 2.0 pp (threshold 1.0 pp)")


@pytest.mark.parametrize(
    ("gate", "value", "detail"),
    [
        ("cie_rate", 0.04, "CIE rate 4.0% (40 examples changed prediction) (threshold 3.0%)"),
        (
            "cie_u_rate",
            0.025,
            "CIE-U rate 2.5% (25 examples right before, wrong after) (threshold 3.0%)",
        ),
        (
            "pie_rate",
            0.015,
            "PIE rate 1.5% (15 examples changed modal prediction) (threshold 3.0%)",
        ),
    ],
)
def test_rate_gates(rb: SimpleNamespace, gate: str, value: float, detail: str) -> None:
    comp = rb.comparison(cie_rate=0.04, cie_u_rate=0.025, pie_rate=0.015, n=1000)
    r = one(rb.report(comp), policy(**{gate: 0.03}))
    assert (r.name, r.value, r.passed, r.detail) == (gate, value, value <= 0.03, detail)


CLASSES = [
    (0, -0.08, True),  # significantly worse
    (1, -0.12, False),  # worst, but not significant
    (2, 0.05, True),  # significantly better: not "worse"
    (3, -0.02, True),  # significantly worse
    (4, 0.01, False),
]


def classes(rb: SimpleNamespace) -> list[dict[str, Any]]:
    return [rb.klass(c, nrd, significant=s, p=0.001 if s else 0.4) for c, nrd, s in CLASSES]


def test_significant_classes_counts_only_worse(rb: SimpleNamespace) -> None:
    report = rb.report(rb.comparison(classes=classes(rb)))
    r = one(report, policy(significant_classes=2))
    assert (r.value, r.passed) == (2, True)
    assert r.detail == (
        "2 classes significantly worse than the overall shift: 0 (c0), 3 (c3) (threshold 2)"
    )
    assert one(report, policy(significant_classes=1)).passed is False


def test_significant_classes_names_untested(rb: SimpleNamespace) -> None:
    rows = [rb.klass(0, 0.0), rb.klass(1, 0.0, p=None, name="rare")]
    r = one(rb.report(rb.comparison(classes=rows)), policy(significant_classes=0))
    assert r.detail == (
        "0 classes significantly worse than the overall shift; not tested: 1 (rare) (threshold 0)"
    )


def test_class_recall_drop_all_and_significant_only(rb: SimpleNamespace) -> None:
    report = rb.report(rb.comparison(classes=classes(rb)))
    r = one(report, policy(class_recall_drop=0.1))
    assert (r.value, r.passed) == (0.12, False)
    assert r.detail == "worst normalized recall drop 12.0 pp in class 1 (c1) (threshold 10.0 pp)"
    s = one(report, policy(class_recall_drop=0.1, class_recall_drop_significant_only=True))
    assert (s.value, s.passed) == (0.08, True)
    # The worst class is left out as not significant, but named.
    assert s.detail == (
        "worst normalized recall drop among significant classes 8.0 pp in class 0 (c0); "
        "over the threshold but within noise: 1 (c1) (drop 12.0 pp, p_adj 0.4) "
        "(threshold 10.0 pp)"
    )


def test_class_recall_drop_edge_cases(rb: SimpleNamespace) -> None:
    none_sig = rb.report(rb.comparison(classes=[rb.klass(0, -0.3), rb.klass(1, 0.3)]))
    r = one(none_sig, policy(class_recall_drop=0.05, class_recall_drop_significant_only=True))
    assert (r.value, r.passed) == (0.0, True)
    # No class below the overall shift: the drop is clamped at 0.
    better = rb.report(rb.comparison(classes=[rb.klass(0, 0.01), rb.klass(1, 0.02)]))
    assert one(better, policy(class_recall_drop=0.0)).value == 0.0


# The size-only behaviour (require_significance: false); significance has its own tests.
SUB = {"attributes": ["sex", "race"], "min_support": 30, "require_significance": False}


def test_pie_share_growth(rb: SimpleNamespace, fairness_comparison: dict[str, Any]) -> None:
    report = rb.report(fairness_comparison)
    r = one(report, policy(subgroups={**SUB, "pie_share_growth": 100}))
    # (F, A): 10 of 20 PIEs = 50 %, 90 of 290 non-PIEs = 31.03 %: growth 50*290/9000 - 1 = +61.1 %.
    # (F, B): 25 % of PIEs, 5 of 290 non-PIEs: +1350 %, but n = 10 < 30: listed as not
    # testable, not used.
    assert r.name == "subgroups.pie_share_growth"
    assert r.value == pytest.approx(550 / 9, rel=1e-12)
    assert r.passed is True
    assert r.detail == (
        "largest PIE share growth +61.1% for sex=F, race=A; "
        "not testable (n < 30): sex=F, race=B (n=10) (threshold 100.0%)"
    )
    assert one(report, policy(subgroups={**SUB, "pie_share_growth": 61})).passed is False
    # With min_support 5 the small group counts and dominates.
    small = one(report, policy(subgroups={**SUB, "min_support": 5, "pie_share_growth": 100}))
    assert small.value == pytest.approx(1350.0, rel=1e-12)
    assert "not testable" not in small.detail


def test_accuracy_gap(rb: SimpleNamespace, fairness_comparison: dict[str, Any]) -> None:
    report = rb.report(fairness_comparison)
    # (F, A) fell 0.05 while the whole set fell 0.02: an extra drop of 0.03 (at the threshold).
    r = one(report, policy(subgroups={**SUB, "accuracy_gap": 0.03}))
    assert r.value == pytest.approx(0.03, abs=1e-15)
    assert r.passed is True
    assert r.detail.startswith("largest extra top-1 drop 3.0 pp for sex=F, race=A; not testable")
    assert one(report, policy(subgroups={**SUB, "accuracy_gap": 0.029})).passed is False


def test_pie_share_growth_without_pies_and_all_pie_group(rb: SimpleNamespace) -> None:
    delta = 0.0
    rows = [({"sex": "F"}, 50, 0, 0.9, 0.9), ({"sex": "M"}, 50, 0, 0.9, 0.9)]
    comp = rb.comparison(
        pie_rate=0.0, subgroup_attributes=["sex"], subgroups=rb.groups(rows, delta)
    )
    pol = policy(
        subgroups={"attributes": ["sex"], "pie_share_growth": 0, "require_significance": False}
    )
    r = one(rb.report(comp), pol)
    assert (r.value, r.passed) == (None, True)
    assert r.detail.startswith("no PIEs, so no group is over-represented")
    rows = [({"sex": "F"}, 40, 40, 0.9, 0.0), ({"sex": "M"}, 60, 0, 0.9, 0.9)]
    comp = rb.comparison(
        pie_rate=0.4, subgroup_attributes=["sex"], subgroups=rb.groups(rows, delta)
    )
    r = one(rb.report(comp), pol)
    assert (r.value, r.passed, r.status) == (None, False, "failed")
    assert r.detail == (
        "unbounded growth: only PIEs in sex=F; too few PIEs to judge growth (< 5): sex=M (0) "
        "(threshold 0.0%)"
    )


def test_pie_share_growth_ignores_groups_with_too_few_pies(rb: SimpleNamespace) -> None:
    # sex=F: 4 of 30 PIEs (13.3%) against 36 of 470 non-PIEs (7.7%), +73% from four PIEs.
    rows = [({"sex": "F"}, 40, 4, 0.9, 0.9), ({"sex": "M"}, 460, 26, 0.9, 0.9)]
    comp = rb.comparison(pie_rate=0.06, subgroup_attributes=["sex"], subgroups=rb.groups(rows, 0.0))
    sub = {"attributes": ["sex"], "pie_share_growth": 50, "require_significance": False}
    r = one(rb.report(comp), policy(subgroups=sub))
    assert r.passed is True
    assert "too few PIEs to judge growth (< 5): sex=F (4)" in r.detail
    assert r.value == pytest.approx(
        next(g for g in comp["subgroups"] if g["group"]["sex"] == "M")["pct_growth"]
    )
    strict = one(rb.report(comp), policy(subgroups={**sub, "min_pies": 0}))
    assert strict.passed is False  # min_pies: 0 judges every group, as before
    # Groups to judge but none with min_pies PIEs: unevaluable, never a pass.
    none = one(rb.report(comp), policy(subgroups={**sub, "min_pies": 100}))
    assert (none.value, none.passed, none.status) == (None, None, "error")
    assert none.detail.startswith(
        g.UNEVALUABLE_ERROR.format(reason="no testable group has 100 or more PIEs")
    )


def test_attributes_order_does_not_matter(
    rb: SimpleNamespace, fairness_comparison: dict[str, Any]
) -> None:
    pol = policy(subgroups={**SUB, "attributes": ["race", "sex"], "accuracy_gap": 0.029})
    r = one(rb.report(fairness_comparison), pol)
    assert (r.passed, r.value) == (False, pytest.approx(0.03))


UNEVALUABLE_CASES = [
    ("top5", g.REASON_NO_TOP5),
    ("no-attributes", g.REASON_NO_ATTRIBUTES),
    (
        "missing",
        g.REASON_MISSING_ATTRIBUTE.format(name="age", available="label, race, sex"),
    ),
    (
        "mismatch",
        g.REASON_ATTRIBUTES.format(got="[sex, race]", want="[sex]", want_csv="sex"),
    ),
    (
        "support",
        g.REASON_NO_SUPPORT.format(
            min_support=500,
            groups="sex=F, race=A (n=100), sex=M, race=A (n=200), sex=F, race=B (n=10)",
        ),
    ),
    ("nan", g.REASON_NOT_FINITE.format(key="top1_delta", value=math.nan)),
]


def unevaluable_setup(
    rb: SimpleNamespace, comp: dict[str, Any], case: str, mode: str
) -> tuple[dict[str, Any], Policy]:
    extra: dict[str, Any] = {"on_unevaluable": mode}
    if case == "top5":
        comp["top5_delta"] = None
        return comp, policy(top5_drop=0.01, **extra)
    if case == "nan":
        comp["top1_delta"] = math.nan
        return comp, policy(top1_drop=0.01, **extra)
    attributes = {
        "no-attributes": None,
        "missing": ["age"],
        "mismatch": ["sex"],
        "support": ["sex", "race"],
    }[case]
    sub = {"attributes": attributes, "min_support": 500, "accuracy_gap": 0.03}
    return comp, policy(subgroups=sub, **extra)


@pytest.mark.parametrize(("case", "reason"), UNEVALUABLE_CASES)
@pytest.mark.parametrize(
    ("mode", "passed", "status", "template", "verdict"),
    [
        ("error", None, "error", g.UNEVALUABLE_ERROR, "error"),
        ("fail", False, "failed", g.UNEVALUABLE_FAIL, "fail"),
        # A lone skipped gate leaves nothing evaluated: an error, never a pass.
        ("skip-with-warning", None, "skipped", g.UNEVALUABLE_SKIP, "error"),
    ],
)
def test_unevaluable_gates_follow_policy(
    rb: SimpleNamespace,
    fairness_comparison: dict[str, Any],
    case: str,
    reason: str,
    mode: str,
    passed: bool | None,
    status: str,
    template: str,
    verdict: str,
) -> None:
    comp, pol = unevaluable_setup(rb, fairness_comparison, case, mode)
    r = one(rb.report(comp), pol)
    assert (r.value, r.passed, r.status) == (None, passed, status)
    assert r.detail == template.format(reason=reason)
    assert decide_verdict([r], []) == verdict
    if mode == "skip-with-warning":
        assert r.detail.startswith("warning: ")


def test_per_candidate_overrides(rb: SimpleNamespace) -> None:
    report = rb.report(
        rb.comparison("pruned", top1_delta=-0.008), rb.comparison("int8", top1_delta=-0.008)
    )
    pol = policy(top1_drop=0.01, candidates={"int8": {"gates": {"top1_drop": 0.005}}})
    results = evaluate_gates(report, pol)
    assert [(r.candidate, r.threshold, r.passed) for r in results] == [
        ("pruned", 0.01, True),
        ("int8", 0.005, False),
    ]
    assert decide_verdict(results, []) == "fail"


def test_one_result_per_gate_per_comparison_in_fixed_order(rb: SimpleNamespace) -> None:
    comps = [rb.comparison(name, classes=classes(rb)) for name in ("a", "b")]
    pol = policy(
        class_recall_drop=0.2, pie_rate=0.1, top1_drop=0.1, significant_classes=5, cie_u_rate=0.1
    )
    results = evaluate_gates(rb.report(*comps), pol)
    names = ["top1_drop", "cie_u_rate", "pie_rate", "significant_classes", "class_recall_drop"]
    assert [(r.candidate, r.name) for r in results] == [(c, n) for c in "ab" for n in names]
    assert evaluate_gates(rb.report(*comps), policy()) == []


def test_gate_dicts_follow_the_report_schema(
    rb: SimpleNamespace, fairness_comparison: dict[str, Any]
) -> None:
    pol = policy(
        top1_drop=0.01,
        top5_drop=0.0,
        subgroups={**SUB, "accuracy_gap": 0.01, "pie_share_growth": 10},
        on_unevaluable="skip-with-warning",
    )
    fairness_comparison["top5_delta"] = None
    results = evaluate_gates(rb.report(fairness_comparison), pol)
    dicts = [r.to_dict() for r in results]
    rb.report(fairness_comparison, gates=dicts)  # validates
    assert dicts[0] == {
        "name": "top1_drop",
        "candidate": "cand",
        "value": 0.02,
        "threshold": 0.01,
        "passed": False,
        "detail": "top-1 fell by 2.0 pp (threshold 1.0 pp)",
        "status": "failed",
    }
    item = rb.schema()["properties"]["gates"]["items"]
    for d in dicts:
        jsonschema.validate(d, item)


def test_typed_and_dict_reports_give_the_same_gates(
    rb: SimpleNamespace, fairness_comparison: dict[str, Any]
) -> None:
    doc = rb.report(fairness_comparison, rb.comparison("b", classes=classes(rb)))
    pol = policy(
        top1_drop=0.01,
        cie_rate=0.01,
        significant_classes=0,
        class_recall_drop=0.1,
        subgroups={**SUB, "accuracy_gap": 0.01, "pie_share_growth": 10},
    )
    typed = AuditReport.from_dict(doc)
    assert evaluate_gates(typed, pol) == evaluate_gates(doc, pol)
    assert len(evaluate_gates(typed, pol)) == 12


@pytest.mark.parametrize(
    ("change", "where", "problem"),
    [
        (lambda c: c.pop("cie"), "comparisons[0]", "missing key 'cie'"),
        # The schema requires ``significant``: a row without it is not "not significant".
        (
            lambda c: c["classes"][1].pop("significant"),
            "comparisons[0].classes[1]",
            "missing key 'significant'",
        ),
        (
            lambda c: c["classes"][1].update(significant="yes"),
            "comparisons[0].classes[1].significant",
            "expected bool",
        ),
        (lambda c: c["pie"].update(count=1.5), "comparisons[0].pie.count", "expected int"),
    ],
)
def test_malformed_report_is_one_input_error(
    rb: SimpleNamespace, change: Any, where: str, problem: str
) -> None:
    comp = rb.comparison()
    change(comp)
    with pytest.raises(InputError) as info:
        evaluate_gates(rb.report(comp, validate=False), policy(cie_rate=0.1))
    assert str(info.value) == g.ERR_REPORT_SHAPE.format(where=where, problem=problem)


def test_a_report_without_comparisons_is_an_input_error() -> None:
    with pytest.raises(InputError) as info:
        evaluate_gates({}, policy(cie_rate=0.1))
    assert str(info.value) == g.ERR_REPORT_SHAPE.format(
        where="top level", problem="missing key 'schema'"
    )


def result(status: str) -> GateResult:
    passed = {"passed": True, "failed": False}.get(status)
    return GateResult(
        name="x", candidate="c", value=None, threshold=0.0, passed=passed, detail="", status=status
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("statuses", "errors", "verdict", "code"),
    [
        ([], [], "error", 2),  # nothing evaluated: no gate that cannot fail
        (["passed", "skipped"], [], "pass", 0),
        (["passed", "failed"], [], "fail", 1),
        (["failed", "error"], [], "error", 2),
        (["passed"], ["data file unreadable"], "error", 2),
        (["skipped"], [], "error", 2),
    ],
)
def test_verdict_and_exit_status(
    statuses: list[str], errors: list[str], verdict: str, code: int
) -> None:
    v = decide_verdict([result(s) for s in statuses], errors)
    assert v == verdict
    assert exit_status_for(v) == ExitStatus(code)
    assert int(exit_status_for(v)) == code


def test_gate_result_rejects_inconsistent_status() -> None:
    with pytest.raises(ValueError, match="status 'passed' with passed=False"):
        GateResult(
            name="x",
            candidate=None,
            value=1.0,
            threshold=0.0,
            passed=False,
            detail="",
            status="passed",
        )
    with pytest.raises(ValueError, match="unknown verdict"):
        exit_status_for("maybe")  # type: ignore[arg-type]


def test_ungated_exits_ok_and_is_never_decided() -> None:
    assert exit_status_for("ungated") is ExitStatus.OK
    for statuses in ([], ["skipped"], ["passed"], ["failed"], ["error"]):
        assert decide_verdict([result(s) for s in statuses], []) != "ungated"


def test_gate_result_is_the_results_class() -> None:
    from compaudit import results

    assert g.GateResult is results.GateResult


def test_report_from_before_floors_parses_and_excess_gates_are_unevaluable(
    rb: SimpleNamespace,
) -> None:
    comp = rb.comparison()
    comp.pop("floors")
    (result,) = evaluate_gates(rb.report(comp, validate=False), policy(pie_rate_excess=0.01))
    assert result.status == "error"
    assert "no seed-noise floors" in result.detail
