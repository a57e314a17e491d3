"""The calibration study's pure parts: draws, the rejected z-test, the spread
diagnostic, the audits it counts, and the tables and verdicts it writes.

Nothing here trains; populations are small seeded synthetic ones.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from compaudit.analysis.stats import adjust_pvalues, welch_test
from compaudit.policy import load_policy
from compaudit.population import Population

from ._load import load_example

CALIBRATION = Path(__file__).resolve().parents[2] / "examples" / "calibration"
POLICY = CALIBRATION.parents[0] / "policies" / "strict-release.yaml"


Mods = tuple[ModuleType, ModuleType, ModuleType]


@pytest.fixture(scope="module")
def mods() -> Iterator[Mods]:
    """The study's modules, imported from the script directory; study.py under a
    unique name so that other studies' ``study.py`` cannot shadow it."""
    sys.path.insert(0, str(CALIBRATION))
    try:
        nulls = importlib.import_module("calibration_nulls")
        tables = importlib.import_module("calibration_tables")
        study = load_example("examples/calibration/study.py", "calibration_study")
        yield nulls, tables, study
    finally:
        sys.path.remove(str(CALIBRATION))


def seed_population(rng: np.random.Generator, k: int, *, bias: float = 0.0) -> Population:
    """K models on 10 classes x 60 examples; each example has its own difficulty,
    and with ``bias`` each model moves each class's difficulty by a random amount
    (the class-level seed effect of real models)."""
    c, per = 10, 60
    y = np.repeat(np.arange(c), per)
    p = rng.beta(8.0, 2.0, y.size)
    shift = rng.normal(0.0, bias, (k, c))[:, y]
    correct = rng.random((k, y.size)) < np.clip(p + shift, 0.0, 1.0)
    wrong = (y + rng.integers(1, c, (k, y.size))) % c
    return Population.create(np.where(correct, y, wrong), y, num_classes=c)


# -- draws ---------------------------------------------------------------------------------
def test_resample_draws_are_disjoint_seeded_and_cover_members(mods: Mods) -> None:
    nulls, _, _ = mods
    draws = nulls.resample_draws(40, 5, 200, seed=3)
    assert draws.shape == (200, 2, 5)
    assert all(len(set(d.ravel())) == 10 for d in draws)  # two disjoint groups
    assert np.array_equal(draws, nulls.resample_draws(40, 5, 200, seed=3))
    assert not np.array_equal(draws, nulls.resample_draws(40, 5, 200, seed=4))
    assert set(draws.ravel()) == set(range(40))
    with pytest.raises(ValueError, match="two disjoint groups of 21 need 42 members"):
        nulls.resample_draws(40, 21, 1, seed=0)


def test_disjoint_draws_share_no_member(mods: Mods) -> None:
    nulls, _, _ = mods
    for k, expected in ((5, 4), (10, 2), (1, 20)):
        draws = nulls.disjoint_draws(40, k, seed=0)
        assert draws.shape == (expected, 2, k)
        assert len(set(draws.ravel())) == draws.size


def test_all_splits_and_pairs_enumerate_each_comparison_once(mods: Mods) -> None:
    nulls, _, _ = mods
    splits = nulls.all_splits(10)
    assert splits.shape == (126, 2, 5)  # C(10, 5) / 2
    assert (splits[:, 0, 0] == 0).all()
    halves = {frozenset(s[0]) for s in splits} | {frozenset(s[1]) for s in splits}
    assert len(halves) == 252  # every 5-subset appears exactly once on some side
    assert all(set(s.ravel()) == set(range(10)) for s in splits)
    pairs = nulls.all_pairs(40)
    assert pairs.shape == (780, 2, 1)
    assert (pairs[:, 0, 0] < pairs[:, 1, 0]).all()
    with pytest.raises(ValueError, match="even number of members"):
        nulls.all_splits(9)


