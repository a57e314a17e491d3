"""Seed-noise floors in report form: each gated value beside what seed noise gives.

The floors themselves are computed by :func:`compaudit.analysis.floors.seed_floors`
from the reference population alone (disjoint splits of its members); this module
turns them into the ``floor`` / ``excess`` / ``p`` keys of ``compaudit.report/v1``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from compaudit.analysis.floors import SeedFloors, excess

__all__ = [
    "FLOOR_METHOD",
    "REASON_LINEAGE_FLOORS",
    "REASON_PAIRED_CIE",
    "REASON_PAIRED_PIE",
    "column_floors",
    "floor_block",
    "floor_summary",
    "value_floor",
]

FLOOR_METHOD = "disjoint-splits"
REASON_PAIRED_CIE = (
    "paired basis: each child is compared with its own parent, so the CIEs count what "
    "compression changed; no seed-noise floor applies"
)
REASON_PAIRED_PIE = (
    "lineage: each child was made from its own parent, so the PIEs count what "
    "compression changed; no seed-noise floor applies"
)
REASON_LINEAGE_FLOORS = (
    "lineage: each child was made from its own parent, so no seed noise separates them "
    "and floors from independently seeded reference members do not apply"
)
"""Why a lineage-paired comparison has no class or subgroup floors (``floors.reason``)."""


def _num(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def floor_summary(floors: SeedFloors | None, reason: str | None = None) -> dict[str, Any]:
    """The comparison's ``floors`` object: how the floors were estimated, or why not."""
    if floors is None or not floors.available:
        why = reason or (floors.reason if floors is not None else None) or "no floor computed"
        return {"available": False, "reason": why, "method": FLOOR_METHOD}
    return {
        "available": True,
        "reason": None,
        "method": FLOOR_METHOD,
        "k_split": floors.k_split,
        "n_splits": floors.n_splits,
        "quantile": floors.quantile,
        "sized_to_candidate": floors.sized_to_candidate,
    }


def value_floor(
    value: float,
    null: np.ndarray | None,
    *,
    direction: Literal["greater", "less"],
    quantile: float,
) -> dict[str, float | None]:
    """``{"rate", "excess", "p_value"}`` of one scalar against its null sample."""
    if null is None:
        return {"rate": None, "excess": None, "p_value": None}
    f, e, p = excess(
        np.asarray([value]), np.asarray(null)[:, None], direction=direction, quantile=quantile
    )
    return {"rate": _num(f[0]), "excess": _num(e[0]), "p_value": _num(p[0])}


def floor_block(
    floors: SeedFloors | None, value: float, name: Literal["pie_rate", "cie_rate"]
) -> dict[str, float | None]:
    """The ``floor`` object of the PIE or CIE block (nulls when unavailable)."""
    if floors is None or not floors.available:
        return {"rate": None, "excess": None, "p_value": None}
    return value_floor(value, getattr(floors, name), direction="greater", quantile=floors.quantile)


def column_floors(
    floors: SeedFloors | None,
    values: np.ndarray,
    null_name: str,
    *,
    direction: Literal["greater", "less"],
) -> tuple[list[float | None], list[float | None], list[float | None]]:
    """Per-column floor, excess and p of ``values`` against ``floors.<null_name>``."""
    n = values.shape[0]
    if floors is None or not floors.available:
        return [None] * n, [None] * n, [None] * n
    null = np.asarray(getattr(floors, null_name))
    f, e, p = excess(values, null, direction=direction, quantile=floors.quantile)
    return [_num(v) for v in f], [_num(v) for v in e], [_num(v) for v in p]
