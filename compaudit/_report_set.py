"""Writing a report set: the chosen formats of a report, or the error report of a failed run.

Both are committed as one set under ``out`` (:func:`compaudit._io.file_set`):
the previous run's files are replaced whole, or left as they were if writing
fails, so ``out`` never holds this run's ``report.json`` beside an older
run's ``report.html``, nor an error beside an older report saying pass. The
command line (:mod:`compaudit.pipeline`) and :meth:`compaudit.Report.write`
both write through here.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from compaudit._io import file_set
from compaudit.errors import CompauditError, CompauditWarning
from compaudit.report.base import ReportContext
from compaudit.results import AuditReport

__all__ = [
    "ERROR_FORMATS",
    "error_document",
    "error_message",
    "write_error_report",
    "write_formats",
]

_log = logging.getLogger(__name__)

ERROR_FORMATS = ("json", "markdown", "junit")
"""What a failed run with ``error_report`` still writes, whatever ``formats`` were asked for."""
WARN_ERROR_REPORT = "could not write the error report ({what}): {reason}"


def error_message(exc: BaseException) -> str:
    """The one-line message of ``exc`` as the CLI prints it (an unexpected one is named)."""
    text = " ".join(str(exc).split("\n")).strip()
    if isinstance(exc, CompauditError):
        return text
    kind = type(exc).__qualname__
    return f"internal error: {kind}: {text}" if text else f"internal error: {kind}"


def error_document(
    message: str,
    report: dict[str, Any] | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``compaudit.report/v1`` document with verdict ``error`` and ``message`` in ``errors``.

    Parameters
    ----------
    message : str
        Why the run failed.
    report : dict, optional
        The report of a run that failed after its audit (writing a format, for
        example): it is kept, with the verdict and errors changed. Without it
        the document is minimal: no populations, comparisons or gates.
    settings : mapping, optional
        The report's ``settings`` for a minimal document (as far as they
        could be resolved, see :func:`write_error_report`).

    Returns
    -------
    dict
        A document that follows ``report.schema.json``.
    """
    from compaudit import __version__
    from compaudit.report.base import report_schema

    if report is not None:
        return {**report, "verdict": "error", "errors": [*report.get("errors", []), message]}
    return {
        "schema": report_schema()["properties"]["schema"]["const"],
        "tool": {"name": "compaudit", "version": __version__},
        "verdict": "error",
        **({"settings": dict(settings)} if settings else {}),
        "populations": {},
        "comparisons": [],
        "gates": [],
        "errors": [message],
        "warnings": [],
    }


def write_error_report(
    out: Path | None,
    exc: BaseException,
    report: dict[str, Any] | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    console: Console | None = None,
) -> list[Path]:
    """Write :data:`ERROR_FORMATS` for a failed run, and the step summary; never raise.

    Parameters
    ----------
    out : Path or None
        Where to write (nothing is written there when it is None; the step
        summary still is).
    exc : BaseException
        The error; its message goes in ``errors`` (see :func:`error_message`).
    report : dict, optional
        The report, when the run failed after its audit.
    settings : mapping, optional
        The settings of a minimal document, as far as they could be resolved.
    console : Console, optional
        The reporters' console (stderr by default).

    Returns
    -------
    list of Path
        The files written, committed as one set in place of the previous
        run's (a reader never sees half a file, nor an error beside an older
        report saying pass).

    Warns
    -----
    CompauditWarning
        For each file that could not be written (the original error is what
        the caller raises).
    """
    document = error_document(error_message(exc), report, settings=settings)
    doc = AuditReport.from_dict(document)  # reporters read the typed report
    context = ReportContext(console=console or Console(stderr=True))
    written: list[Path] = []
    try:
        from compaudit.plugins import get_registry

        reporters = get_registry().reporters()
    except Exception as err:
        warnings.warn(
            WARN_ERROR_REPORT.format(what="reporters", reason=err), CompauditWarning, stacklevel=2
        )
        return written
    if out is not None:
        try:
            # Committed as one set like a report, in place of the last one: an error
            # never sits beside an older run's report.html saying pass.
            with file_set(out, owned=_report_files(reporters)) as files:
                for fmt in ERROR_FORMATS:
                    try:
                        try:
                            path = files.stage(
                                reporters[fmt].filename,
                                functools.partial(_write_format, reporters[fmt], doc, context),
                            )
                        except Exception:
                            if report is None:
                                raise
                            # The audit's part may be what broke (the error itself, say):
                            # the error alone is what a reviewer must see.
                            kept = settings if settings is not None else report.get("settings")
                            bare = AuditReport.from_dict(
                                error_document(error_message(exc), None, settings=kept)
                            )
                            path = files.stage(
                                reporters[fmt].filename,
                                functools.partial(_write_format, reporters[fmt], bare, context),
                            )
                    except Exception as err:
                        warnings.warn(
                            WARN_ERROR_REPORT.format(what=fmt, reason=_reason(err)),
                            CompauditWarning,
                            stacklevel=2,
                        )
                        continue
                    if path is not None:
                        written.append(path)
                files.commit()
        except Exception as err:  # --out itself, or the commit: the old set is left as it was
            warnings.warn(
                WARN_ERROR_REPORT.format(what="--out", reason=_reason(err)),
                CompauditWarning,
                stacklevel=2,
            )
            written = []
        for path in written:
            _log.info("wrote %s (error report)", path)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and "markdown" in reporters:
        try:
            reporters["markdown"].append_step_summary(doc, Path(summary), context=context)
        except Exception as err:
            warnings.warn(
                WARN_ERROR_REPORT.format(what="GITHUB_STEP_SUMMARY", reason=_reason(err)),
                CompauditWarning,
                stacklevel=2,
            )
    return written


def _reason(err: BaseException) -> str:
    # A CompauditError's message names the file and the fix already; anything else is named.
    return str(err) if isinstance(err, CompauditError) else f"{type(err).__name__}: {err}"


def write_formats(
    document: AuditReport,
    out: Path | None,
    formats: Sequence[str],
    context: ReportContext,
    reporters: Mapping[str, Any],
) -> list[Path]:
    """Write ``formats`` of ``document``: to the terminal (``out`` None), or into
    ``out`` as one set (:func:`compaudit._io.file_set`). The command line and
    :meth:`compaudit.Report.write` both write through here.

    Every format goes to a staging directory first and the set is committed
    whole: ``out`` never holds this run's ``report.json`` beside an older
    run's ``report.html``.
    """
    written: list[Path] = []
    # Files first, the terminal after the set is committed: a closed stdout (``| head``)
    # or a terminal that fails must not cost the report files. Without ``out`` every
    # format goes to the terminal, in the order given.
    in_files = (
        [] if out is None else [f for f in formats if getattr(reporters[f], "filename", None)]
    )
    if out is not None:
        with file_set(out, owned=_report_files(reporters)) as files:
            for fmt in in_files:
                reporter = reporters[fmt]
                path = files.stage(
                    reporter.filename, functools.partial(_write_format, reporter, document, context)
                )
                if path is not None:
                    written.append(path)
            files.commit()
    for fmt in (f for f in formats if f not in in_files):
        path = reporters[fmt].write(document, out_dir=out, context=context)
        if path is not None:
            written.append(path)
    return written


def _report_files(reporters: Mapping[str, Any]) -> list[str]:
    """The file names reporters write under ``--out`` (what a report set may hold)."""
    return [name for r in reporters.values() if (name := getattr(r, "filename", None))]


def _write_format(reporter: Any, report: AuditReport, context: ReportContext, out: Path) -> Any:
    return reporter.write(report, out_dir=out, context=context)