# -- the rejected z-test ------------------------------------------------------------------------
def test_naive_z_uses_the_exact_permutation_variance(mods: Mods) -> None:
    nulls, _, _ = mods
    d = np.array([-1, 0, 0, 1, 1, -1, 0, 1], dtype=np.int8)
    groups = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    # Enumerate every relabelling of 3 examples as group 0: the permutation
    # distribution of mean(group 0) - mean(rest).
    diffs = []
    for idx in itertools.combinations(range(8), 3):
        mask = np.zeros(8, dtype=bool)
        mask[list(idx)] = True
        diffs.append(d[mask].mean() - d[~mask].mean())
    observed = d[:3].mean() - d[3:].mean()
    assert np.mean(diffs) == pytest.approx(0.0, abs=1e-12)
    z = observed / np.std(diffs)
    p = nulls.naive_z_pvalues(d, groups, 2)
    assert p[0] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-12)
    assert p[0] == pytest.approx(p[1], rel=1e-12)  # two groups: the same test
    assert np.array_equal(nulls.naive_z_pvalues(np.zeros(8), groups, 2), [1.0, 1.0])


def test_run_naive_counts_adjusted_rejections(mods: Mods) -> None:
    nulls, _, _ = mods
    pop = seed_population(np.random.default_rng(5), 6)
    pairs = nulls.all_pairs(6)
    runs = nulls.run_naive(pop, pairs, "z")
    correct = (pop.predictions == pop.y).astype(np.int8)
    i, j = pairs[4, :, 0]
    p = nulls.naive_z_pvalues(correct[j] - correct[i], pop.y.astype(np.intp), 10)
    assert np.array_equal(runs.p_raw[4], p)
    assert runs.n_sig["holm"][4] == (adjust_pvalues(p, method="holm") <= 0.05).sum()
    assert (runs.n_sig["none"] >= runs.n_sig["holm"]).all()


# -- the spread diagnostic -------------------------------------------------------------------
def test_paired_spread_of_one_pair_is_the_welch_statistic(mods: Mods) -> None:
    nulls, _, _ = mods
    pop = seed_population(np.random.default_rng(7), 2)
    ratio = nulls.paired_spread(pop, nulls.all_pairs(2))
    correct = (pop.predictions == pop.y).astype(np.float64)
    d = correct[1] - correct[0]
    for c in range(10):
        t = stats.ttest_ind(d[pop.y == c], d[pop.y != c], equal_var=False).statistic
        assert ratio[c] == pytest.approx(abs(t), rel=1e-9)


def test_paired_spread_is_near_one_without_seed_bias_and_above_with_it(mods: Mods) -> None:
    nulls, _, _ = mods
    plain = nulls.paired_spread(seed_population(np.random.default_rng(1), 30), nulls.all_pairs(30))
    biased = nulls.paired_spread(
        seed_population(np.random.default_rng(1), 30, bias=0.06), nulls.all_pairs(30)
    )
    # Exchangeable examples: the test's SE describes the spread (pairs share models,
    # so the tolerance is loose); class-level seed effects widen it.
    assert 0.8 < np.median(plain) < 1.2, plain
    assert np.median(biased) > 1.3, biased


# -- the audits ------------------------------------------------------------------------------------
def test_run_audits_matches_welch_and_counts_every_correction(mods: Mods) -> None:
    nulls, _, _ = mods
    pop = seed_population(np.random.default_rng(11), 8)
    policy = load_policy(POLICY)
    draws = nulls.resample_draws(8, 3, 6, seed=0)
    runs = nulls.run_audits(pop, draws, "w", policy, progress=False)
    assert runs.draws == 6
    correct = pop.predictions == pop.y
    recall = np.stack([np.bincount(pop.y, weights=r, minlength=10) / 60 for r in correct])
    s = recall - correct.mean(axis=1)[:, None]
    for row, (ref, cand) in zip(runs.p_raw, draws, strict=True):
        expected = stats.ttest_ind(s[cand], s[ref], equal_var=False).pvalue
        np.testing.assert_allclose(row, expected, rtol=1e-10)
        np.testing.assert_allclose(row, welch_test(s[ref], s[cand]).p_value, rtol=1e-12)
    for corr in nulls.CORRECTIONS:
        expected_sig = [(adjust_pvalues(r, method=corr) <= 0.05).sum() for r in runs.p_raw]
        assert runs.n_sig[corr].tolist() == expected_sig
    assert {"top1_drop", "significant_classes"} <= set(runs.gate_fail)  # the policy's gates
    assert all(len(v) == 6 for v in runs.gate_fail.values())
    assert set(runs.rates) == set(nulls.RATES)
    assert ((runs.rates["pie_rate"] >= 0) & (runs.rates["pie_rate"] <= 1)).all()


