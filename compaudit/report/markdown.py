"""``report.md``: GitHub-flavoured Markdown, fit for ``$GITHUB_STEP_SUMMARY``.

Long tables are capped (saying how many rows were left out) and the whole
document is kept under GitHub's 1 MiB step-summary limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from compaudit._io import atomic_write_text
from compaudit._text import for_html, for_markdown
from compaudit.errors import InputError
from compaudit.report._common import (
    LONG_TAIL_CAPTION,
    LONG_TAIL_HEADER,
    NOISE_LEAD,
    NOT_GATED,
    VERDICT_WORD,
    candidate_verdicts,
    comparisons_failures_first,
    fmt_p,
    gate_number,
    gate_outcome,
    gates_failures_first,
    header_facts,
    long_tail_rows,
    pct,
    pct_points,
    signed_pts,
    significance,
    subgroup_sets,
    summary_lines,
)
from compaudit.report._curve import (
    CURVE_CAPTION,
    CURVE_HEADER,
    compression_curve,
    curve_cells,
    show_curve,
)
from compaudit.report._fairness import fairness_markdown
from compaudit.report._influencers import MEMORIZED_CAPTION, MEMORIZED_HEADER, memorized_rows
from compaudit.report.base import ReportContext
from compaudit.results import AuditReport, Comparison, GateResult, GroupSetResult

__all__ = ["MarkdownReporter", "render_markdown"]

MAX_GATE_ROWS = 200
MAX_CLASS_ROWS = 10
MAX_GROUP_ROWS = 50
MAX_BYTES = 1_000_000
"""Under GitHub's 1 MiB (1,048,576 bytes) per-step summary limit, with room to spare."""

ERR_SUMMARY = (
    "cannot append the Markdown summary to {path} ($GITHUB_STEP_SUMMARY): {reason}; "
    "point GITHUB_STEP_SUMMARY at a writable file or unset it"
)
TRUNCATED = (
    "_The summary was cut at {kept} of {total} bytes (GitHub's limit is 1 MiB); see report.json._"
)

VERDICT_ICON = {"pass": "✅", "fail": "❌", "error": "⚠️", "ungated": "➖"}
OUTCOME_CELL = {
    "pass": "✅ pass",
    "FAIL": "❌ **FAIL**",
    "error": "⚠️ **error**",
    "skipped": "➖ skipped",
}


def esc(text: object) -> str:
    """Escape text for a Markdown paragraph or table cell (one line, no markup)."""
    return for_markdown(text)


def code(text: object) -> str:
    """A name as inline code (escaped text when it holds a backtick or a ``|``)."""
    return for_markdown(text, code=True)


def _table(header: Sequence[str], align: str, rows: Sequence[Sequence[str]]) -> list[str]:
    rule = {"l": "---", "r": "---:", "c": ":---:"}
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule[a] for a in align) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _cut_note(shown: int, total: int, what: str) -> list[str]:
    if shown >= total:
        return []
    return ["", f"_{total - shown} more {what} not shown ({shown} of {total}); see report.json._"]


def _verdicts(report: AuditReport) -> list[str]:
    """One bullet per candidate, failures first."""
    lines = []
    for v in candidate_verdicts(report):
        noise = f"; _{esc(NOISE_LEAD.strip())} {esc(', '.join(v.noise))}_" if v.noise else ""
        lines.append(
            f"- {VERDICT_ICON[v.verdict]} {code(v.candidate)} **{VERDICT_WORD[v.verdict]}**: "
            f"{esc('; '.join(v.reasons))}{noise}"
        )
    return lines


def _curve(report: AuditReport) -> list[str]:
    rows = [[code(c[0]), *(esc(x) for x in c[1:])] for c in map(curve_cells,
            compression_curve(report))]  # fmt: skip
    lines = ["### Compression curve", "", esc(CURVE_CAPTION), ""]
    return lines + _table(CURVE_HEADER, "llrrrrrrl", rows)


