"""Selections and wording shared by the file reporters (Markdown, JUnit, HTML).

Numbers are formatted by the terminal reporter's helpers so that every format
says the same thing the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from compaudit.report.terminal import beyond_floor, floor_text, noise_share, pct, signed_pts

__all__ = [
    "GateOutcome",
    "fmt_value",
    "gallery_order",
    "gate_outcome",
    "pct_points",
    "summary_lines",
    "worst_classes",
]

GateOutcome = Literal["pass", "FAIL", "error", "skipped"]
VERDICT_WORD = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}


def fmt_value(x: float | None) -> str:
    """A gate value or threshold: 4 significant digits ("-" when missing)."""
    return "-" if x is None else f"{x:.4g}"


def pct_points(x: float | None, digits: int = 1) -> str:
    """A number that is already a percentage (subgroup shares and growth)."""
    return "-" if x is None else f"{x:.{digits}f}%"


def gate_outcome(gate: dict[str, Any]) -> GateOutcome:
    """What a gate came to.

    ``passed`` None is an ``error`` (the run fails closed) unless the gate
    module marked it ``skipped`` because the policy said so explicitly.
    """
    passed = gate["passed"]
    if passed is True:
        return "pass"
    if passed is False:
        return "FAIL"
    return "skipped" if gate.get("status") == "skipped" else "error"


def _nrd(row: dict[str, Any]) -> float:
    value = row["normalized_recall_difference"]
    return float("inf") if value is None else float(value)


def worst_classes(classes: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Classes significantly worse than the overall shift first, then the rest, worst first."""

    def key(row: dict[str, Any]) -> tuple[bool, float]:
        return (not (row["significant"] and _nrd(row) < 0), _nrd(row))

    return sorted(classes, key=key)[:limit]


def gallery_order(examples: Sequence[dict[str, Any]]) -> list[int]:
    """Positions of PIE examples, most confident flips first.

    Highest candidate vote share first, then highest reference share; the
    sort is stable, so equal shares keep the report's (example) order.
    """
    return sorted(
        range(len(examples)),
        key=lambda i: (-examples[i]["share_candidate"], -examples[i]["share_reference"]),
    )


def summary_lines(c: dict[str, Any]) -> list[str]:
    """Plain sentences summing up one comparison (no markup)."""
    cie, pie, sub = c["cie"], c["pie"], c["subsets"]
    classes = c["classes"]
    n_worse = sum(1 for r in classes if r["significant"] and _nrd(r) < 0)
    n_sig = sum(1 for r in classes if r["significant"])
    top = f"top-1 Δ {signed_pts(c['top1_delta'])}"
    if c.get("top5_delta") is not None:
        top += f", top-5 Δ {signed_pts(c['top5_delta'])}"
    beyond = pie.get("n_beyond_noise")
    pie_noise = "" if beyond is None else f", {beyond} beyond seed noise (per-example test)"
    n_floor = beyond_floor(classes)
    lines = [top]
    if c.get("lineage") == "paired":
        lines.append("lineage: paired (candidate member k made from reference member k)")
    return [
        *lines,
        f"CIE {pct(cie['rate'])} ({cie['count']:.0f} examples: forgot {cie['cie_u']:.0f}, "
        f"learned {cie['cie_c']:.0f}; {cie['basis']}); {floor_text(c, 'cie')}",
        f"PIE {pie['count']} ({pct(pie['rate'])}{pie_noise}); {floor_text(c, 'pie')}",
        f"top-1 reference/candidate on PIE "
        f"{pct(sub['pie']['top1_reference'], 1)}/{pct(sub['pie']['top1_candidate'], 1)}, "
        f"non-PIE {pct(sub['non_pie']['top1_reference'], 1)}/"
        f"{pct(sub['non_pie']['top1_candidate'], 1)}, random subset of equal size "
        f"{pct(sub['random']['top1_reference'], 1)}/{pct(sub['random']['top1_candidate'], 1)}",
        f"classes significantly worse than the overall shift: {n_worse} of {len(classes)} "
        f"({n_sig} significant either way; {c['class_test']} test)"
        + (
            ""
            if n_floor is None
            else f"; {n_floor} below their seed-noise floor ({noise_share(c)})"
        ),
    ]


def header_facts(report: dict[str, Any], escape: Callable[[str], str]) -> list[str]:
    """The one-line facts under a report's title (examples, settings, tool), escaped."""
    data, settings = report.get("data", {}), report.get("settings", {})
    facts = []
    if data:
        facts.append(f"{data['n']} examples, {data['num_classes']} classes")
    if settings:
        facts.append(
            f"alpha {settings['alpha']} ({escape(str(settings['correction']))}), "
            f"seed {settings['seed']}"
        )
    if "tool" in report:
        facts.append(f"{escape(report['tool']['name'])} {escape(report['tool']['version'])}")
    return facts
