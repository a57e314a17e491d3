"""Typed results as pandas tables, and the compact HTML view Jupyter shows.

pandas is imported here only (it is an optional dependency: ``pip install
compaudit[pandas]``), so the engine and the command line never pay for it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from compaudit.errors import InputError
from compaudit.results import (
    PIE_COLUMNS,
    AuditReport,
    CieExample,
    ClassRow,
    Comparison,
    GateResult,
    GroupRow,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["frame", "html_summary"]

ERR_NO_PANDAS = "Report.to_frame needs pandas: pip install 'compaudit[pandas]' (or pandas)"
WORST_SHOWN = 5
_SUMMARY_KEYS = (
    "candidate",
    "reference",
    "lineage",
    "top1_delta",
    "top5_delta",
    "classes_significantly_worse",
    "classes_beyond_floor",
    "pie_count",
    "pie_rate",
    "pie_rate_excess",
    "cie_rate",
    "cie_basis",
    "cie_rate_excess",
)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise InputError(ERR_NO_PANDAS) from None
    return pandas


def _summary_rows(comps: Sequence[Comparison]) -> list[dict[str, Any]]:
    return [
        dict(
            zip(
                _SUMMARY_KEYS,
                (
                    c.candidate,
                    c.reference,
                    c.lineage,
                    c.top1_delta,
                    c.top5_delta,
                    len(c.significantly_worse_classes),
                    c.classes_beyond_floor,
                    c.pie.count,
                    c.pie.rate,
                    c.pie.floor.excess,
                    c.cie.rate,
                    c.cie.basis,
                    c.cie.floor.excess,
                ),
                strict=True,
            )
        )
        for c in comps
    ]


def _class_rows(comps: Sequence[Comparison]) -> list[dict[str, Any]]:
    rows = []
    for c in comps:
        for r in c.classes:
            row = {"candidate": c.candidate, **r.to_dict()}
            row["significantly_worse"] = r.significantly_worse
            rows.append(row)
    return rows


def _group_rows(comps: Sequence[Comparison]) -> list[dict[str, Any]]:
    rows = []
    for c in comps:
        for gs in c.subgroup_sets:
            for g in gs.subgroups:
                row: dict[str, Any] = {
                    "candidate": c.candidate,
                    "attributes": ",".join(gs.attributes),
                }
                row.update({str(k): v for k, v in g.group.items()})
                d = g.to_dict()
                del d["group"]
                row.update(d)
                row["significantly_worse"] = g.significantly_worse
                rows.append(row)
    return rows


def _pie_rows(comps: Sequence[Comparison]) -> list[dict[str, Any]]:
    return [{"candidate": c.candidate, **r} for c in comps for r in c.pie.examples]


def _cie_rows(comps: Sequence[Comparison]) -> list[dict[str, Any]]:
    return [{"candidate": c.candidate, **e.to_dict()} for c in comps for e in c.cie.examples]


def frame(
    table: str,
    comps: Sequence[Comparison],
    gates: Sequence[GateResult],
    candidate: str | None,
) -> pd.DataFrame:
    """One of :data:`compaudit.api.TABLES` as a DataFrame (a ``candidate`` column first)."""
    pd_ = _pandas()
    if table == "gates":
        rows = [g.to_dict() for g in gates if candidate is None or g.candidate == candidate]
        return pd_.DataFrame(rows, columns=list(GateResult.__dataclass_fields__))
    build = {
        "summary": _summary_rows,
        "classes": _class_rows,
        "groups": _group_rows,
        "pies": _pie_rows,
        "cies": _cie_rows,
    }[table]
    df = pd_.DataFrame(build(comps))
    if df.empty:  # no rows: the columns a row would have (group values aside)
        df = pd_.DataFrame(columns=_EMPTY_COLUMNS[table]())
    return df


_EMPTY_COLUMNS: dict[str, Any] = {
    "summary": lambda: list(_SUMMARY_KEYS),
    "classes": lambda: ["candidate", *ClassRow.report_keys(), "significantly_worse"],
    "groups": lambda: [
        "candidate",
        "attributes",
        *(k for k in GroupRow.report_keys() if k != "group"),
        "significantly_worse",
    ],
    "pies": lambda: ["candidate", *PIE_COLUMNS],
    "cies": lambda: ["candidate", *CieExample.report_keys()],
}


def _pp(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+z.2f} pp"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def html_summary(doc: AuditReport) -> str:
    """A compact HTML summary for Jupyter: verdict, one row per candidate, worst classes."""
    e = html.escape
    verdict = {"ungated": "not gated (no policy)"}.get(doc.verdict, doc.verdict.upper())
    parts = [
        "<div class='compaudit-report'>",
        f"<p><b>compaudit</b>: {e(verdict)}</p>",
        "<table><thead><tr><th>candidate</th><th>top-1 Δ</th><th>PIE rate</th>"
        "<th>PIE excess over seed floor</th><th>CIE rate</th><th>classes worse</th>"
        "<th>worst classes</th></tr></thead><tbody>",
    ]
    for c in doc.comparisons:
        worst = ", ".join(
            f"{e(r.label)} {_pp(r.normalized_recall_difference)}"
            for r in c.worst_classes(WORST_SHOWN)
            if r.significantly_worse
        )
        parts.append(
            f"<tr><td>{e(c.candidate)}</td><td>{_pp(c.top1_delta)}</td>"
            f"<td>{_pct(c.pie.rate)}</td><td>{_pp(c.pie.floor.excess)}</td>"
            f"<td>{_pct(c.cie.rate)} ({e(c.cie.basis)})</td>"
            f"<td>{len(c.significantly_worse_classes)} of {len(c.classes)}</td>"
            f"<td>{worst or '-'}</td></tr>"
        )
    parts.append("</tbody></table>")
    failed = [g for g in doc.gates if g.status in ("failed", "error")]
    if failed:
        parts.append("<p>Gates not passed:</p><ul>")
        parts.extend(
            f"<li>{e(g.candidate or '')} <code>{e(g.name)}</code> {e(g.status)}: {e(g.detail)}</li>"
            for g in failed
        )
        parts.append("</ul>")
    parts.append(
        "<p><small>report.to_frame('classes'|'groups'|'pies'|'cies'|'gates'|'summary') for "
        "the tables; report.write(out_dir) for the files.</small></p></div>"
    )
    return "".join(parts)
