"""``junit.xml``: one test case per gate per candidate, for CI test views.

A failed gate is a ``<failure>`` whose message carries the measured value and
the threshold; a gate that could not be evaluated is an ``<error>`` (the run
fails closed). ``<skipped>`` is used only for a gate the policy explicitly
allowed to be skipped (``on_unevaluable: skip-with-warning``), never for a
failure. Without gates, each candidate gets one ``audit`` case: skipped
when no policy was given (verdict ``ungated``: nothing was gated, so nothing
may read as passed), passing when a policy had no gates.

The document is valid against the Jenkins xunit plugin's ``junit-10.xsd``
(``tests/report/junit-10.xsd``): counts and ``time`` on ``<testsuites>`` (no
``skipped`` there; each ``<testsuite>`` carries its own), and per suite a
``timestamp`` and ``<properties>``: compaudit's version, the verdict, the
policy, and the sha256 fingerprints of the populations compared.
"""

from __future__ import annotations

import datetime as dt
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from compaudit._io import atomic_write_bytes
from compaudit._text import for_xml
from compaudit.report._common import NOT_GATED, gate_number, gate_outcome, gate_pair
from compaudit.report.base import ReportContext
from compaudit.results import AuditReport, GateResult

__all__ = ["JUnitReporter", "render_junit"]

SUITE = "compaudit"
NO_GATES_CASE = "audit"
FAILURE_MESSAGE = "{name}: measured {value} exceeds threshold {threshold}"
FAILURE_UNMEASURED = "{name}: cannot be evaluated, counted as failed (threshold {threshold})"
ERROR_MESSAGE = "{name}: cannot be evaluated (threshold {threshold})"
VERDICT_MESSAGE = "verdict is {verdict} although no gate says why"
ROOT_COUNTS = ("tests", "failures", "errors")
"""Counts ``<testsuites>`` carries: junit-10.xsd allows no ``skipped`` there."""


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
    # In the unit people read (1.5 pp, 4.2%), as every other format writes gates.
    if gate.value is not None and gate.threshold is not None:
        value, threshold = gate_pair(gate, gate.value, gate.threshold)
    else:
        value, threshold = gate_number(gate, gate.value), gate_number(gate, gate.threshold)
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


def _timestamp(when: dt.datetime | None) -> str:
    """ISO 8601 in UTC, to the second: ``when``, else ``$SOURCE_DATE_EPOCH``, else now."""
    if when is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
        when = (
            dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)
            if epoch.isdigit()
            else dt.datetime.now(dt.timezone.utc)
        )
    elif when.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return when.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def _properties(report: AuditReport, candidate: str | None, sources: dict[str, str]) -> ET.Element:
    """What a CI reader needs to trace a suite to its inputs."""
    props: list[tuple[str, str]] = [
        ("compaudit.version", str(report.tool.get("version", ""))),
        ("verdict", report.verdict),
        ("policy", sources.get("policy") or "none"),
    ]
    if sources.get("data"):
        props.append(("data", sources["data"]))
    comparison = next((c for c in report.comparisons if c.candidate == candidate), None)
    names = (
        [comparison.reference, comparison.candidate]
        if comparison is not None
        else list(report.populations)
    )
    if comparison is not None:
        props += [("reference", comparison.reference), ("candidate", comparison.candidate)]
    for name in names:
        population = report.populations.get(name)
        if population is not None and population.fingerprint:
            props.append((f"fingerprint.{name}", population.fingerprint))
    element = ET.Element("properties")
    for key, value in props:
        ET.SubElement(element, "property", name=_clean(key), value=_clean(value))
    return element


def _suite(
    name: str, cases: Sequence[tuple[ET.Element, str]], properties: ET.Element, timestamp: str
) -> ET.Element:
    suite = ET.Element("testsuite", name=name)
    suite.append(properties)
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
    suite.set("timestamp", timestamp)
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


def render_junit(
    report: AuditReport,
    *,
    sources: dict[str, str] | None = None,
    timestamp: dt.datetime | None = None,
) -> bytes:
    """Render ``report`` as JUnit XML (UTF-8 bytes with an XML declaration).

    Parameters
    ----------
    report : AuditReport
        The typed report (:meth:`compaudit.engine.AuditResult.report`).
    sources : dict, optional
        Input names (``policy``, ``data``) for the suites' ``<properties>``
        (:attr:`ReportContext.sources`).
    timestamp : datetime, optional
        When the audit ran (timezone-aware); default ``$SOURCE_DATE_EPOCH``
        when set (reproducible builds), else now.

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
    totals = dict.fromkeys(ROOT_COUNTS, 0)
    when = _timestamp(timestamp)
    for cand, cases in by_candidate.items():
        props = _properties(report, cand, sources or {})
        suite = _suite(_classname(cand), cases, props, when)
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
        body = render_junit(report, sources=context.sources)
        if out_dir is None:
            context.console.out(body.decode("utf-8"), end="", highlight=False)
            return None
        path = out_dir / "junit.xml"
        atomic_write_bytes(path, body)
        return path
