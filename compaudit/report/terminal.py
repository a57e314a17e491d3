"""Rich terminal summary: verdict, populations, and per candidate what was forgotten.

Readable at 80 columns; rich drops colour by itself when output is piped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from compaudit.report.base import ReportContext

VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold magenta"}
WORST_ROWS = 5


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage string ("-" when missing)."""
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def signed_pts(x: float | None, digits: int = 2) -> str:
    """A signed difference of fractions in percentage points."""
    return "-" if x is None else f"{100 * x:+.{digits}f} pp"


def fmt_p(p: float | None) -> str:
    """A p-value, compact."""
    if p is None:
        return "-"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def floor_text(c: dict[str, Any], block: str) -> str:
    """``"seed floor 2.40%, excess +0.70 pp (p 0.0156)"`` for the PIE or CIE block, or why none."""
    b = c[block]
    if b.get("floor_note"):
        return str(b["floor_note"])
    floor = b.get("floor") or {}
    if floor.get("rate") is None:
        reason = (c.get("floors") or {}).get("reason")
        return f"no seed floor ({reason})" if reason else "no seed floor"
    return (
        f"seed floor {pct(floor['rate'])}, excess {signed_pts(floor['excess'])} "
        f"(p {fmt_p(floor['p_value'])})"
    )


def noise_share(c: dict[str, Any]) -> str:
    """How many classes seed noise alone puts beyond a floor, in words."""
    q = (c.get("floors") or {}).get("quantile") or 0.95
    return f"seed noise alone puts about {1 - q:.0%} there"


def beyond_floor(rows: list[dict[str, Any]], key: str = "excess") -> int | None:
    """How many rows exceed their seed-noise floor (None when there are no floors)."""
    vals = [r.get(key) for r in rows]
    if all(v is None for v in vals):
        return None
    return sum(1 for v in vals if v is not None and v > 0)


def group_label(group: dict[str, Any]) -> str:
    """``sex=Female, race=Black``."""
    return ", ".join(f"{k}={v}" for k, v in group.items())


def _populations(report: dict[str, Any]) -> Table:
    t = Table(title="Populations", title_justify="left", expand=False)
    t.add_column("name")
    t.add_column("K", justify="right")
    t.add_column("top-1", justify="right")
    t.add_column("± std", justify="right")
    t.add_column("top-5", justify="right")
    for name, p in report["populations"].items():
        t.add_row(escape(name), str(p["k"]), pct(p["top1"]), pct(p["top1_std"]), pct(p.get("top5")))
    return t


