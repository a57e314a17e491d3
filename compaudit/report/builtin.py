"""Built-in reporters, registered like any third-party plugin."""

from __future__ import annotations

from compaudit.plugins import hookimpl
from compaudit.report.base import Reporter
from compaudit.report.html import HTMLReporter
from compaudit.report.json_report import JSONReporter
from compaudit.report.junit import JUnitReporter
from compaudit.report.markdown import MarkdownReporter
from compaudit.report.terminal import TerminalReporter


@hookimpl
def register_reporters() -> list[Reporter]:
    """Terminal, JSON, Markdown, JUnit and HTML reporters (each reads the typed report)."""
    return [
        TerminalReporter(),
        JSONReporter(),
        MarkdownReporter(),
        JUnitReporter(),
        HTMLReporter(),
    ]
