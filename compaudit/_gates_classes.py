"""The class gates (private; documented in :mod:`compaudit.gates`).

``significant_classes`` counts classes significantly worse than the overall
shift (:attr:`~compaudit.results.ClassRow.significantly_worse`);
``class_recall_drop`` is the worst normalized recall drop, optionally only
among significant classes and/or classes beyond their seed-noise floor
(:attr:`~compaudit.results.ClassRow.beyond_floor`, the floor being a low
quantile of what seed noise alone gives). Classes over the threshold that a
filter leaves out are named in the detail, never hidden.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compaudit._gates_common import (
    Measured,
    Outcome,
    Unevaluable,
    first_bad,
    floors_missing,
    is_number,
    listing,
    p_text,
    pp,
    signed_pp,
)
from compaudit.results import ClassRow, Comparison

if TYPE_CHECKING:  # a run without a policy never imports it (pydantic: 0.3 s)
    from compaudit.policy import Gates

__all__ = ["class_recall_drop", "significant_classes"]

REASON_NO_CLASSES = "the report lists no classes"
REASON_CLASS_FLOOR_NULL = "no seed-noise floor for class(es) {classes}"
REASON_PAIRED_CLASS_FLOOR = (
    "the comparison is paired (each child made from its own parent), so no seed noise "
    "separates the sides and no seed-noise floor applies to its classes; set "
    "class_recall_drop_beyond_floor: false for this candidate (every drop then counts)"
)
REASON_CLASSES_UNFAILABLE = (
    "threshold {threshold} can never fail with {n} classes: the overall shift is a weighted "
    "mean of the class shifts, so at most {most} class(es) can be worse than it; "
    "use a threshold below {most}"
)


def _difference(c: ClassRow) -> float:
    """The normalized recall difference of a row :func:`_classes` checked finite."""
    assert c.normalized_recall_difference is not None
    return c.normalized_recall_difference


def _classes(comp: Comparison) -> list[ClassRow] | Unevaluable:
    classes = list(comp.classes)
    if not classes:
        return Unevaluable(REASON_NO_CLASSES)
    bad = first_bad(
        (c.normalized_recall_difference, f"normalized_recall_difference of class {c.label}")
        for c in classes
    )
    return bad or classes


def significant_classes(comp: Comparison, gates: Gates) -> Outcome:
    """Classes significantly worse than the overall shift (significant, negative difference)."""
    classes = _classes(comp)
    if isinstance(classes, Unevaluable):
        return classes
    threshold = gates.significant_classes
    assert threshold is not None  # configured
    most = len(classes) - 1
    if threshold >= most:  # the count can never exceed it: a gate that cannot fail
        return Unevaluable(
            REASON_CLASSES_UNFAILABLE.format(threshold=threshold, n=len(classes), most=most)
        )
    worse = [c for c in classes if c.significantly_worse]
    untested = [c.label for c in classes if c.p_value is None]
    noun = "class" if len(worse) == 1 else "classes"
    detail = f"{len(worse)} {noun} significantly worse than the overall shift"
    if worse:
        detail += ": " + listing([c.label for c in worse])
    if untested:
        detail += f"; not tested: {listing(untested)}"
    return Measured(len(worse), detail)


def _beyond_floor(comp: Comparison, pool: list[ClassRow]) -> list[ClassRow] | Unevaluable:
    """The classes of ``pool`` whose normalized recall difference is beyond their floor."""
    if comp.lineage == "paired":
        return Unevaluable(REASON_PAIRED_CLASS_FLOOR)
    missing = floors_missing(comp)
    if missing is not None:
        return missing
    lacking = [c.label for c in pool if not is_number(c.floor_difference)]
    if lacking:
        return Unevaluable(REASON_CLASS_FLOOR_NULL.format(classes=listing(lacking)))
    return [c for c in pool if c.beyond_floor]


def _left_out(
    classes: list[ClassRow], pool: list[ClassRow], threshold: float, *, beyond: bool
) -> str:
    """Classes over the threshold that the filters leave out: named, never hidden."""
    named = []
    for c in classes:
        drop = -_difference(c)
        if drop <= threshold or any(c is k for k in pool):
            continue
        floor = c.floor_difference if beyond else None
        at = f", floor {signed_pp(floor)}" if is_number(floor) else ""
        named.append(f"{c.label} (drop {pp(drop)}, {p_text(c.p_adjusted)}{at})")
    return f"; over the threshold but within noise: {listing(named)}" if named else ""


def class_recall_drop(comp: Comparison, gates: Gates) -> Outcome:
    """The worst normalized recall drop among the classes the policy's filters keep."""
    classes = _classes(comp)
    if isinstance(classes, Unevaluable):
        return classes
    only_sig, beyond = (
        gates.class_recall_drop_significant_only,
        gates.class_recall_drop_beyond_floor,
    )
    pool = [c for c in classes if c.significant] if only_sig else classes
    if beyond:
        found = _beyond_floor(comp, pool)
        if isinstance(found, Unevaluable):
            return found
        pool = found
    among = ""
    if only_sig or beyond:
        kind = "significant classes" if only_sig else "classes"
        among = f" among {kind}" + (" beyond their seed-noise floor" if beyond else "")
    threshold = gates.class_recall_drop
    assert threshold is not None  # configured
    noise = _left_out(classes, pool, threshold, beyond=beyond)
    if not pool:
        if beyond:
            which = "significant class" if only_sig else "class"
            return Measured(0.0, f"no {which} falls beyond its seed-noise floor{noise}")
        return Measured(0.0, f"no class is significantly worse than the overall shift{noise}")
    worst = min(pool, key=_difference)
    value = max(0.0, -_difference(worst))
    if value == 0.0:
        return Measured(0.0, f"no class{among} fell behind the overall shift{noise}")
    floor = ""
    if beyond and worst.floor_difference is not None:
        floor = f" (seed-noise floor {signed_pp(worst.floor_difference)})"
    return Measured(
        value,
        f"worst normalized recall drop{among} {pp(value)} in class {worst.label}{floor}{noise}",
    )
