"""The compression curve: every candidate's damage against its compression level.

Hooker et al.'s Tables 2-3 (top-1, top-5, classes significantly impacted,
PIEs per pruning level) and Fig. 5 as one view, with the PIEs beyond the
seed-noise floor and the CIE rate beside them. Shown when a report has two
or more candidates; the reference is the first point (level 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compaudit.report._common import candidate_verdicts, pct
from compaudit.results import AuditReport, Comparison, Compression, Verdict

__all__ = [
    "CURVE_CAPTION",
    "CURVE_HEADER",
    "CurvePoint",
    "compression_curve",
    "curve_cells",
    "curve_x",
    "level_text",
    "show_curve",
]

CURVE_HEADER = (
    "population",
    "level",
    "top-1",
    "top-5",
    "classes worse",
    "PIEs",
    "PIEs over floor",
    "CIE rate",
    "verdict",
)
CURVE_CAPTION = (
    "Compression level against damage (Hooker et al., Tables 2-3 and Fig. 5): mean top-1 and "
    "top-5 of each population; classes significantly worse than the overall shift; PIEs, and "
    "how many more than seed noise gives (the PIE rate's excess over its floor, as examples); "
    "CIE rate. Candidates ordered by sparsity, then by falling bits and file size."
)


@dataclass(frozen=True)
class CurvePoint:
    """One population on the curve; the reference has no comparison."""

    name: str
    compression: Compression | None
    top1: float
    top5: float | None
    comparison: Comparison | None
    excess_pies: float | None
    """PIEs beyond the seed-noise floor: the rate's excess times the examples."""
    verdict: Verdict | None = None
    """The candidate's verdict (None for the reference)."""


def show_curve(report: AuditReport) -> bool:
    """Whether the report is a grid: two or more candidates."""
    return len(report.comparisons) >= 2


def _level_key(p: CurvePoint) -> tuple[bool, float, float, float]:
    c = p.compression
    if c is None or (c.sparsity is None and c.bits is None and c.file_size is None):
        return (True, 0.0, 0.0, 0.0)
    return (
        False,
        c.sparsity if c.sparsity is not None else 0.0,
        -(c.bits or 32),
        -(c.file_size or math.inf),
    )


def compression_curve(report: AuditReport) -> list[CurvePoint]:
    """The reference, then every candidate by compression level (those without
    metadata last), ties in report order."""
    n = report.data.n if report.data is not None else None
    verdicts = {v.candidate: v.verdict for v in candidate_verdicts(report)}
    ref_name = report.comparisons[0].reference if report.comparisons else None
    points = []
    for c in report.comparisons:
        pop = report.populations.get(c.candidate)
        excess = c.pie.floor.excess
        size = n if n is not None else (c.pie.count / c.pie.rate if c.pie.rate else None)
        points.append(
            CurvePoint(
                name=c.candidate,
                compression=pop.compression if pop is not None else None,
                top1=pop.top1 if pop is not None else math.nan,
                top5=pop.top5 if pop is not None else None,
                comparison=c,
                excess_pies=None if excess is None or size is None else excess * size,
                verdict=verdicts[c.candidate],
            )
        )
    points.sort(key=_level_key)
    ref = report.populations.get(ref_name) if ref_name is not None else None
    if ref is not None and ref_name is not None:
        points.insert(0, CurvePoint(ref_name, ref.compression, ref.top1, ref.top5, None, None))
    return points


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def _count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def level_text(c: Compression | None, *, short: bool = False) -> str:
    """``90% sparse, 8-bit, 1.2 MB, 9.6k params``; "-" when nothing is known.

    ``short``: sparsity and bits alone, and only where they differ from a dense
    32-bit model (``90% sparse``, ``8-bit``, ``dense``), for 80 columns.
    """
    if c is None:
        return "-"
    if short:
        parts = []
        if c.sparsity:
            parts.append(f"{100 * c.sparsity:.3g}% sparse")
        if c.bits is not None and c.bits != 32:
            parts.append(f"{c.bits}-bit")
        known = c.sparsity is not None or c.bits is not None
        return ", ".join(parts) or ("dense" if known else level_text(c))
    parts = []
    if c.sparsity is not None:
        parts.append(f"{100 * c.sparsity:.3g}% sparse")
    if c.bits is not None:
        parts.append(f"{c.bits}-bit")
    if c.file_size is not None:
        parts.append(_size(c.file_size))
    if c.parameters is not None:
        parts.append(f"{_count(c.parameters)} params")
    return ", ".join(parts) or "-"


def curve_cells(p: CurvePoint) -> tuple[str, ...]:
    """One row of plain cells (:data:`CURVE_HEADER`)."""
    c = p.comparison
    if c is None:
        rest: tuple[str, ...] = ("-", "-", "-", "-", "reference")
    else:
        excess = "-" if p.excess_pies is None else f"{p.excess_pies:+z.0f}"
        worse = f"{len(c.significantly_worse_classes)} of {len(c.classes)}"
        verdict = "not gated" if p.verdict == "ungated" else str(p.verdict)
        rest = (worse, str(c.pie.count), excess, pct(c.cie.rate), verdict)
    return (p.name, level_text(p.compression), pct(p.top1), pct(p.top5), *rest)


def curve_x(points: list[CurvePoint]) -> tuple[list[float], list[str], str]:
    """x positions, tick labels (the user's names, unescaped) and axis label: sparsity
    when every point has a distinct one, else one slot per population in curve order."""
    sparsity = [p.compression.sparsity if p.compression else None for p in points]
    if all(s is not None for s in sparsity) and len(set(sparsity)) == len(points):
        xs = [100 * float(s) for s in sparsity if s is not None]
        return xs, [f"{x:.3g}%" for x in xs], "sparsity (share of zero weights)"
    labels = [p.name for p in points]
    return [float(i) for i in range(len(points))], labels, "population (curve order)"
