"""Built-in reporters, registered like any third-party plugin."""

from __future__ import annotations

from typing import Any

from compaudit.plugins import hookimpl
from compaudit.report.json_report import JSONReporter
from compaudit.report.terminal import TerminalReporter


@hookimpl
def register_reporters() -> list[Any]:
    """Terminal and JSON reporters (Markdown, JUnit and HTML register here too)."""
    reporters: list[Any] = [TerminalReporter(), JSONReporter()]
    return reporters
