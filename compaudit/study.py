"""Paper-form summaries of an audit, for population experiments and case studies.

Hooker et al. report, per compression level, top-1 (mean and std over the
population), the number of classes significantly impacted and the number of
PIEs, then top-1 on PIE, non-PIE and random subsets. These helpers turn a
``compaudit.report/v1`` document (typed, or its ``report.json`` dict) into
those tables (as rows and as Markdown) and write the figures with the same
code the HTML report uses.

A study's own figures can share the report's colours (:data:`WORSE`,
:data:`BETTER`, :data:`NEUTRAL`), and its files are written with
:func:`write_text` / :func:`write_bytes`: atomically, so a reader (or an
interrupted run) never sees half a RESULTS.md or a truncated PNG.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compaudit._io import atomic_write_bytes, atomic_write_text
from compaudit._text import for_filename, for_plot
from compaudit.report._class_chart import BETTER, NEUTRAL, WORSE
from compaudit.results import AuditReport, ClassRow, Comparison, PopulationSummary

__all__ = [
    "BETTER",
    "LEVEL_COLUMNS",
    "NEUTRAL",
    "SUBSET_COLUMNS",
    "WORSE",
    "figure_filename",
    "level_rows",
    "markdown_table",
    "pie_gallery_png",
    "subset_rows",
    "write_bytes",
    "write_class_figure",
    "write_text",
]

# WORSE, BETTER, NEUTRAL: the report's colours for a worse, better and untested
# (or not significant) class or group, as matplotlib colour strings.

# Columns of the paper's two tables, for :func:`markdown_table`.
LEVEL_COLUMNS = [
    ("population", "population", ""),
    ("k", "K", ""),
    ("top1", "top-1", "pct"),
    ("top1_std", "std", "pct"),
    ("top1_delta", "Δ top-1 (pp)", "pp"),
    ("sig_classes", "classes sig. (Holm)", ""),
    ("sig_classes_worse", "of which worse", ""),
    ("sig_classes_raw", "classes sig. (raw p)", ""),
    ("pies", "PIEs", ""),
    ("pie_rate", "PIE rate", "pct"),
]
SUBSET_COLUMNS = [
    ("candidate", "candidate", ""),
    ("n_pie", "n PIE", ""),
    ("pie_reference", "PIE: reference", "pct"),
    ("pie_candidate", "PIE: candidate", "pct"),
    ("non_pie_reference", "non-PIE: reference", "pct"),
    ("non_pie_candidate", "non-PIE: candidate", "pct"),
    ("random_reference", "random: reference", "pct"),
    ("random_candidate", "random: candidate", "pct"),
]


def _report(report: AuditReport | Mapping[str, Any]) -> AuditReport:
    """The typed report (a ``report.json`` dict is parsed, and checked, once)."""
    return report if isinstance(report, AuditReport) else AuditReport.from_dict(report)


def _comparison(comparison: Comparison | Mapping[str, Any]) -> Comparison:
    if isinstance(comparison, Comparison):
        return comparison
    return Comparison.from_dict(comparison, "comparison")


def level_rows(report: AuditReport | Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per population: the paper's table of top-1, impacted classes and PIEs.

    ``sig_classes`` counts classes significant after the report's correction,
    ``sig_classes_raw`` those with a raw p-value at or below alpha (what the
    paper counted), each split by direction in ``*_worse`` (behind the overall
    shift). ``report`` is typed or a ``report.json`` dict.
    """
    doc = _report(report)
    alpha = float(doc.settings["alpha"])
    rows: list[dict[str, Any]] = []
    if doc.comparisons:
        ref_name = doc.comparisons[0].reference
        rows.append(_row(ref_name, doc.populations[ref_name], None, alpha))
    for c in doc.comparisons:
        rows.append(_row(c.candidate, doc.populations[c.candidate], c, alpha))
    return rows


def _behind(row: ClassRow) -> bool:
    d = row.normalized_recall_difference
    return d is not None and d < 0


