"""Golden snapshots of every text format on the fixed report (see conftest for the refresh)."""

from __future__ import annotations

import datetime
import io
import json
import re
from collections.abc import Callable
from typing import Any

from rich.console import Console

from compaudit.report.base import ReportContext, validate_report
from compaudit.report.json_report import document, dumps
from compaudit.report.junit import render_junit
from compaudit.report.markdown import render_markdown
from compaudit.report.terminal import render
from compaudit.results import AuditReport

Golden = Callable[[str, str], None]
# A JSON string (kept as it is: ``summary`` lines hold numbers), or a number with a
# fraction or an exponent.
_FLOAT = re.compile(
    r'"(?:[^"\\]|\\.)*"|(?<![\w.\"])-?\d+(?:\.\d+(?:[eE][-+]?\d+)?|[eE][-+]?\d+)(?![\w\"])'
)


def test_fixed_report_follows_the_schema(report: AuditReport, doc: dict[str, Any]) -> None:
    validate_report(doc)
    assert report.to_dict() == doc
    assert [g.passed for g in report.gates] == [False, True, None, True, None]
    assert report.comparisons[0].subgroups, "the fixture must exercise the subgroup table"
    assert {c.class_test for c in report.comparisons} == {"welch", "prediction-interval"}


def _console() -> Console:
    # No colour, fixed width, and an empty environment so COLUMNS/NO_COLOR/TERM cannot leak in.
    return Console(
        width=80,
        no_color=True,
        color_system=None,
        force_terminal=False,
        record=True,
        file=io.StringIO(),
        _environ={},
    )


def test_terminal_golden(report: AuditReport, golden: Golden) -> None:
    console = _console()
    render(report, ReportContext(console=console))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    golden("terminal.txt", text)


def test_markdown_golden(report: AuditReport, golden: Golden) -> None:
    golden("report.md", render_markdown(report))


def _round_floats(text: str) -> str:
    """Floats to 10 significant digits: the layout is pinned, not the last ulp of a p-value."""
    return _FLOAT.sub(
        lambda m: m.group() if m.group()[0] == '"' else f"{float(m.group()):.10g}", text
    )


def test_json_golden(report: AuditReport, golden: Golden) -> None:
    text = dumps(document(report))
    assert AuditReport.from_dict(json.loads(text)) == report
    golden("report.json", _round_floats(text))


def test_junit_golden(report: AuditReport, golden: Golden) -> None:
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)  # goldens have no clock
    golden("junit.xml", render_junit(report, timestamp=when).decode("utf-8"))


def _order(text: str, needles: list[str]) -> list[int]:
    """Indices of ``needles`` in the order they appear in ``text`` (each must appear)."""
    pos = [text.find(n) for n in needles]
    assert min(pos) >= 0, [n for n, p in zip(needles, pos, strict=True) if p < 0]
    return sorted(range(len(needles)), key=pos.__getitem__)


def test_every_format_lists_the_worst_classes_in_the_same_order(doc: dict[str, Any]) -> None:
    """Terminal, Markdown and HTML rank classes by Comparison.worst_classes, as the gates do:
    significantly worse first, even when another class has a lower normalized difference."""
    from html import escape

    from compaudit.report.html import render_html
    from compaudit.report.markdown import esc

    for i, row in enumerate(doc["comparisons"][0]["classes"]):
        row["significant"] = row["name"] == "bird"
        row["normalized_recall_difference"] = -0.01 if row["name"] == "bird" else -0.1 - i / 100
    report = AuditReport.from_dict(doc)
    names = [r.name for r in report.comparisons[0].worst_classes()]
    assert names[0] == "bird"
    expected = list(range(len(names)))

    console = _console()
    render(report, ReportContext(console=console))
    terminal = console.export_text().split("Worst classes", 1)[1].split("Worst groups", 1)[0]
    assert _order(terminal, [f"│ {n[:5]}" for n in names[:5]]) == expected[:5]  # cells cut
    markdown = (
        render_markdown(report).split("<b>Worst classes</b>", 1)[1].split("<b>Subgroups", 1)[0]
    )
    assert _order(markdown, [f"| {esc(n)} |" for n in names]) == expected
    html = render_html(report, ReportContext(console=_console()))
    table = html.split("<details>", 1)[1].split("</details>", 1)[0]
    assert _order(table, [f"<td>{escape(n)}</td>" for n in names]) == expected


def test_terminal_without_a_policy_says_not_gated(ungated_report: AuditReport) -> None:
    from compaudit.report._common import NOT_GATED

    console = _console()
    render(ungated_report, ReportContext(console=console))
    lines = console.export_text().splitlines()
    assert lines[0].startswith("compaudit NOT GATED  600 examples, 6 classes")
    assert NOT_GATED in lines
    assert "PASS" not in "\n".join(lines)
    assert "Gates" not in "\n".join(lines)
