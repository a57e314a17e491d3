"""``junit.xml``: one test case per gate per candidate, for CI test views.

A failed gate is a ``<failure>`` whose message carries the measured value and
the threshold; a gate that could not be evaluated is an ``<error>`` (the run
fails closed). ``<skipped>`` is used only for a gate the policy explicitly
allowed to be skipped (``on_unevaluable: skip-with-warning``), never for a
failure. Without gates, each candidate gets one ``audit`` case: skipped
when no policy was given (verdict ``ungated``: nothing was gated, so nothing
may read as passed), passing when a policy had no gates.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from compaudit._io import atomic_write_bytes
from compaudit._text import for_xml
from compaudit.report._common import NOT_GATED, fmt_value, gate_outcome
from compaudit.report.base import ReportContext
from compaudit.results import AuditReport, GateResult

__all__ = ["JUnitReporter", "render_junit"]

SUITE = "compaudit"
NO_GATES_CASE = "audit"
FAILURE_MESSAGE = "{name}: measured {value} exceeds threshold {threshold}"
FAILURE_UNMEASURED = "{name}: cannot be evaluated, counted as failed (threshold {threshold})"
ERROR_MESSAGE = "{name}: cannot be evaluated (threshold {threshold})"
VERDICT_MESSAGE = "verdict is {verdict} although no gate says why"


def _clean(text: object) -> str:
    # ElementTree writes characters XML 1.0 cannot carry (controls, lone surrogates)
    # as they are, or as invalid references: shown escaped instead, as in every format.
    return for_xml(text)


def _classname(candidate: str | None) -> str:
    return SUITE if candidate is None else f"{SUITE}.{_clean(candidate)}"


def _gate_case(gate: GateResult) -> tuple[ET.Element, str]:
    name = _clean(gate.name)
    case = ET.Element("testcase", classname=_classname(gate.candidate), name=name)
    case.set("time", "0")
    detail = _clean(gate.detail)
    outcome = gate_outcome(gate)
    value, threshold = fmt_value(gate.value), fmt_value(gate.threshold)
    if outcome == "FAIL":
        # on_unevaluable: fail gives a failure without a measured value.
        template = FAILURE_UNMEASURED if gate.value is None else FAILURE_MESSAGE
        msg = template.format(name=name, value=value, threshold=threshold)
        ET.SubElement(case, "failure", message=msg, type="GateFailed").text = detail
    elif outcome == "error":
        msg = ERROR_MESSAGE.format(name=name, threshold=threshold)
        ET.SubElement(case, "error", message=msg, type="GateUnevaluable").text = detail
    elif outcome == "skipped":
        ET.SubElement(case, "skipped", message=detail)
    else:
        ET.SubElement(
            case, "system-out"
        ).text = f"measured {value}, threshold {threshold}: {detail}"
    return case, outcome


def _suite(name: str, cases: Sequence[tuple[ET.Element, str]]) -> ET.Element:
    suite = ET.Element("testsuite", name=name)
    counts = {"FAIL": 0, "error": 0, "skipped": 0}
    for case, outcome in cases:
        suite.append(case)
        if outcome in counts:
            counts[outcome] += 1
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(counts["FAIL"]))
    suite.set("errors", str(counts["error"]))
    suite.set("skipped", str(counts["skipped"]))
    suite.set("time", "0")
    return suite


def _cases_without_gates(report: AuditReport, candidate: str) -> list[tuple[ET.Element, str]]:
    case = ET.Element("testcase", classname=_classname(candidate), name=NO_GATES_CASE, time="0")
    verdict = report.verdict
    if verdict == "pass":
        return [(case, "pass")]
    if verdict == "ungated":
        # Nothing was gated: neither green nor red in a CI test view.
        ET.SubElement(case, "skipped", message=NOT_GATED)
        return [(case, "skipped")]
    # Fail closed: a non-passing verdict must not read as green in CI.
    tag, outcome = ("failure", "FAIL") if verdict == "fail" else ("error", "error")
    ET.SubElement(case, tag, message=VERDICT_MESSAGE.format(verdict=verdict))
    return [(case, outcome)]


def render_junit(report: AuditReport) -> bytes:
    """Render ``report`` as JUnit XML (UTF-8 bytes with an XML declaration).

    Parameters
    ----------
    report : AuditReport
        The typed report (:meth:`compaudit.engine.AuditResult.report`).

    Returns
    -------
    bytes
        One ``<testsuite>`` per candidate (classname ``compaudit.<candidate>``),
        plus one named ``compaudit`` for gates without a candidate and for
        the report's errors.
    """
    by_candidate: dict[str | None, list[tuple[ET.Element, str]]] = {
        c.candidate: [] for c in report.comparisons
    }
    for gate in report.gates:
        by_candidate.setdefault(gate.candidate, []).append(_gate_case(gate))
    if not report.gates:
        for cand in by_candidate:
            if cand is not None:
                by_candidate[cand] = _cases_without_gates(report, cand)
    for i, err in enumerate(report.errors, start=1):
        case = ET.Element("testcase", classname=SUITE, name=f"error {i}", time="0")
        ET.SubElement(case, "error", message=_clean(err), type="AuditError")
        by_candidate.setdefault(None, []).append((case, "error"))

    root = ET.Element("testsuites", name=SUITE)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for cand, cases in by_candidate.items():
        suite = _suite(_classname(cand), cases)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", "0")
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


class JUnitReporter:
    """Writes ``junit.xml`` atomically."""

    name = "junit"
    filename: str | None = "junit.xml"

    def write(
        self, report: AuditReport, *, out_dir: Path | None, context: ReportContext
    ) -> Path | None:
        """Write ``out_dir/junit.xml`` (print it when ``out_dir`` is None)."""
        body = render_junit(report)
        if out_dir is None:
            context.console.out(body.decode("utf-8"), end="", highlight=False)
            return None
        path = out_dir / "junit.xml"
        atomic_write_bytes(path, body)
        return path
