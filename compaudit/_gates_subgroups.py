"""The subgroup gates (private; documented in :mod:`compaudit.gates`).

Each gate is evaluated once per subgroup set the policy asks for
(``gates.subgroups.attributes`` is one set, ``attribute_sets`` several), on
the matching set of the report's ``subgroup_sets`` (old reports: the one
``subgroup_attributes``/``subgroups`` table). With several sets the gate's
name carries the set: ``subgroups.accuracy_gap[sex,race]``.

By default (``require_significance``) a group counts only when the audit's
subgroup test found it significantly worse than the overall shift
(:attr:`~compaudit.results.GroupRow.significantly_worse`: ``significant`` and
``shift_difference < 0``, after the policy's correction): seed noise alone
moves a hard group's PIE share by hundreds of percent. Groups over the
threshold that are not significantly worse are named in the detail, never
hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from compaudit._gates_common import (
    Env,
    Measured,
    Outcome,
    Unevaluable,
    first_bad,
    floors_missing,
    growth,
    growth_pp,
    listing,
    p_text,
    pp,
    signed_pp,
)
from compaudit.analysis.subgroups import LABEL_ATTRIBUTE
from compaudit.results import Comparison, GroupRow

if TYPE_CHECKING:  # a run without a policy never imports it (pydantic: 0.3 s)
    from compaudit.policy import Gates, SubgroupGates

__all__ = ["accuracy_gap", "pie_share_growth", "pie_share_growth_excess"]

REASON_NO_ATTRIBUTES = (
    "the policy names no subgroup attributes; add gates.subgroups.attributes or "
    "gates.subgroups.attribute_sets"
)
REASON_ATTRIBUTES = (
    "subgroups were computed over {got} but the policy gates {want}; run the audit "
    "without --subgroups (the policy then chooses the sets) or with --subgroups {want_csv}"
)
REASON_MISSING_ATTRIBUTE = (
    "the data have no attribute {name!r} (available: {available}); add it with --attributes CSV"
)
REASON_NO_GROWTH = "no testable group has a PIE share growth (pct_growth is null for all)"
REASON_NO_SUPPORT = "no group reaches min_support {min_support}; not testable: {groups}"
REASON_GROUP_FLOOR_NULL = "no seed-noise floor for the PIE share growth of {groups}"
REASON_PAIRED_GROUP_FLOOR = (
    "the comparison is paired (each child made from its own parent), so no seed noise "
    "separates the sides and no seed-noise floor applies to its groups; gate "
    "pie_share_growth instead"
)
REASON_FEW_PIES = (
    "no {which} has {min_pies} or more PIEs (min_pies), so no growth can be judged{suffix}; "
    "lower min_pies or audit more examples"
)

NOISE = "; over the threshold but not significantly worse (within noise): {groups}"
NONE_WORSE = "no group is significantly worse than the overall shift"
SIGNIFICANT = " among significantly worse groups"

Row = GroupRow
if TYPE_CHECKING:
    _SetGate = Callable[[Comparison, list[Row], SubgroupGates], Outcome]
    GateFn = Callable[[Comparison, Gates, Env], list[tuple[str, Outcome]]]


def _shown(attrs: Sequence[str]) -> str:
    return "[" + ", ".join(attrs) + "]"


def _report_sets(comp: Comparison) -> list[tuple[list[str], list[Row]]]:
    if comp.subgroup_sets:
        return [(list(s.attributes), list(s.subgroups)) for s in comp.subgroup_sets]
    attrs = list(comp.subgroup_attributes)  # a report of the first schema version
    return [(attrs, list(comp.subgroups))] if attrs else []


def _not_computed(
    attrs: list[str], sets: list[tuple[list[str], list[Row]]], env: Env
) -> Unevaluable:
    known = env.available_attributes
    names = set(known) if known is not None else {a for got, _ in sets for a in got}
    available = sorted(names | {LABEL_ATTRIBUTE})
    missing = [a for a in attrs if a not in available]
    if missing:
        return Unevaluable(
            REASON_MISSING_ATTRIBUTE.format(name=missing[0], available=", ".join(available))
        )
    got = "; ".join(_shown(a) for a, _ in sets) or "no attributes"
    return Unevaluable(
        REASON_ATTRIBUTES.format(got=got, want=_shown(attrs), want_csv=",".join(attrs))
    )


def _per_set(gate: _SetGate) -> GateFn:
    """Run ``gate`` on each subgroup set the policy asks for."""

    def run(comp: Comparison, gates: Gates, env: Env) -> list[tuple[str, Outcome]]:
        sub = gates.subgroups
        wanted = sub.sets() if sub is not None else []
        if sub is None or not wanted:
            return [("", Unevaluable(REASON_NO_ATTRIBUTES))]
        sets = _report_sets(comp)
        out: list[tuple[str, Outcome]] = []
        for attrs in wanted:
            suffix = f"[{','.join(attrs)}]" if len(wanted) > 1 else ""
            # The order of attributes does not change the groups.
            rows = next((r for got, r in sets if sorted(got) == sorted(attrs)), None)
            outcome = _not_computed(attrs, sets, env) if rows is None else gate(comp, rows, sub)
            out.append((suffix, outcome))
        return out

    return run


def _testable(rows: list[Row], sub: SubgroupGates) -> tuple[list[Row], str] | Unevaluable:
    """Groups with ``n >= min_support`` and a detail suffix naming the others."""
    small = [f"{g.label} (n={g.n})" for g in rows if g.n < sub.min_support]
    testable = [g for g in rows if g.n >= sub.min_support]
    if not testable:
        listed = listing(small) or "(no groups)"
        return Unevaluable(REASON_NO_SUPPORT.format(min_support=sub.min_support, groups=listed))
    suffix = f"; not testable (n < {sub.min_support}): {listing(small)}" if small else ""
    return testable, suffix


def _split(testable: list[Row], sub: SubgroupGates) -> tuple[list[Row], list[Row]] | Unevaluable:
    """The groups that count (significantly worse, or all) and the others."""
    if not sub.require_significance:
        return testable, []
    bad = _shift_bad(testable)
    if bad is not None:
        return bad
    worse = [g for g in testable if g.significantly_worse]
    return worse, [g for g in testable if not any(g is w for w in worse)]


def _shift_bad(rows: list[Row]) -> Unevaluable | None:
    return first_bad((g.shift_difference, f"shift_difference of group {g.label}") for g in rows)


def _noise(others: list[Row], over: Callable[[Row], str | None]) -> str:
    """Name the groups that exceed the threshold but do not count (not significantly worse)."""
    named = []
    for g in others:
        shown = over(g)
        if shown is None:
            continue
        note = p_text(g.p_adjusted)
        if g.significant:
            note += ", better than overall"
        named.append(f"{g.label} ({shown}, {note})")
    return NOISE.format(groups=listing(named)) if named else ""


def _unbounded(g: Row) -> bool:
    # A group made only of PIEs has no non-PIE share: its growth is unbounded.
    return g.pct_growth is None and bool(g.n_pie)


def _growth_pool(
    comp: Comparison,
    rows: list[Row],
    sub: SubgroupGates,
    value_of: Callable[[Row], float | None],
    shown: Callable[[float], str],
    threshold: float,
) -> tuple[list[Row], str] | Measured | Unevaluable:
    """Shared steps of both growth gates: the groups to judge, or an early outcome."""
    found = _testable(rows, sub)
    if isinstance(found, Unevaluable):
        return found
    testable, suffix = found
    if comp.pie.count == 0:
        return Measured(None, "no PIEs, so no group is over-represented among them" + suffix, True)
    split = _split(testable, sub)
    if isinstance(split, Unevaluable):
        return split
    counted, others = split

    def over(g: Row) -> str | None:
        if _unbounded(g):
            return "unbounded growth"
        value = value_of(g)
        if g.n_pie < sub.min_pies or value is None or not value > threshold:
            return None
        return shown(value)

    suffix = _noise(others, over) + suffix
    if sub.require_significance and not counted:
        return Measured(None, NONE_WORSE + suffix, True)
    few = [g for g in counted if g.n_pie < sub.min_pies]
    if few:
        listed = listing([f"{g.label} ({g.n_pie})" for g in few])
        suffix += f"; too few PIEs to judge growth (< {sub.min_pies}): {listed}"
    counted = [g for g in counted if g.n_pie >= sub.min_pies]
    which = "significantly worse group" if sub.require_significance else "testable group"
    if not counted:  # groups to judge, none with PIEs enough: not a pass
        return Unevaluable(
            REASON_FEW_PIES.format(which=which, min_pies=sub.min_pies, suffix=suffix)
        )
    unbounded = [g.label for g in counted if _unbounded(g)]
    if unbounded:
        return Measured(None, f"unbounded growth: only PIEs in {listing(unbounded)}{suffix}", False)
    return counted, suffix


def _growth_of(g: Row) -> float | None:
    return g.pct_growth


def _excess_of(g: Row) -> float | None:
    return g.excess_pct_growth


def _beyond(value: float) -> str:
    return f"{growth_pp(value)} beyond the floor"


def _measured(
    rows: list[Row], value_of: Callable[[Row], float | None], key: str
) -> tuple[Row, float] | Unevaluable:
    """The row with the largest finite ``value_of`` (every value must be finite)."""
    values = [(g, v) for g in rows if (v := value_of(g)) is not None]
    bad = first_bad((v, f"{key} of group {g.label}") for g, v in values)
    if bad is not None:
        return bad
    return max(values, key=lambda gv: gv[1])


def _pie_share_growth(comp: Comparison, rows: list[Row], sub: SubgroupGates) -> Outcome:
    assert sub.pie_share_growth is not None  # configured
    pool = _growth_pool(comp, rows, sub, _growth_of, growth, sub.pie_share_growth)
    if not isinstance(pool, tuple):
        return pool
    counted, suffix = pool
    measured = [g for g in counted if g.pct_growth is not None]
    if not measured:
        return Unevaluable(REASON_NO_GROWTH)
    found = _measured(measured, _growth_of, "pct_growth")
    if isinstance(found, Unevaluable):
        return found
    worst, value = found
    among = SIGNIFICANT if sub.require_significance else ""
    return Measured(
        value, f"largest PIE share growth{among} {growth(value)} for {worst.label}{suffix}"
    )


def _pie_share_growth_excess(comp: Comparison, rows: list[Row], sub: SubgroupGates) -> Outcome:
    assert sub.pie_share_growth_excess is not None  # configured
    if comp.lineage == "paired":
        return Unevaluable(REASON_PAIRED_GROUP_FLOOR)
    no_floor = floors_missing(comp)
    if no_floor is not None:
        return no_floor
    pool = _growth_pool(comp, rows, sub, _excess_of, _beyond, sub.pie_share_growth_excess)
    if not isinstance(pool, tuple):
        return pool
    counted, suffix = pool
    measured = [g for g in counted if g.pct_growth is not None]
    if not measured:
        return Unevaluable(REASON_NO_GROWTH)
    lacking = [g.label for g in measured if g.excess_pct_growth is None]
    if lacking:
        return Unevaluable(REASON_GROUP_FLOOR_NULL.format(groups=listing(lacking)))
    found = _measured(measured, _excess_of, "excess_pct_growth")
    if isinstance(found, Unevaluable):
        return found
    worst, value = found
    among = SIGNIFICANT if sub.require_significance else ""
    floor = worst.floor_pct_growth
    against = f", floor {growth(floor)}" if floor is not None else ""
    assert worst.pct_growth is not None  # measured
    return Measured(
        value,
        f"largest PIE share growth beyond the seed-noise floor{among} {growth_pp(value)} "
        f"for {worst.label} (growth {growth(worst.pct_growth)}{against}){suffix}",
    )


def _accuracy_gap(comp: Comparison, rows: list[Row], sub: SubgroupGates) -> Outcome:
    assert sub.accuracy_gap is not None  # configured
    threshold = sub.accuracy_gap
    found = _testable(rows, sub)
    if isinstance(found, Unevaluable):
        return found
    testable, suffix = found
    bad = _shift_bad(testable)
    if bad is not None:
        return bad
    split = _split(testable, sub)
    if isinstance(split, Unevaluable):
        return split
    counted, others = split

    def over(g: Row) -> str | None:
        extra = -g.shift_difference
        return f"extra drop {pp(extra)}" if extra > threshold else None

    suffix = _noise(others, over) + suffix
    if not counted:
        return Measured(0.0, NONE_WORSE + suffix)
    worst = min(counted, key=lambda g: g.shift_difference)
    value = -worst.shift_difference
    label = worst.label
    among = SIGNIFICANT if sub.require_significance else ""
    drop = pp(value) if value >= 0 else f"{signed_pp(value)} (every group beat the overall change)"
    return Measured(value, f"largest extra top-1 drop{among} {drop} for {label}{suffix}")


pie_share_growth = _per_set(_pie_share_growth)
pie_share_growth_excess = _per_set(_pie_share_growth_excess)
accuracy_gap = _per_set(_accuracy_gap)
