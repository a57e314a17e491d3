"""Tables, claims and figures of the calibration study, computed from :class:`NullRuns`."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from calibration_nulls import (
    ALPHA,
    CORRECTIONS,
    RATES,
    NullRuns,
    all_pairs,
    binomial_interval,
    paired_spread,
)

from compaudit import Policy, Population
from compaudit.study import write_bytes

if TYPE_CHECKING:
    from policy_calibration import Cell


def pct(x: float, digits: int = 1) -> str:
    """A fraction as a percent; -0 shows as 0."""
    return f"{100 * x + 0.0:.{digits}f}%".replace("-0.00%", "0.00%").replace("-0.0%", "0.0%")


def fwer_cell(runs: NullRuns, correction: str) -> str:
    """``rate (low-high)`` of comparisons with at least one flagged class."""
    hits = runs.alarms(correction)
    lo, hi = binomial_interval(hits, runs.draws)
    return f"{pct(hits / runs.draws)} ({pct(lo)}-{pct(hi)})"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Markdown table; the first ``left`` columns are left-aligned, the rest right."""
    rule = "|" + "---|" * left + "---:|" * (len(head) - left)
    return "\n".join(
        ["| " + " | ".join(r) + " |" for r in [head]]
        + [rule]
        + ["| " + " | ".join(r) + " |" for r in rows]
    )


def fwer_table(runs: Sequence[NullRuns]) -> str:
    """Markdown: FWER per correction with 95% intervals, and mean flagged classes."""
    head = ["comparisons", "n", *CORRECTIONS, "mean flagged classes (none / holm)"]
    rows = [
        [
            r.label,
            str(r.draws),
            *(fwer_cell(r, c) for c in CORRECTIONS),
            f"{r.n_sig['none'].mean():.2f} / {r.n_sig['holm'].mean():.3f}",
        ]
        for r in runs
    ]
    return _table(head, rows)


def noise_table(runs: Sequence[NullRuns], policy: Policy) -> str:
    """Markdown: median / 95th percentile / max of each rate over null comparisons,
    and how often the policy's gate on it fails."""
    thresholds = policy.gates.model_dump()
    head = ["comparisons", "measure", "median", "95th pct", "max", "policy threshold", "fails"]
    rows = []
    for r in runs:
        for key in RATES:
            v = r.rates[key]
            q50, q95 = np.quantile(v, [0.5, 0.95])
            thr = thresholds.get(key)
            fail = pct(float(r.gate_fail[key].mean())) if key in r.gate_fail else "-"
            cells = [r.label, f"`{key}`", *(pct(float(x), 2) for x in (q50, q95, v.max()))]
            rows.append([*cells, "-" if thr is None else pct(thr, 2), fail])
    return _table(head, rows, left=2)


def gate_table(runs: Sequence[NullRuns]) -> str:
    """Markdown: share of null comparisons each policy gate fails, and any gate."""
    names = list(runs[0].gate_fail)
    rows = []
    for r in runs:
        fails = np.stack([r.gate_fail[g] for g in names])
        cells = [pct(float(f.mean())) for f in fails] + [pct(float(fails.any(axis=0).mean()))]
        rows.append([r.label, *cells])
    return _table(["comparisons", *(f"`{n}`" for n in names), "any gate"], rows)


def noisy_gates(runs: Sequence[NullRuns], alpha: float = ALPHA) -> list[str]:
    """Sentences naming every gate that seed noise alone fails in more than alpha of
    the comparisons of a kind."""
    out = []
    for r in runs:
        bad = [(g, float(f.mean())) for g, f in r.gate_fail.items() if f.mean() > alpha]
        if bad:
            listed = ", ".join(f"`{g}` in {pct(share)}" for g, share in bad)
            out.append(f"{r.label}: seed noise alone fails {listed} of the comparisons.")
    return out


CORRECTION_NAMES = {
    "none": "No correction",
    "bonferroni": "Bonferroni",
    "holm": "Holm",
    "bh": "Benjamini-Hochberg",
}


