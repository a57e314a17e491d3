"""The error report of a failed check: written even when the audit's own part cannot be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compaudit._report_set import write_error_report
from compaudit.errors import InputError
from compaudit.report.base import validate_report


def test_an_unwritable_audit_part_still_leaves_a_report_json_with_the_error(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    """A NaN the JSON writer refuses (allow_nan=False) cost check its report.json before:
    reviewers then saw junit.xml and report.md but no machine-readable verdict."""
    doc["comparisons"][0]["top1_delta"] = float("nan")
    exc = InputError("something broke after the audit")
    written = write_error_report(tmp_path / "out", exc, doc)
    assert {p.name for p in written} >= {"report.json", "junit.xml", "report.md"}
    saved = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    validate_report(saved)
    assert saved["verdict"] == "error"
    assert saved["errors"] == ["something broke after the audit"]
