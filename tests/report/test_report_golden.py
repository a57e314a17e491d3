"""Golden snapshots of every text format on the fixed report (see conftest for the refresh)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

from rich.console import Console

from compaudit.report.base import ReportContext, validate_report
from compaudit.report.json_report import dumps
from compaudit.report.junit import render_junit
from compaudit.report.markdown import render_markdown
from compaudit.report.terminal import render

Golden = Callable[[str, str], None]
# A JSON number with a fraction or an exponent (not inside a string: reports hold none there).
_FLOAT = re.compile(r"(?<![\w.\"])-?\d+(?:\.\d+(?:[eE][-+]?\d+)?|[eE][-+]?\d+)(?![\w\"])")


def test_fixed_report_follows_the_schema(report: dict[str, Any]) -> None:
    validate_report(report)
    assert [g["passed"] for g in report["gates"]] == [False, True, None, True, None]
    assert report["comparisons"][0]["subgroups"], "the fixture must exercise the subgroup table"
    assert {c["class_test"] for c in report["comparisons"]} == {"welch", "prediction-interval"}


def test_terminal_golden(report: dict[str, Any], golden: Golden) -> None:
    # No colour, fixed width, and an empty environment so COLUMNS/NO_COLOR/TERM cannot leak in.
    console = Console(
        width=80,
        no_color=True,
        color_system=None,
        force_terminal=False,
        record=True,
        file=io.StringIO(),
        _environ={},
    )
    render(report, ReportContext(console=console))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    golden("terminal.txt", text)


def test_markdown_golden(report: dict[str, Any], golden: Golden) -> None:
    golden("report.md", render_markdown(report))


def _round_floats(text: str) -> str:
    """Floats to 10 significant digits: the layout is pinned, not the last ulp of a p-value."""
    return _FLOAT.sub(lambda m: f"{float(m.group()):.10g}", text)


def test_json_golden(report: dict[str, Any], golden: Golden) -> None:
    text = dumps(report)
    assert json.loads(text) == report
    golden("report.json", _round_floats(text))


def test_junit_golden(report: dict[str, Any], golden: Golden) -> None:
    golden("junit.xml", render_junit(report).decode("utf-8"))