def claim(runs: NullRuns, correction: str, alpha: float = ALPHA) -> tuple[bool, str]:
    """Whether ``correction`` keeps the FWER of ``runs`` at or under alpha, and a
    sentence that says so with the numbers."""
    hits = runs.alarms(correction)
    rate = hits / runs.draws
    lo, hi = binomial_interval(hits, runs.draws)
    held = rate <= alpha
    verb, rel = ("keeps", "<=") if held else ("lets", ">")
    sure = ""
    if held and hi > alpha:
        sure = f"; the interval reaches {pct(hi)}"
    elif not held and lo <= alpha:
        sure = f"; the interval reaches down to {pct(lo)}: within Monte-Carlo error of alpha"
    return held, (
        f"{CORRECTION_NAMES[correction]} {verb} the family-wise false alarm rate at "
        f"{pct(rate)} {rel} alpha = {pct(alpha)} ({runs.label}: {hits} of {runs.draws} "
        f"comparisons; 95% interval {pct(lo)}-{pct(hi)}{sure})."
    )


def refuted(runs: NullRuns, correction: str, alpha: float = ALPHA) -> bool:
    """Whether the FWER of ``runs`` is above alpha beyond Monte-Carlo error (the 95%
    interval lies wholly above it), not only as a point estimate."""
    return binomial_interval(runs.alarms(correction), runs.draws)[0] > alpha


def noise_floor(runs: NullRuns, key: str) -> float:
    """95th percentile of a rate over null comparisons."""
    return float(np.quantile(runs.rates[key], 0.95))


def class_table(pop: Population, runs: Sequence[NullRuns]) -> str:
    """Markdown: per class, how much it varies from seed to seed and how often each
    test's raw p-value flags it."""
    y = pop.y.astype(np.intp)
    c = pop.num_classes
    support = np.bincount(y, minlength=c)
    correct = pop.predictions == pop.y
    recall = np.stack([np.bincount(y, weights=row, minlength=c) for row in correct]) / support
    shifted = recall - correct.mean(axis=1)[:, None]  # the paper's S = recall - top-1
    # Share of a class's examples that two members classify differently.
    pairs = all_pairs(pop.k)[:, :, 0]
    flips = (correct[pairs[:, 0]] != correct[pairs[:, 1]]).mean(axis=0)
    churn = np.bincount(y, weights=flips, minlength=c) / support
    spread = paired_spread(pop, all_pairs(pop.k))
    alarms = [(r.p_raw <= ALPHA).mean(axis=0) for r in runs]
    head = ["class", "support", "mean recall", "seed sd of S (points)", "churn per pair"]
    head.append("paired spread / SE")
    rows = [
        [
            pop.class_name(i),
            str(support[i]),
            pct(float(recall[:, i].mean())),
            f"{100 * shifted[:, i].std(ddof=1):.2f}",
            pct(float(churn[i])),
            "-" if np.isnan(spread[i]) else f"{spread[i]:.2f}",
            *(pct(float(a[i])) for a in alarms),
        ]
        for i in range(c)
    ]
    return _table([*head, *(r.label for r in runs)], rows)


# -- figures -----------------------------------------------------------------------------
def _png(fig: object, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)  # type: ignore[attr-defined]
    return write_bytes(path, buf.getvalue())


def pvalue_figure(runs: Sequence[NullRuns], path: Path) -> Path:
    """Histograms of raw class p-values under seed noise, one panel per test."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(3, len(runs))
    rows = -(-len(runs) // cols)
    fig = Figure(figsize=(3.3 * cols, 2.6 * rows + 0.4))
    FigureCanvasAgg(fig)
    bins = [i / 20 for i in range(21)]
    for i, r in enumerate(runs):
        ax = fig.add_subplot(rows, cols, i + 1)
        p = r.p_raw.ravel()
        ax.hist(p, bins=bins, density=True, color="#5d6d7e", edgecolor="white")
        ax.axhline(1.0, color="#c0392b", lw=1, ls="--", label="uniform")
        ax.set_title(f"{r.label}\n{p.size:,} class tests", fontsize=8)
        ax.set_xlabel("raw p-value", fontsize=8)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel("density", fontsize=8)
        if i == 0:
            ax.legend(fontsize=7, frameon=False)
    fig.suptitle("Class-test p-values between members that differ only in their seeds", fontsize=9)
    fig.tight_layout()
    return _png(fig, path)


def fwer_figure(runs: Sequence[NullRuns], path: Path) -> Path:
    """Grouped bars: family-wise false alarm rate by test and correction, 95% intervals."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 1.6 * len(runs) + 1.5), 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(CORRECTIONS)
    colors = ("#b8bcc0", "#7fb3d5", "#2471a3", "#76448a")
    x = np.arange(len(runs))
    for j, (corr, color) in enumerate(zip(CORRECTIONS, colors, strict=True)):
        rate = np.array([r.alarms(corr) / r.draws for r in runs])
        ci = np.array([binomial_interval(r.alarms(corr), r.draws) for r in runs])
        err = np.abs(ci.T - rate)
        ax.bar(x + (j - 1.5) * width, rate, width, yerr=err, color=color, label=corr, capsize=2)
    ax.axhline(ALPHA, color="#c0392b", lw=1, ls="--", label=f"alpha = {ALPHA}")
    ax.set_xticks(x, [r.label.replace(", ", "\n") for r in runs], fontsize=7)
    ax.set_ylabel("comparisons with >= 1 flagged class", fontsize=8)
    ax.set_ylim(0, 1)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, frameon=False, ncol=5, loc="upper right")
    ax.set_title(
        "Family-wise false alarm rate under seed noise (95% binomial intervals)", fontsize=9
    )
    fig.tight_layout()
    return _png(fig, path)


