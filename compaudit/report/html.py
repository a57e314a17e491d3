"""``report.html``: one self-contained page a reviewer opens offline.

Verdict and gates; the compression curve; populations; per candidate the
paper's per-class figure, the subgroup table (the paper's CelebA table) and
the PIE gallery. No external URL: CSS is inlined, the curve and the class
charts are inline SVG (:mod:`._svg`, no matplotlib), and every image (PIE
thumbnails, the long-tail decile figures) is a ``data:`` URI. All text is escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from compaudit._io import atomic_write_text
from compaudit._text import for_html
from compaudit.errors import InputError
from compaudit.report._charts import ConfusionShift, Spreads, confusion_shifts, gate_threshold
from compaudit.report._class_chart import class_span
from compaudit.report._common import (
    LONG_TAIL_CAPTION,
    LONG_TAIL_HEADER,
    NOISE_LEAD,
    NOT_GATED,
    VERDICT_WORD,
    candidate_verdicts,
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
from compaudit.report._fairness import fairness_html
from compaudit.report._gallery import check_images, pie_gallery, pie_indices
from compaudit.report._plot import decile_plot_png
from compaudit.report._svg import class_plot_svg
from compaudit.report._svg_curve import curve_plot_svg
from compaudit.report._views import SUBGROUPS_SHOWN, confusion_html, forest_html, heatmap_html
from compaudit.report.base import ReportContext
from compaudit.results import (
    AuditReport,
    Comparison,
    GateResult,
    GroupSetResult,
    LongTailRow,
)

__all__ = ["HTMLReporter", "render_html"]

CSS_FILE = "templates/report.css"
MAX_CLASS_ROWS = 1000
MAX_GROUP_ROWS = 500
ERR_NO_OUT_DIR = "the html format writes a file: give an output directory (--out DIR)"


def _css() -> str:
    return resources.files("compaudit.report").joinpath(CSS_FILE).read_text("utf-8")


def _e(x: object) -> str:
    # Controls escaped as text (\x1b) as in every format, then the HTML markup.
    return for_html(x)


def _table(
    header: Sequence[str], rows: Iterable[tuple[str, Sequence[str]]], numeric: Sequence[bool]
) -> str:
    """A table; each row is (tr class, already-escaped cell HTML)."""
    th = "".join(
        f"<th class='num'>{_e(h)}</th>" if num else f"<th>{_e(h)}</th>"
        for h, num in zip(header, numeric, strict=True)
    )
    body = []
    for cls, cells in rows:
        tds = "".join(
            f"<td class='num'>{c}</td>" if num else f"<td>{c}</td>"
            for c, num in zip(cells, numeric, strict=True)
        )
        body.append(f"<tr class='{_e(cls)}'>{tds}</tr>" if cls else f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cut(shown: int, total: int, what: str) -> str:
    if shown >= total:
        return ""
    return f"<p class='note'>Showing {shown} of {total} {what}; report.json has them all.</p>"


def _verdicts(report: AuditReport) -> str:
    """One line per candidate, failures first (the first thing on the page)."""
    items = []
    for v in candidate_verdicts(report):
        noise = f"<span class='noise'>; {_e(NOISE_LEAD)}{_e(', '.join(v.noise))}</span>"
        items.append(
            f"<li class='v-{_e(v.verdict)}'><b class='cand'>{_e(v.candidate)}</b> "
            f"<span class='vbadge b-{_e(v.verdict)}'>{VERDICT_WORD[v.verdict]}</span> "
            f"{_e('; '.join(v.reasons))}{noise if v.noise else ''}</li>"
        )
    return f"<ul class='verdicts'>{''.join(items)}</ul>"


def _curve(report: AuditReport) -> str:
    points = compression_curve(report)
    rows = [(f"r-{_e(p.verdict)}" if p.verdict else "", [_e(x) for x in curve_cells(p)])
            for p in points]  # fmt: skip
    numeric = [False, False, True, True, True, True, True, True, False]
    return (
        f"<section id='curve'><h2>Compression curve</h2><p class='caption'>{_e(CURVE_CAPTION)}"
        f"</p><div class='wide'>{_table(CURVE_HEADER, rows, numeric)}</div>"
        f"{curve_plot_svg(points)}"
        "</section>"
    )


def _gates(gates: Sequence[GateResult]) -> str:
    rows = []
    for g in gates_failures_first(gates):
        res = gate_outcome(g)
        cells = [
            f"<span class='gate-name'>{_e(g.name)}</span>",
            _e(g.candidate or "-"),
            gate_number(g, g.value),
            gate_number(g, g.threshold),
            f"<span class='res-{res}'>{_e(res)}</span>",
            f"<span class='detail'>{_e(g.detail)}</span>",
        ]
        rows.append((f"r-{res}", cells))
    header = ["gate", "candidate", "value", "threshold", "result", "detail"]
    return _table(header, rows, [False, False, True, True, False, False])


def _populations(report: AuditReport) -> str:
    rows = [
        (
            "",
            [_e(name), str(p.k), pct(p.top1), pct(p.top1_std), pct(p.top5), _e(p.source)],
        )
        for name, p in report.populations.items()
    ]
    header = ["population", "K", "top-1", "± std", "top-5", "source"]
    return _table(header, rows, [False, True, True, True, True, False])


def _classes_table(c: Comparison) -> str:
    # Worst first, as in every format; classes without a recall (empty, skipped) go last.
    rows = []
    for r in c.worst_classes(MAX_CLASS_ROWS):
        cells = [
            _e(r.name), str(r.support), pct(r.recall_reference, 1),
            pct(r.recall_candidate, 1), signed_pts(r.normalized_recall_difference, 1),
            signed_pts(r.floor_difference, 1), fmt_p(r.p_value),
            fmt_p(r.p_adjusted), significance(r),
        ]  # fmt: skip
        rows.append(("sig-worse" if r.significantly_worse else "", cells))
    header = ["class", "n", "recall ref", "recall cand", "norm. Δ", "seed floor", "p", "p adj",
              "significant"]  # fmt: skip
    table = _table(header, rows, [False, True, True, True, True, True, True, True, False])
    return (
        f"<details><summary>All {len(c.classes)} classes, worst first</summary>{table}"
        f"{_cut(len(rows), len(c.classes), 'classes')}</details>"
    )


def _subgroup_chart(
    c: Comparison, gs: GroupSetResult, gates: Sequence[GateResult], spreads: Spreads
) -> str:
    """Forest plot of the worst groups' shifts with their intervals and the gate's line."""
    errors = spreads.groups(c, gs)
    position = {id(g): i for i, g in enumerate(gs.subgroups)}
    rows = gs.worst_groups(SUBGROUPS_SHOWN)
    err = None if errors is None else [errors[position[id(g)]] for g in rows]
    suffix = ",".join(gs.attributes)
    threshold = gate_threshold(gates, "subgroups.accuracy_gap", c.candidate, suffix=suffix)
    basis = spreads.basis(c)
    what = (
        f"approximate 95% intervals (±1.96 standard errors from {basis})"
        if err is not None and basis is not None
        else "no intervals (they need the predictions, not report.json alone)"
    )
    shown = (
        f"the {len(rows)} worst of {len(gs.subgroups)} groups"
        if len(rows) < len(gs.subgroups)
        else "every group"
    )
    return (
        forest_html(rows, errors=err, threshold=threshold)
        + f"<p class='caption'>Each group's top-1 change minus the overall change, {shown}, "
        f"worst on top, in pp ± half-interval; {_e(what)}; filled: significant after correction "
        "(red worse, blue better), hollow: too small to test"
        + ("; dashed: the accuracy_gap gate's threshold" if threshold is not None else "")
        + ".</p>"
    )


def _subgroups(gs: GroupSetResult, chart: str = "") -> str:
    groups = gs.subgroups
    rows = []
    for g in gs.worst_groups(MAX_GROUP_ROWS):
        growth = "-" if g.pct_growth is None else f"{g.pct_growth:+z.0f}%"
        cells = [
            _e(g.label), str(g.n), str(g.n_non_pie), str(g.n_pie),
            pct_points(g.pct_non_pie), pct_points(g.pct_pie), growth,
            "-" if g.floor_pct_growth is None else f"{g.floor_pct_growth:+z.0f}%",
            pct(g.top1_reference, 1), pct(g.top1_candidate, 1),
            signed_pts(g.shift_difference, 1),
            fmt_p(g.p_adjusted) + (" *" if g.significant else ""),
            "yes" if g.testable else "no",
        ]  # fmt: skip
        cls = "untestable" if not g.testable else ""
        if g.significantly_worse:
            cls = "sig-worse"
        rows.append((cls, cells))
    header = ["group", "n", "n non-PIE", "n PIE", "% non-PIE", "% PIE", "growth",
              "growth floor", "top-1 ref", "top-1 cand", "shift Δ", "p adj",
              "testable"]  # fmt: skip
    numeric = [False] + [True] * 11 + [False]
    attrs = " × ".join(_e(a) for a in gs.attributes)
    return (
        f"<h3>Subgroups ({attrs})</h3>{chart}<p class='caption'>Worst first. % non-PIE and % PIE: "
        "the group's share "
        "of all non-PIEs and of all PIEs; growth: relative growth of that share among PIEs; "
        "growth floor: what seed noise alone gives (disjoint splits of the reference); "
        "shift Δ: the group's top-1 change minus the overall change; * significant after "
        f"correction.</p>{_table(header, rows, numeric)}{_cut(len(rows), len(groups), 'groups')}"
    )


def _shifts(c: Comparison) -> list[ConfusionShift]:
    cols = c.pie.examples.columns
    if not len(c.pie.examples):
        return []
    return confusion_shifts(
        np.asarray(cols["label"]), np.asarray(cols["modal_reference"]),
        np.asarray(cols["modal_candidate"]),
    )  # fmt: skip


def _long_tail(c: Comparison) -> str:
    rows = long_tail_rows(c)
    if not rows:
        return ""
    numeric = [i >= 2 for i in range(len(LONG_TAIL_HEADER))]
    parts = [
        "<h3>Long tail</h3>",
        f"<p class='caption'>{_e(LONG_TAIL_CAPTION)}</p>",
        _table(LONG_TAIL_HEADER, (("", [_e(v) for v in r]) for r in rows), numeric),
    ]
    by_score: dict[str, list[tuple[LongTailRow, LongTailRow | None]]] = {}
    for pair in c.long_tail_pairs():
        by_score.setdefault(pair[0].score, []).append(pair)
    for score, pairs in by_score.items():
        png = decile_plot_png(pairs, title=f"{score}: flagged share per score decile")
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        parts.append(
            f"<img class='plot' src='{uri}' alt='flagged share per decile of {_e(score)}'>"
        )
    parts.append(
        "<p class='caption'>Solid: compression; dashed: seed noise (two disjoint halves of "
        "the reference population); dotted: each subset's base rate.</p>"
    )
    return "".join(parts)


def _comparison(
    i: int,
    c: Comparison,
    context: ReportContext,
    report: AuditReport,
    charts: tuple[Spreads, float, list[float | None] | None],
) -> str:
    cand, ref = c.candidate, c.reference
    settings = report.settings
    names = {r.class_index: r.name for r in c.classes}
    spreads, span, errors = charts
    threshold = gate_threshold(report.gates, "class_recall_drop", cand)
    chart = class_plot_svg(
        c.classes, title=f"{cand} vs {ref}", span=span, threshold=threshold, errors=errors
    )
    summary = "".join(f"<li>{_e(s)}</li>" for s in summary_lines(c))
    parts = [
        f"<section class='candidate' id='cand-{i}'><h2>{_e(cand)} vs {_e(ref)}</h2>",
        f"<ul class='summary'>{summary}</ul>",
        "<h3>Per-class normalized recall difference</h3>",
        chart,
        "<p class='caption'>Each class's recall change minus the model's overall top-1 change, "
        f"in percentage points, sorted; * significant after {_e(settings.get('correction', '?'))}"
        f" correction at alpha {_e(settings.get('alpha', '?'))} ({_e(c.class_test)} test)."
        " One y-scale for every candidate"
        + (
            f"; error bars: ±1.96 standard errors from {_e(spreads.basis(c))}"
            if errors is not None
            else ""
        )
        + ("; dashed: the class_recall_drop gate's threshold" if threshold is not None else "")
        + ".</p>",
        _classes_table(c),
    ]
    if c.pie.count:  # no PIE, no confusion changed (the PIE section says so)
        parts.append(
            "<h3>Confusions that grew</h3><p class='caption'>PIEs by true class and the class "
            "the candidate now predicts, against how many the reference put there: the (true "
            "&rarr; predicted) confusions of the modal predictions that grew most.</p>"
            + confusion_html(_shifts(c), names)
        )
    parts += [
        _subgroups(gs, _subgroup_chart(c, gs, report.gates, spreads))
        for gs in subgroup_sets(c)
        if gs.subgroups
    ]
    parts.append(_long_tail(c) + fairness_html(c))
    images, indices, attributes, train_images = None, None, None, None
    if context.result is not None:
        indices = pie_indices(context.result, cand, c.pie.examples)
        attributes = context.result.reference.population.attributes
        if context.images is not None:
            images = check_images(context.images, context.result.reference.population.n)
    if c.influencers is not None and context.train_images is not None:
        train_images = check_images(context.train_images, c.influencers.n_train)
    parts.append(
        f"<h3>Pruning Identified Exemplars ({c.pie.count})</h3><p class='caption'>Examples "
        "whose modal candidate prediction differs from the modal reference prediction, with "
        f"vote shares; ties: {_e(c.pie.tie_rule)}.</p>"
    )
    parts.append(
        pie_gallery(
            c.pie.examples,
            names,
            images=images,
            indices=indices,
            attributes=attributes,
            uid=str(i),
            influencers=c.influencers,
            train_images=train_images,
        )
    )
    parts.append("</section>")
    return "".join(parts)


def render_html(report: AuditReport, context: ReportContext) -> str:
    """Render ``report`` as one self-contained HTML page.

    Parameters
    ----------
    report : AuditReport
        The typed report (:meth:`compaudit.engine.AuditResult.report`).
    context : ReportContext
        ``images`` and ``result`` enable the PIE thumbnails, ``train_images``
        the thumbnails of their influencers; ``sources`` are listed in the header.

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    InputError
        When ``context.images`` are not uint8 ``[N, H, W(, 3)]`` with one
        image per example (``context.train_images``: per training example).
    """
    verdict = report.verdict
    facts = header_facts(report, lambda s: s)  # escaped where the page joins them
    sources = " · ".join(f"{k}: {v}" for k, v in context.sources.items() if v)
    nav = "".join(
        f"<a href='#cand-{i}'>{_e(c.candidate)}</a>" for i, c in enumerate(report.comparisons)
    )
    body = [
        f"<header class='top v-{_e(verdict)}'><h1>compaudit "
        f"<span class='badge b-{_e(verdict)}'>{VERDICT_WORD[verdict]}</span></h1>",
        f"<p class='meta'>{_e(' · '.join(facts))}</p>",
        f"<p class='meta'>{_e(sources)}</p>" if sources else "",
        f"<nav>{nav}</nav></header>",
    ]
    if report.comparisons:
        body.append(_verdicts(report))
    if report.errors:
        items = "".join(f"<li>{_e(e)}</li>" for e in report.errors)
        body.append(f"<section class='errors'><h2>Errors</h2><ul>{items}</ul></section>")
    if report.warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in report.warnings)
        body.append(f"<section class='errors'><h2>Warnings</h2><ul>{items}</ul></section>")
    if show_curve(report):
        body.append(_curve(report))
    if report.gates:
        body.append(f"<section id='gates'><h2>Gates</h2>{_gates(report.gates)}</section>")
    elif verdict == "ungated":
        body.append(
            f"<p class='not-gated'><b>{_e(NOT_GATED)}</b> (give a policy with "
            "<code>--policy FILE</code> to gate).</p>"
        )
    else:
        body.append("<p class='muted'>No gates were evaluated.</p>")
    body.append(f"<section id='populations'><h2>Populations</h2>{_populations(report)}</section>")
    if len(report.comparisons) > 1:
        body.append(
            "<section id='heatmap'><h2>Classes across candidates</h2><p class='caption'>"
            "Normalized recall difference (pp) per class and candidate; * significant after "
            f"correction.</p>{heatmap_html(report.comparisons)}</section>"
        )
    spreads = Spreads(context.result)
    errors = [spreads.classes(c) for c in report.comparisons]
    span = max(
        (
            class_span(c.classes, e, gate_threshold(report.gates, "class_recall_drop", c.candidate))
            for c, e in zip(report.comparisons, errors, strict=True)
        ),
        default=0.0,
    )
    body += [
        _comparison(i, c, context, report, (spreads, span, e))
        for i, (c, e) in enumerate(zip(report.comparisons, errors, strict=True))
    ]
    body.append(
        f"<footer>{_e(report.schema)} · generated by compaudit; the machine-readable "
        "findings are in report.json.</footer>"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>compaudit report: {VERDICT_WORD[verdict]}</title>"
        f"<style>{_css()}</style></head><body><main>{''.join(body)}</main></body></html>\n"
    )


class HTMLReporter:
    """Writes the self-contained ``report.html`` atomically."""

    name = "html"
    filename: str | None = "report.html"

    def write(
        self, report: AuditReport, *, out_dir: Path | None, context: ReportContext
    ) -> Path | None:
        """Write ``out_dir/report.html``; an output directory is required."""
        if out_dir is None:
            raise InputError(ERR_NO_OUT_DIR)
        path = out_dir / "report.html"
        atomic_write_text(path, render_html(report, context))
        return path
