"""One worst-first rule for subgroups: GroupSetResult.worst_groups, used by every format."""

from __future__ import annotations

import io
from collections.abc import Callable
from html import escape
from typing import Any

from rich.console import Console

from compaudit.report.base import ReportContext
from compaudit.report.html import render_html
from compaudit.report.markdown import esc, render_markdown
from compaudit.report.terminal import render
from compaudit.results import AuditReport, GroupRow, GroupSetResult

# label -> (significant, testable, shift_difference); report order is this order.
CASES = {
    "sex=female, age=young": (False, True, -0.10),  # lowest testable shift, not significant
    "sex=female, age=old": (True, True, -0.02),  # significantly worse: first
    "sex=male, age=old": (False, False, -0.30),  # lowest shift of all, but untestable: last
    "sex=male, age=young": (False, True, 0.05),
}
EXPECTED = [
    "sex=female, age=old",
    "sex=female, age=young",
    "sex=male, age=young",
    "sex=male, age=old",
]


def _console() -> Console:
    return Console(
        width=100,
        no_color=True,
        color_system=None,
        force_terminal=False,
        record=True,
        file=io.StringIO(),
        _environ={},
    )


def _row(label: str, *, significant: bool, testable: bool, shift: float, **kw: Any) -> GroupRow:
    group = dict(part.split("=") for part in label.split(", "))
    base: dict[str, Any] = {
        "group": group, "n": 100, "n_non_pie": 90, "n_pie": 10, "pct_non_pie": 10.0,
        "pct_pie": 12.0, "pct_growth": 20.0, "top1_reference": 0.9, "top1_candidate": 0.85,
        "shift_difference": shift, "testable": testable, "test": "fisher" if testable else None,
        "statistic": None, "p_value": 0.01 if significant else 0.5,
        "p_adjusted": 0.01 if significant else 0.5, "significant": significant,
    }  # fmt: skip
    return GroupRow(**{**base, **kw})


def _edit(doc: dict[str, Any]) -> AuditReport:
    """The fixed report, the first candidate's subgroups replaced by ``CASES``."""
    comparison = doc["comparisons"][0]
    rows = []
    for row in comparison["subgroups"]:
        label = ", ".join(f"{k}={v}" for k, v in row["group"].items())
        significant, testable, shift = CASES[label]
        row.update(significant=significant, testable=testable, shift_difference=shift)
        if not testable:
            row.update(test=None, statistic=None, p_value=None, p_adjusted=None, p_worse=None)
        rows.append(row)
    comparison["subgroups"] = rows
    comparison["subgroup_sets"][0]["subgroups"] = rows
    return AuditReport.from_dict(doc)


def _order(text: str, labels: list[str], cell: Callable[[str], str]) -> list[str]:
    """``labels`` in the order their ``cell(label)`` appears in ``text`` (each must appear)."""
    pos = {label: text.find(cell(label)) for label in labels}
    assert min(pos.values()) >= 0, [label for label, p in pos.items() if p < 0]
    return sorted(labels, key=pos.__getitem__)


def test_worst_groups_rule() -> None:
    rows = tuple(
        _row(label, significant=s, testable=t, shift=d) for label, (s, t, d) in CASES.items()
    )
    gs = GroupSetResult(attributes=("sex", "age"), subgroups=rows)
    assert [g.label for g in gs.worst_groups()] == EXPECTED
    assert [g.label for g in gs.worst_groups(2)] == EXPECTED[:2]
    # Ties keep report order; a shift that is not finite sorts last among its kind.
    tied = tuple(_row(f"g={i}", significant=False, testable=True, shift=0.0) for i in range(4))
    nan = _row("g=nan", significant=False, testable=True, shift=float("nan"))
    low = _row("g=low", significant=False, testable=True, shift=-1.0)
    gs = GroupSetResult(attributes=("g",), subgroups=(nan, *tied, low))
    assert [g.label for g in gs.worst_groups()] == ["g=low", "g=0", "g=1", "g=2", "g=3", "g=nan"]


def test_every_format_lists_the_groups_in_the_same_order(doc: dict[str, Any]) -> None:
    """Terminal, Markdown and HTML rank subgroups by GroupSetResult.worst_groups:
    significantly worse first, then testable before untestable, then by shift."""
    report = _edit(doc)
    [gs] = report.comparisons[0].subgroup_sets
    assert [g.label for g in gs.worst_groups()] == EXPECTED

    console = _console()
    render(report, ReportContext(console=console))
    terminal = console.export_text().split("Worst groups", 1)[1].split("Worst groups", 1)[0]
    testable = [label for label in EXPECTED if CASES[label][1]]
    assert _order(terminal, testable, lambda label: f"│ {label} ") == testable
    assert "│ sex=male, age=old " not in terminal  # the terminal counts untestable groups
    assert "1 group(s) below min_support: not testable" in terminal

    markdown = render_markdown(report).split("<b>Subgroups</b>", 1)[1].split("###", 1)[0]
    assert _order(markdown, EXPECTED, lambda label: f"| {esc(label)} |") == EXPECTED

    html = render_html(report, ReportContext(console=_console()))
    table = html.split("<h3>Subgroups (", 1)[1].split("</table>", 1)[0]
    assert _order(table, EXPECTED, lambda label: f"<td>{escape(label)}</td>") == EXPECTED


def test_the_terminal_lists_every_attribute_set_worst_first(doc: dict[str, Any]) -> None:
    """Before: only the first set's groups reached the terminal (a second attribute,
    ``region`` here, was in the JSON and Markdown only)."""
    _edit(doc)  # the CASES groups, written into doc
    comparison = doc["comparisons"][0]
    region = [
        _row("region=east", significant=True, testable=True, shift=-0.05).to_dict(),
        _row("region=west", significant=False, testable=True, shift=0.01).to_dict(),
    ]
    comparison["subgroup_sets"].append({"attributes": ["region"], "subgroups": region})
    report = AuditReport.from_dict(doc)
    console = _console()
    render(report, ReportContext(console=console))
    text = console.export_text()
    assert "Worst groups (sex, age; region)" in text
    section = text.split("Worst groups (sex, age; region)", 1)[1].split("Worst groups", 1)[0]
    # One worst-first order over both sets: significantly worse first, then by shift.
    shown = ["sex=female, age=old", "region=east", "sex=female, age=young", "region=west"]
    assert _order(section, shown, lambda label: f"│ {label} ") == [
        "region=east",
        "sex=female, age=old",
        "sex=female, age=young",
        "region=west",
    ]
