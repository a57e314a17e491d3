"""The "Fairness" section of every format: disparities per attribute set, group rates.

One summary table per comparison (a row per attribute set: the demographic-parity
and equalized-odds differences on both sides, their change with its bootstrap
interval, and the gate's largest increase against its seed-noise floor) and, per
set, the groups' TPR, FPR, FNR and selection rate for the positive class whose
equalized-odds difference grew most (the one class of a binary task). Numbers are
rates in percent and changes in percentage points. The rows are built once here
(:func:`summary_rows`, :func:`group_rows`); each format only lays them out.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from compaudit._text import for_html, for_markdown, for_terminal
from compaudit.results import Comparison, FairnessChange, FairnessClass, FairnessSet

__all__ = [
    "CAPTION",
    "GROUP_HEADER",
    "SUMMARY_HEADER",
    "fairness_html",
    "fairness_markdown",
    "fairness_terminal",
    "group_rows",
    "summary_rows",
]

SUMMARY_HEADER = (
    "attributes",
    "DP diff ref",
    "cand",
    "Δ [95% CI]",
    "EO diff ref",
    "cand",
    "Δ [95% CI]",
    "largest EO rise vs floor",
)
GROUP_HEADER = (
    "group",
    "n",
    "positives",
    "TPR ref",
    "cand",
    "FPR ref",
    "cand",
    "FNR Δ",
    "sel. ref",
    "cand",
)
CAPTION = (
    "DP diff: demographic-parity difference (largest minus smallest selection rate over "
    "groups with n >= min_support); EO diff: equalized-odds difference (the larger of the "
    "TPR and FPR ranges); as fairlearn defines them, worst class one-vs-rest in multi-class "
    "tasks, a population's members averaged. Δ: candidate minus reference with its seeded "
    "bootstrap interval (examples within groups and members resampled); the floor is what "
    "relabelling the members (seed noise alone) gives for the largest rise."
)
MAX_GROUPS = 20


def _pp(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:+z.1f}" if signed else f"{100 * x:.1f}"


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _change(v: FairnessChange) -> str:
    if v.change is None:
        return "-"
    ci = (
        f" [{_pp(v.change_low, True)}, {_pp(v.change_high, True)}]"
        if v.change_low is not None and v.change_high is not None
        else ""
    )
    return f"{_pp(v.change, True)} pp{ci}"


def _rise(fs: FairnessSet) -> str:
    inc = fs.equalized_odds_difference_increase
    if inc.value is None:
        return "-"
    text = f"{_pp(inc.value, True)} pp"
    if fs.task != "binary" and inc.class_index is not None:
        text += f" (class {_class_name(fs, inc.class_index)})"
    if inc.floor is None or inc.excess is None:
        return text + (", no floor (too few members)" if fs.floor_note else ", no floor")
    beyond = "beyond" if inc.excess > 0 else "within"
    return f"{text}, floor {_pp(inc.floor, True)}: {beyond}"


def _class_name(fs: FairnessSet, index: int) -> str:
    name = next((c.name for c in fs.classes if c.class_index == index), "")
    return f"{index} {name}" if name and name != str(index) else str(index)


def summary_rows(c: Comparison) -> list[tuple[str, ...]]:
    """One row per fairness set, in :data:`SUMMARY_HEADER`'s columns."""
    rows: list[tuple[str, ...]] = []
    for fs in c.fairness:
        dp, eo = fs.demographic_parity_difference, fs.equalized_odds_difference
        rows.append(
            (
                fs.label,
                _rate(dp.reference),
                _rate(dp.candidate),
                _change(dp),
                _rate(eo.reference),
                _rate(eo.candidate),
                _change(eo),
                _rise(fs),
            )
        )
    return rows


def _shown_class(fs: FairnessSet) -> FairnessClass | None:
    index = fs.equalized_odds_difference_increase.class_index
    found = next((k for k in fs.classes if k.class_index == index), None)
    return found or (fs.classes[0] if fs.classes else None)