# -- the shipped policies on seed noise and planted damage -----------------------------------
PASS_TARGET = 0.95  # seed-only comparisons a shipped policy must pass
FAIL_TARGET = 0.90  # planted-damage comparisons a policy that gates the damage must fail
DAMAGE_WORDS = {"class": "one-class damage", "group": "small-subgroup damage"}


def rate_se(p: float, n: int) -> str:
    """``p`` as a percent with its Monte-Carlo standard error ``sqrt(p (1 - p) / n)``."""
    return f"{pct(p)} ± {100 * math.sqrt(p * (1 - p) / n):.1f}"


def seeing_gates(cell: Cell, kind: str) -> list[str]:
    """The policy's gates aimed at a kind of damage: class gates for ``class``
    damage, subgroup gates for ``group`` damage."""
    if kind == "class":
        return [g for g in cell.gates if "class" in g and not g.startswith("subgroups.")]
    return [g for g in cell.gates if g.startswith("subgroups.")]


def gate_breakdown(cell: Cell) -> str:
    """Gates that failed in some draw, most often first; a gate that could not be
    evaluated (an error verdict) is marked so."""
    rates = sorted(((cell.gate_rate(g), g) for g in cell.gates), key=lambda t: (-t[0], t[1]))
    shown = []
    for r, g in rates:
        if r > 0:
            errors = sum(g in e for e in cell.errored) / cell.n
            note = f" ({pct(errors)} unevaluable)" if errors else ""
            shown.append(f"`{g}` {pct(r)}{note}")
    return ", ".join(shown) or "-"


def _key(cell: Cell) -> tuple[str, int, int, str]:
    return cell.dataset, cell.k_ref, cell.k_cand, cell.policy


def seed_only_table(cells: Sequence[Cell]) -> str:
    """Markdown: pass rate of every policy on seed-only comparisons, and what failed."""
    head = ["dataset", "K_ref vs K_cand", "policy", "n", "pass (± MC s.e.)", "errors"]
    head += [f">= {pct(PASS_TARGET, 0)}", "gates that failed (share of comparisons)"]
    rows = [
        [
            c.dataset,
            c.shape,
            f"`{c.policy}`",
            str(c.n),
            rate_se(c.rate("pass"), c.n),
            pct(c.rate("error")),
            "yes" if c.rate("pass") >= PASS_TARGET else "**NO**",
            gate_breakdown(c),
        ]
        for c in cells
        if c.damage.kind == "none"
    ]
    return _table(head, rows, left=3)


