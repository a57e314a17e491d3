"""Rate gates against the seed-noise floor, the CIE basis, classes beyond their floor, units."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from compaudit import _gates_common as common
from compaudit import gates as g
from compaudit.gates import GateResult, evaluate_gates
from compaudit.policy import Policy


def policy(**gates: Any) -> Policy:
    extra = {k: gates.pop(k) for k in ("on_unevaluable",) if k in gates}
    return Policy.model_validate({"version": 1, "gates": gates, **extra})


def one(report: dict[str, Any], pol: Policy) -> GateResult:
    (result,) = evaluate_gates(report, pol)
    return result


def err(reason: str) -> str:
    return g.UNEVALUABLE_ERROR.format(reason=reason)


# -- units in sentences --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "x", "text"),
    [
        (common.pct, 0.031, "3.1%"),
        (common.pct, 0.0006, "0.060%"),
        (common.pct, 0.0, "0.0%"),
        (common.pct, 0.1234, "12.3%"),
        (common.pp, 0.0042, "0.42 pp"),
        (common.pp, -6.64e-05, "-0.0066 pp"),
        (common.pp, 0.01531, "1.5 pp"),
        (common.signed_pp, 0.007, "+0.70 pp"),
        (common.signed_pp, 0.012, "+1.2 pp"),
        (common.signed_pp, -0.003, "-0.30 pp"),
        (common.signed_pp, 0.0, "+0.0 pp"),
    ],
)
def test_numbers_are_written_in_percent_and_points(fn: Any, x: float, text: str) -> None:
    assert fn(x) == text


RAW = re.compile(r"\d\.\d{5,}|\de-\d")  # 0.01531, -6.64e-05: raw fractions


def test_no_detail_carries_a_raw_fraction(rb: SimpleNamespace) -> None:
    classes = [
        rb.klass(0, -0.01531, significant=True, p=1e-6, floor=-0.0000664),
        rb.klass(1, 0.00213, floor=-0.0123),
    ]
    comps = [
        rb.comparison(
            "a",
            top1_delta=-0.0000664,
            top5_delta=-0.01531,
            cie_rate=0.01531,
            cie_u_rate=0.00664,
            pie_rate=0.00123,
            classes=classes,
            floors=True,
            pie_floor=0.000987,
            cie_floor=0.0123,
            basis="mean-over-pairs",
        ),
        rb.comparison("b", cie_rate=0.0000664, basis="paired", pairs=3, classes=classes),
    ]
    pol = policy(
        top1_drop=0.00123,
        top5_drop=0.0000664,
        cie_rate=0.01234,
        cie_u_rate=0.00123,
        pie_rate=0.01,
        pie_rate_excess=0.000123,
        cie_rate_excess=0.01,
        significant_classes=0,
        class_recall_drop=0.00123,
        class_recall_drop_beyond_floor=True,
        on_unevaluable="skip-with-warning",
    )
    results = evaluate_gates(rb.report(*comps), pol)
    assert len(results) == 2 * 9
    for r in results:
        assert not RAW.search(r.detail), r.detail
    assert any(r.value is not None and r.value == pytest.approx(0.0000664) for r in results)


# -- PIE / CIE rates beyond the floor ------------------------------------------------------------


def test_pie_rate_excess(rb: SimpleNamespace) -> None:
    c = rb.comparison(pie_rate=0.031, floors=True, pie_floor=0.024)
    r = one(rb.report(c), policy(pie_rate_excess=0.005))
    assert (r.name, r.passed) == ("pie_rate_excess", False)
    assert r.value == pytest.approx(0.007, abs=1e-15)  # raw fraction
    assert r.threshold == 0.005
    assert r.detail == (
        "PIE rate 3.1% (seed-noise floor 2.4%, excess +0.70 pp, p 0.03) (threshold 0.50 pp)"
    )
    assert one(rb.report(c), policy(pie_rate_excess=0.01)).passed is True
    # Below the floor: a negative excess passes any threshold.
    low = one(
        rb.report(rb.comparison(pie_rate=0.01, floors=True, pie_floor=0.024)),
        policy(pie_rate_excess=0.0),
    )
    assert (low.passed, low.value) == (True, pytest.approx(-0.014))
    assert "excess -1.4 pp" in low.detail


def test_raw_pie_rate_shows_its_floor_and_the_per_example_test(rb: SimpleNamespace) -> None:
    c = rb.comparison(pie_rate=0.031, floors=True, pie_floor=0.024)
    c["pie"]["n_beyond_noise"] = 4
    r = one(rb.report(c), policy(pie_rate=0.05))
    assert r.detail == (
        "PIE rate 3.1% (31 examples changed modal prediction; seed-noise floor 2.4%, "
        "excess +0.70 pp; 4 beyond seed noise by the per-example test) (threshold 5.0%)"
    )


@pytest.mark.parametrize("gate", ["pie_rate_excess", "cie_rate_excess"])
def test_excess_gates_without_a_floor_are_unevaluable(rb: SimpleNamespace, gate: str) -> None:
    block = gate.split("_")[0]
    pol = policy(**{gate: 0.01})
    none = one(rb.report(rb.comparison(basis="mean-over-pairs")), pol)
    assert none.detail == err(g.REASON_NO_FLOOR.format(reason="no floor computed"))
    why = "one model per side: seed noise cannot be estimated"
    off = one(rb.report(rb.comparison(basis="mean-over-pairs", floors=why)), pol)
    assert off.detail == err(g.REASON_NO_FLOOR.format(reason=why))
    assert off.status == "error"
    nulls = one(rb.report(rb.comparison(basis="mean-over-pairs", floors=True)), pol)
    what = "PIE rate" if block == "pie" else "CIE rate"
    assert nulls.detail == err(
        g.REASON_NO_FLOOR.format(reason=g.REASON_NO_VALUE_FLOOR.format(what=what))
    )
    # A block without its floor (an older report) reads as a null floor.
    c = rb.comparison(basis="mean-over-pairs", floors=True)
    del c[block]["floor"]
    assert one(rb.report(c), pol).detail == nulls.detail
    # Floors unavailable and the report does not say why.
    c = rb.comparison(basis="mean-over-pairs", floors=why)
    c["floors"]["reason"] = None
    told = one(rb.report(c), pol)
    assert told.detail == err(g.REASON_NO_FLOOR.format(reason=common.REASON_FLOORS_UNKNOWN))


def test_cie_rate_excess_on_mean_over_pairs_and_paired(rb: SimpleNamespace) -> None:
    c = rb.comparison(cie_rate=0.062, basis="mean-over-pairs", floors=True, cie_floor=0.058)
    r = one(rb.report(c), policy(cie_rate_excess=0.01))
    assert (r.passed, r.value) == (True, pytest.approx(0.004))
    assert r.detail == (
        "CIE rate 6.2% (seed-noise floor 5.8%, excess +0.40 pp, p 0.03) (threshold 1.0 pp)"
    )
    paired = rb.comparison(cie_rate=0.004, basis="paired", pairs=4, floors=True)
    r = one(rb.report(paired), policy(cie_rate_excess=0.01))
    assert r.detail == err(g.REASON_PAIRED_CIE)


def test_pie_rate_excess_on_a_lineage_pair_is_unevaluable(rb: SimpleNamespace) -> None:
    """A floor from independently seeded halves would let a paired PIE rate pass however
    high (the demo's int8: excess -0.93 pp whatever it forgot): gate pie_rate instead."""
    c = rb.comparison(pie_rate=0.05, basis="paired", pairs=4, floors=True, pie_floor=0.06)
    c["lineage"] = "paired"
    r = one(rb.report(c), policy(pie_rate_excess=0.01))
    assert r.detail == err(g.REASON_PAIRED_PIE)
    assert r.passed is None
    c["lineage"] = "none"
    assert one(rb.report(c), policy(pie_rate_excess=0.01)).passed is True


def test_cie_rate_states_its_basis(rb: SimpleNamespace) -> None:
    single = one(rb.report(rb.comparison(cie_rate=0.004)), policy(cie_rate=0.01))
    assert single.detail == "CIE rate 0.40% (4 examples changed prediction) (threshold 1.0%)"
    paired = rb.comparison(cie_rate=0.004, basis="paired", pairs=4)
    r = one(rb.report(paired), policy(cie_rate=0.01))
    assert (r.value, r.passed) == (0.004, True)
    assert r.detail == (
        "CIE rate 0.40% (4.0 examples changed prediction; "
        "paired: mean over 4 (parent, child) pairs) (threshold 1.0%)"
    )
    mean = rb.comparison(cie_rate=0.062, basis="mean-over-pairs", floors=True, cie_floor=0.058)
    r = one(rb.report(mean), policy(cie_rate=0.01))
    assert (r.value, r.passed) == (0.062, False)
    assert r.detail == (
        "CIE rate 6.2% (62.0 examples changed prediction; mean over all model pairs: seed "
        "disagreement, not what compression changed; use lineage (--paired) or cie_rate_excess; "
        "seed-noise floor 5.8%, excess +0.40 pp) (threshold 1.0%)"
    )
    u = one(rb.report(mean), policy(cie_u_rate=0.05))
    assert u.detail.endswith("use lineage (--paired)) (threshold 5.0%)")


# -- classes beyond their floor ------------------------------------------------------------------


def floored(rb: SimpleNamespace) -> list[dict[str, Any]]:
    return [
        rb.klass(0, -0.08, significant=True, p=0.001, floor=-0.05),  # beyond its floor
        rb.klass(1, -0.12, p=0.4, floor=-0.15),  # a noisy class: within its floor
        rb.klass(2, -0.06, p=0.2, floor=-0.04),  # beyond, not significant
        rb.klass(3, 0.02, floor=-0.03),
    ]


def test_class_recall_drop_beyond_floor(rb: SimpleNamespace) -> None:
    report = rb.report(rb.comparison(classes=floored(rb), floors=True))
    r = one(report, policy(class_recall_drop=0.05, class_recall_drop_beyond_floor=True))
    assert (r.value, r.passed) == (0.08, False)
    assert r.detail == (
        "worst normalized recall drop among classes beyond their seed-noise floor 8.0 pp in "
        "class 0 (c0) (seed-noise floor -5.0 pp); over the threshold but within noise: "
        "1 (c1) (drop 12.0 pp, p_adj 0.4, floor -15.0 pp) (threshold 5.0 pp)"
    )
    both = one(
        report,
        policy(
            class_recall_drop=0.1,
            class_recall_drop_beyond_floor=True,
            class_recall_drop_significant_only=True,
        ),
    )
    assert (both.value, both.passed) == (0.08, True)
    assert both.detail.startswith(
        "worst normalized recall drop among significant classes beyond their seed-noise floor"
    )
    # Without the filter the noisy class decides.
    plain = one(report, policy(class_recall_drop=0.1))
    assert (plain.value, plain.passed) == (0.12, False)


def test_class_recall_drop_none_beyond_floor(rb: SimpleNamespace) -> None:
    rows = [rb.klass(0, -0.04, floor=-0.05), rb.klass(1, 0.04, floor=-0.05)]
    report = rb.report(rb.comparison(classes=rows, floors=True))
    r = one(report, policy(class_recall_drop=0.01, class_recall_drop_beyond_floor=True))
    assert (r.value, r.passed) == (0.0, True)
    assert r.detail == (
        "no class falls beyond its seed-noise floor; over the threshold but within noise: "
        "0 (c0) (drop 4.0 pp, p_adj 0.5, floor -5.0 pp) (threshold 1.0 pp)"
    )


def test_class_recall_drop_beyond_floor_unevaluable(rb: SimpleNamespace) -> None:
    pol = policy(class_recall_drop=0.05, class_recall_drop_beyond_floor=True)
    bare = [rb.klass(0, -0.1)]  # rows without the floor keys (they parse as None)
    none = one(rb.report(rb.comparison(classes=bare)), pol)
    assert none.detail == err(g.REASON_NO_FLOOR.format(reason="no floor computed"))
    why = "one model per side: seed noise cannot be estimated"
    rows = [rb.klass(0, -0.1, floor=None)]
    off = one(rb.report(rb.comparison(classes=rows, floors=why)), pol)
    assert off.detail == err(g.REASON_NO_FLOOR.format(reason=why))
    gap = one(rb.report(rb.comparison(classes=rows, floors=True)), pol)
    assert gap.detail == err(g.REASON_CLASS_FLOOR_NULL.format(classes="0 (c0)"))
    assert one(rb.report(rb.comparison(classes=bare, floors=True)), pol).detail == gap.detail


def test_significant_classes_reads_the_test_not_the_floor(rb: SimpleNamespace) -> None:
    report = rb.report(rb.comparison(classes=floored(rb), floors=True))
    r = one(report, policy(significant_classes=0))
    assert (r.value, r.passed) == (1, False)
    assert r.detail == ("1 class significantly worse than the overall shift: 0 (c0) (threshold 0)")
