"""The fairness gates (private; documented in :mod:`compaudit.gates`).

``demographic_parity_difference_increase`` and ``equalized_odds_difference_increase``
judge each fairness set of the comparison (``comparison.fairness``; one result per
set, the set in the gate's name: ``demographic_parity_difference_increase[sex]``).
The value is the disparity's largest increase over the positive classes (the one
class of a binary task), candidate minus reference. Noise-aware like the other
gates: where the reference population gives a seed-noise floor of that largest
increase, the gate fails only when the increase exceeds **both** the threshold and
the floor; without a floor it is judged on the threshold alone (the detail says so).
Where the reference gives floors but the members allow too few relabellings for one
(``floor_note``): a lineage pair is judged on the threshold alone, populations without
lineage are not judged (unevaluable: seed noise alone would fail them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from compaudit._gates_common import Env, Measured, Outcome, Unevaluable, pp, signed_pp
from compaudit.results import Comparison, FairnessIncrease, FairnessSet

if TYPE_CHECKING:  # a run without a policy never imports it (pydantic: 0.3 s)
    from compaudit.policy import Gates

    GateFn = Callable[[Comparison, Gates, Env], list[tuple[str, Outcome]]]

__all__ = [
    "REASON_NO_DISPARITY",
    "REASON_NO_FAIRNESS",
    "demographic_parity_difference_increase",
    "equalized_odds_difference_increase",
]

REASON_NO_FAIRNESS = (
    "the report has no fairness metrics: the data carry no protected attribute; add one "
    "with --attributes CSV (an 'id' column plus one column per attribute)"
)
REASON_NO_DISPARITY = (
    "the {what} of [{attrs}] is undefined: fewer than two groups reach min_support "
    "{min_support}; lower min_support or audit more examples"
)
TOLERANCE = 1e-12  # compaudit.gates.TOLERANCE (which imports this module); TIE_TOLERANCE
NO_FLOOR = "no seed-noise floor (judged on the threshold alone)"
NO_FLOOR_BECAUSE = "no seed-noise floor, judged on the threshold alone: {why}"
REASON_FEW_RELABELLINGS = (
    "no seed-noise floor: {why}; on the threshold alone seed noise fails such candidates "
    "(11 of 30 seed-only 3 + 3 comparisons at 2 points), so this gate is not judged; add "
    "members or lower floors.quantile"
)
"""Unpaired populations whose relabelling null is too small for a floor (with lineage
the threshold alone decides: no seed noise separates a child from its parent)."""
WITHIN_FLOOR = "within seed noise"

_WHAT = {
    "demographic_parity_difference": "demographic-parity difference",
    "equalized_odds_difference": "equalized-odds difference",
}


def _class_label(fs: FairnessSet, index: int | None) -> str:
    if fs.task == "binary" or index is None:
        return ""
    name = next((c.name for c in fs.classes if c.class_index == index), "")
    shown = f"{index} ({name})" if name and name != str(index) else str(index)
    return f" for class {shown} (one-vs-rest)"


def _judge(fs: FairnessSet, key: str, threshold: float, *, paired: bool) -> Outcome:
    inc: FairnessIncrease = getattr(fs, f"{key}_increase")
    what = _WHAT[key]
    if inc.value is None:
        return Unevaluable(
            REASON_NO_DISPARITY.format(what=what, attrs=fs.label, min_support=fs.min_support)
        )
    if fs.floor_note is not None and not paired:
        return Unevaluable(REASON_FEW_RELABELLINGS.format(why=fs.floor_note))
    value = inc.value
    row = next((c for c in fs.classes if c.class_index == inc.class_index), None)
    both = ""
    if row is not None:
        d = getattr(row, key)
        if d.reference is not None and d.candidate is not None:
            both = f" (reference {pp(d.reference)}, candidate {pp(d.candidate)})"
    over = value > threshold + TOLERANCE
    if inc.floor is None or inc.excess is None:
        noise = NO_FLOOR if fs.floor_note is None else NO_FLOOR_BECAUSE.format(why=fs.floor_note)
        passed = not over
    else:
        within = value <= inc.floor + TOLERANCE
        noise = f"seed-noise floor {signed_pp(inc.floor)}, excess {signed_pp(inc.excess)}"
        if over and within:
            noise += f": {WITHIN_FLOOR}"
        passed = not over or within
    detail = (
        f"largest {what} increase {signed_pp(value)}{_class_label(fs, inc.class_index)}"
        f"{both}; {noise}"
    )
    return Measured(value, detail, passed)


def _gate(key: str) -> GateFn:
    def run(comp: Comparison, gates: Gates, env: Env) -> list[tuple[str, Outcome]]:
        threshold = getattr(gates, f"{key}_increase")
        if not comp.fairness:
            return [("", Unevaluable(REASON_NO_FAIRNESS))]
        return [
            (
                f"[{','.join(fs.attributes)}]",
                _judge(fs, key, threshold, paired=comp.lineage == "paired"),
            )
            for fs in comp.fairness
        ]

    return run


demographic_parity_difference_increase = _gate("demographic_parity_difference")
equalized_odds_difference_increase = _gate("equalized_odds_difference")
