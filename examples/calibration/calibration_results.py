"""RESULTS.md of the calibration study (study.py): every sentence computed from the runs.

The verdict headings, the sentences under them and the document itself; the
tables and figures come from calibration_tables.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from calibration_nulls import ALPHA, NullRuns
from calibration_tables import (
    FAIL_TARGET,
    PASS_TARGET,
    claim,
    fwer_table,
    gate_table,
    noise_floor,
    noise_table,
    noisy_gates,
    pct,
    refuted,
)

from compaudit import Policy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
POLICY = ROOT / "examples" / "policies" / "strict-release.yaml"


def rel(path: Path) -> str:
    """``path`` relative to the repository when inside it (RESULTS.md must not
    depend on where the checkout lives)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def verdict(runs: Sequence[NullRuns]) -> tuple[bool, list[str]]:
    """Whether Holm keeps the FWER at or under alpha for every kind of comparison in
    ``runs``, and one sentence per kind."""
    results = [claim(r, "holm") for r in runs]
    return all(ok for ok, _ in results), [text for _, text in results]


def _held(ok: bool, runs: Sequence[NullRuns] = ()) -> str:
    """The heading's word: a miss whose interval still reaches alpha is not a refutation."""
    if ok:
        return "HOLDS"
    if runs and not any(refuted(r, "holm") for r in runs):
        return "HOLDS WITHIN MONTE-CARLO ERROR (a point estimate over alpha, its interval not)"
    return "DOES NOT HOLD"


def spread_summary(spread: Mapping[str, np.ndarray]) -> str:
    """'median (max)' of each kind's per-class paired spread / SE ratios."""
    return ", ".join(
        f"{np.nanmedian(v):.2f} (max {np.nanmax(v):.2f}) on {label}" for label, v in spread.items()
    )


def single_model_caveat(failed: Sequence[str], spread: Mapping[str, np.ndarray]) -> str:
    """Why the paired test can false-alarm between independently trained models."""
    return (
        f"Where it fails ({', '.join(failed)}), the two single models really do differ: "
        "each seed leaves its own class-level biases, and the paired test, which treats "
        "both models as fixed and only the test examples as random, detects them once "
        "classes are large. Measured: across pairs, a class's paired shift spreads wider "
        "than the test's standard error by a median factor (over classes) of "
        f"{spread_summary(spread)} (column 'paired spread / SE'; 1 means calibrated). The "
        "paired null is 'the same model up to example noise', the right one for a "
        "candidate derived from the reference (quantized, or pruned and fine-tuned from its "
        "weights); a candidate retrained from another seed carries seed variance that only "
        "populations (Welch) account for."
    )


def class_gate_sentence(runs: Sequence[NullRuns]) -> str:
    """How often the policy's class gate (significantly *worse* classes only) fails."""
    rates = ", ".join(
        f"{pct(float(r.gate_fail['significant_classes'].mean()))} ({r.label})"
        for r in runs
        if "significant_classes" in r.gate_fail
    )
    return (
        "What a release gate sees: `significant_classes: 0` counts only classes "
        f"significantly worse than the overall shift, and fails on seed noise in {rates} "
        "of the comparisons."
    )


def uncorrected(runs: Sequence[NullRuns]) -> str:
    """One sentence: how often some class is flagged without correction."""
    rates = ", ".join(f"{pct(r.alarms('none') / r.draws)} ({r.label})" for r in runs)
    return f"Without correction at least one class is flagged in {rates} of the comparisons."


def _policy_lines(verdict: tuple[bool, Sequence[str]] | None) -> list[str]:
    """The verdict's first paragraph: do the shipped policies meet both targets?"""
    if verdict is None:
        return []
    ok, misses = verdict
    return [
        f"**Shipped policies: every one passes at least {pct(PASS_TARGET, 0)} of seed-only "
        f"comparisons and fails at least {pct(FAIL_TARGET, 0)} of the planted damage it "
        f"gates: {_held(ok)}.**",
        "",
        *(f"- {s}" for s in misses),
        *([""] if misses else []),
    ]


