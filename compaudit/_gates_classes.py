"""The class gates (private; documented in :mod:`compaudit.gates`).

``significant_classes`` counts classes significantly worse than the overall
shift; ``class_recall_drop`` is the worst normalized recall drop, optionally
only among significant classes and/or classes beyond their seed-noise floor
(``normalized_recall_difference < floor_difference``, the floor being a low
quantile of what seed noise alone gives). Classes over the threshold that a
filter leaves out are named in the detail, never hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compaudit._gates_common import (
    REASON_NO_FLOOR_KEYS,
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
from compaudit.policy import Gates

__all__ = ["class_recall_drop", "significant_classes"]

REASON_NO_CLASSES = "the report lists no classes"
REASON_CLASS_FLOOR_NULL = "no seed-noise floor for class(es) {classes}"


def _class_label(c: Mapping[str, Any]) -> str:
    name = c.get("name")
    return f"{c['class']} ({name})" if name and name != str(c["class"]) else str(c["class"])


def _classes(comp: Mapping[str, Any]) -> list[Mapping[str, Any]] | Unevaluable:
    classes: list[Mapping[str, Any]] = list(comp["classes"])
    if not classes:
        return Unevaluable(REASON_NO_CLASSES)
    return first_bad(classes, "normalized_recall_difference", "class") or classes


def significant_classes(comp: Mapping[str, Any], gates: Gates) -> Outcome:
    """Classes with ``significant`` and a negative normalized recall difference."""
    classes = _classes(comp)
    if isinstance(classes, Unevaluable):
        return classes
    worse = [c for c in classes if c["significant"] and c["normalized_recall_difference"] < 0]
    untested = [_class_label(c) for c in classes if c["p_value"] is None]
    noun = "class" if len(worse) == 1 else "classes"
    detail = f"{len(worse)} {noun} significantly worse than the overall shift"
    if worse:
        detail += ": " + listing([_class_label(c) for c in worse])
    if untested:
        detail += f"; not tested: {listing(untested)}"
    return Measured(len(worse), detail)


def _beyond_floor(
    comp: Mapping[str, Any], classes: list[Mapping[str, Any]], pool: list[Mapping[str, Any]]
) -> list[Mapping[str, Any]] | Unevaluable:
    """The classes of ``pool`` whose normalized recall difference is beyond their floor."""
    if any("floor_difference" not in c for c in classes):
        return Unevaluable(REASON_NO_FLOOR_KEYS.format(what="class rows"))
    missing = floors_missing(comp)
    if missing is not None:
        return missing
    lacking = [_class_label(c) for c in pool if not is_number(c["floor_difference"])]
    if lacking:
        return Unevaluable(REASON_CLASS_FLOOR_NULL.format(classes=listing(lacking)))
    d = "normalized_recall_difference"
    return [c for c in pool if c[d] < c["floor_difference"]]


def _left_out(
    classes: list[Mapping[str, Any]],
    pool: list[Mapping[str, Any]],
    threshold: float,
    *,
    beyond: bool,
) -> str:
    """Classes over the threshold that the filters leave out: named, never hidden."""
    named = []
    for c in classes:
        drop = -float(c["normalized_recall_difference"])
        if drop <= threshold or any(c is k for k in pool):
            continue
        floor = c["floor_difference"] if beyond else None
        at = f", floor {signed_pp(floor)}" if is_number(floor) else ""
        named.append(f"{_class_label(c)} (drop {pp(drop)}, {p_text(c.get('p_adjusted'))}{at})")
    return f"; over the threshold but within noise: {listing(named)}" if named else ""


def class_recall_drop(comp: Mapping[str, Any], gates: Gates) -> Outcome:
    """The worst normalized recall drop among the classes the policy's filters keep."""
    classes = _classes(comp)
    if isinstance(classes, Unevaluable):
        return classes
    only_sig, beyond = (
        gates.class_recall_drop_significant_only,
        gates.class_recall_drop_beyond_floor,
    )
    pool = [c for c in classes if c["significant"]] if only_sig else classes
    if beyond:
        found = _beyond_floor(comp, classes, pool)
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
    worst = min(pool, key=lambda c: float(c["normalized_recall_difference"]))
    value = max(0.0, -float(worst["normalized_recall_difference"]))
    if value == 0.0:
        return Measured(0.0, f"no class{among} fell behind the overall shift{noise}")
    label = _class_label(worst)
    floor = f" (seed-noise floor {signed_pp(worst['floor_difference'])})" if beyond else ""
    return Measured(
        value, f"worst normalized recall drop{among} {pp(value)} in class {label}{floor}{noise}"
    )
