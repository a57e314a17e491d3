"""Rich terminal summary: verdict, populations, and per candidate what was forgotten.

Readable at 80 columns; rich drops colour by itself when output is piped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from compaudit._text import for_terminal
from compaudit.report._common import (
    LINEAGE_NO_FLOORS,
    LONG_TAIL_HEADER,
    NOISE_LEAD,
    NOT_GATED,
    VERDICT_WORD,
    candidate_verdicts,
    cie_counts,
    comparisons_failures_first,
    floor_text,
    fmt_p,
    gate_number,
    gate_outcome,
    gates_failures_first,
    long_tail_rows,
    noise_share,
    pct,
    signed_pts,
    significance,
    subgroup_sets,
)
from compaudit.report._curve import compression_curve, curve_cells, level_text, show_curve
from compaudit.report._fairness import fairness_terminal
from compaudit.report._influencers import MEMORIZED_HEADER, memorized_rows
from compaudit.report.base import ReportContext
from compaudit.results import AuditReport, Comparison, GroupSetResult

VERDICT_STYLE = {
    "pass": "bold green",
    "fail": "bold red",
    "error": "bold magenta",
    "ungated": "bold cyan",  # neutral: nothing was gated, never green
}
WORST_ROWS = 5


_SIG_STYLE = {"worse": "bold red", "better": "green"}


def _name(text: object, style: str = "") -> Text:
    """A user-made string as a rich ``Text``: never parsed as markup, controls escaped."""
    return Text(for_terminal(text), style=style)


def _populations(report: AuditReport) -> Table:
    t = Table(title="Populations", title_justify="left", expand=False)
    t.add_column("name")
    t.add_column("K", justify="right")
    t.add_column("top-1", justify="right")
    t.add_column("± std", justify="right")
    t.add_column("top-5", justify="right")
    for name, p in report.populations.items():
        t.add_row(_name(name), str(p.k), pct(p.top1), pct(p.top1_std), pct(p.top5))
    return t


def _comparison(c: Comparison) -> Group:
    cie, pie, sub = c.cie, c.pie, c.subsets
    n_sig_worse = len(c.significantly_worse_classes)
    n_sig = sum(1 for r in c.classes if r.significant)
    lines = Text()
    lines.append(f"top-1 Δ {signed_pts(c.top1_delta)}")
    if c.top5_delta is not None:
        lines.append(f"   top-5 Δ {signed_pts(c.top5_delta)}")
    if c.lineage == "paired":
        lines.append("\nlineage: paired (candidate member k made from reference member k)")
    lines.append(f"\nCIE {pct(cie.rate)} ({cie_counts(c)})")
    lines.append(f"\n  {floor_text(c, 'cie')}", style="dim")
    lines.append(f"\nPIE {pie.count} ({pct(pie.rate)})")
    if pie.n_beyond_noise is not None:
        lines.append(f"; {pie.n_beyond_noise} beyond seed noise (per-example test)")
    lines.append(f"\n  {floor_text(c, 'pie')}", style="dim")
    lines.append(
        f"\ntop-1 ref/cand on PIE {pct(sub.pie.top1_reference, 1)}/"
        f"{pct(sub.pie.top1_candidate, 1)}, non-PIE "
        f"{pct(sub.non_pie.top1_reference, 1)}/{pct(sub.non_pie.top1_candidate, 1)}, "
        f"random {pct(sub.random.top1_reference, 1)}/"
        f"{pct(sub.random.top1_candidate, 1)}"
    )
    style = "red" if n_sig_worse else "green"
    lines.append(
        f"\nclasses significantly worse than overall: {n_sig_worse} of {len(c.classes)}",
        style=style,
    )
    lines.append(f" ({n_sig} significant either way; {c.class_test} test)")
    n_beyond = c.classes_beyond_floor
    if c.lineage == "paired":
        lines.append(f"\n{LINEAGE_NO_FLOORS}")
    elif n_beyond is not None:
        lines.append(
            f"\nclasses below their seed-noise floor: {n_beyond} of {len(c.classes)}"
            f" ({noise_share(c)})"
        )

    ct = Table(title="Worst classes", title_justify="left")
    ct.add_column("class", overflow="ellipsis", max_width=18)
    ct.add_column("n", justify="right")
    ct.add_column("recall ref", justify="right")
    ct.add_column("cand", justify="right")
    ct.add_column("norm. Δ", justify="right")
    ct.add_column("floor", justify="right")
    ct.add_column("p adj", justify="right")
    ct.add_column("sig", justify="center")
    for r in c.worst_classes(WORST_ROWS):
        ct.add_row(
            _name(r.name),
            str(r.support),
            pct(r.recall_reference, 1),
            pct(r.recall_candidate, 1),
            signed_pts(r.normalized_recall_difference, 1),
            signed_pts(r.floor_difference, 1),
            fmt_p(r.p_adjusted),
            Text(significance(r), style=_SIG_STYLE.get(significance(r), "")),
        )
    parts: list[Any] = [lines, ct]

    sets = subgroup_sets(c)
    # Every attribute set in one table (before: the first set only, so a second
    # attribute's groups never reached the terminal), in every format's worst-first order.
    merged = GroupSetResult(
        attributes=tuple(a for gs in sets for a in gs.attributes),
        subgroups=tuple(g for gs in sets for g in gs.subgroups),
    )
    if merged.subgroups:
        testable = [g for g in merged.worst_groups() if g.testable]
        names = "; ".join(", ".join(gs.attributes) for gs in sets if gs.subgroups)
        title = _name(f"Worst groups ({names})", "table.title")
        gt = Table(title=title, title_justify="left")
        gt.add_column("group", overflow="fold", max_width=26)
        gt.add_column("n", justify="right")
        gt.add_column("PIE %", justify="right")
        gt.add_column("growth", justify="right")
        gt.add_column("shift Δ", justify="right")
        gt.add_column("p adj", justify="right")
        for g in testable[:WORST_ROWS]:
            growth = "-" if g.pct_growth is None else f"{g.pct_growth:+z.0f}%"
            pct_pie = "-" if g.pct_pie is None else f"{g.pct_pie:.1f}"
            gt.add_row(
                _name(g.label),
                str(g.n),
                pct_pie,
                growth,
                signed_pts(g.shift_difference, 1),
                fmt_p(g.p_adjusted) + (" *" if g.significant else ""),
            )
        parts.append(gt)
        untestable = len(merged.subgroups) - len(testable)
        if untestable:
            parts.append(
                Text(f"{untestable} group(s) below min_support: not testable", style="yellow")
            )
    long_tail = long_tail_rows(c)
    if long_tail:
        lt = Table(title=_name("Long tail (score on flagged vs rest)", "table.title"),
                   title_justify="left")  # fmt: skip
        # 80 columns hold seven: the means stay in Markdown, HTML and report.json.
        for i in _LONG_TAIL_SHOWN:
            lt.add_column(LONG_TAIL_HEADER[i], justify="left" if i < 2 else "right")
        for row in long_tail:
            cells = [row[i] for i in _LONG_TAIL_SHOWN]
            lt.add_row(_name(cells[0]), *cells[1:])
        parts.append(lt)
    memorized = memorized_rows(c)
    if memorized:
        mt = Table(title=_name("What the first PIEs had memorized", "table.title"),
                   title_justify="left")  # fmt: skip
        for head in MEMORIZED_HEADER:
            mt.add_column(head)
        for row in memorized:
            mt.add_row(*(_name(cell) for cell in row))
        parts.append(mt)
    return Group(*parts, *fairness_terminal(c))


_LONG_TAIL_SHOWN = (0, 1, 2, 5, 6, 10, 12)  # score, subset, n, Welch p, δ, seed δ, p beyond
_RESULT_STYLE = {"pass": "green", "FAIL": "bold red", "skipped": "yellow", "error": "bold magenta"}


def _verdicts(report: AuditReport) -> Table:
    """One line per candidate, failures first: the answer before the evidence (a long
    line wraps under its own reasons, so the names and verdicts stay in one column)."""
    t = Table.grid(padding=(0, 1))
    t.add_column(overflow="fold", max_width=24)
    t.add_column(no_wrap=True)
    t.add_column(overflow="fold")
    for v in candidate_verdicts(report):
        why = Text(for_terminal("; ".join(v.reasons)))
        if v.noise:
            why.append(for_terminal(f"; {NOISE_LEAD}{', '.join(v.noise)}"), style="dim")
        t.add_row(_name(v.candidate, "bold"), Text(VERDICT_WORD[v.verdict],
                  style=VERDICT_STYLE[v.verdict]), why)  # fmt: skip
    return t


def _curve(report: AuditReport) -> Table:
    # Eight of the nine columns fit 80 columns; top-5 is in Markdown, HTML and report.json.
    t = Table(title="Compression curve", title_justify="left")
    t.add_column("name", overflow="fold", max_width=14)
    t.add_column("level", overflow="fold", max_width=18)
    for head in ("top-1", "worse", "PIEs", "+floor", "CIE"):
        t.add_column(head, justify="right")
    t.add_column("verdict")
    for p in compression_curve(report):
        name, _level, top1, _top5, worse, pies, excess, cie, verdict = curve_cells(p)
        level = level_text(p.compression, short=True)
        style = {"fail": "bold red", "error": "bold magenta"}.get(verdict, "")
        t.add_row(
            _name(name), _name(level), top1, worse.split(" of ")[0], pies, excess, cie,
            Text(verdict, style=style),
        )  # fmt: skip
    return t


def _gates(report: AuditReport) -> Table:
    t = Table(title="Gates", title_justify="left")
    t.add_column("gate", overflow="fold")
    t.add_column("candidate")
    t.add_column("value", justify="right")
    t.add_column("limit", justify="right")
    t.add_column("result")
    for g in gates_failures_first(report.gates):
        outcome = gate_outcome(g)
        t.add_row(
            _name(g.name),
            _name(g.candidate or "-"),
            gate_number(g, g.value),
            gate_number(g, g.threshold),
            Text(outcome, style=_RESULT_STYLE[outcome]),
        )
    return t


def render(report: AuditReport, context: ReportContext) -> None:
    """Print the summary of ``report`` to ``context.console``."""
    con = context.console
    verdict = report.verdict
    head = Text("compaudit ")
    head.append(VERDICT_WORD[verdict], style=VERDICT_STYLE[verdict])
    facts = []
    if report.data is not None:
        facts.append(f"{report.data.n} examples, {report.data.num_classes} classes")
    if report.settings:
        facts.append(f"alpha {report.settings['alpha']} ({report.settings['correction']})")
    head.append(for_terminal(f"  {', '.join(facts)}") if facts else "")
    con.print(head)
    if report.comparisons:
        con.print(_verdicts(report))
    if show_curve(report):
        con.print(_curve(report))
    con.print(_populations(report))
    for c in comparisons_failures_first(report):
        con.print(
            Panel(
                _comparison(c),
                title=_name(f"{c.candidate} vs {c.reference}"),
                title_align="left",
            )
        )
    if report.gates:
        con.print(_gates(report))
    elif verdict == "ungated":
        con.print(Text(NOT_GATED, style=VERDICT_STYLE[verdict]))
    for warning in report.warnings:
        con.print(_name(f"warning: {warning}", "yellow"))
    for err in report.errors:
        con.print(_name(f"error: {err}", "bold magenta"))


class TerminalReporter:
    """Prints the rich summary; writes no file."""

    name = "terminal"
    filename: str | None = None

    def write(
        self, report: AuditReport, *, out_dir: Path | None, context: ReportContext
    ) -> Path | None:
        """Render to the console."""
        render(report, context)
        return None
