"""The long-tail study's pure parts: the run count, the rows it reads from
``report.json``, the verdicts it draws from them, and its two figures.

Nothing here trains or audits; every function takes plain numbers or the
report's JSON, so the tests can feed it constructed cases.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from compaudit.study import write_bytes

ALPHA = 0.05
SUBSETS = ("cie", "cie_u", "cie_c", "pie")
SUBSET_NAMES = {"cie": "CIE", "cie_u": "CIE-U", "cie_c": "CIE-C", "pie": "PIE"}
# The direction in which an example is "long tail" for each score: Dam et al.'s
# CIEs are *more* influenced; the long tail has a *lower* C-score (held-out accuracy).
DIRECTION: dict[str, int] = {"mean_influence": +1, "c_score": -1}
SCORE_NAMES = {
    "mean_influence": "mean influence (Dam et al., Alg. 1)",
    "c_score": "C-score (held-out accuracy of the influence runs)",
}

Verdict = Literal["holds", "rest-only", "does not hold", "not testable"]


def runs_for_se(target_se: float, subset_fraction: float) -> int:
    """Influence runs for a target standard error of every memorization and
    influence estimate: ``ceil(1 / (4 p (1 - p) se^2))``.

    The bound of ``compaudit.analysis.influence.required_runs`` (each estimate is a
    difference of two Bernoulli means over about ``R p`` and ``R (1 - p)`` runs,
    each of variance at most 1/4), restated here because examples use only the
    public API; the tests check that the two agree.
    """
    if not 0 < subset_fraction < 1 or target_se <= 0:
        raise ValueError(f"need 0 < p < 1 and se > 0, got p={subset_fraction}, se={target_se}")
    p = subset_fraction
    return max(1, math.ceil(round(1.0 / (4.0 * p * (1.0 - p) * target_se**2), 9)))


def se_for_runs(runs: int, subset_fraction: float) -> float:
    """The standard error bound ``1 / (2 sqrt(R p (1 - p)))`` that ``runs`` runs reach."""
    p = subset_fraction
    return 1.0 / (2.0 * math.sqrt(runs * p * (1.0 - p)))


@dataclass(frozen=True)
class Row:
    """One (candidate, score, subset) long-tail comparison and its seed-noise control."""

    dataset: str
    candidate: str
    score: str
    subset: str
    n: int
    mean_subset: float | None
    mean_rest: float | None
    p_value: float | None
    cliffs_delta: float | None
    mann_whitney_p: float | None = None
    seed_n: int | None = None
    seed_delta: float | None = None
    """Cliff's delta of the seed-noise subsets: the median over splits (one split's
    value in reports without ``n_splits``)."""
    n_splits: int | None = None
    seed_q05: float | None = None
    seed_q95: float | None = None
    p_beyond_seed: float | None = None

    @property
    def direction(self) -> int:
        """+1 when the long tail scores high, -1 when it scores low."""
        return DIRECTION.get(self.score, +1)


def _num(value: Any) -> float | None:
    """A JSON number as float; None for null and NaN."""
    if value is None:
        return None
    x = float(value)
    return None if math.isnan(x) else x


def long_tail_rows(report: Mapping[str, Any], dataset: str) -> list[Row]:
    """Every compression row of every comparison in ``report`` (``report.json``), with
    its ``*_seed`` counterpart; the split summary fields are read when present
    (``n_splits``, ``seed_cliffs_delta_q05``/``q95``, ``p_beyond_seed``)."""
    rows: list[Row] = []
    for comp in report["comparisons"]:
        entries = comp.get("long_tail", [])
        seed = {(e["score"], e["subset"]): e for e in entries if e["subset"].endswith("_seed")}
        for e in entries:
            if e["subset"] not in SUBSETS:
                continue
            s = seed.get((e["score"], f"{e['subset']}_seed"), {})
            rows.append(
                Row(
                    dataset=dataset,
                    candidate=comp["candidate"],
                    score=e["score"],
                    subset=e["subset"],
                    n=int(e["n"]),
                    mean_subset=_num(e.get("mean_subset")),
                    mean_rest=_num(e.get("mean_rest")),
                    p_value=_num(e.get("p_value")),
                    cliffs_delta=_num(e.get("cliffs_delta")),
                    mann_whitney_p=_num(e.get("mann_whitney_p")),
                    seed_n=int(s["n"]) if s else None,
                    seed_delta=_num(s.get("cliffs_delta")),
                    n_splits=s.get("n_splits", 1 if s else None),
                    seed_q05=_num(e.get("seed_cliffs_delta_q05")),
                    seed_q95=_num(e.get("seed_cliffs_delta_q95")),
                    p_beyond_seed=_num(e.get("p_beyond_seed")),
                )
            )
    return rows


def verdict(row: Row, alpha: float = ALPHA) -> tuple[Verdict, str]:
    """Whether the paper's claim holds on ``row``, and why (one clause).

    *holds*: the subset differs from the rest in the long-tail direction (Welch
    p <= alpha, Dam et al.'s test) **and** its Cliff's delta lies beyond the
    seed-noise subsets' in the same direction (``p_beyond_seed`` <= alpha).
    *rest-only*: the paper's test passes, but retraining alone flags examples
    as far in the tail (or there is no seed control to say otherwise).
    """
    if row.n < 2 or row.p_value is None or row.cliffs_delta is None:
        return "not testable", f"n = {row.n}: too few flagged examples for the t-test"
    signed = row.direction * (row.cliffs_delta or 0.0)
    tail = "higher" if row.direction > 0 else "lower"
    if row.p_value > alpha or signed <= 0:
        why = (
            f"Welch p = {row.p_value:.2g}"
            if row.p_value > alpha
            else f"the subset scores {'lower' if row.direction > 0 else 'higher'}, not {tail}"
        )
        return "does not hold", f"not different from the rest in the long-tail direction ({why})"
    if row.p_beyond_seed is None or row.seed_delta is None:
        return "rest-only", "different from the rest, but no seed-noise control to compare with"
    beyond = row.direction * (row.cliffs_delta - row.seed_delta) > 0
    if row.p_beyond_seed <= alpha and beyond:
        return "holds", (
            f"{tail} than the rest (p = {row.p_value:.2g}) and beyond seed noise "
            f"(δ {row.cliffs_delta:+.2f} vs {row.seed_delta:+.2f}, p = {row.p_beyond_seed:.2g})"
        )
    return "rest-only", (
        f"{tail} than the rest (p = {row.p_value:.2g}), but seed noise alone flags examples "
        f"as far in the tail (δ {row.cliffs_delta:+.2f} vs {row.seed_delta:+.2f}, "
        f"p = {row.p_beyond_seed:.2g})"
    )


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def rows_table(rows: Sequence[Row]) -> str:
    """The per-row Markdown table: the paper's numbers, the control, the verdict."""
    out = [
        "| candidate | score | subset | n | mean subset | mean rest | Welch p | MW p | Cliff's δ "
        "| seed n | seed δ (median) | seed δ 5-95% | splits | p beyond seed | verdict |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in rows:
        band = "-" if r.seed_q05 is None else f"{r.seed_q05:+.2f} .. {_f(r.seed_q95, '+.2f')}"
        out.append(
            f"| {r.candidate} | `{r.score}` | {SUBSET_NAMES[r.subset]} | {r.n} | "
            f"{_f(r.mean_subset, '.3g')} | {_f(r.mean_rest, '.3g')} | {_f(r.p_value, '.2g')} | "
            f"{_f(r.mann_whitney_p, '.2g')} | "
            f"{_f(r.cliffs_delta, '+.3f')} | {r.seed_n if r.seed_n is not None else '-'} | "
            f"{_f(r.seed_delta, '+.3f')} | {band} | "
            f"{r.n_splits if r.n_splits is not None else '-'} | {_f(r.p_beyond_seed, '.2g')} | "
            f"{verdict(r)[0]} |"
        )
    return "\n".join(out)


def claim_lines(rows: Sequence[Row]) -> list[str]:
    """One bullet per (dataset, candidate, score): where the claim holds on CIEs and PIEs."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.dataset, r.candidate, r.score), []).append(r)
    lines = []
    for (dataset, cand, score), group in groups.items():
        parts = []
        for r in group:
            v, why = verdict(r)
            parts.append(f"{SUBSET_NAMES[r.subset]} **{v}** ({why})")
        lines.append(f"- {dataset}, {cand}, `{score}`: " + "; ".join(parts) + ".")
    return lines


def summary_sentence(rows: Sequence[Row], score: str, subset: str = "cie") -> str:
    """The headline for one score and subset: on which (dataset, candidate) it holds."""
    name = f"{SUBSET_NAMES[subset]}s"
    mine = [r for r in rows if r.subset == subset and r.score == score]
    if not mine:
        return f"No {name} rows for `{score}`."
    tail = "higher" if DIRECTION.get(score, +1) > 0 else "lower"
    text = {
        "holds": f"{name} score {tail} than the rest and beyond seed noise (the claim holds)",
        "rest-only": f"{name} score {tail} than the rest, but not beyond what retraining "
        "alone flags (the paper's test passes; as a compression effect the claim does not hold)",
        "does not hold": f"{name} do not score {tail} than the rest (the claim does not hold)",
        "not testable": f"too few {name} to test",
    }
    parts = []
    for v in ("holds", "rest-only", "does not hold", "not testable"):
        names = [f"{r.dataset} {r.candidate}" for r in mine if verdict(r)[0] == v]
        if names:
            parts.append(f"{text[v]}: {', '.join(names)}")
    return f"By `{score}`: " + "; ".join(parts) + "."


def rank_disagreements(rows: Sequence[Row], alpha: float = ALPHA) -> list[str]:
    """Rows the paper's t-test calls "does not hold" while the rank test (Mann-Whitney)
    finds the subset in the long-tail direction; each says whether its Cliff's delta is
    also beyond seed noise. Heavy-tailed scores (mean influence: most examples 0, a few
    far out) are where Welch's t-test loses power and the two disagree."""
    lines = []
    for r in rows:
        if verdict(r, alpha)[0] != "does not hold" or r.cliffs_delta is None:
            continue
        if r.mann_whitney_p is None or r.mann_whitney_p > alpha:
            continue
        if r.direction * r.cliffs_delta <= 0:
            continue
        beyond = (
            r.p_beyond_seed is not None
            and r.seed_delta is not None
            and r.p_beyond_seed <= alpha
            and r.direction * (r.cliffs_delta - r.seed_delta) > 0
        )
        control = (
            f"beyond seed noise (δ {r.cliffs_delta:+.2f} vs {r.seed_delta:+.2f}, "
            f"p = {r.p_beyond_seed:.2g})"
            if beyond
            else "not beyond seed noise"
        )
        lines.append(
            f"- {r.dataset}, {r.candidate}, `{r.score}`, {SUBSET_NAMES[r.subset]} (n = {r.n}): "
            f"Welch p = {r.p_value:.2g}, but Mann-Whitney p = {r.mann_whitney_p:.2g} with "
            f"δ {r.cliffs_delta:+.2f}; {control}."
        )
    return lines


# -- figures ---------------------------------------------------------------------------------
def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def delta_figure(rows: Sequence[Row], path: Path, title: str) -> Path:
    """Cliff's delta of each compression subset (dots) against its seed-noise
    control (median: cross; 5-95% of the splits: bar), one panel per score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = sorted({r.score for r in rows})
    fig, axes = plt.subplots(1, max(1, len(scores)), figsize=(5.2 * max(1, len(scores)), 3.8))
    axes = np.atleast_1d(axes)
    for ax, score in zip(axes, scores, strict=False):
        mine = [r for r in rows if r.score == score]
        labels = [f"{r.candidate} {SUBSET_NAMES[r.subset]}" for r in mine]
        y = np.arange(len(mine))
        for i, r in enumerate(mine):
            if r.seed_q05 is not None and r.seed_q95 is not None:
                ax.plot([r.seed_q05, r.seed_q95], [i, i], color="0.7", lw=5, solid_capstyle="butt")
            if r.seed_delta is not None:
                ax.plot(r.seed_delta, i, "x", color="0.3", ms=7)
            if r.cliffs_delta is not None:
                colour = {"holds": "tab:red", "rest-only": "tab:orange"}.get(
                    verdict(r)[0], "tab:blue"
                )
                ax.plot(r.cliffs_delta, i, "o", color=colour, ms=6)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(-1, 1)
        ax.set_xlabel("Cliff's delta, subset vs rest")
        ax.set_title(score, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return write_bytes(path, data)


def decile_figure(report: Mapping[str, Any], score: str, path: Path, title: str) -> Path:
    """Share of CIEs (and PIEs) per score decile over the base rate, each candidate
    against the seed-noise subsets (mean share over splits); 1 = no over-indexing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, subset in zip(axes, ("cie", "pie"), strict=True):
        drawn_seed = False
        for comp in report["comparisons"]:
            for e in comp.get("long_tail", []):
                if e["score"] != score or e["subset"] not in (subset, f"{subset}_seed"):
                    continue
                seed = e["subset"].endswith("_seed")
                if seed and drawn_seed:
                    continue  # the reference's splits: the same for every candidate
                # Tied scores share a decile, so some deciles are empty: NaN there breaks
                # the line instead of drawing it across a decile with no examples.
                lift = [float("nan")] * 10
                for d in e["deciles"]:
                    if d["share_flagged"] is not None and d["base_rate"]:
                        lift[d["decile"] - 1] = d["share_flagged"] / d["base_rate"]
                label = "seed noise" if seed else comp["candidate"]
                style = {"color": "0.4", "linestyle": "--"} if seed else {"linestyle": "-"}
                ax.plot(range(1, 11), lift, marker="o", label=label, ms=4, **style)
                drawn_seed = drawn_seed or seed
        ax.axhline(1, color="k", lw=0.8)
        ax.set_xlabel(f"decile of {score} (1 = lowest)")
        ax.set_xticks(range(1, 11))
        ax.set_title(SUBSET_NAMES[subset], fontsize=9)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("share flagged / base rate")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return write_bytes(path, data)
