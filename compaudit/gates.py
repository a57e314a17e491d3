"""Policy gates over an audit report, and the one place exit codes are decided.

Pure functions: :func:`evaluate_gates` reads a ``compaudit.report/v1`` report
dict and a :class:`~compaudit.policy.Policy` and returns one
:class:`GateResult` per configured gate per comparison (candidate), and per
subgroup set for the subgroup gates. :func:`decide_verdict` turns the
results into ``pass``/``fail``/``error`` and :func:`exit_status_for` into the
process exit code.

Gate definitions (``value`` is compared with ``threshold``; a gate passes when
``value <= threshold`` up to :data:`TOLERANCE`, so equality passes). Values
and thresholds are raw fractions (0.01 is one point); detail sentences write
rates in percent and drops in percentage points.

``top1_drop`` / ``top5_drop``
    ``-top1_delta`` / ``-top5_delta``; top-5 is unevaluable when the report has none.
``cie_rate`` / ``cie_u_rate`` / ``pie_rate``
    ``cie.rate`` / ``cie.cie_u_rate`` / ``pie.rate``. The detail states the CIE
    basis: one pair, ``paired`` (mean over the K (parent, child) pairs: what
    compression changed) or ``mean-over-pairs`` (every reference x candidate
    pair: mostly seed disagreement).
``cie_rate_excess`` / ``pie_rate_excess``
    ``cie.floor.excess`` / ``pie.floor.excess``: the rate minus its seed-noise
    floor. Unevaluable without a floor (``floors.available`` false, or nulls),
    and for CIEs on the paired basis (no seed noise to remove: gate ``cie_rate``).
``significant_classes``
    Number of classes with ``significant`` and a negative normalized recall
    difference (worse than the overall shift).
``class_recall_drop``
    ``max(0, -min(normalized_recall_difference))`` over the classes that pass
    the optional filters (0 when none does): ``class_recall_drop_significant_only``
    (``significant``) and ``class_recall_drop_beyond_floor``
    (``normalized_recall_difference < floor_difference``; unevaluable without floors).
``subgroups.pie_share_growth``
    Largest ``pct_growth`` over judged groups (``n >= min_support``, at least
    ``min_pies`` PIEs, and with ``require_significance`` significantly worse than
    the overall shift); a judged group made only of PIEs has unbounded growth and fails.
``subgroups.pie_share_growth_excess``
    The same over ``excess_pct_growth`` (growth beyond its seed-noise floor, in
    percentage points of growth); unevaluable without floors.
``subgroups.accuracy_gap``
    Largest ``-shift_difference`` over judged groups (``n >= min_support``, and with
    ``require_significance`` significantly worse); 0 when none is judged.

The subgroup gates run on each set of ``gates.subgroups.attributes`` /
``attribute_sets`` (see :mod:`compaudit._gates_subgroups`). An unevaluable
gate follows ``on_unevaluable``: ``error`` (verdict error, exit 2), ``fail``
(the gate fails) or ``skip-with-warning`` (``passed`` is None, a warning in
the detail, the verdict is unaffected).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from compaudit import _gates_subgroups as sub
from compaudit._gates_classes import (
    REASON_CLASS_FLOOR_NULL,
    REASON_NO_CLASSES,
    class_recall_drop,
    significant_classes,
)
from compaudit._gates_common import (
    MAX_LISTED,
    REASON_NO_FLOOR,
    REASON_NO_FLOOR_KEYS,
    REASON_NOT_FINITE,
    Env,
    Measured,
    Outcome,
    Unevaluable,
    count,
    finite,
    floors_missing,
    is_number,
    pct,
    pp,
    signed_pp,
)
from compaudit._gates_subgroups import (
    REASON_ATTRIBUTES,
    REASON_GROUP_FLOOR_NULL,
    REASON_MISSING_ATTRIBUTE,
    REASON_NO_ATTRIBUTES,
    REASON_NO_GROWTH,
    REASON_NO_GROWTH_FLOOR,
    REASON_NO_SIGNIFICANCE,
    REASON_NO_SUPPORT,
)
from compaudit.errors import ExitStatus, InputError
from compaudit.policy import EffectivePolicy, Gates, Policy, required_attributes, settings

__all__ = [
    "MAX_LISTED",
    # Unevaluable reasons of the private gate modules, re-exported for tests and users.
    "REASON_ATTRIBUTES",
    "REASON_CLASS_FLOOR_NULL",
    "REASON_GROUP_FLOOR_NULL",
    "REASON_MISSING_ATTRIBUTE",
    "REASON_NOT_FINITE",
    "REASON_NO_ATTRIBUTES",
    "REASON_NO_CLASSES",
    "REASON_NO_FLOOR",
    "REASON_NO_FLOOR_KEYS",
    "REASON_NO_GROWTH",
    "REASON_NO_GROWTH_FLOOR",
    "REASON_NO_SIGNIFICANCE",
    "REASON_NO_SUPPORT",
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

# Messages live here (or in the private gate modules, re-exported) so tests can
# assert them exactly (fairlearn style).
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
REASON_PAIRED_CIE = (
    "the CIEs are on the paired basis (each child against its own parent), so they already "
    "count what compression changed and no seed-noise floor applies; gate cie_rate instead"
)
REASON_NO_VALUE_FLOOR = "the report gives no floor for the {what}"
BASIS_PAIRED = "paired: mean over {k} (parent, child) pairs"
BASIS_MEAN = (
    "mean over all model pairs: seed disagreement, not what compression changed; "
    "use lineage (--paired){alternative}"
)


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


_GateFn = Callable[[Mapping[str, Any], Gates, Env], list[tuple[str, Outcome]]]
_Fmt = Callable[[float], str]


def evaluate_gates(report: Mapping[str, Any], policy: Policy) -> list[GateResult]:
    """Evaluate every configured gate on every comparison of ``report``.

    Parameters
    ----------
    report
        A ``compaudit.report/v1`` dict (its ``comparisons`` are read, and
        ``data.attributes`` where present, to name missing attributes).
    policy
        The policy; per-candidate overrides are resolved by candidate name.

    Returns
    -------
    list[GateResult]
        One result per configured gate per comparison (per subgroup set for the
        subgroup gates when the policy asks for several), in comparison order
        and then in the order of the gates in this module's docstring.

    Raises
    ------
    InputError
        The report lacks a key the gates read.
    """
    results: list[GateResult] = []
    if "comparisons" not in report:
        raise InputError(ERR_REPORT_SHAPE.format(where="top level", problem="no 'comparisons'"))
    env = _env(report)
    for i, comp in enumerate(report["comparisons"]):
        candidate = comp.get("candidate")
        eff = policy.for_candidate(candidate)
        for name, threshold, fn, fmt in _configured(eff.gates):
            try:
                outcomes = fn(comp, eff.gates, env)
            except (KeyError, TypeError) as exc:  # a report that breaks the schema
                where = f"comparison {candidate!r}" if candidate is not None else f"comparison #{i}"
                problem = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
                raise InputError(ERR_REPORT_SHAPE.format(where=where, problem=problem)) from exc
            for suffix, outcome in outcomes:
                results.append(_finish(name + suffix, eff, threshold, outcome, fmt))
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


def _env(report: Mapping[str, Any]) -> Env:
    data = report.get("data")
    attrs = data.get("attributes") if isinstance(data, Mapping) else None
    if isinstance(attrs, list) and all(isinstance(a, str) for a in attrs):
        return Env(available_attributes=tuple(attrs))
    return Env()


def _finish(
    name: str, eff: EffectivePolicy, threshold: float, outcome: Outcome, fmt: _Fmt
) -> GateResult:
    status: GateStatus
    if isinstance(outcome, Unevaluable):
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


def _one(fn: Callable[[Mapping[str, Any], Gates], Outcome]) -> _GateFn:
    def gate(comp: Mapping[str, Any], gates: Gates, env: Env) -> list[tuple[str, Outcome]]:
        return [("", fn(comp, gates))]

    return gate


# -- top-1 / top-5 / CIE / PIE -----------------------------------------------


def _drop(delta_key: str, label: str) -> _GateFn:
    def gate(comp: Mapping[str, Any], gates: Gates) -> Outcome:
        raw = comp[delta_key]
        if raw is None and delta_key == "top5_delta":
            return Unevaluable(REASON_NO_TOP5)
        delta = finite(raw, delta_key)
        if isinstance(delta, Unevaluable):
            return delta
        value = -delta
        return Measured(value, f"{label} {'fell' if value >= 0 else 'rose'} by {pp(abs(value))}")

    return _one(gate)


def _basis(block: Mapping[str, Any], alternative: str) -> str | None:
    """How a CIE rate was formed, when that changes what it means."""
    basis = block.get("basis")
    if basis == "paired":
        pairs = block.get("pairs")
        return BASIS_PAIRED.format(k=len(pairs) if isinstance(pairs, list) and pairs else "the")
    if basis == "mean-over-pairs":
        return BASIS_MEAN.format(alternative=alternative)
    return None


def _rate(block: str, key: str, count_key: str, label: str, what: str) -> _GateFn:
    def gate(comp: Mapping[str, Any], gates: Gates) -> Outcome:
        b = comp[block]
        rate = finite(b[key], f"{block}.{key}")
        if isinstance(rate, Unevaluable):
            return rate
        n = b[count_key]
        noun = "example" if n == 1 else "examples"
        # Populations: an expected count for a random (or paired) model pair.
        averaged = b.get("basis") in ("paired", "mean-over-pairs")
        whole = not averaged and float(n).is_integer()
        parts = [f"{int(n) if whole else round(float(n), 1)} {noun} {what}"]
        basis = _basis(b, " or cie_rate_excess" if key == "rate" else "")
        if basis is not None:
            parts.append(basis)
        floor = b.get("floor") if key == "rate" else None
        if (
            isinstance(floor, Mapping)
            and is_number(floor.get("rate"))
            and is_number(floor.get("excess"))
        ):
            parts.append(
                f"seed-noise floor {pct(floor['rate'])}, excess {signed_pp(floor['excess'])}"
            )
        beyond = b.get("n_beyond_noise") if block == "pie" else None
        if isinstance(beyond, int) and not isinstance(beyond, bool):
            parts.append(f"{beyond} beyond seed noise by the per-example test")
        return Measured(rate, f"{label} {pct(rate)} ({'; '.join(parts)})")

    return _one(gate)


def _excess(block: str, label: str) -> _GateFn:
    def gate(comp: Mapping[str, Any], gates: Gates) -> Outcome:
        b = comp[block]
        if block == "cie" and b.get("basis") == "paired":
            return Unevaluable(REASON_PAIRED_CIE)
        if "floor" not in b:
            return Unevaluable(REASON_NO_FLOOR_KEYS.format(what=f"{block} block"))
        missing = floors_missing(comp)
        if missing is not None:
            return missing
        floor = b["floor"] if isinstance(b["floor"], Mapping) else {}
        if floor.get("excess") is None or floor.get("rate") is None:
            why = floor.get("reason") or REASON_NO_VALUE_FLOOR.format(what=label)
            return Unevaluable(REASON_NO_FLOOR.format(reason=why))
        values = [
            finite(b["rate"], f"{block}.rate"),
            finite(floor["excess"], f"{block}.floor.excess"),
            finite(floor["rate"], f"{block}.floor.rate"),
        ]
        for checked in values:
            if isinstance(checked, Unevaluable):
                return checked
        rate, excess, level = (float(v) for v in values if isinstance(v, float))
        p = floor.get("p_value")
        tested = f", p {p:.2g}" if is_number(p) else ""
        return Measured(
            excess,
            f"{label} {pct(rate)} (seed-noise floor {pct(level)}, "
            f"excess {signed_pp(excess)}{tested})",
        )

    return _one(gate)


# Each gate's name is the path of its threshold in the policy's ``gates``; report order.
_CIE, _PIE = "changed prediction", "changed modal prediction"
_U = "right before, wrong after"
_GATES: tuple[tuple[str, _GateFn, _Fmt], ...] = (
    ("top1_drop", _drop("top1_delta", "top-1"), pp),
    ("top5_drop", _drop("top5_delta", "top-5"), pp),
    ("cie_rate", _rate("cie", "rate", "count", "CIE rate", _CIE), pct),
    ("cie_rate_excess", _excess("cie", "CIE rate"), pp),
    ("cie_u_rate", _rate("cie", "cie_u_rate", "cie_u", "CIE-U rate", _U), pct),
    ("pie_rate", _rate("pie", "rate", "count", "PIE rate", _PIE), pct),
    ("pie_rate_excess", _excess("pie", "PIE rate"), pp),
    ("significant_classes", _one(significant_classes), count),
    ("class_recall_drop", _one(class_recall_drop), pp),
    ("subgroups.pie_share_growth", sub.pie_share_growth, "{:.1f}%".format),
    ("subgroups.pie_share_growth_excess", sub.pie_share_growth_excess, "{:.1f} pp".format),
    ("subgroups.accuracy_gap", sub.accuracy_gap, pp),
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
