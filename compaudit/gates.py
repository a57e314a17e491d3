"""Policy gates over an audit report, and the one place exit codes are decided.

Pure functions: :func:`evaluate_gates` reads a typed
:class:`~compaudit.results.AuditReport` (or its ``compaudit.report/v1`` dict)
and a :class:`~compaudit.policy.Policy` and returns one :class:`GateResult`
per configured gate per comparison (candidate), and per subgroup set for the
subgroup gates. Gates read the report's objects (:class:`~compaudit.results.Comparison`
and its rows), never string keys; "significantly worse" is
:attr:`~compaudit.results.ClassRow.significantly_worse` /
:attr:`~compaudit.results.GroupRow.significantly_worse`. :func:`decide_verdict`
turns the results into ``pass``/``fail``/``error`` and :func:`exit_status_for`
into the process exit code.

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
    floor. Unevaluable without a floor (``floors.available`` false, or null or absent),
    and for a lineage-paired comparison (each child made from its own parent: no seed
    noise to remove, so gate ``cie_rate`` / ``pie_rate``).
``significant_classes``
    Number of classes significantly worse than the overall shift (``significant``
    and a negative normalized recall difference).
``class_recall_drop``
    ``max(0, -min(normalized_recall_difference))`` over the classes that pass
    the optional filters (0 when none does): ``class_recall_drop_significant_only``
    (``significant``) and ``class_recall_drop_beyond_floor``
    (``normalized_recall_difference < floor_difference``; unevaluable without floors).
``subgroups.pie_share_growth``
    Largest ``pct_growth`` over judged groups (``n >= min_support``, at least
    ``min_pies`` PIEs, and with ``require_significance`` significantly worse than
    the overall shift); a judged group made only of PIEs has unbounded growth and fails;
    groups to judge but none with ``min_pies`` PIEs is unevaluable, never a pass.
``subgroups.pie_share_growth_excess``
    The same over ``excess_pct_growth`` (growth beyond its seed-noise floor, in
    percentage points of growth); unevaluable without floors.
``subgroups.accuracy_gap``
    Largest ``-shift_difference`` over judged groups (``n >= min_support``, and with
    ``require_significance`` significantly worse); 0 when none is judged.
``demographic_parity_difference_increase`` / ``equalized_odds_difference_increase``
    Per fairness set (``[sex]``, ``[sex,race]``...): the disparity's largest increase
    over the positive classes (one-vs-rest in multi-class tasks), candidate minus
    reference (``comparison.fairness[i].<name>.value``). Fails only when the increase
    exceeds both the threshold and its seed-noise floor where the reference population
    gives one (see :mod:`compaudit._gates_fairness`); unevaluable without fairness metrics.

The subgroup gates run on each set of ``gates.subgroups.attributes`` /
``attribute_sets`` (see :mod:`compaudit._gates_subgroups`). An unevaluable
gate follows ``on_unevaluable``: ``error`` (verdict error, exit 2), ``fail``
(the gate fails) or ``skip-with-warning`` (``passed`` is None, a warning in
the detail, the verdict is unaffected).

Gates fail closed: a candidate none of whose gates was evaluated (none set, or
all skipped) is an error in the report's ``errors`` (:func:`nothing_evaluated`),
whatever ``on_unevaluable`` says; ``significant_classes`` with a threshold of
C - 1 or more (C classes) can never fail and is unevaluable; thresholds that
can never fail whatever the data are refused by :mod:`compaudit.policy`.
``--exit-zero`` masks plain failures only (:func:`advisory_exit_status`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from compaudit import _gates_subgroups as sub
from compaudit._gates_classes import (
    REASON_CLASS_FLOOR_NULL,
    REASON_CLASSES_UNFAILABLE,
    REASON_NO_CLASSES,
    class_recall_drop,
    significant_classes,
)
from compaudit._gates_common import (
    MAX_LISTED,
    REASON_NO_FLOOR,
    REASON_NOT_FINITE,
    Env,
    Outcome,
    Unevaluable,
    count,
    pct,
    pp,
)
from compaudit._gates_fairness import (
    demographic_parity_difference_increase,
    equalized_odds_difference_increase,
)
from compaudit._gates_rates import (
    REASON_NO_TOP5,
    REASON_NO_VALUE_FLOOR,
    REASON_PAIRED_CIE,
    REASON_PAIRED_PIE,
    cie_rate,
    cie_rate_excess,
    cie_u_rate,
    pie_rate,
    pie_rate_excess,
    top1_drop,
    top5_drop,
)
from compaudit._gates_subgroups import (
    REASON_ATTRIBUTES,
    REASON_FEW_PIES,
    REASON_GROUP_FLOOR_NULL,
    REASON_MISSING_ATTRIBUTE,
    REASON_NO_ATTRIBUTES,
    REASON_NO_GROWTH,
    REASON_NO_SUPPORT,
)
from compaudit._record import ERR_SHAPE
from compaudit.errors import ExitStatus
from compaudit.results import (
    AuditReport,
    Comparison,
    GateResult,
    GateStatus,
    Verdict,
)

if TYPE_CHECKING:
    from compaudit.engine import AuditResult

    # Imported when a policy is judged: a run without one never needs the policy
    # module (pydantic models, 0.3 s of CPU); its re-exports load on first use.
    from compaudit.policy import (
        EffectivePolicy,
        Gates,
        Policy,
        required_attributes,
        settings,
    )

__all__ = [
    "MAX_LISTED",
    # Unevaluable reasons of the private gate modules, re-exported for tests and users.
    "REASON_ATTRIBUTES",
    "REASON_CLASSES_UNFAILABLE",
    "REASON_CLASS_FLOOR_NULL",
    "REASON_FEW_PIES",
    "REASON_GROUP_FLOOR_NULL",
    "REASON_MISSING_ATTRIBUTE",
    "REASON_NOT_FINITE",
    "REASON_NO_ATTRIBUTES",
    "REASON_NO_CLASSES",
    "REASON_NO_FLOOR",
    "REASON_NO_GROWTH",
    "REASON_NO_SUPPORT",
    "REASON_NO_TOP5",
    "REASON_NO_VALUE_FLOOR",
    "REASON_PAIRED_CIE",
    "REASON_PAIRED_PIE",
    "TOLERANCE",
    "GateResult",
    "GateStatus",
    "Verdict",
    "advisory_exit_status",
    "candidate_verdicts",
    "check_error",
    "decide_verdict",
    "evaluate_gates",
    "exit_status_for",
    "gate_unit",
    "judge",
    "nothing_evaluated",
    "required_attributes",
    "settings",
    "unevaluable",
]

TOLERANCE = 1e-12
"""Slack in ``value <= threshold`` so that float round-off at equality passes."""

# Messages live here (or in the private gate modules, re-exported) so tests can
# assert them exactly (fairlearn style).
ERR_REPORT_SHAPE = ERR_SHAPE  # raised by AuditReport.from_dict; kept under its old name
UNEVALUABLE_ERROR = "cannot be evaluated: {reason}"
UNEVALUABLE_FAIL = "cannot be evaluated, counted as failed (on_unevaluable: fail): {reason}"
UNEVALUABLE_SKIP = (
    "warning: skipped, cannot be evaluated (on_unevaluable: skip-with-warning): {reason}"
)
ERR_NOTHING_EVALUATED = (
    "no gate was evaluated for candidate '{candidate}' ({why}), so nothing was checked; "
    "a check passes only when at least one gate per candidate was evaluated"
)
WHY_NO_GATES = "the policy sets no gate threshold for it: set at least one under gates"
WHY_ALL_SKIPPED = (
    "all {n} skipped as unevaluable (on_unevaluable: skip-with-warning), e.g. {first}: "
    "fix the input, or gate something it can evaluate"
)
ERR_NO_COMPARISONS = "the report has no comparison, so no gate was evaluated"
ERR_CHECK_UNEVALUABLE = (
    "{n} gate(s) cannot be evaluated{counted}, e.g. {name}[{candidate}]: {detail}{more}"
)
COUNTED_ERROR = " (on_unevaluable: error)"
COUNTED_ADVISORY = (
    " (on_unevaluable: fail counts them as failed, and --exit-zero masks failed gates, "
    "never unevaluable ones)"
)
MORE_ERRORS = " (and {n} more; see the report's errors)"


_FAIL_PREFIX = UNEVALUABLE_FAIL.split("{", 1)[0]

_UNEVALUABLE: dict[str, tuple[bool | None, GateStatus, str]] = {
    "error": (None, "error", UNEVALUABLE_ERROR),
    "fail": (False, "failed", UNEVALUABLE_FAIL),
    "skip-with-warning": (None, "skipped", UNEVALUABLE_SKIP),
}


if TYPE_CHECKING:
    _GateFn = Callable[[Comparison, Gates, Env], list[tuple[str, Outcome]]]
_Fmt = Callable[[float], str]
_FROM_POLICY = ("required_attributes", "settings")


def __getattr__(name: str) -> Any:
    """``required_attributes`` and ``settings``, re-exported from :mod:`compaudit.policy`."""
    if name in _FROM_POLICY:
        from compaudit import policy

        return getattr(policy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def evaluate_gates(report: AuditReport | Mapping[str, Any], policy: Policy) -> list[GateResult]:
    """Evaluate every configured gate on every comparison of ``report``.

    Parameters
    ----------
    report
        The typed report (its ``comparisons`` are read, and ``data.attributes``
        where present, to name missing attributes), or its ``compaudit.report/v1``
        dict, which is parsed once with :meth:`AuditReport.from_dict`.
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
        A report dict that does not follow ``compaudit.report/v1``
        (:data:`ERR_REPORT_SHAPE`, naming where).
    """
    if not isinstance(report, AuditReport):
        report = AuditReport.from_dict(report)
    env = Env(report.data.attributes if report.data is not None else None)
    results: list[GateResult] = []
    for comp in report.comparisons:
        eff = policy.for_candidate(comp.candidate)
        for name, threshold, fn, fmt in _configured(eff.gates):
            for suffix, outcome in fn(comp, eff.gates, env):
                results.append(_finish(name + suffix, eff, threshold, outcome, fmt))
    return results


def judge(
    result: AuditResult,
    policy: Policy | None,
    *,
    settings_report: Mapping[str, Any] | None = None,
) -> AuditReport:
    """The typed report of an audit, gated by ``policy``: the one path from an
    audit to a verdict (the command line and :func:`compaudit.audit` both take it).

    Without a policy nothing is gated and the verdict is ``ungated``. The gates
    judge with the settings the audit ran with (an explicit ``--min-support``
    too). ``settings_report`` (every value and its source) replaces the
    report's ``settings`` when given.
    """
    gates: list[GateResult] = []
    errors: list[str] = []
    verdict: Verdict = "ungated"
    if policy is not None:
        from compaudit.policy import with_settings

        draft = result.report()
        gates = evaluate_gates(draft, with_settings(policy, result.settings))
        errors = nothing_evaluated(draft, gates)
        verdict = decide_verdict(gates, errors)
    document = result.report(gates=gates, verdict=verdict, errors=errors)
    if policy is not None:
        document = dataclasses.replace(document, comparisons=candidate_verdicts(document))
    if settings_report is not None:
        document = dataclasses.replace(document, settings=dict(settings_report))
    return document


def nothing_evaluated(report: AuditReport, gates: Sequence[GateResult]) -> list[str]:
    """Why the gates checked nothing, per candidate: one error each (empty when fine).

    A candidate none of whose gates was evaluated (the policy sets none for it,
    or every one was skipped) would pass by default; :func:`judge` makes that
    an error, whatever ``on_unevaluable`` says.
    """
    if not report.comparisons:
        return [ERR_NO_COMPARISONS]
    errors = []
    for comp in report.comparisons:
        mine = [g for g in gates if g.candidate == comp.candidate]
        if any(g.status in ("passed", "failed") for g in mine):
            continue
        if any(g.status == "error" for g in mine):
            continue  # already an error, with its own reason
        if mine:
            why = WHY_ALL_SKIPPED.format(n=len(mine), first=f"{mine[0].name}: {mine[0].detail}")
        else:
            why = WHY_NO_GATES
        errors.append(ERR_NOTHING_EVALUATED.format(candidate=comp.candidate, why=why))
    return errors


def candidate_verdicts(report: AuditReport) -> tuple[Comparison, ...]:
    """The comparisons, each with its own verdict: :func:`decide_verdict` over its gates
    (``error`` when none of them was evaluated, as for the run)."""
    return tuple(
        dataclasses.replace(
            c, verdict=decide_verdict([g for g in report.gates if g.candidate == c.candidate], ())
        )
        for c in report.comparisons
    )


def decide_verdict(gates: Sequence[GateResult], errors: Sequence[str]) -> Verdict:
    """The run's verdict: ``error`` if anything errored, else ``fail`` if a gate failed.

    An error outranks a failed gate: a run that could not check everything is
    not a plain failure. Skipped gates (``skip-with-warning``) count for neither,
    but a run where no gate was evaluated (none configured, or all skipped) is
    an ``error``: a gate that cannot fail must not pass a release. Never
    ``ungated``: that is the verdict of a run without a policy, which does not
    call this.
    """
    evaluated = any(g.status in ("passed", "failed") for g in gates)
    if errors or not evaluated or any(g.status == "error" for g in gates):
        return "error"
    if any(g.status == "failed" for g in gates):
        return "fail"
    return "pass"


_EXIT: dict[str, ExitStatus] = {
    "pass": ExitStatus.OK,
    "fail": ExitStatus.GATE_FAILED,
    "error": ExitStatus.ERROR,
    "ungated": ExitStatus.OK,
}


def exit_status_for(verdict: Verdict) -> ExitStatus:
    """Exit code of a verdict: 0 pass (and ungated), 1 fail, 2 error (the only place
    this is decided)."""
    try:
        return _EXIT[verdict]
    except KeyError:
        raise ValueError(f"unknown verdict {verdict!r}") from None


def unevaluable(gate: GateResult) -> bool:
    """Whether ``gate`` could not be evaluated, whatever ``on_unevaluable`` made of it.

    ``error`` and ``skipped`` gates, and gates ``on_unevaluable: fail`` counted as
    failed (their detail starts with that template's fixed text).
    """
    if gate.status in ("error", "skipped"):
        return True
    return gate.status == "failed" and gate.detail.startswith(_FAIL_PREFIX)


def advisory_exit_status(document: AuditReport) -> ExitStatus:
    """The exit code of an advisory run (``check --exit-zero``): only a plain failed
    gate turns into 0; a gate that could not be evaluated stays an error (2), also when
    ``on_unevaluable: fail`` counted it as failed."""
    status = exit_status_for(document.verdict)
    if status is not ExitStatus.GATE_FAILED:
        return status
    if any(g.status == "failed" and unevaluable(g) for g in document.gates):
        return ExitStatus.ERROR
    return ExitStatus.OK


def check_error(document: AuditReport, *, advisory: bool = False) -> str | None:
    """The one error line of a ``check`` that exits 2 on its verdict, or None.

    The first of the report's ``errors``, else the gates that could not be
    evaluated (with ``advisory``, also those ``on_unevaluable: fail`` counted
    as failed, which ``--exit-zero`` does not mask).
    """
    status = advisory_exit_status(document) if advisory else exit_status_for(document.verdict)
    if status is not ExitStatus.ERROR:
        return None
    if document.errors:
        extra = len(document.errors) - 1
        return document.errors[0] + (MORE_ERRORS.format(n=extra) if extra else "")
    errored = [g for g in document.gates if g.status == "error"]
    counted = COUNTED_ERROR
    if not errored:
        errored = [g for g in document.gates if g.status == "failed" and unevaluable(g)]
        counted = COUNTED_ADVISORY
    if not errored:
        return None
    first = errored[0]
    extra = len(errored) - 1
    return ERR_CHECK_UNEVALUABLE.format(
        n=len(errored),
        counted=counted,
        name=first.name,
        candidate=first.candidate,
        detail=first.detail,
        more=f" (and {extra} more in the report)" if extra else "",
    )


# -- plumbing ----------------------------------------------------------------


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
    return GateResult(
        name=name,
        candidate=eff.candidate,
        value=value,
        threshold=threshold,
        passed=passed,
        detail=detail,
        status=status,
    )


def _one(fn: Callable[[Comparison, Gates], Outcome]) -> _GateFn:
    def gate(comp: Comparison, gates: Gates, env: Env) -> list[tuple[str, Outcome]]:
        return [("", fn(comp, gates))]

    return gate


# Each gate's name is the path of its threshold in the policy's ``gates``; report order.
_GATES: tuple[tuple[str, _GateFn, _Fmt], ...] = (
    ("top1_drop", _one(top1_drop), pp),
    ("top5_drop", _one(top5_drop), pp),
    ("cie_rate", _one(cie_rate), pct),
    ("cie_rate_excess", _one(cie_rate_excess), pp),
    ("cie_u_rate", _one(cie_u_rate), pct),
    ("pie_rate", _one(pie_rate), pct),
    ("pie_rate_excess", _one(pie_rate_excess), pp),
    ("significant_classes", _one(significant_classes), count),
    ("class_recall_drop", _one(class_recall_drop), pp),
    ("subgroups.pie_share_growth", sub.pie_share_growth, "{:z.1f}%".format),
    ("subgroups.pie_share_growth_excess", sub.pie_share_growth_excess, "{:z.1f} pp".format),
    ("subgroups.accuracy_gap", sub.accuracy_gap, pp),
    ("demographic_parity_difference_increase", demographic_parity_difference_increase, pp),
    ("equalized_odds_difference_increase", equalized_odds_difference_increase, pp),
)


def gate_unit(name: str) -> _Fmt:
    """How a gate's value and threshold are written for people (``1.53 pp``, ``4.20%``,
    ``3``): the unit of its detail sentence; a gate name may carry a ``[set]`` suffix."""
    base = name.split("[", 1)[0]
    return next((fmt for n, _, fmt in _GATES if n == base), "{:.4g}".format)


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