def damage_table(cells: Sequence[Cell], kind: str, main: float) -> str:
    """Markdown: fail rate per planted magnitude of one kind of damage, per policy,
    the gates aimed at it, and whether the main magnitude meets the target."""
    mine = [c for c in cells if c.damage.kind == kind]
    fractions = sorted({c.damage.fraction for c in mine})
    by_key: dict[tuple[str, int, int, str], dict[float, Cell]] = {}
    for c in mine:
        by_key.setdefault(_key(c), {})[c.damage.fraction] = c
    head = ["dataset", "K_ref vs K_cand", "policy", "n", "gates aimed at it"]
    head += [f"fails, {pct(f, 0)} lost" for f in fractions]
    head += [f">= {pct(FAIL_TARGET, 0)} at {pct(main, 0)}", f"failed gates at {pct(main, 0)}"]
    rows = []
    for (dataset, _, _, policy), row in by_key.items():
        first, top = row[fractions[0]], row[main]
        aimed = seeing_gates(top, kind)
        if not aimed:
            target = "not gated"
        else:
            target = "yes" if top.rate("fail") >= FAIL_TARGET else "**NO**"
        rows.append(
            [
                dataset,
                first.shape,
                f"`{policy}`",
                str(first.n),
                ", ".join(f"`{g}`" for g in aimed) or "none",
                *(rate_se(row[f].rate("fail"), row[f].n) for f in fractions),
                target,
                gate_breakdown(top),
            ]
        )
    return _table(head, rows, left=3)


def policy_misses(cells: Sequence[Cell], main: float) -> list[str]:
    """One sentence per (dataset, shape, policy) that misses a target, naming the gates."""
    out = []
    for c in cells:
        where = f"`{c.policy}` on {c.dataset}, {c.shape}"
        if c.damage.kind == "none" and c.rate("pass") < PASS_TARGET:
            out.append(
                f"{where}: passes {pct(c.rate('pass'))} of {c.n} seed-only comparisons "
                f"(target {pct(PASS_TARGET, 0)}); failing: {gate_breakdown(c)}."
            )
        elif (
            c.damage.kind != "none"
            and c.damage.fraction == main
            and seeing_gates(c, c.damage.kind)
            and c.rate("fail") < FAIL_TARGET
        ):
            out.append(
                f"{where}: fails only {pct(c.rate('fail'))} of {c.n} comparisons with "
                f"{DAMAGE_WORDS[c.damage.kind]} ({pct(main, 0)} lost; target "
                f"{pct(FAIL_TARGET, 0)}); failing: {gate_breakdown(c)}."
            )
    return out


def policy_verdict(cells: Sequence[Cell], main: float) -> tuple[bool, list[str]]:
    """Whether every shipped policy meets both targets, and one sentence per miss."""
    misses = policy_misses(cells, main)
    return not misses, misses


def blind_spots(cells: Sequence[Cell], main: float) -> list[str]:
    """Which policy has no gate aimed at which damage (not a miss: it does not gate it)."""
    seen: dict[tuple[str, str], list[str]] = {}
    for c in cells:
        if (
            c.damage.kind != "none"
            and c.damage.fraction == main
            and not seeing_gates(c, c.damage.kind)
        ):
            datasets = seen.setdefault((c.policy, c.damage.kind), [])
            if c.dataset not in datasets:
                datasets.append(c.dataset)
    return [
        f"`{policy}` has no gate aimed at {DAMAGE_WORDS[kind]} ({', '.join(ds)}): it can "
        "only catch it through its other gates (see the table)."
        for (policy, kind), ds in seen.items()
    ]


def policy_section(cells: Sequence[Cell], *, setup: str, main: float, figure: str) -> str:
    """The RESULTS.md section with the seed-only and planted-damage tables."""
    return "\n".join(
        [
            "## Shipped policies: seed-only comparisons and planted damage",
            "",
            "Every comparison below is one `compaudit check` of a candidate against a "
            "reference, through the engine (the policy's audit settings, `audit`, "
            "`evaluate_gates`, `decide_verdict`). 'pass'/'fails': share of comparisons with "
            "that verdict; an error verdict (exit 2, a gate that cannot be evaluated) is "
            "neither. '± s.e.': Monte-Carlo standard error sqrt(p (1 - p) / n); resampled "
            "comparisons share members, so it understates the uncertainty.",
            "",
            setup,
            "",
            f"### Seed-only comparisons (target: pass >= {pct(PASS_TARGET, 0)})",
            "",
            seed_only_table(cells),
            "",
            f"### One-class damage (target: fail >= {pct(FAIL_TARGET, 0)} where gated)",
            "",
            damage_table(cells, "class", main),
            "",
            f"### Small-subgroup damage (target: fail >= {pct(FAIL_TARGET, 0)} where gated)",
            "",
            damage_table(cells, "group", main),
            "",
            *(f"- {s}" for s in blind_spots(cells, main)),
            "",
            f"![power curves]({figure})",
            "",
        ]
    )
