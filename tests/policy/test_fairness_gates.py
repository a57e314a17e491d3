"""The fairness gates: planted damage fails them, seed noise does not, and the rule
(beyond both the threshold and the seed-noise floor) on hand-made sets."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compaudit import _gates_fairness as gf
from compaudit._gates_common import Env, Measured, Unevaluable
from compaudit.engine import audit
from compaudit.errors import PolicyError
from compaudit.gates import evaluate_gates, judge
from compaudit.policy import Policy, load_policy
from compaudit.population import Population
from compaudit.report.base import validate_report
from compaudit.results import AuditReport, Comparison, FairnessIncrease, FairnessSet
from compaudit.settings import AuditSettings

N, K = 800, 5
DPD, EOD = "demographic_parity_difference_increase", "equalized_odds_difference_increase"


def _populations(damage: float, seed: int) -> tuple[Population, Population]:
    rng = np.random.default_rng(seed)
    sex = rng.choice(np.array(["F", "M"]), N)
    age = rng.choice(np.array(["old", "young"]), N)
    y = (rng.random(N) < 0.5).astype(np.int64)
    p_ok = rng.beta(8, 2, N)
    preds = np.where(rng.random((2 * K, N)) < p_ok, y, 1 - y)
    cand = preds[K:].copy()
    # Planted damage: the candidate calls a share of the women's positives negative.
    hit = ((sex == "F") & (y == 1))[None, :] & (rng.random((K, N)) < damage)
    cand[hit] = 0
    attrs = {"sex": sex, "age": age}
    ids = np.arange(N)

    def make(p: np.ndarray) -> Population:
        return Population(p, y, 2, ids=ids, attributes=attrs)

    return make(preds[:K]), make(cand)


@pytest.fixture(scope="module")
def damaged() -> AuditReport:
    ref, cand = _populations(0.4, seed=1)
    settings = AuditSettings(attribute_sets=(("sex", "age"),))
    return audit(ref, {"pruned": cand}, settings=settings).report()


@pytest.fixture(scope="module")
def seed_only() -> AuditReport:
    # One seed-only draw; how often such a draw fails (at most alpha) is measured by
    # tests/analysis/test_fairness_calibration.py.
    ref, cand = _populations(0.0, seed=3)
    return audit(ref, {"retrained": cand}).report()


def policy(**gates: Any) -> Policy:
    return Policy.model_validate({"version": 1, "gates": gates})


def test_planted_damage_fails_the_equalized_odds_gate(damaged: AuditReport) -> None:
    comp = damaged.comparisons[0]
    # Marginal groups first, then the intersection the settings asked for.
    assert [(f.attributes, f.kind) for f in comp.fairness] == [
        (("sex",), "marginal"),
        (("age",), "marginal"),
        (("sex", "age"), "intersection"),
    ]
    results = evaluate_gates(damaged, policy(**{EOD: 0.02, DPD: 0.02}))
    by_name = {r.name: r for r in results}
    assert list(by_name) == [
        f"{DPD}[sex]", f"{DPD}[age]", f"{DPD}[sex,age]",
        f"{EOD}[sex]", f"{EOD}[age]", f"{EOD}[sex,age]",
    ]  # fmt: skip
    sex = by_name[f"{EOD}[sex]"]
    fs = comp.fairness[0]
    inc = fs.equalized_odds_difference_increase
    assert sex.value == inc.value
    assert inc.floor is not None
    assert sex.value is not None
    assert sex.value > max(0.02, inc.floor)
    assert sex.status == "failed"
    assert "seed-noise floor" in sex.detail
    assert sex.detail.endswith("(threshold 2.0 pp)")
    # Age carries no damage: within the threshold or the floor.
    assert by_name[f"{EOD}[age]"].passed is True
    assert by_name[f"{EOD}[sex,age]"].passed is False


def test_seed_only_candidate_passes_even_at_threshold_zero(seed_only: AuditReport) -> None:
    results = evaluate_gates(seed_only, policy(**{EOD: 0.0, DPD: 0.0}))
    assert {r.name for r in results} == {f"{g}[{a}]" for g in (DPD, EOD) for a in ("age", "sex")}
    assert all(r.status == "passed" for r in results), [r.detail for r in results]


def test_report_round_trips_and_validates(damaged: AuditReport) -> None:
    doc = damaged.to_dict()
    validate_report(doc)
    back = AuditReport.from_dict(doc)
    assert back.comparisons[0].fairness == damaged.comparisons[0].fairness
    assert evaluate_gates(doc, policy(**{EOD: 0.02})) == evaluate_gates(
        damaged, policy(**{EOD: 0.02})
    )


def test_judge_sets_the_verdict(damaged: AuditReport) -> None:
    ref, cand = _populations(0.4, seed=1)
    result = audit(ref, {"pruned": cand})
    assert judge(result, policy(**{EOD: 0.02})).verdict == "fail"
    assert judge(result, policy(**{EOD: 0.9})).verdict == "pass"


# -- the rule on hand-made sets ------------------------------------------------------------


def _with(comp: Comparison, **increase: Any) -> Comparison:
    fs = comp.fairness[0]
    new = dataclasses.replace(fs, equalized_odds_difference_increase=FairnessIncrease(**increase))
    return dataclasses.replace(comp, fairness=(new,))


def _run(comp: Comparison, threshold: float) -> tuple[bool | None, str]:
    ((_, outcome),) = gf.equalized_odds_difference_increase(
        comp, policy(**{EOD: threshold}).gates, Env()
    )
    assert isinstance(outcome, Measured)
    return outcome.passed, outcome.detail


def test_over_the_threshold_but_within_the_floor_passes(seed_only: AuditReport) -> None:
    comp = _with(seed_only.comparisons[0], value=0.05, floor=0.06, excess=-0.01)
    passed, detail = _run(comp, 0.02)
    assert passed is True
    assert detail.endswith("seed-noise floor +6.0 pp, excess -1.0 pp: within seed noise")
    assert detail.startswith("largest equalized-odds difference increase +5.0 pp")


def test_beyond_both_fails_and_without_floor_the_threshold_decides(
    seed_only: AuditReport,
) -> None:
    comp = seed_only.comparisons[0]
    assert _run(_with(comp, value=0.05, floor=0.03, excess=0.02), 0.02)[0] is False
    assert _run(_with(comp, value=0.05, floor=0.03, excess=0.02), 0.06)[0] is True
    passed, detail = _run(_with(comp, value=0.05), 0.02)
    assert passed is False
    assert detail.endswith(gf.NO_FLOOR)


def test_undefined_disparity_and_no_fairness_are_unevaluable(seed_only: AuditReport) -> None:
    comp = _with(seed_only.comparisons[0], value=None)
    ((_, outcome),) = gf.equalized_odds_difference_increase(
        comp, policy(**{EOD: 0.02}).gates, Env()
    )
    fs: FairnessSet = comp.fairness[0]
    assert outcome == Unevaluable(
        gf.REASON_NO_DISPARITY.format(
            what="equalized-odds difference", attrs="age", min_support=fs.min_support
        )
    )
    bare = dataclasses.replace(comp, fairness=())
    (result,) = evaluate_gates(
        dataclasses.replace(seed_only, comparisons=(bare,)), policy(**{EOD: 0.02})
    )
    assert result.status == "error"
    assert result.detail == f"cannot be evaluated: {gf.REASON_NO_FAIRNESS}"


def test_policy_refuses_a_threshold_that_can_never_fail(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"version: 1\ngates:\n  {DPD}: 1.0\n  {EOD}: 0.05\n")
    with pytest.raises(PolicyError, match="can never fail"):
        load_policy(path)
    path.write_text(f"version: 1\ngates:\n  {DPD}: 0.05\n  {EOD}: 0.05\n")
    assert load_policy(path).gates.equalized_odds_difference_increase == 0.05


# -- the Fairness section of each format ----------------------------------------------------


def test_every_format_shows_the_fairness_section(damaged: AuditReport) -> None:
    from rich.console import Console

    from compaudit.report._fairness import fairness_html, fairness_terminal, summary_rows
    from compaudit.report.markdown import render_markdown

    comp = damaged.comparisons[0]
    rows = summary_rows(comp)
    fs = comp.fairness[0]
    eo = fs.equalized_odds_difference
    assert eo.change is not None
    assert eo.change_low is not None
    assert eo.change_high is not None
    assert rows[0][0] == "sex"
    assert rows[0][6] == (
        f"{100 * eo.change:+.1f} pp [{100 * eo.change_low:+.1f}, {100 * eo.change_high:+.1f}]"
    )
    assert rows[0][7].endswith(": beyond")  # the planted damage is beyond seed noise
    md = render_markdown(damaged)
    assert "#### Fairness" in md
    assert "<details><summary><b>Fairness by group</b> (sex: positive class 1)</summary>" in md
    html = fairness_html(comp)
    assert html.startswith("<h3>Fairness</h3>")
    assert html.count("<details>") == len(comp.fairness)
    console = Console(width=80, record=True, force_terminal=False)
    console.print(*fairness_terminal(comp))
    text = console.export_text()
    assert "Fairness" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_many_classes_list_the_twenty_that_rose_most() -> None:
    rng = np.random.default_rng(5)
    n, c = 1500, 25
    y = rng.integers(0, c, n)
    sex = rng.choice(np.array(["F", "M"]), n)
    preds = np.where(rng.random((6, n)) < 0.8, y, rng.integers(0, c, (6, n)))
    ids = np.arange(n)
    ref = Population(preds[:3], y, c, ids=ids, attributes={"sex": sex})
    cand = Population(preds[3:], y, c, ids=ids, attributes={"sex": sex})
    (fs,) = audit(ref, {"c": cand}).report().comparisons[0].fairness
    assert fs.task == "one-vs-rest"
    assert fs.n_classes == c
    assert len(fs.classes) == 20
    shown = {k.class_index for k in fs.classes}
    assert fs.equalized_odds_difference_increase.class_index in shown
    assert fs.demographic_parity_difference_increase.class_index in shown
    rises = [
        k.equalized_odds_difference.change for k in fs.classes
    ]  # the largest rise of either disparity is listed first
    first = fs.classes[0]
    top = max(
        (first.demographic_parity_difference.change or 0.0),
        (first.equalized_odds_difference.change or 0.0),
    )
    assert all(r is not None and r <= top + 1e-12 for r in rises)


def test_the_reference_memo_changes_no_number() -> None:
    """The reference side is computed once per attribute set for every candidate: a
    candidate audited after another gets exactly what it gets audited alone."""
    ref, cand = _populations(0.4, seed=1)
    other = dataclasses.replace(cand, predictions=cand.predictions[:2])  # K = 2, fewer members
    both = audit(ref, {"other": other, "pruned": cand}).report()
    alone = audit(ref, {"pruned": cand}).report()
    assert both.comparison("pruned").fairness == alone.comparison("pruned").fairness