def results_markdown(
    *,
    setup: str,
    welch: Sequence[NullRuns],
    single: Sequence[NullRuns],
    table_runs: Sequence[NullRuns],
    naive: NullRuns,
    gate_runs: Sequence[NullRuns],
    classes: Sequence[tuple[str, str]],
    spread: Mapping[str, np.ndarray],
    policy: Policy,
    fmnist_note: str,
    command: str,
    policy_text: str = "",
    policy_verdict: tuple[bool, Sequence[str]] | None = None,
) -> str:
    """The whole RESULTS.md; every number and verdict is computed from the runs."""
    pop_ok, pop_lines = verdict(welch)
    one_ok, one_lines = verdict(single)
    failed = [r.label for r in single if not claim(r, "holm")[0]]
    naive_ok, naive_text = claim(naive, "holm")
    naive_line = (
        "The rejected alternative, an unstudentized permutation z-test on the same "
        f"pairs: {naive_text} "
        + (
            "Taking each group's variance under the null (the engine's score test) is what keeps "
            "the single-model test calibrated."
            if not naive_ok
            else "On this data it stays calibrated too."
        )
    )
    floors = "; ".join(
        f"{r.label}: `pie_rate` {pct(noise_floor(r, 'pie_rate'), 2)}, `cie_rate` "
        f"{pct(noise_floor(r, 'cie_rate'), 2)}"
        for r in gate_runs
    )
    noisy = noisy_gates(gate_runs)
    out = [
        "# Calibration: does the gate fail releases on seed noise?",
        "",
        f"Generated by `{command}` from the models it trains; do not edit by hand.",
        "",
        "## Verdict",
        "",
        *_policy_lines(policy_verdict),
        f"**Populations (Welch, the paper's test): Holm keeps the family-wise false alarm "
        f"rate at or under alpha: {_held(pop_ok, welch)}.**",
        "",
        *(f"- {s}" for s in pop_lines),
        f"- {uncorrected(welch)}",
        "",
        "**Single models (the single-model test of the CI case): Holm keeps the "
        f"family-wise false alarm rate at or under alpha: {_held(one_ok, single)}.**",
        "",
        *(f"- {s}" for s in one_lines),
        f"- {uncorrected(single)}",
        f"- {naive_line}",
        *([f"- {single_model_caveat(failed, spread)}"] if failed else []),
        "",
        class_gate_sentence(gate_runs),
        "",
        *([policy_text] if policy_text else []),
        "## Setup",
        "",
        setup,
        "",
        "## Family-wise false alarm rate of the class tests",
        "",
        "Share of null comparisons in which at least one of the 10 classes is significant "
        f"at alpha = {ALPHA} after each correction, with Clopper-Pearson 95% intervals. "
        "Resampled comparisons share members, so they are not independent and the intervals "
        "are a rough guide only; the *disjoint* rows use comparisons that share no member "
        "(independent draws, but few of them).",
        "",
        fwer_table(table_runs),
        "",
        "## Which classes false-alarm",
        "",
        "Per class: mean recall over the members; the standard deviation over members of "
        "S = recall - top-1 (how much a seed alone moves the class); the share of its "
        "examples that two members classify differently (churn); and how often each "
        f"test's raw p-value is at or under {ALPHA} (nominal {pct(ALPHA)}).",
        "",
    ]
    for title, table in classes:
        out += [f"{title}:", "", table, ""]
    out += [
        "## Noise floor: PIE and CIE rates between seed-only populations",
        "",
        "A policy's `pie_rate`, `cie_rate`, `cie_u_rate` and `top1_drop` thresholds must "
        "sit above what seed noise alone produces, or the gate fails releases on noise. "
        f"95th percentiles under seed noise: {floors}. Seed-to-seed churn is the floor for "
        "populations and for candidates retrained from scratch; a candidate derived from "
        "the reference itself usually churns less. 'fails': share of the null comparisons "
        f"in which `{rel(POLICY)}`'s gate fails.",
        "",
        noise_table(gate_runs, policy),
        "",
        f"Every gate of `{rel(POLICY)}` on the same null comparisons (class tests with "
        f"its settings: alpha {policy.alpha}, {policy.correction}):",
        "",
        gate_table(gate_runs),
        "",
        *(f"- {s}" for s in noisy),
        "",
        "## Second dataset: Fashion-MNIST (optional)",
        "",
        fmnist_note,
        "",
        "## Figures",
        "",
        "![p-values](figures/pvalues.png)",
        "",
        "Raw class p-values under seed noise. Welch's should be close to uniform. The "
        "single-model test is discrete: with few changed examples per class its p-values "
        "pile up near 1."
        + (
            f" Where it false-alarms ({', '.join(failed)}) they lean towards 0: the seed "
            "effects of the verdict."
            if failed
            else ""
        ),
        "",
        "![FWER](figures/fwer.png)",
        "",
    ]
    return "\n".join(out)
