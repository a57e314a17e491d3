"""``report.json``: the machine-readable report (schema ``compaudit.report/v1``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compaudit._io import atomic_write_text
from compaudit.report._common import candidate_verdicts
from compaudit.report.base import ReportContext, validate_report
from compaudit.results import AuditReport


def document(report: AuditReport) -> dict[str, Any]:
    """The ``compaudit.report/v1`` document as ``report.json`` holds it: the report's
    dict with ``summary`` (one line per candidate, failures first) after ``verdict``,
    so the file opens with the answer. ``summary`` is derived: readers ignore it."""
    doc = report.to_dict()
    lines = [v.text() for v in candidate_verdicts(report)]
    out: dict[str, Any] = {}
    for key, value in doc.items():
        out[key] = value
        if key == "verdict":
            out["summary"] = lines
    return out


def dumps(report: dict[str, Any]) -> str:
    """Serialise a report: the document's outline indented, its tables compact.

    Objects are indented (every key on its own line, so the file reads and
    diffs well), as are the lists of comparisons and gates; every other list
    (class rows, subgroups, PIEs...) is written on one line by the C encoder.
    Python's encoder is pure Python as soon as it indents, and 5x slower on a
    1,000-class report. Key order is kept: it is meaningful.
    """
    return _encode(report, 0) + "\n"


_COMPACT = json.JSONEncoder(allow_nan=False)


def _encode(obj: Any, level: int) -> str:
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(obj, dict) and obj:
        items = (
            f"{inner}{_COMPACT.encode(str(k))}: {_encode(v, level + 1)}" for k, v in obj.items()
        )
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list) and obj and level <= 1 and all(isinstance(x, dict) for x in obj):
        return "[\n" + ",\n".join(f"{inner}{_encode(x, level + 1)}" for x in obj) + f"\n{pad}]"
    return _COMPACT.encode(obj)


class JSONReporter:
    """Writes ``report.json`` after validating it against the schema."""

    name = "json"
    filename: str | None = "report.json"

    def write(
        self, report: AuditReport, *, out_dir: Path | None, context: ReportContext
    ) -> Path | None:
        """Validate ``report.to_dict()`` and write it to ``out_dir/report.json`` atomically."""
        doc = document(report)
        validate_report(doc)
        text = dumps(doc)
        if out_dir is None:
            context.console.print_json(text)
            return None
        path = out_dir / "report.json"
        atomic_write_text(path, text)
        return path