def _gates(gates: Sequence[GateResult]) -> list[str]:
    # Failures first, so the cap never hides one.
    shown = gates_failures_first(gates)[:MAX_GATE_ROWS]
    rows = [
        [
            code(g.name),
            code(g.candidate) if g.candidate else "-",
            gate_number(g, g.value),
            gate_number(g, g.threshold),
            OUTCOME_CELL[gate_outcome(g)],
            esc(g.detail),
        ]
        for g in shown
    ]
    lines = ["### Gates", ""]
    lines += _table(["gate", "candidate", "value", "threshold", "result", "detail"], "llrrll", rows)
    return lines + _cut_note(len(shown), len(gates), "gates")


def _populations(report: AuditReport) -> list[str]:
    rows = [
        [code(name), str(p.k), pct(p.top1), pct(p.top1_std), pct(p.top5)]
        for name, p in report.populations.items()
    ]
    return [
        "### Populations",
        "",
        *_table(["population", "K", "top-1", "± std", "top-5"], "lrrrr", rows),
    ]


def _classes(c: Comparison) -> list[str]:
    rows = [
        [
            esc(r.name),
            str(r.support),
            pct(r.recall_reference, 1),
            pct(r.recall_candidate, 1),
            signed_pts(r.normalized_recall_difference, 1),
            signed_pts(r.floor_difference, 1),
            fmt_p(r.p_adjusted),
            "**worse**" if r.significantly_worse else significance(r),
        ]
        for r in c.worst_classes(MAX_CLASS_ROWS)
    ]
    header = ["class", "n", "recall ref", "recall cand", "norm. Δ", "seed floor", "p adj",
              "significant"]  # fmt: skip
    n_worse = len(c.significantly_worse_classes)
    lines = [
        "",
        "<details><summary><b>Worst classes</b> "
        f"({n_worse} of {len(c.classes)} significantly worse; significantly worse first, "
        "then by normalized recall difference)</summary>",
        "",
    ]
    lines += _table(header, "lrrrrrrc", rows)
    return lines + _cut_note(len(rows), len(c.classes), "classes") + ["", "</details>"]


def _subgroups(gs: GroupSetResult) -> list[str]:
    groups = gs.subgroups
    rows = [
        [
            esc(g.label),
            str(g.n),
            str(g.n_non_pie),
            str(g.n_pie),
            pct_points(g.pct_non_pie),
            pct_points(g.pct_pie),
            "-" if g.pct_growth is None else f"{g.pct_growth:+z.0f}%",
            "-" if g.floor_pct_growth is None else f"{g.floor_pct_growth:+z.0f}%",
            pct(g.top1_reference, 1),
            pct(g.top1_candidate, 1),
            signed_pts(g.shift_difference, 1),
            fmt_p(g.p_adjusted) + (" **\\***" if g.significant else ""),
            "yes" if g.testable else "no",
        ]
        for g in gs.worst_groups(MAX_GROUP_ROWS)
    ]
    header = ["group", "n", "non-PIE", "PIE", "% non-PIE", "% PIE", "growth", "growth floor",
              "top-1 ref", "top-1 cand", "shift Δ", "p adj", "testable"]  # fmt: skip
    # HTML, not Markdown, inside <summary>: GitHub does not render Markdown escapes there.
    attrs = " × ".join(for_html(a) for a in gs.attributes)
    n_worse = sum(1 for g in groups if g.significantly_worse)
    lines = [
        "",
        f"<details><summary><b>Subgroups</b> ({attrs}; {n_worse} of {len(groups)} "
        "significantly worse; worst first; % of all non-PIEs / all PIEs; "
        "* significant after correction)</summary>",
        "",
    ]
    lines += _table(header, "lrrrrrrrrrrrc", rows)
    return lines + _cut_note(len(rows), len(groups), "groups") + ["", "</details>"]


def _comparison(c: Comparison) -> list[str]:
    icon = f"{VERDICT_ICON[c.verdict]} " if c.verdict != "ungated" else ""
    lines = ["", f"### {icon}{code(c.candidate)} vs {code(c.reference)}", ""]
    lines += [f"- {esc(s)}" for s in summary_lines(c)]
    lines += _classes(c)
    for gs in subgroup_sets(c):
        if gs.subgroups:
            lines += _subgroups(gs)
    return lines + _long_tail(c) + _memorized(c) + fairness_markdown(c)


