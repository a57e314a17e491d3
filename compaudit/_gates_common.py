"""Shared plumbing of the gate functions (private; see :mod:`compaudit.gates`).

Outcome types, finiteness checks, listings, and how numbers are written in a
gate's detail sentence: rates as percent ("3.1%"), drops and excesses as
percentage points ("0.42 pp"). A gate's ``value`` and ``threshold`` stay raw
fractions; only the sentence converts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from compaudit.results import Comparison

MAX_LISTED = 5  # groups/classes named in one detail sentence

REASON_NOT_FINITE = "the report's {key} is not a finite number ({value!r})"
REASON_NO_FLOOR = "no seed-noise floor: {reason}"
REASON_FLOORS_UNKNOWN = "the audit computed none"


@dataclass(frozen=True)
class Measured:
    """A gate that could be evaluated: its value and its sentence (without threshold)."""

    value: float | None
    detail: str
    passed: bool | None = None  # None: decide by value <= threshold


@dataclass(frozen=True)
class Unevaluable:
    """A gate that could not be evaluated, and why."""

    reason: str


Outcome = Measured | Unevaluable


def finite(value: Any, key: str) -> float | Unevaluable:
    """``value`` as a float, or the reason it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return Unevaluable(REASON_NOT_FINITE.format(key=key, value=value))
    return float(value)


def is_number(x: Any) -> TypeGuard[float]:
    """Whether ``x`` is a finite int or float (not a bool, not None)."""
    return isinstance(finite(x, ""), float)


def first_bad(values: Iterable[tuple[float | None, str]]) -> Unevaluable | None:
    """The first ``(value, key)`` whose value is not a finite number, as an unevaluable reason."""
    for value, key in values:
        bad = finite(value, key)
        if isinstance(bad, Unevaluable):
            return bad
    return None


def listing(items: Sequence[str]) -> str:
    """At most :data:`MAX_LISTED` items, comma-separated, with a count of the rest."""
    shown = ", ".join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def floors_missing(comp: Comparison) -> Unevaluable | None:
    """The reason the comparison has no seed-noise floors, or None when it has them."""
    if not comp.floors.available:
        return Unevaluable(
            REASON_NO_FLOOR.format(reason=comp.floors.reason or REASON_FLOORS_UNKNOWN)
        )
    return None


# -- numbers in sentences ------------------------------------------------------


def _hundredths(x: float) -> str:
    """``100 * x`` with about two significant digits (1 to 4 decimals)."""
    v = 100.0 * x
    a = abs(v)
    decimals = 1 if a == 0 or a >= 1 else min(4, 1 - math.floor(math.log10(a)))
    return f"{v:z.{decimals}f}"


def pct(x: float) -> str:
    """A rate (a fraction) as a percentage: 0.031 -> ``3.1%``."""
    return f"{_hundredths(x)}%"


def pp(x: float) -> str:
    """A difference of fractions in percentage points: 0.0042 -> ``0.42 pp``."""
    return f"{_hundredths(x)} pp"


def signed_pp(x: float) -> str:
    """Like :func:`pp` with a sign: 0.007 -> ``+0.7 pp``."""
    text = _hundredths(x)
    return f"{text if text.startswith('-') else '+' + text} pp"


def growth(x: float) -> str:
    """A PIE share growth, already in percent: 312.0 -> ``+312.0%``."""
    return f"{x:+z.1f}%"


def growth_pp(x: float) -> str:
    """A growth difference, in percentage points of growth: 250.0 -> ``+250.0 pp``."""
    return f"{x:+z.1f} pp"


def count(x: float) -> str:
    """An integer threshold or count: 2 -> ``2``."""
    return f"{x:g}"


def p_text(p: Any) -> str:
    """An adjusted p-value in a listing: ``p_adj 0.41``, or ``not tested``."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p):
        return "not tested"
    return f"p_adj {p:.2g}"


@dataclass(frozen=True)
class Env:
    """What a gate may know beyond its comparison: facts of the whole report."""

    available_attributes: tuple[str, ...] | None = None
    """Attributes the data carry (``report.data.attributes``), when the report says."""
