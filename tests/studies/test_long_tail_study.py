"""The long-tail study's pure parts: its run count, the rows it reads from report.json,
its verdicts, the C-score it derives from the influence runs, RESULTS.md and figures.

Nothing here trains; reports are constructed, runs are random bits.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

from compaudit.analysis.influence import InfluenceRuns, required_runs, save_runs, se_bound
from compaudit.data.loading import load_dataset
from compaudit.train.recipe import load_recipe

from ._load import load_example

LONG_TAIL = Path(__file__).resolve().parents[2] / "examples" / "long-tail"


@pytest.fixture(scope="module")
def mods() -> Iterator[tuple[ModuleType, ModuleType]]:
    """long_tail_tables and study.py (under a unique name), from the script directory."""
    sys.path.insert(0, str(LONG_TAIL))
    try:
        tables = importlib.import_module("long_tail_tables")
        yield tables, load_example("examples/long-tail/study.py", "long_tail_study")
    finally:
        sys.path.remove(str(LONG_TAIL))


def entry(
    score: str, subset: str, n: int, delta: float | None, p: float | None, **extra: Any
) -> dict[str, Any]:
    """One ``long_tail`` entry of report.json."""
    deciles = [{"decile": d, "share_flagged": 0.1 * d / 5, "base_rate": 0.1} for d in range(1, 11)]
    return {
        "score": score,
        "subset": subset,
        "n": n,
        "mean_subset": 0.5,
        "mean_rest": 0.9,
        "statistic": -3.0,
        "p_value": p,
        "mann_whitney_p": p,
        "cohens_d": -1.0,
        "cliffs_delta": delta,
        "deciles": deciles,
        **extra,
    }


def report(with_split_fields: bool = True) -> dict[str, Any]:
    """A report with one candidate: c_score CIEs far beyond seed, PIEs only as far as it."""
    extra = (
        {"seed_splits": 64, "seed_cliffs_delta_q05": -0.5, "seed_cliffs_delta_q95": -0.1}
        if with_split_fields
        else {}
    )
    seed_extra = {"n_splits": 64} if with_split_fields else {}
    long_tail = [
        entry("c_score", "cie", 40, -0.8, 1e-6, **extra, p_beyond_seed=0.001),
        entry("c_score", "pie", 10, -0.3, 0.01, **extra, p_beyond_seed=0.6),
        entry("c_score", "cie_seed", 30, -0.3, 0.01, **seed_extra),
        entry("c_score", "pie_seed", 8, -0.3, 0.02, **seed_extra),
        entry("mean_influence", "cie", 40, 0.05, 0.7, **extra, p_beyond_seed=0.9),
    ]
    if not with_split_fields:
        for e in long_tail:
            e.pop("p_beyond_seed", None)
    return {
        "data": {"n": 539},
        "populations": {"dense": {"top1": 0.95}, "prune-90": {"top1": 0.94}},
        "comparisons": [
            {
                "candidate": "prune-90",
                "cie": {"count": 15.5},
                "pie": {"count": 10},
                "floors": {"n_splits": 64, "k_split": 5},
                "long_tail": long_tail,
            }
        ],
    }


def test_run_count_is_the_estimators_bound(mods: tuple[ModuleType, ModuleType]) -> None:
    tables, _ = mods
    for p in (0.3, 0.5, 0.7, 0.9):
        for se in (0.02, 0.025, 0.04, 0.05, 0.1, 0.25):
            runs = tables.runs_for_se(se, p)
            assert runs == required_runs(se, subset_fraction=p), (se, p)
            assert tables.se_for_runs(runs, p) == pytest.approx(se_bound(runs, subset_fraction=p))
            assert tables.se_for_runs(runs, p) <= se < tables.se_for_runs(runs - 1, p) + 1e-12
    with pytest.raises(ValueError, match="need 0 < p < 1"):
        tables.runs_for_se(0.05, 1.0)


def test_recipes_hold_the_default_run_count(mods: tuple[ModuleType, ModuleType]) -> None:
    tables, study = mods
    for path in study.RECIPES.values():
        recipe = load_recipe(path)  # valid recipes
        assert recipe.influence is not None
        assert recipe.influence.variant == "dense"
        want = tables.runs_for_se(study.TARGET_SE, recipe.influence.subset_fraction)
        assert recipe.influence.runs == want
        assert {v.from_ for v in recipe.variants if v.name != "dense"} == {"dense"}


def test_rows_join_each_subset_with_its_seed_row(mods: tuple[ModuleType, ModuleType]) -> None:
    tables, _ = mods
    rows = {(r.score, r.subset): r for r in tables.long_tail_rows(report(), "digits")}
    assert set(rows) == {("c_score", "cie"), ("c_score", "pie"), ("mean_influence", "cie")}
    cie = rows["c_score", "cie"]
    assert (cie.n, cie.cliffs_delta, cie.seed_n, cie.seed_delta) == (40, -0.8, 30, -0.3)
    assert (cie.n_splits, cie.seed_q05, cie.seed_q95, cie.p_beyond_seed) == (64, -0.5, -0.1, 0.001)
    assert rows["mean_influence", "cie"].seed_delta is None  # no mean_influence seed row
    old = {(r.score, r.subset): r for r in tables.long_tail_rows(report(False), "digits")}
    assert old["c_score", "cie"].n_splits == 1  # one split's row in older reports
    assert old["c_score", "cie"].p_beyond_seed is None


def test_verdicts_follow_direction_rest_and_seed(mods: tuple[ModuleType, ModuleType]) -> None:
    tables, _ = mods
    rows = {(r.score, r.subset): r for r in tables.long_tail_rows(report(), "digits")}
    assert tables.verdict(rows["c_score", "cie"])[0] == "holds"
    assert tables.verdict(rows["c_score", "pie"])[0] == "rest-only"  # as far as seed noise
    assert tables.verdict(rows["mean_influence", "cie"])[0] == "does not hold"  # p = 0.7
    base = rows["c_score", "cie"]

    def replace(**changes: Any) -> Any:
        return dataclasses.replace(base, **changes)

    # A high C-score is the head, not the tail: wrong direction, whatever the p.
    assert tables.verdict(replace(cliffs_delta=0.8))[0] == "does not hold"
    # For mean influence the tail scores high.
    up = replace(score="mean_influence", cliffs_delta=0.8, seed_delta=0.3)
    assert tables.verdict(up)[0] == "holds"
    # Beyond seed by p, but on the head side of the seed median: not the tail.
    assert tables.verdict(replace(seed_delta=-0.9))[0] == "rest-only"
    assert tables.verdict(replace(p_beyond_seed=None))[0] == "rest-only"
    assert tables.verdict(replace(n=1, p_value=None))[0] == "not testable"
    old = {(r.score, r.subset): r for r in tables.long_tail_rows(report(False), "digits")}
    assert tables.verdict(old["c_score", "cie"])[1].endswith(
        "no seed-noise control to compare with"
    )


def test_rank_disagreements_list_only_welch_misses_in_the_tail(
    mods: tuple[ModuleType, ModuleType],
) -> None:
    tables, _ = mods
    rows = {(r.score, r.subset): r for r in tables.long_tail_rows(report(), "digits")}
    base = dataclasses.replace(
        rows["mean_influence", "cie"], p_value=0.4, mann_whitney_p=1e-6, cliffs_delta=0.3
    )
    beyond = dataclasses.replace(base, seed_delta=0.05, p_beyond_seed=0.001)
    within = dataclasses.replace(base, seed_delta=0.28, p_beyond_seed=0.7)
    lines = tables.rank_disagreements([beyond, within])
    assert len(lines) == 2
    assert "beyond seed noise (δ +0.30 vs +0.05" in lines[0]
    assert lines[1].endswith("not beyond seed noise.")
    # Not listed: the rank test agrees with Welch, the shift points to the head, or
    # Welch itself passes (the verdict already says so).
    assert tables.rank_disagreements([dataclasses.replace(base, mann_whitney_p=0.3)]) == []
    assert tables.rank_disagreements([dataclasses.replace(base, cliffs_delta=-0.3)]) == []
    assert tables.rank_disagreements([dataclasses.replace(beyond, p_value=0.001)]) == []


def test_c_score_is_each_eval_examples_accuracy_over_runs(
    mods: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    _, study = mods
    rng = np.random.default_rng(0)
    n_train, n_test, r = 37, 539, 13  # sizes that are not multiples of 8
    runs = InfluenceRuns(
        in_run=rng.random((r, n_train)) < 0.7,
        train_correct=rng.random((r, n_train)) < 0.9,
        test_correct=rng.random((r, n_test)) < 0.8,
    )
    path = save_runs(tmp_path / "runs.npz", runs)
    info = SimpleNamespace(influence=path, eval_data="digits:test")
    out = study.c_score_file(info, tmp_path / "c.npz")
    with np.load(out, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["ids"], load_dataset("digits:test").ids)
        np.testing.assert_allclose(f["scores"], runs.test_correct.mean(axis=0), rtol=0, atol=1e-15)
    assert study._n_train(info) == n_train


def test_results_markdown_has_every_section(
    mods: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    tables, study = mods
    rng = np.random.default_rng(1)
    path = save_runs(
        tmp_path / "runs.npz",
        InfluenceRuns(
            in_run=rng.random((4, 20)) < 0.7,
            train_correct=rng.random((4, 20)) < 0.9,
            test_correct=rng.random((4, 539)) < 0.8,
        ),
    )
    recipe = load_recipe(study.RECIPES["digits"])
    manifest = {
        "variants": {"dense": {"members": {"0": {"timings": {"total_s": 2.0}}}}},
        "influence": {"done": {"0": {"timings": {"total_s": 0.5}}}},
    }
    info = SimpleNamespace(
        recipe=recipe,
        manifest=manifest,
        influence=path,
        train_data="digits:train",
        eval_data="digits:test",
    )
    trained = study.Trained("digits", tmp_path / "run", info, report(), 745, 0.7, 0.04)
    text = study.render([trained], {"fashion-mnist": "no data"}, "./run study long-tail", ["f.png"])
    assert text.startswith("# The long tail")
    assert "Generated by `./run study long-tail` (examples/long-tail/study.py)" in text
    assert "do not edit by hand" in text
    for section in ("## Verdict", "## Setup", "### The seed-noise control", "## Figures"):
        assert f"\n{section}\n" in text
    assert "- fashion-mnist: not run (no data)." in text
    assert "By `c_score`: CIEs score lower than the rest and beyond seed noise" in text
    assert "R = 745 runs on 70% subsets" in text
    assert "|S| = 20 training examples" in text  # from the runs file
    assert "digits: 64 splits of 5 vs 5 members" in text
    assert "A --quick smoke run" not in text
    assert "A --quick smoke run" in study.render([trained], {}, "x", [], quick=True)
    table = [
        line for line in text.splitlines() if line.startswith("| prune-90 | `c_score` | CIE |")
    ]
    assert len(table) == 1
    assert table[0].endswith("| 0.001 | holds |")
    rows = tables.long_tail_rows(report(), "digits")
    for fig in (
        tables.delta_figure(rows, tmp_path / "d.png", "t"),
        tables.decile_figure(report(), "c_score", tmp_path / "c.png", "t"),
    ):
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