def _memorized(c: Comparison) -> list[str]:
    rows = memorized_rows(c)
    if not rows:
        return []
    lines = ["", "#### What the first PIEs had memorized", "", esc(MEMORIZED_CAPTION), ""]
    return lines + _table(
        MEMORIZED_HEADER, "lll", [[code(r[0]), esc(r[1]), esc(r[2])] for r in rows]
    )


def _long_tail(c: Comparison) -> list[str]:
    rows = long_tail_rows(c)
    if not rows:
        return []
    lines = ["", "#### Long tail", "", esc(LONG_TAIL_CAPTION), ""]
    cells = [[code(r[0]), code(r[1]), *r[2:]] for r in rows]
    return lines + _table(LONG_TAIL_HEADER, "llrrrrrrrrrrr", cells)


def render_markdown(report: AuditReport, *, max_bytes: int = MAX_BYTES) -> str:
    """Render ``report`` as GitHub-flavoured Markdown.

    Parameters
    ----------
    report : AuditReport
        The typed report (:meth:`compaudit.engine.AuditResult.report`).
    max_bytes : int
        Largest UTF-8 size of the result; a longer document is cut at a line
        boundary and ends with a note saying so.

    Returns
    -------
    str
        The Markdown text, ending with a newline.
    """
    verdict = report.verdict
    facts = header_facts(report, esc)
    lines = [
        f"## compaudit: {VERDICT_ICON[verdict]} {VERDICT_WORD[verdict]}",
        "",
        " · ".join(facts),
    ]
    if report.comparisons:
        lines += ["", *_verdicts(report)]
    if verdict == "ungated" and not report.gates:
        lines += ["", f"> **{esc(NOT_GATED)}** (give a policy with `--policy FILE` to gate)."]
    if report.errors:
        lines += ["", "### Errors", "", *(f"- {esc(e)}" for e in report.errors)]
    if report.warnings:
        lines += ["", "### Warnings", "", *(f"- {esc(w)}" for w in report.warnings)]
    if show_curve(report):
        lines += ["", *_curve(report)]
    if report.gates:
        lines += ["", *_gates(report.gates)]
    if report.populations:
        lines += ["", *_populations(report)]
    for c in comparisons_failures_first(report):
        lines += _comparison(c)
    text = "\n".join(lines) + "\n"
    return _fit(text, max_bytes)


def _fit(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    note = TRUNCATED.format(kept="{kept}", total=len(data))
    budget = max_bytes - len(note.encode("utf-8")) - 32
    cut = data[: max(budget, 0)].rsplit(b"\n", 1)[0].decode("utf-8", errors="ignore")
    return cut + "\n\n" + note.format(kept=len(cut.encode("utf-8"))) + "\n"


class MarkdownReporter:
    """Writes ``report.md`` and appends the same text to the GitHub step summary."""

    name = "markdown"
    filename: str | None = "report.md"

    def write(
        self, report: AuditReport, *, out_dir: Path | None, context: ReportContext
    ) -> Path | None:
        """Write ``out_dir/report.md`` atomically (print it when ``out_dir`` is None)."""
        text = render_markdown(report)
        if out_dir is None:
            context.console.out(text, end="", highlight=False)
            return None
        path = out_dir / "report.md"
        atomic_write_text(path, text)
        return path

    def append_step_summary(
        self, report: AuditReport, path: Path, *, context: ReportContext
    ) -> None:
        """Append the Markdown report to ``path`` (GitHub's ``$GITHUB_STEP_SUMMARY``).

        Appends, never overwrites: other steps' summaries in the same file are
        kept. The text goes out in one ``write`` call on a file opened in
        append mode, so concurrent writers do not interleave within it.

        Raises
        ------
        InputError
            When ``path`` cannot be opened for appending.
        """
        text = render_markdown(report)
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(("\n" if fh.tell() else "") + text)
        except OSError as exc:
            raise InputError(ERR_SUMMARY.format(path=path, reason=exc.strerror or exc)) from exc
