"""The reporter contract and the report schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from rich.console import Console

from compaudit.errors import InputError
from compaudit.report._schema_codegen import SCHEMA_FILE, schema_text, shipped_validator

if TYPE_CHECKING:
    from compaudit.engine import AuditResult
    from compaudit.results import AuditReport

FORMAT_ALIASES = {"md": "markdown", "txt": "terminal"}
"""Short names accepted wherever a format is named (``--format md``, ``Report.write``)."""


def format_name(name: str) -> str:
    """The reporter name a format is registered under (``md`` -> ``markdown``)."""
    return FORMAT_ALIASES.get(name, name)


ERR_SCHEMA = "report does not follow {schema} at {where}: {message}"


@dataclass
class ReportContext:
    """What a reporter may use beyond the report itself.

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
    train_images : ndarray or None
        Displayable images of the training split (same form, in its order), for
        the influencers of the PIE gallery (``comparisons[i].influencers``).
    """

    console: Console = field(default_factory=lambda: Console(stderr=False))
    result: AuditResult | None = None
    images: np.ndarray | None = None
    sources: dict[str, str] = field(default_factory=dict)
    train_images: np.ndarray | None = None


class Reporter(Protocol):
    """What a reporter plugin registers (``register_reporters`` hook).

    ``write`` receives the typed :class:`~compaudit.results.AuditReport`
    (frozen dataclasses: ``report.verdict``, ``report.comparisons[i].classes``,
    ``row.significantly_worse``, ``comparison.worst_classes(5)``...), not a
    dict. A reporter written for the ``compaudit.report/v1`` document, as
    plugins were before, calls ``report.to_dict()`` and goes on unchanged:
    that is exactly what ``report.json`` holds. Read the shared rules
    (significantly worse, worst first, beyond the seed-noise floor) from the
    typed objects rather than re-deriving them, so that every format agrees.

    ``report.verdict`` is ``pass``, ``fail``, ``error`` or ``ungated`` (no
    policy was given, nothing was gated: show it as not gated, never as a pass).
    """

    name: str
    """Format name used with ``--format``."""
    filename: str | None
    """File written under ``--out`` (None for the terminal)."""

    def write(
        self, report: AuditReport, *, out_dir: Path | None, context: ReportContext
    ) -> Path | None:
        """Render ``report``; return the path written, if any (``out_dir`` None: print it)."""
        ...


@lru_cache(maxsize=1)
def report_schema() -> dict[str, Any]:
    """The JSON Schema of ``compaudit.report/v1``."""
    schema: dict[str, Any] = json.loads(schema_text())
    return schema


@lru_cache(maxsize=1)
def _compiled_validator() -> Callable[[Any], Any]:
    """The schema as a Python function: the shipped, generated one (a module import).

    Compiled at run time (``fastjsonschema``, about 0.3 s of CPU) only when the
    shipped module was generated from another schema (see
    :mod:`compaudit.report._schema_codegen`). Never cached on disk: the cache
    directory can be restored from a CI cache that someone else wrote, and compiled
    validator code read from it would run as ours.

    ``use_default=False``: validation never writes a schema ``default`` into the report.
    """
    shipped = shipped_validator(schema_text())
    if shipped is not None:
        return shipped
    import fastjsonschema

    return fastjsonschema.compile(report_schema(), use_default=False)


def _first_error(report: dict[str, Any]) -> str | None:
    """jsonschema's first error in path order, as the message :func:`validate_report` gives."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(report_schema())
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    first = errors[0]
    where = "/".join(str(p) for p in first.absolute_path) or "<root>"
    return ERR_SCHEMA.format(schema=SCHEMA_FILE, where=where, message=first.message)


def validate_report(report: dict[str, Any]) -> None:
    """Raise ``InputError`` if ``report`` does not follow the schema.

    The compiled validator decides (0.1 s for a 50,000-example report where
    jsonschema takes 1.5 s); a rejected report is validated again with
    jsonschema, which names its first error in path order, so the message is
    the same as it has always been. Should jsonschema find nothing, the
    compiled validator's own error is raised: the check fails closed.
    """
    import fastjsonschema

    try:
        _compiled_validator()(report)
    except fastjsonschema.JsonSchemaValueException as exc:
        message = _first_error(report)
        if message is None:
            where = "/".join(str(p) for p in exc.path[1:]) or "<root>"
            message = ERR_SCHEMA.format(schema=SCHEMA_FILE, where=where, message=exc.message)
        raise InputError(message) from exc