def _row(
    name: str, pop: PopulationSummary, comp: Comparison | None, alpha: float
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "population": name,
        "k": pop.k,
        "top1": pop.top1,
        "top1_std": pop.top1_std,
        "top1_delta": None,
        "sig_classes": None,
        "sig_classes_worse": None,
        "sig_classes_raw": None,
        "sig_classes_raw_worse": None,
        "pies": None,
        "pie_rate": None,
    }
    if comp is None:
        return row
    raw = [c for c in comp.classes if c.p_value is not None and c.p_value <= alpha]
    row.update(
        top1_delta=comp.top1_delta,
        sig_classes=sum(1 for c in comp.classes if c.significant),
        sig_classes_worse=len(comp.significantly_worse_classes),
        sig_classes_raw=len(raw),
        sig_classes_raw_worse=sum(1 for c in raw if _behind(c)),
        pies=comp.pie.count,
        pie_rate=comp.pie.rate,
    )
    return row


def subset_rows(report: AuditReport | Mapping[str, Any]) -> list[dict[str, Any]]:
    """Top-1 of reference and candidate on PIE, non-PIE and random subsets (paper's Fig. 3)."""
    rows = []
    for c in _report(report).comparisons:
        s = c.subsets
        parts = {"pie": s.pie, "non_pie": s.non_pie, "random": s.random}
        rows.append(
            {
                "candidate": c.candidate,
                "n_pie": s.pie.n,
                **{
                    f"{subset}_{side}": getattr(part, f"top1_{side}")
                    for subset, part in parts.items()
                    for side in ("reference", "candidate")
                },
            }
        )
    return rows


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if fmt == "pct":
        return f"{100 * value:.2f}%"
    if fmt == "pp":
        return f"{100 * value:+z.2f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table; ``columns`` are ``(key, header, format)`` with format
    ``"pct"`` (fraction as percent), ``"pp"`` (signed points) or ``""``."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|" + "|".join("---" if not f else "---:" for _, _, f in columns) + "|"
    body = ["| " + " | ".join(_cell(r.get(k), f) for k, _, f in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: readers see the old file or the new one."""
    atomic_write_text(path, text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (a figure's PNG bytes, for example)."""
    atomic_write_bytes(path, data)
    return Path(path)


def figure_filename(kind: str, name: str, suffix: str = ".png") -> str:
    """A figure's file name for a candidate or class ``name``: ``"classes-int8.png"``.

    A name is the user's (a pull request's): a name that is not a short portable
    file name already (``/``, control characters, non-ASCII, 3,000 characters)
    becomes a readable prefix and a hash of the whole name
    (:func:`compaudit._text.for_filename`), so distinct names keep distinct files.
    """
    return f"{kind}-{for_filename(name)}{suffix}"


def write_class_figure(
    comparison: Comparison | Mapping[str, Any], path: Path, *, title: str | None = None
) -> Path:
    """The per-class figure of one comparison as a PNG (the HTML report's plot)."""
    from compaudit.report._plot import class_plot_png

    comp = _comparison(comparison)
    title = title or f"{comp.candidate} vs {comp.reference}"
    atomic_write_bytes(path, class_plot_png(comp.classes, title=title))
    return path


def pie_gallery_png(
    comparison: Comparison | Mapping[str, Any],
    images: np.ndarray,
    ids: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    *,
    limit: int = 24,
    columns: int = 8,
) -> Path:
    """A grid of PIE images with true label and both modal predictions (paper's Fig. 1).

    PIEs are shown most confident flip first (the HTML gallery's order).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from compaudit.report._common import gallery_order

    comp = _comparison(comparison)
    examples = comp.pie.examples
    order = gallery_order(examples)[:limit]
    index = {str(v): i for i, v in enumerate(ids.tolist())}
    rows = max(1, -(-len(order) // columns))
    fig = Figure(figsize=(columns * 1.45, rows * 2.05 + 0.4))
    FigureCanvasAgg(fig)
    for slot, k in enumerate(order):
        e = examples[k]
        ax = fig.add_subplot(rows, columns, slot + 1)
        img = images[index[str(e["id"])]]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(
            f"true {for_plot(class_names[e['label']], max_chars=18)}\n"
            f"ref {for_plot(class_names[e['modal_reference']], max_chars=18)} "
            f"{e['share_reference']:.0%}\n"
            f"cmp {for_plot(class_names[e['modal_candidate']], max_chars=18)} "
            f"{e['share_candidate']:.0%}",
            fontsize=6.5,
        )
    fig.suptitle(
        f"PIEs of {for_plot(comp.candidate, max_chars=80)} vs "
        f"{for_plot(comp.reference, max_chars=80)} "
        f"({len(order)} of {comp.pie.count}, most confident flips first)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (rows * 2.05 + 0.4)), h_pad=0.8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path