def test_binomial_interval_is_clopper_pearson(mods: Mods) -> None:
    nulls, _, _ = mods
    for hits, n in ((0, 4), (4, 1000), (25, 780), (45, 45)):
        lo, hi = nulls.binomial_interval(hits, n)
        ref = proportion_confint(hits, n, alpha=0.05, method="beta")
        assert (lo, hi) == pytest.approx((float(ref[0]), float(ref[1])), abs=1e-9)
    assert nulls.binomial_interval(0, 4)[1] == pytest.approx(1 - 0.025**0.25, rel=1e-9)


def test_load_members_notes_a_missing_run(mods: Mods, tmp_path: Path) -> None:
    nulls, _, _ = mods
    pop, note = nulls.load_members(tmp_path / "nope", 10, shown="runs/nope")
    assert pop is None
    assert note == "skipped: no trainer run at `runs/nope`"


# -- tables and verdicts -------------------------------------------------------------------------
def fake_runs(mods: Mods, label: str, flagged: list[int], draws: int) -> Any:
    """NullRuns whose first comparisons flag ``flagged[i]`` classes under holm (twice
    as many without correction)."""
    nulls, _, _ = mods
    holm = np.zeros(draws, dtype=int)
    holm[: len(flagged)] = flagged
    n_sig = {"none": 2 * holm, "bonferroni": holm, "holm": holm, "bh": holm}
    return nulls.NullRuns(label, np.full((draws, 10), 0.5), n_sig)


def test_claim_and_verdict_follow_the_numbers(mods: Mods) -> None:
    _, tables, _ = mods
    good = fake_runs(mods, "A", [1] * 4, 100)
    bad = fake_runs(mods, "B", [2] * 8, 100)
    ok, text = tables.claim(good, "holm")
    assert ok
    assert text == (
        "Holm keeps the family-wise false alarm rate at 4.0% <= alpha = 5.0% (A: 4 of 100 "
        "comparisons; 95% interval 1.1%-9.9%; the interval reaches 9.9%)."
    )
    ok, text = tables.claim(bad, "holm")
    assert not ok
    assert text.startswith("Holm lets the family-wise false alarm rate at 8.0% > alpha = 5.0%")
    # 8 of 100: the interval (3.5%-15.2%) still reaches alpha, so it is no refutation.
    assert text.endswith("; the interval reaches down to 3.5%: within Monte-Carlo error of alpha).")
    assert not tables.refuted(bad, "holm")
    worse = fake_runs(mods, "D", [2] * 30, 100)  # 30%: interval 21.2%-40.1%
    assert tables.refuted(worse, "holm")
    results = importlib.import_module("calibration_results")  # mods holds the folder on sys.path
    assert results.verdict([good])[0]
    assert not results.verdict([good, bad])[0]
    assert results._held(True) == "HOLDS"
    assert results._held(False, [good, bad]).startswith("HOLDS WITHIN MONTE-CARLO ERROR")
    assert results._held(False, [good, bad, worse]) == "DOES NOT HOLD"
    assert tables.claim(fake_runs(mods, "C", [1], 1000), "holm")[1].endswith("0.0%-0.6%).")


def test_fwer_table_rows(mods: Mods) -> None:
    _, tables, _ = mods
    table = tables.fwer_table([fake_runs(mods, "A", [1, 3], 4)]).splitlines()
    assert table[0] == (
        "| comparisons | n | none | bonferroni | holm | bh | mean flagged classes (none / holm) |"
    )
    assert table[1] == "|---|---:|---:|---:|---:|---:|---:|"
    assert table[2] == (
        "| A | 4 | 50.0% (6.8%-93.2%) | 50.0% (6.8%-93.2%) | 50.0% (6.8%-93.2%) | "
        "50.0% (6.8%-93.2%) | 2.00 / 1.000 |"
    )
    assert tables.pct(-0.00001, 2) == "0.00%"


def test_noisy_gates_names_gates_above_alpha_only(mods: Mods) -> None:
    _, tables, _ = mods
    runs = fake_runs(mods, "A", [], 20)
    runs.gate_fail = {"pie_rate": np.arange(20) < 20, "cie_rate": np.arange(20) < 1}
    assert tables.noisy_gates([runs]) == [
        "A: seed noise alone fails `pie_rate` in 100.0% of the comparisons."
    ]


