"""Policy gates over an audit report, and the one place exit codes are decided.

Pure functions: :func:`evaluate_gates` reads a ``compaudit.report/v1`` report
dict and a :class:`~compaudit.policy.Policy` and returns one
:class:`GateResult` per configured gate per comparison (candidate).
:func:`decide_verdict` turns the results into ``pass``/``fail``/``error`` and
:func:`exit_status_for` into the process exit code.

Gate definitions (``value`` is compared with ``threshold``; a gate passes when
``value <= threshold`` up to :data:`TOLERANCE`, so equality passes):

``top1_drop``
    ``-top1_delta`` (positive means the candidate lost accuracy).
``top5_drop``
    ``-top5_delta``; unevaluable when the report has no top-5.
``cie_rate`` / ``cie_u_rate`` / ``pie_rate``
    ``cie.rate`` / ``cie.cie_u_rate`` / ``pie.rate``.
``significant_classes``
    Number of classes with ``significant`` and a negative normalized recall
    difference (worse than the overall shift).
``class_recall_drop``
    ``max(0, -min(normalized_recall_difference))`` over all classes, or over
    significant classes only when ``class_recall_drop_significant_only`` (0
    when none is significant).
``subgroups.pie_share_growth``
    Largest ``pct_growth`` over groups with ``n >= min_support``; a testable
    group made only of PIEs has unbounded growth and fails.
``subgroups.accuracy_gap``
    Largest ``-shift_difference`` over groups with ``n >= min_support``, where
    ``shift_difference`` is the group's top-1 change minus the overall change.

Subgroup gates need the report's ``subgroup_attributes`` to equal the
policy's attributes; groups below ``min_support`` are listed as not testable,
and when no group reaches it the gate is unevaluable. An unevaluable gate
follows ``on_unevaluable``: ``error`` (verdict error, exit 2), ``fail`` (the
gate fails) or ``skip-with-warning`` (``passed`` is None, a warning in the
detail, the verdict is unaffected).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from compaudit.errors import ExitStatus, InputError
from compaudit.policy import (
    EffectivePolicy,
    Gates,
    Policy,
    SubgroupGates,
    required_attributes,
    settings,
)

__all__ = [
    "TOLERANCE",
    "GateResult",
    "GateStatus",
    "Verdict",
    "decide_verdict",
    "evaluate_gates",
    "exit_status_for",
    "required_attributes",
    "settings",
]

Verdict = Literal["pass", "fail", "error"]
GateStatus = Literal["passed", "failed", "error", "skipped"]
TOLERANCE = 1e-12
"""Slack in ``value <= threshold`` so that float round-off at equality passes."""
MAX_LISTED = 5  # groups/classes named in one detail sentence

# Messages live here so tests can assert them exactly (fairlearn style).
ERR_REPORT_SHAPE = (
    "report {where} does not follow compaudit.report/v1 ({problem}); "
    "regenerate it with this compaudit version"
)
UNEVALUABLE_ERROR = "cannot be evaluated: {reason}"
UNEVALUABLE_FAIL = "cannot be evaluated, counted as failed (on_unevaluable: fail): {reason}"
UNEVALUABLE_SKIP = (
    "warning: skipped, cannot be evaluated (on_unevaluable: skip-with-warning): {reason}"
)
REASON_NO_TOP5 = (
    "the report has no top-5 accuracy (fewer than 5 classes, or predictions without scores)"
)
REASON_NOT_FINITE = "the report's {key} is not a finite number ({value!r})"
REASON_NO_CLASSES = "the report lists no classes"
REASON_NO_ATTRIBUTES = (
    "the policy names no subgroup attributes; add gates.subgroups.attributes (and pass them "
    "to the audit with --attributes)"
)
REASON_ATTRIBUTES = (
    "subgroups were computed over {got} but the policy gates {want}; "
    "run the audit with --attributes {want_csv}"
)
REASON_NO_GROWTH = "no testable group has a PIE share growth (pct_growth is null for all)"
REASON_NO_SUPPORT = "no group reaches min_support {min_support}; not testable: {groups}"


_UNEVALUABLE: dict[str, tuple[bool | None, GateStatus, str]] = {
    "error": (None, "error", UNEVALUABLE_ERROR),
    "fail": (False, "failed", UNEVALUABLE_FAIL),
    "skip-with-warning": (None, "skipped", UNEVALUABLE_SKIP),
}


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate for one candidate comparison.

    ``passed`` is None when the gate could not be evaluated (``status`` then
    says whether that is an ``error`` or was ``skipped``; with
    ``on_unevaluable: fail`` it is False and ``status`` is ``failed``).
    """

    name: str
    candidate: str | None
    value: float | None
    threshold: float | None
    passed: bool | None
    detail: str
    status: GateStatus

    def __post_init__(self) -> None:
        expected = {"passed": True, "failed": False, "error": None, "skipped": None}
        if self.passed is not expected[self.status]:
            raise ValueError(f"GateResult status {self.status!r} with passed={self.passed!r}")

    def to_dict(self) -> dict[str, Any]:
        """The report's gate object (``compaudit.report/v1``; ``status`` is an extra key)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Measured:
    value: float | None
    detail: str  # without the threshold; it is appended in one place
    passed: bool | None = None  # None: decide by value <= threshold


@dataclass(frozen=True)
class _Unevaluable:
    reason: str


_Outcome = _Measured | _Unevaluable
_GateFn = Callable[[Mapping[str, Any], Gates], _Outcome]


def evaluate_gates(report: Mapping[str, Any], policy: Policy) -> list[GateResult]:
    """Evaluate every configured gate on every comparison of ``report``.

    Parameters
    ----------
    report
        A ``compaudit.report/v1`` dict (its ``comparisons`` are read).
    policy
        The policy; per-candidate overrides are resolved by candidate name.

    Returns
    -------
    list[GateResult]
        One result per configured gate per comparison, in comparison order
        and then in the order of the gates in this module's docstring.

    Raises
    ------
    InputError
        The report lacks a key the gates read.
    """
    results: list[GateResult] = []
    if "comparisons" not in report:
        raise InputError(ERR_REPORT_SHAPE.format(where="top level", problem="no 'comparisons'"))
    for i, comp in enumerate(report["comparisons"]):
        candidate = comp.get("candidate")
        eff = policy.for_candidate(candidate)
        for name, threshold, fn, fmt in _configured(eff.gates):
            try:
                outcome = fn(comp, eff.gates)
            except (KeyError, TypeError) as exc:  # a report that breaks the schema
                where = f"comparison {candidate!r}" if candidate is not None else f"comparison #{i}"
                problem = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
                raise InputError(ERR_REPORT_SHAPE.format(where=where, problem=problem)) from exc
            results.append(_finish(name, eff, threshold, outcome, fmt))
    return results


def decide_verdict(gates: Sequence[GateResult], errors: Sequence[str]) -> Verdict:
    """The run's verdict: ``error`` if anything errored, else ``fail`` if a gate failed.

    An error outranks a failed gate: a run that could not check everything is
    not a plain failure. Skipped gates (``skip-with-warning``) count for neither.
    """
    if errors or any(g.status == "error" for g in gates):
        return "error"
    if any(g.status == "failed" for g in gates):
        return "fail"
    return "pass"


_EXIT: dict[str, ExitStatus] = {
    "pass": ExitStatus.OK,
    "fail": ExitStatus.GATE_FAILED,
    "error": ExitStatus.ERROR,
}


def exit_status_for(verdict: Verdict) -> ExitStatus:
    """Exit code of a verdict: 0 pass, 1 fail, 2 error (the only place this is decided)."""
    try:
        return _EXIT[verdict]
    except KeyError:
        raise ValueError(f"unknown verdict {verdict!r}") from None


# -- plumbing ----------------------------------------------------------------


def _finite(value: Any, key: str) -> float | _Unevaluable:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return _Unevaluable(REASON_NOT_FINITE.format(key=key, value=value))
    return float(value)


def _first_bad(rows: Sequence[Mapping[str, Any]], key: str, label: str) -> _Unevaluable | None:
    """The first row whose ``key`` is not a finite number, as an unevaluable reason."""
    for row in rows:
        bad = _finite(row[key], f"{key} of {label} {row.get('class', row.get('group'))}")
        if isinstance(bad, _Unevaluable):
            return bad
    return None


# How a threshold is written in a detail sentence.
_fraction, _percent, _count = "{:.4f}".format, "{:.1f}%".format, "{:g}".format


def _finish(
    name: str,
    eff: EffectivePolicy,
    threshold: float,
    outcome: _Outcome,
    fmt: Callable[[float], str],
) -> GateResult:
    status: GateStatus
    if isinstance(outcome, _Unevaluable):
        value, passed, status, template = None, *_UNEVALUABLE[eff.on_unevaluable]
        detail = template.format(reason=outcome.reason)
    else:
        value, passed = outcome.value, outcome.passed
        if passed is None:
            assert value is not None  # a measured gate without a verdict has a value
            passed = value <= threshold + TOLERANCE
        status = "passed" if passed else "failed"
        detail = f"{outcome.detail} (threshold {fmt(threshold)})"
    return GateResult(name, eff.candidate, value, threshold, passed, detail, status)


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


# -- top-1 / top-5 / CIE / PIE -----------------------------------------------


def _drop(delta_key: str, label: str) -> _GateFn:
    def gate(comp: Mapping[str, Any], gates: Gates) -> _Outcome:
        raw = comp[delta_key]
        if raw is None and delta_key == "top5_delta":
            return _Unevaluable(REASON_NO_TOP5)
        delta = _finite(raw, delta_key)
        if isinstance(delta, _Unevaluable):
            return delta
        value = -delta
        return _Measured(value, f"{label} {'fell' if value >= 0 else 'rose'} by {abs(value):.4f}")

    return gate


def _rate(block: str, key: str, count_key: str, label: str, what: str) -> _GateFn:
    def gate(comp: Mapping[str, Any], gates: Gates) -> _Outcome:
        rate = _finite(comp[block][key], f"{block}.{key}")
        if isinstance(rate, _Unevaluable):
            return rate
        count = comp[block][count_key]
        noun = "example" if count == 1 else "examples"
        if comp[block].get("basis") == "mean-over-pairs":
            # Populations: an expected count for a random (reference, candidate) pair.
            return _Measured(
                rate, f"{label} {rate:.4f} ({count:.1f} {noun} {what}, mean over model pairs)"
            )
        return _Measured(rate, f"{label} {rate:.4f} ({count:g} {noun} {what})")

    return gate


# -- classes -----------------------------------------------------------------


def _class_label(c: Mapping[str, Any]) -> str:
    name = c.get("name")
    return f"{c['class']} ({name})" if name and name != str(c["class"]) else str(c["class"])


def _classes(comp: Mapping[str, Any]) -> list[Mapping[str, Any]] | _Unevaluable:
    classes: list[Mapping[str, Any]] = list(comp["classes"])
    if not classes:
        return _Unevaluable(REASON_NO_CLASSES)
    return _first_bad(classes, "normalized_recall_difference", "class") or classes


def _significant_classes(comp: Mapping[str, Any], gates: Gates) -> _Outcome:
    classes = _classes(comp)
    if isinstance(classes, _Unevaluable):
        return classes
    worse = [c for c in classes if c["significant"] and c["normalized_recall_difference"] < 0]
    untested = [_class_label(c) for c in classes if c["p_value"] is None]
    noun = "class" if len(worse) == 1 else "classes"
    detail = f"{len(worse)} {noun} significantly worse than the overall shift"
    if worse:
        detail += ": " + _listing([_class_label(c) for c in worse])
    if untested:
        detail += f"; not tested: {_listing(untested)}"
    return _Measured(len(worse), detail)


def _class_recall_drop(comp: Mapping[str, Any], gates: Gates) -> _Outcome:
    classes = _classes(comp)
    if isinstance(classes, _Unevaluable):
        return classes
    only_sig = gates.class_recall_drop_significant_only
    pool = [c for c in classes if c["significant"]] if only_sig else classes
    among = " among significant classes" if only_sig else ""
    if not pool:
        return _Measured(0.0, "no class is significantly worse than the overall shift")
    worst = min(pool, key=lambda c: float(c["normalized_recall_difference"]))
    value = max(0.0, -float(worst["normalized_recall_difference"]))
    if value == 0.0:
        return _Measured(0.0, f"no class{among} fell behind the overall shift")
    label = _class_label(worst)
    return _Measured(value, f"worst normalized recall drop{among} {value:.4f} in class {label}")


# -- subgroups ---------------------------------------------------------------


def _group_label(group: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in group.items())


def _testable(
    comp: Mapping[str, Any], sub: SubgroupGates | None
) -> tuple[list[Mapping[str, Any]], str] | _Unevaluable:
    """Groups with ``n >= min_support`` and a detail suffix naming the others."""
    if sub is None or not sub.attributes:
        return _Unevaluable(REASON_NO_ATTRIBUTES)
    got, want = list(comp["subgroup_attributes"]), list(sub.attributes)
    if sorted(got) != sorted(want):  # the order of attributes does not change the groups
        return _Unevaluable(REASON_ATTRIBUTES.format(got=got, want=want, want_csv=",".join(want)))
    groups: list[Mapping[str, Any]] = list(comp["subgroups"])
    small = [f"{_group_label(g['group'])} (n={g['n']})" for g in groups if g["n"] < sub.min_support]
    testable = [g for g in groups if g["n"] >= sub.min_support]
    if not testable:
        listed = _listing(small) or "(no groups)"
        return _Unevaluable(REASON_NO_SUPPORT.format(min_support=sub.min_support, groups=listed))
    suffix = f"; not testable (n < {sub.min_support}): {_listing(small)}" if small else ""
    return testable, suffix


def _pie_share_growth(comp: Mapping[str, Any], gates: Gates) -> _Outcome:
    found = _testable(comp, gates.subgroups)
    if isinstance(found, _Unevaluable):
        return found
    testable, suffix = found
    if comp["pie"]["count"] == 0:
        return _Measured(None, "no PIEs, so no group is over-represented among them" + suffix, True)
    min_pies = gates.subgroups.min_pies if gates.subgroups is not None else 0
    few = [g for g in testable if g["n_pie"] < min_pies]
    if few:
        listed = _listing([f"{_group_label(g['group'])} ({g['n_pie']})" for g in few])
        suffix += f"; too few PIEs to judge growth (< {min_pies}): {listed}"
    testable = [g for g in testable if g["n_pie"] >= min_pies]
    if not testable:
        return _Measured(
            None, f"no testable group has {min_pies} or more PIEs to judge growth{suffix}", True
        )
    # A testable group made only of PIEs has no non-PIE share: its growth is unbounded.
    unbounded = [
        _group_label(g["group"]) for g in testable if g["pct_growth"] is None and g["n_pie"]
    ]
    if unbounded:
        return _Measured(
            None, f"unbounded growth: only PIEs in {_listing(unbounded)}{suffix}", False
        )
    measured = [g for g in testable if g["pct_growth"] is not None]
    if not measured:
        return _Unevaluable(REASON_NO_GROWTH)
    bad = _first_bad(measured, "pct_growth", "group")
    if bad is not None:
        return bad
    worst = max(measured, key=lambda g: float(g["pct_growth"]))
    value = float(worst["pct_growth"])
    label = _group_label(worst["group"])
    return _Measured(value, f"largest PIE share growth {value:+.1f}% for {label}{suffix}")


def _accuracy_gap(comp: Mapping[str, Any], gates: Gates) -> _Outcome:
    found = _testable(comp, gates.subgroups)
    if isinstance(found, _Unevaluable):
        return found
    testable, suffix = found
    bad = _first_bad(testable, "shift_difference", "group")
    if bad is not None:
        return bad
    worst = min(testable, key=lambda g: float(g["shift_difference"]))
    value = -float(worst["shift_difference"])
    label = _group_label(worst["group"])
    return _Measured(value, f"largest extra top-1 drop {value:.4f} for {label}{suffix}")


_Fmt = Callable[[float], str]
_CIE, _PIE = "changed prediction", "changed modal prediction"
_U = "right before, wrong after"
# Each gate's name is the path of its threshold in the policy's ``gates``; report order.
_GATES: tuple[tuple[str, _GateFn, _Fmt], ...] = (
    ("top1_drop", _drop("top1_delta", "top-1"), _fraction),
    ("top5_drop", _drop("top5_delta", "top-5"), _fraction),
    ("cie_rate", _rate("cie", "rate", "count", "CIE rate", _CIE), _fraction),
    ("cie_u_rate", _rate("cie", "cie_u_rate", "cie_u", "CIE-U rate", _U), _fraction),
    ("pie_rate", _rate("pie", "rate", "count", "PIE rate", _PIE), _fraction),
    ("significant_classes", _significant_classes, _count),
    ("class_recall_drop", _class_recall_drop, _fraction),
    ("subgroups.pie_share_growth", _pie_share_growth, _percent),
    ("subgroups.accuracy_gap", _accuracy_gap, _fraction),
)


def _configured(gates: Gates) -> list[tuple[str, float, _GateFn, _Fmt]]:
    """The gates set in ``gates`` with their thresholds, in report order."""
    out = []
    for name, fn, fmt in _GATES:
        threshold: Any = gates
        for part in name.split("."):
            threshold = getattr(threshold, part) if threshold is not None else None
        if threshold is not None:
            out.append((name, threshold, fn, fmt))
    return out