def _comparison(c: dict[str, Any]) -> Group:
    cie, pie, sub = c["cie"], c["pie"], c["subsets"]
    n_sig_worse = sum(
        1 for r in c["classes"] if r["significant"] and (r["normalized_recall_difference"] or 0) < 0
    )
    n_sig = sum(1 for r in c["classes"] if r["significant"])
    lines = Text()
    lines.append(f"top-1 Δ {signed_pts(c['top1_delta'])}")
    if c.get("top5_delta") is not None:
        lines.append(f"   top-5 Δ {signed_pts(c['top5_delta'])}")
    if c.get("lineage") == "paired":
        lines.append("\nlineage: paired (candidate member k made from reference member k)")
    lines.append(
        f"\nCIE {pct(cie['rate'])} ({cie['count']:.0f}: forgot {cie['cie_u']:.0f}, "
        f"learned {cie['cie_c']:.0f}; {cie['basis']})"
    )
    lines.append(f"\n  {floor_text(c, 'cie')}", style="dim")
    lines.append(f"\nPIE {pie['count']} ({pct(pie['rate'])})")
    if pie.get("n_beyond_noise") is not None:
        lines.append(f"; {pie['n_beyond_noise']} beyond seed noise (per-example test)")
    lines.append(f"\n  {floor_text(c, 'pie')}", style="dim")
    lines.append(
        f"\ntop-1 ref/cand on PIE {pct(sub['pie']['top1_reference'], 1)}/"
        f"{pct(sub['pie']['top1_candidate'], 1)}, non-PIE "
        f"{pct(sub['non_pie']['top1_reference'], 1)}/{pct(sub['non_pie']['top1_candidate'], 1)}, "
        f"random {pct(sub['random']['top1_reference'], 1)}/"
        f"{pct(sub['random']['top1_candidate'], 1)}"
    )
    style = "red" if n_sig_worse else "green"
    lines.append(
        f"\nclasses significantly worse than overall: {n_sig_worse} of {len(c['classes'])}",
        style=style,
    )
    lines.append(f" ({n_sig} significant either way; {c['class_test']} test)")
    n_beyond = beyond_floor(c["classes"])
    if n_beyond is not None:
        lines.append(
            f"\nclasses below their seed-noise floor: {n_beyond} of {len(c['classes'])}"
            f" ({noise_share(c)})"
        )

    worst = sorted(
        (r for r in c["classes"] if r["normalized_recall_difference"] is not None),
        key=lambda r: r["normalized_recall_difference"],
    )[:WORST_ROWS]
    ct = Table(title="Worst classes", title_justify="left")
    ct.add_column("class", overflow="ellipsis", max_width=18)
    ct.add_column("n", justify="right")
    ct.add_column("recall ref", justify="right")
    ct.add_column("cand", justify="right")
    ct.add_column("norm. Δ", justify="right")
    ct.add_column("floor", justify="right")
    ct.add_column("p adj", justify="right")
    ct.add_column("sig", justify="center")
    for r in worst:
        ct.add_row(
            escape(r["name"]),
            str(r["support"]),
            pct(r["recall_reference"], 1),
            pct(r["recall_candidate"], 1),
            signed_pts(r["normalized_recall_difference"], 1),
            signed_pts(r.get("floor_difference"), 1),
            fmt_p(r["p_adjusted"]),
            Text("yes", style="bold red") if r["significant"] else Text("no"),
        )
    parts: list[Any] = [lines, ct]

    if c["subgroups"]:
        testable = [g for g in c["subgroups"] if g["testable"]]
        gt = Table(
            title=f"Worst groups ({', '.join(c['subgroup_attributes'])})", title_justify="left"
        )
        gt.add_column("group", overflow="fold", max_width=26)
        gt.add_column("n", justify="right")
        gt.add_column("PIE %", justify="right")
        gt.add_column("growth", justify="right")
        gt.add_column("shift Δ", justify="right")
        gt.add_column("p adj", justify="right")
        for g in sorted(testable, key=lambda g: g["shift_difference"])[:WORST_ROWS]:
            growth = "-" if g["pct_growth"] is None else f"{g['pct_growth']:+.0f}%"
            pct_pie = "-" if g["pct_pie"] is None else f"{g['pct_pie']:.1f}"
            gt.add_row(
                escape(group_label(g["group"])),
                str(g["n"]),
                pct_pie,
                growth,
                signed_pts(g["shift_difference"], 1),
                fmt_p(g["p_adjusted"]) + (" *" if g["significant"] else ""),
            )
        parts.append(gt)
        untestable = len(c["subgroups"]) - len(testable)
        if untestable:
            parts.append(
                Text(f"{untestable} group(s) below min_support: not testable", style="yellow")
            )
    return Group(*parts)


def _gates(report: dict[str, Any]) -> Table:
    t = Table(title="Gates", title_justify="left")
    t.add_column("gate")
    t.add_column("candidate")
    t.add_column("value", justify="right")
    t.add_column("limit", justify="right")
    t.add_column("result")
    for g in report["gates"]:
        passed = g["passed"]
        if passed:
            result = Text("pass", style="green")
        elif passed is False:
            result = Text("FAIL", style="bold red")
        elif g.get("status") == "skipped":
            result = Text("skipped", style="yellow")
        else:
            result = Text("error", style="bold magenta")
        value = "-" if g["value"] is None else f"{g['value']:.4g}"
        limit = "-" if g["threshold"] is None else f"{g['threshold']:.4g}"
        t.add_row(escape(g["name"]), escape(g.get("candidate") or "-"), value, limit, result)
    return t


def render(report: dict[str, Any], context: ReportContext) -> None:
    """Print the summary of ``report`` to ``context.console``."""
    con = context.console
    verdict = report["verdict"]
    data = report["data"]
    head = Text("compaudit ")
    head.append(verdict.upper(), style=VERDICT_STYLE[verdict])
    head.append(
        f"  {data['n']} examples, {data['num_classes']} classes, "
        f"alpha {report['settings']['alpha']} ({report['settings']['correction']})"
    )
    con.print(head)
    con.print(_populations(report))
    for c in report["comparisons"]:
        con.print(
            Panel(
                _comparison(c),
                title=escape(f"{c['candidate']} vs {c['reference']}"),
                title_align="left",
            )
        )
    if report["gates"]:
        con.print(_gates(report))
    for warning in report.get("warnings", []):
        con.print(Text(f"warning: {warning}", style="yellow"))
    for err in report.get("errors", []):
        con.print(Text(f"error: {err}", style="bold magenta"))


class TerminalReporter:
    """Prints the rich summary; writes no file."""

    name = "terminal"
    filename: str | None = None

    def write(
        self, report: dict[str, Any], *, out_dir: Path | None, context: ReportContext
    ) -> Path | None:
        """Render to the console."""
        render(report, context)
        return None
