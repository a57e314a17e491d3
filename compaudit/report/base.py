"""The reporter contract and the report schema."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from rich.console import Console

from compaudit.errors import InputError

if TYPE_CHECKING:
    from compaudit.audit import AuditResult

SCHEMA_FILE = "report.schema.json"


@dataclass
class ReportContext:
    """What a reporter may use beyond the report document itself.

    Attributes
    ----------
    console : rich.console.Console
        Where terminal output goes.
    result : AuditResult or None
        The in-memory audit result (PIE masks and populations).
    images : ndarray or None
        Displayable uint8 images per example (``[N, H, W]`` or ``[N, H, W, 3]``),
        in the populations' example order, for the PIE gallery.
    sources : dict
        Input names (reference, candidates, data, policy) for headers.
    """

    console: Console = field(default_factory=lambda: Console(stderr=False))
    result: AuditResult | None = None
    images: np.ndarray | None = None
    sources: dict[str, str] = field(default_factory=dict)


class Reporter(Protocol):
    """What a reporter plugin registers (``register_reporters`` hook)."""

    name: str
    """Format name used with ``--format``."""
    filename: str | None
    """File written under ``--out`` (None for the terminal)."""

    def write(
        self, report: dict[str, Any], *, out_dir: Path | None, context: ReportContext
    ) -> Path | None:
        """Render ``report``; return the path written, if any."""
        ...


@lru_cache(maxsize=1)
def report_schema() -> dict[str, Any]:
    """The JSON Schema of ``compaudit.report/v1``."""
    text = resources.files("compaudit.report").joinpath(SCHEMA_FILE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_report(report: dict[str, Any]) -> None:
    """Raise ``InputError`` if ``report`` does not follow the schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(report_schema())
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "<root>"
        raise InputError(f"report does not follow {SCHEMA_FILE} at {where}: {first.message}")
