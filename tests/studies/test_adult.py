"""The Adult study's tables and sentences (examples/adult/adult_tables.py), without retraining.

Statistics are checked against scipy/statsmodels; the generated sentences
against a real audit of a synthetic binary case with a planted disparity.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from scipy.stats import fisher_exact
from statsmodels.stats.proportion import proportion_confint

from compaudit.engine import AuditSettings, audit
from compaudit.gates import decide_verdict, evaluate_gates
from compaudit.policy import load_policy
from compaudit.population import Population
from compaudit.train import load_recipe

from ._load import load_example

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    return load_example("examples/adult/adult_tables.py", "adult_tables")


T = _load()


@pytest.mark.parametrize(
    ("n_pie", "total", "pct_non"), [(5, 72, 1.74), (1, 39, 0.59), (276, 368, 59.3)]
)
def test_growth_interval_is_clopper_pearson_of_the_pie_share(
    n_pie: int, total: int, pct_non: float
) -> None:
    lo, hi = T.growth_interval(n_pie, total, pct_non)
    ci_lo, ci_hi = proportion_confint(n_pie, total, alpha=0.05, method="beta")
    assert lo == pytest.approx((100 * ci_lo / pct_non - 1) * 100, rel=1e-9)
    assert hi == pytest.approx((100 * ci_hi / pct_non - 1) * 100, rel=1e-9)
    point = (100 * n_pie / total / pct_non - 1) * 100
    assert lo < point < hi


def test_growth_interval_edges() -> None:
    lo, hi = T.growth_interval(0, 40, 2.0)
    assert lo == -100.0  # no PIEs: the share's lower bound is 0
    assert hi == pytest.approx((100 * (1 - 0.025 ** (1 / 40)) / 2.0 - 1) * 100)
    assert T.growth_interval(40, 40, 50.0)[1] == pytest.approx(100.0)  # share 1 -> 1 / 0.5 - 1
    assert T.growth_interval(0, 0, 2.0) == (None, None)
    assert T.growth_interval(3, 10, None) == (None, None)


def test_over_index_p_is_one_sided_fisher() -> None:
    n, n_pie = [59, 266, 8982, 3988, 39], [1, 12, 276, 61, 1]
    p = T.over_index_pvalues(n, n_pie)
    total, pies = sum(n), sum(n_pie)
    for i in range(len(n)):
        table = [[n_pie[i], n[i] - n_pie[i]], [pies - n_pie[i], total - n[i] - pies + n_pie[i]]]
        assert p[i] == pytest.approx(fisher_exact(table, alternative="greater")[1], rel=1e-9)


def test_one_pie_step_is_the_growth_of_one_more_pie() -> None:
    total, pct_non = 39, 0.5925

    def growth(k: int) -> float:
        return (100 * k / total / pct_non - 1) * 100

    assert T.one_pie_step(total, pct_non) == pytest.approx(growth(2) - growth(1))
    assert T.one_pie_step(total, pct_non) == pytest.approx(432.8, abs=0.1)  # hand: 1e4 / 23.1


# -- a real audit of a synthetic case with a planted disparity -------------------------


def _population(pred: np.ndarray, y: np.ndarray, attrs: dict[str, np.ndarray] | None) -> Population:
    return Population.create(pred, y, class_names=["<=50K", ">50K"], attributes=attrs)


@pytest.fixture(scope="module")
def reports() -> tuple[dict[str, Any], dict[str, Any]]:
    """Pruning flips 40% of Male / Black rows in every member; int8 flips three rows."""
    rng = np.random.default_rng(0)
    n, k = 3000, 4
    sex = rng.choice(["Female", "Male"], n, p=[0.35, 0.65])
    race = rng.choice(["White", "Black", "Other"], n, p=[0.85, 0.12, 0.03])
    y = (rng.random(n) < 0.25).astype(np.int64)
    ref = np.where(rng.random((k, n)) < 0.15, 1 - y, y)
    pruned, quant = ref.copy(), ref.copy()
    target = np.flatnonzero((sex == "Male") & (race == "Black"))
    flip = rng.choice(target, int(0.4 * target.size), replace=False)
    pruned[:, flip] = 1 - pruned[:, flip]
    few = rng.choice(np.flatnonzero((sex == "Female") & (race == "White")), 3, replace=False)
    quant[:, few] = 1 - quant[:, few]
    attrs = {"sex": sex, "race": race}
    cands = {"prune-90": _population(pruned, y, None), "int8": _population(quant, y, None)}
    policy = load_policy(ROOT / "examples/policies/fairness-review.yaml")
    settings = AuditSettings(min_support=50, attributes=("sex", "race"))
    draft = audit(_population(ref, y, attrs), cands, reference_name="dense", settings=settings)
    gates = evaluate_gates(draft.to_report(), policy)
    report = draft.to_report(gates=[g.to_dict() for g in gates], verdict=decide_verdict(gates, []))
    label = audit(
        _population(ref, y, attrs),
        cands,
        reference_name="dense",
        settings=AuditSettings(min_support=50, attributes=("label", "sex")),
    ).to_report()
    return report, label


KINDS = {"prune-90": "prune", "int8": "quantize"}


def test_group_rows_adjust_over_testable_groups_only(
    reports: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    report, _ = reports
    comp = report["comparisons"][0]
    rows = T.group_rows(comp, report["settings"])
    testable = [g["testable"] for g in comp["subgroups"]]
    assert not all(testable)  # Female / Other is under min_support
    raw = T.over_index_pvalues(
        [g["n"] for g in comp["subgroups"]], [g["n_pie"] for g in comp["subgroups"]]
    )
    from statsmodels.stats.multitest import multipletests

    expected = multipletests(raw[testable], method="holm")[1]
    got = [r["over_p_adj"] for r in rows if r["testable"] == "yes"]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert all(r["over_p"] == "-" and r["shift_p"] == "-" for r in rows if r["testable"] == "no")
    by_group = {r["group"]: r for r in rows}
    male_black = by_group["Male / Black"]
    assert male_black["over_p"].endswith(" *")
    [source] = [g for g in comp["subgroups"] if g["group"] == {"sex": "Male", "race": "Black"}]
    assert male_black["pct_pie"] == pytest.approx(source["pct_pie"] / 100)
    assert T.over_indexing(rows)[0]["group"] == "Male / Black"


def test_findings_name_the_planted_group_and_judge_the_gate(
    reports: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    report, label = reports
    lines = T.findings(report, label, KINDS)
    text = "\n".join(lines)
    pies = {c["candidate"]: c["pie"]["count"] for c in report["comparisons"]}
    assert pies["int8"] < pies["prune-90"]
    assert f"Quantization disturbs less than pruning: int8 has {pies['int8']} PIEs" in text
    swapped = "\n".join(T.findings(report, label, {"prune-90": "quantize", "int8": "prune"}))
    assert "Quantization disturbs not less than pruning: prune-90" in swapped
    # Flipping ~3% of all rows moves top-1 by more than the dense models' spread.
    assert lines[0].startswith("Top-1 moves:")
    [prune_line] = [s for s in lines if s.startswith("prune-90 (")]
    assert "Significant over-indexing after correction: Male / Black" in prune_line
    assert "Significant top-1 shift differences: " in prune_line
    assert "Male / Black (-" in prune_line.split("Significant top-1 shift differences: ")[1]
    assert "Policy verdict: **fail**" in text
    assert "Female / Other (n=" in text  # listed as not testable
    [gate_line] = [s for s in lines if s.startswith("prune-90 fails the growth gate")]
    assert gate_line.endswith("significant after correction: a measured disparity.")
    assert "Crossed with the label (prune-90)" in text


def test_results_markdown_holds_every_table(
    reports: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    report, label = reports
    recipe = load_recipe(ROOT / "examples/recipes/adult.yaml").to_dict()
    data = {"train": "adult:train", "train_n": 30162, "eval": "adult:test", "eval_n": 15060}
    md = T.build_results(report, label, {"recipe": recipe, "data": data}, [("a", "figures/a.png")])
    assert md.count("| group | n | n non-PIE |") == 2 * len(report["comparisons"])
    assert f"`{T.COMMAND}`" in md
    assert "K = 8 models per variant, seed 0" in md
    assert "| prune-90 | `subgroups.pie_share_growth` |" in md
    assert "![a](figures/a.png)" in md
    assert md.endswith("\n")
