"""The top-1, top-5, CIE and PIE gates (private; documented in :mod:`compaudit.gates`).

``top1_drop`` / ``top5_drop`` are the fall in accuracy; ``cie_rate``,
``cie_u_rate`` and ``pie_rate`` the share of examples whose prediction
changed (CIE-U: right before, wrong after; PIE: the modal prediction), with
how the rate was formed when that changes what it means; the ``*_excess``
gates are a rate less its seed-noise floor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compaudit._gates_common import (
    REASON_NO_FLOOR,
    Measured,
    Outcome,
    Unevaluable,
    finite,
    floors_missing,
    is_number,
    pct,
    pp,
    signed_pp,
)
from compaudit.results import CieBlock, Comparison, Floor

if TYPE_CHECKING:
    from compaudit.policy import Gates

__all__ = [
    "BASIS_MEAN",
    "BASIS_PAIRED",
    "REASON_NO_TOP5",
    "REASON_NO_VALUE_FLOOR",
    "REASON_PAIRED_CIE",
    "REASON_PAIRED_PIE",
    "cie_rate",
    "cie_rate_excess",
    "cie_u_rate",
    "pie_rate",
    "pie_rate_excess",
    "top1_drop",
    "top5_drop",
]

REASON_NO_TOP5 = (
    "the report has no top-5 accuracy (fewer than 5 classes, or predictions without scores)"
)
REASON_PAIRED_CIE = (
    "the CIEs are on the paired basis (each child against its own parent), so they already "
    "count what compression changed and no seed-noise floor applies; gate cie_rate instead"
)
REASON_PAIRED_PIE = (
    "the comparison is paired (each child made from its own parent), so its PIEs already "
    "count what compression changed and no seed-noise floor applies; gate pie_rate instead"
)
REASON_NO_VALUE_FLOOR = "the report gives no floor for the {what}"
BASIS_PAIRED = "paired: mean over {k} (parent, child) pairs"
BASIS_MEAN = (
    "mean over all model pairs: seed disagreement, not what compression changed; "
    "use lineage (--paired){alternative}"
)
_CIE, _PIE = "changed prediction", "changed modal prediction"
_U = "right before, wrong after"


def top1_drop(comp: Comparison, gates: Gates) -> Outcome:
    return _drop(comp.top1_delta, "top1_delta", "top-1")


def top5_drop(comp: Comparison, gates: Gates) -> Outcome:
    if comp.top5_delta is None:
        return Unevaluable(REASON_NO_TOP5)
    return _drop(comp.top5_delta, "top5_delta", "top-5")


def _drop(raw: float, key: str, label: str) -> Outcome:
    delta = finite(raw, key)
    if isinstance(delta, Unevaluable):
        return delta
    value = 0.0 - delta  # not -delta: an unchanged top-1 is 0.0, never -0.0 ("-0.0 pp")
    if value == 0:
        return Measured(value, f"{label} unchanged")
    return Measured(value, f"{label} {'fell' if value > 0 else 'rose'} by {pp(abs(value))}")


def _basis(cie: CieBlock, alternative: str) -> str | None:
    """How a CIE rate was formed, when that changes what it means."""
    if cie.basis == "paired":
        return BASIS_PAIRED.format(k=len(cie.pairs) if cie.pairs else "the")
    if cie.basis == "mean-over-pairs":
        return BASIS_MEAN.format(alternative=alternative)
    return None


def _rate(
    raw: float,
    key: str,
    n: float,
    label: str,
    what: str,
    *,
    averaged: bool = False,
    basis: str | None = None,
    floor: Floor | None = None,
    beyond: int | None = None,
) -> Outcome:
    """A rate gate: ``n`` examples (an expected count when ``averaged`` over model pairs)."""
    rate = finite(raw, key)
    if isinstance(rate, Unevaluable):
        return rate
    noun = "example" if n == 1 else "examples"
    whole = not averaged and float(n).is_integer()
    parts = [f"{int(n) if whole else round(float(n), 1)} {noun} {what}"]
    if basis is not None:
        parts.append(basis)
    if floor is not None and is_number(floor.rate) and is_number(floor.excess):
        parts.append(f"seed-noise floor {pct(floor.rate)}, excess {signed_pp(floor.excess)}")
    if beyond is not None:
        parts.append(f"{beyond} beyond seed noise by the per-example test")
    return Measured(rate, f"{label} {pct(rate)} ({'; '.join(parts)})")


def cie_rate(comp: Comparison, gates: Gates) -> Outcome:
    cie = comp.cie
    return _rate(
        cie.rate,
        "cie.rate",
        cie.count,
        "CIE rate",
        _CIE,
        averaged=cie.basis != "single-pair",
        basis=_basis(cie, " or cie_rate_excess"),
        floor=cie.floor,
    )


def cie_u_rate(comp: Comparison, gates: Gates) -> Outcome:
    cie = comp.cie
    return _rate(
        cie.cie_u_rate,
        "cie.cie_u_rate",
        cie.cie_u,
        "CIE-U rate",
        _U,
        averaged=cie.basis != "single-pair",
        basis=_basis(cie, ""),
    )


def pie_rate(comp: Comparison, gates: Gates) -> Outcome:
    pie = comp.pie
    return _rate(
        pie.rate,
        "pie.rate",
        pie.count,
        "PIE rate",
        _PIE,
        floor=pie.floor,
        beyond=pie.n_beyond_noise,
    )


def _excess(rate: float, floor: Floor, block: str, label: str) -> Outcome:
    """``floor.excess`` of a rate, or why there is none."""
    if floor.excess is None or floor.rate is None:
        return Unevaluable(REASON_NO_FLOOR.format(reason=REASON_NO_VALUE_FLOOR.format(what=label)))
    values = [
        finite(rate, f"{block}.rate"),
        finite(floor.excess, f"{block}.floor.excess"),
        finite(floor.rate, f"{block}.floor.rate"),
    ]
    for checked in values:
        if isinstance(checked, Unevaluable):
            return checked
    rate, excess, level = (float(v) for v in values if isinstance(v, float))
    tested = f", p {floor.p_value:.2g}" if is_number(floor.p_value) else ""
    return Measured(
        excess,
        f"{label} {pct(rate)} (seed-noise floor {pct(level)}, excess {signed_pp(excess)}{tested})",
    )


def cie_rate_excess(comp: Comparison, gates: Gates) -> Outcome:
    if comp.cie.basis == "paired":
        return Unevaluable(REASON_PAIRED_CIE)
    return floors_missing(comp) or _excess(comp.cie.rate, comp.cie.floor, "cie", "CIE rate")


def pie_rate_excess(comp: Comparison, gates: Gates) -> Outcome:
    if comp.lineage == "paired":
        return Unevaluable(REASON_PAIRED_PIE)
    return floors_missing(comp) or _excess(comp.pie.rate, comp.pie.floor, "pie", "PIE rate")
