"""``report.json``: the machine-readable report (schema ``compaudit.report/v1``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compaudit._io import atomic_write_text
from compaudit.report.base import ReportContext, validate_report


def dumps(report: dict[str, Any]) -> str:
    """Serialise a report deterministically (sorted keys are not used: order is meaningful)."""
    return json.dumps(report, indent=2, allow_nan=False) + "\n"


class JSONReporter:
    """Writes ``report.json`` after validating it against the schema."""

    name = "json"
    filename: str | None = "report.json"

    def write(
        self, report: dict[str, Any], *, out_dir: Path | None, context: ReportContext
    ) -> Path | None:
        """Validate and write ``out_dir/report.json`` atomically."""
        validate_report(report)
        if out_dir is None:
            context.console.print_json(dumps(report))
            return None
        path = out_dir / "report.json"
        atomic_write_text(path, dumps(report))
        return path