def group_rows(fs: FairnessSet) -> tuple[str, list[tuple[str, ...]], int]:
    """The caption, the rows (:data:`GROUP_HEADER`; at most :data:`MAX_GROUPS`) and the
    number of groups, for the class whose equalized-odds difference grew most."""
    cls = _shown_class(fs)
    if cls is None:
        return "", [], 0
    which = (
        "positive class " + _class_name(fs, cls.class_index)
        if fs.task == "binary"
        else f"class {_class_name(fs, cls.class_index)} one-vs-rest (largest EO rise)"
    )
    rows: list[tuple[str, ...]] = [
        (
            g.label + ("" if g.judged else " (n < min_support)"),
            str(g.n),
            str(g.n_positive),
            _rate(g.tpr.reference),
            _rate(g.tpr.candidate),
            _rate(g.fpr.reference),
            _rate(g.fpr.candidate),
            _change(g.fnr),
            _rate(g.selection_rate.reference),
            _rate(g.selection_rate.candidate),
        )
        for g in cls.groups[:MAX_GROUPS]
    ]
    return f"{fs.label}: {which}", rows, len(cls.groups)


# -- layouts --------------------------------------------------------------------


def _md_table(header: tuple[str, ...], rows: list[tuple[str, ...]], align: str) -> list[str]:
    rule = {"l": "---", "r": "---:"}
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule[a] for a in align) + " |"]
    return out + ["| " + " | ".join(for_markdown(x) for x in r) + " |" for r in rows]


def fairness_markdown(c: Comparison) -> list[str]:
    """The section as Markdown lines (none without fairness metrics); group tables folded."""
    if not c.fairness:
        return []
    lines = ["", "#### Fairness", "", for_markdown(CAPTION), ""]
    lines += _md_table(SUMMARY_HEADER, summary_rows(c), "lrrrrrrl")
    for fs in c.fairness:
        caption, rows, total = group_rows(fs)
        if not rows:
            continue
        lines += ["", f"<details><summary><b>Fairness by group</b> ({for_html(caption)})"
                  "</summary>", ""]  # fmt: skip
        lines += _md_table(GROUP_HEADER, rows, "lrrrrrrrrr")
        if total > len(rows):
            lines += ["", f"_{total - len(rows)} more groups in report.json._"]
        lines += ["", "</details>"]
    return lines


def _html_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    th = "".join(
        f"<th>{for_html(h)}</th>" if i == 0 else f"<th class='num'>{for_html(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{for_html(x)}</td>" if i == 0 else f"<td class='num'>{for_html(x)}</td>"
            for i, x in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def fairness_html(c: Comparison) -> str:
    """The section as HTML (empty without fairness metrics); group tables folded."""
    if not c.fairness:
        return ""
    parts = [
        "<h3>Fairness</h3>",
        f"<p class='caption'>{for_html(CAPTION)}</p>",
        _html_table(SUMMARY_HEADER, summary_rows(c)),
    ]
    for fs in c.fairness:
        caption, rows, total = group_rows(fs)
        if not rows:
            continue
        more = (
            f"<p class='note'>Showing {len(rows)} of {total} groups; report.json has them all.</p>"
            if total > len(rows)
            else ""
        )
        parts.append(
            f"<details><summary>Fairness by group: {for_html(caption)}</summary>"
            f"{_html_table(GROUP_HEADER, rows)}{more}</details>"
        )
    return "".join(parts)


def fairness_terminal(c: Comparison) -> list[Any]:
    """The summary as a rich table fit for 80 columns (none without fairness metrics):
    the largest EO rise in red when it is beyond its seed-noise floor."""
    if not c.fairness:
        return []
    t = Table(title=Text("Fairness (pp; Δ = cand - ref)", style="table.title"),
              title_justify="left", pad_edge=False)  # fmt: skip
    # The set's name is what a reader looks for: it keeps up to 14 characters before the
    # numbers' columns give way (rich shrank it to "age_gro" in an 80-column panel).
    longest = max(len(for_terminal(fs.label)) for fs in c.fairness)
    t.add_column("set", overflow="fold", min_width=min(14, longest), max_width=14)
    for h in ("DP ref", "cand", "Δ DP", "EO ref", "cand", "Δ EO", "EO rise", "floor"):
        t.add_column(h, justify="right")
    for fs in c.fairness:
        dp, eo = fs.demographic_parity_difference, fs.equalized_odds_difference
        inc = fs.equalized_odds_difference_increase
        beyond = inc.excess is not None and inc.excess > 0
        t.add_row(
            Text(for_terminal(fs.label)),
            _pp(dp.reference),
            _pp(dp.candidate),
            _pp(dp.change, True),
            _pp(eo.reference),
            _pp(eo.candidate),
            _pp(eo.change, True),
            Text(_pp(inc.value, True), style="bold red" if beyond else ""),
            _pp(inc.floor, True),
        )
    return [t]
