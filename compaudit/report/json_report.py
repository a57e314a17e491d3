"""``report.json``: the machine-readable report (schema ``compaudit.report/v1``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compaudit._io import atomic_write_text
from compaudit.report.base import ReportContext, validate_report
from compaudit.results import AuditReport


def dumps(report: dict[str, Any]) -> str:
    """Serialise a report deterministically (sorted keys are not used: order is meaningful)."""
    return json.dumps(report, indent=2, allow_nan=False) + "\n"


class JSONReporter:
    """Writes ``report.json`` after validating it against the schema."""

    name = "json"
    filename: str | None = "report.json"

    def write(
        self, report: AuditReport, *, out_dir: Path | None, context: ReportContext
    ) -> Path | None:
        """Validate ``report.to_dict()`` and write it to ``out_dir/report.json`` atomically."""
        doc = report.to_dict()
        validate_report(doc)
        text = dumps(doc)
        if out_dir is None:
            context.console.print_json(text)
            return None
        path = out_dir / "report.json"
        atomic_write_text(path, text)
        return path