def test_results_markdown_states_both_verdicts_and_the_caveat_only_on_failure(mods: Mods) -> None:
    nulls, _, study = mods
    policy = load_policy(POLICY)
    pop = seed_population(np.random.default_rng(2), 6)
    runs = nulls.run_audits(pop, nulls.all_pairs(6), "pairs", policy, progress=False)

    def render(single_flags: list[int]) -> str:
        single = fake_runs(mods, "single", single_flags, 100)
        text: str = study.results_markdown(
            setup="- setup",
            welch=[fake_runs(mods, "pop", [1], 100)],
            single=[single],
            table_runs=[single],
            naive=fake_runs(mods, "naive", [1] * 40, 100),
            gate_runs=[runs],
            classes=[("toy", "| t |")],
            spread={"single": np.array([1.5, 2.0, np.nan])},
            policy=policy,
            fmnist_note="Not run.",
            command="./run study calibration",
        )
        return text

    fine = render([1, 1])
    assert "at or under alpha: HOLDS.**" in fine
    assert "DOES NOT HOLD" not in fine
    assert "(the engine's score test) is what keeps the single-model test calibrated." in fine
    assert "Where it fails" not in fine
    failed = render([1] * 20)  # 20 of 100: interval 12.7%-29.2%, wholly over alpha
    assert "**Single models (the single-model test of the CI case): Holm keeps the " in failed
    assert "or under alpha: DOES NOT HOLD.**" in failed
    close = render([1] * 9)  # 9 of 100: over alpha, but its interval (4.2%-16.4%) reaches it
    assert "or under alpha: HOLDS WITHIN MONTE-CARLO ERROR" in close
    assert "Where it fails" in close
    assert "median factor (over classes) of 1.75 (max 2.00) on single" in failed
    share = f"{100 * runs.gate_fail['significant_classes'].mean():.1f}% (pairs)"
    assert f"fails on seed noise in {share} of the comparisons." in fine


def test_results_markdown_puts_the_policy_verdict_first_and_the_section_before_setup(
    mods: Mods,
) -> None:
    nulls, _, study = mods
    policy = load_policy(POLICY)
    pop = seed_population(np.random.default_rng(2), 4)
    runs = nulls.run_audits(pop, nulls.all_pairs(4), "pairs", policy, progress=False)

    def render(verdict: tuple[bool, list[str]] | None) -> str:
        text: str = study.results_markdown(
            setup="- setup",
            welch=[fake_runs(mods, "pop", [1], 100)],
            single=[fake_runs(mods, "single", [1], 100)],
            table_runs=[],
            naive=fake_runs(mods, "naive", [1] * 40, 100),
            gate_runs=[runs],
            classes=[],
            spread={},
            policy=policy,
            fmnist_note="Not run.",
            command="./run study calibration",
            policy_text="## Shipped policies\n\n| table |\n" if verdict else "",
            policy_verdict=verdict,
        )
        return text

    assert "Shipped policies" not in render(None)
    failed = render((False, ["`x` on toy: passes 90.0%."]))
    head = failed.split("**Populations", 1)[0]
    assert head.endswith(
        "at least 90% of the planted damage it gates: DOES NOT HOLD.**\n\n"
        "- `x` on toy: passes 90.0%.\n\n"
    )
    assert failed.index("## Shipped policies") < failed.index("## Setup")
    assert "gates: HOLDS.**\n\n**Populations" in render((True, []))


def test_class_table_and_figures(mods: Mods, tmp_path: Path) -> None:
    nulls, tables, _ = mods
    pop = seed_population(np.random.default_rng(3), 4)
    runs = nulls.run_naive(pop, nulls.all_pairs(4), "z")
    lines = tables.class_table(pop, [runs]).splitlines()
    assert len(lines) == 2 + 10
    assert lines[0].endswith("| churn per pair | paired spread / SE | z |")
    assert lines[2].startswith("| 0 | 60 | ")
    for draw in (tables.pvalue_figure, tables.fwer_figure):
        path = draw([runs, runs], tmp_path / f"{draw.__name__}.png")
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) < 300_000


def test_datasets_option_keeps_digits_and_the_study_order(mods: Mods) -> None:
    _, _, study = mods
    assert study._datasets("adult, digits") == ("digits", "adult")
    assert study._datasets("digits") == ("digits",)
    for bad in ("adult", "digits,cifar", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="choose from digits"):
            study._datasets(bad)
