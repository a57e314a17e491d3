"""JUnit XML, read back with junitparser as a CI server would."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped
from rich.console import Console

from compaudit.report._common import NOT_GATED
from compaudit.report.base import ReportContext
from compaudit.report.junit import FAILURE_UNMEASURED, NO_GATES_CASE, JUnitReporter, render_junit
from compaudit.results import AuditReport


def _parse(report: AuditReport | dict[str, Any], tmp_path: Path) -> JUnitXml:
    """Write junit.xml (a dict is an edited report: read back typed first) and parse it."""
    if isinstance(report, dict):
        report = AuditReport.from_dict(report)
    ctx = ReportContext(console=Console(file=io.StringIO()))
    path = JUnitReporter().write(report, out_dir=tmp_path, context=ctx)
    assert path == tmp_path / "junit.xml"
    return JUnitXml.fromfile(str(path))


def _cases(xml: JUnitXml) -> list[Any]:
    return [case for suite in xml for case in suite]


def test_one_case_per_gate_per_candidate(report: AuditReport, tmp_path: Path) -> None:
    xml = _parse(report, tmp_path)
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (5, 1, 1, 1)
    cases = _cases(xml)
    assert [(c.classname, c.name) for c in cases] == [
        ("compaudit.pruned-90", "top1_drop"),
        ("compaudit.pruned-90", "pie_rate"),
        ("compaudit.pruned-90", "subgroups.accuracy_gap"),
        ("compaudit.int8", "top1_drop"),
        ("compaudit.int8", "subgroups.pie_share_growth"),
    ]
    kinds = [type(c.result[0]).__name__ if c.result else "pass" for c in cases]
    assert kinds == ["Failure", "pass", "Error", "pass", "Skipped"]


def test_failure_carries_value_and_threshold(report: AuditReport, tmp_path: Path) -> None:
    gate = report.gates[0]
    case = _cases(_parse(report, tmp_path))[0]
    (failure,) = case.result
    assert isinstance(failure, Failure)
    # In the unit people read, as the other formats write it: top1_drop in points.
    assert gate.name == "top1_drop"
    assert f"measured {100 * gate.value:.1f} pp" in failure.message
    assert "threshold 1.0 pp" in failure.message
    assert failure.text == gate.detail


def test_unevaluable_gate_is_an_error_not_a_skip(report: AuditReport, tmp_path: Path) -> None:
    case = _cases(_parse(report, tmp_path))[2]
    (error,) = case.result
    assert isinstance(error, Error)
    assert "cannot be evaluated" in error.message
    assert "min_support 500" in error.text


def test_skip_only_when_the_policy_said_so(doc: dict[str, Any], tmp_path: Path) -> None:
    doc["gates"][4]["status"] = "error"  # no explicit skip: an unevaluable gate is an error
    xml = _parse(doc, tmp_path)
    assert (xml.errors, xml.skipped) == (2, 0)
    doc["gates"][4]["status"] = "skipped"
    case = _cases(_parse(doc, tmp_path))[4]
    assert isinstance(case.result[0], Skipped)


def test_without_gates_each_candidate_passes_one_audit_case(
    doc: dict[str, Any], tmp_path: Path
) -> None:
    doc["gates"], doc["verdict"] = [], "pass"  # a policy without gates
    xml = _parse(doc, tmp_path)
    assert (xml.tests, xml.failures, xml.errors) == (2, 0, 0)
    assert [(c.classname, c.name, c.is_passed) for c in _cases(xml)] == [
        ("compaudit.pruned-90", NO_GATES_CASE, True),
        ("compaudit.int8", NO_GATES_CASE, True),
    ]


def test_without_a_policy_each_candidate_is_a_skipped_not_gated_case(
    ungated_report: AuditReport, tmp_path: Path
) -> None:
    assert ungated_report.verdict == "ungated"
    xml = _parse(ungated_report, tmp_path)
    # Still a valid, non-empty suite per candidate: neither green nor red.
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (2, 0, 0, 2)
    cases = _cases(xml)
    assert [(c.classname, c.name) for c in cases] == [
        ("compaudit.pruned-90", NO_GATES_CASE),
        ("compaudit.int8", NO_GATES_CASE),
    ]
    for case in cases:
        (skip,) = case.result
        assert isinstance(skip, Skipped)
        assert skip.message == NOT_GATED
        assert not case.is_passed


def test_a_failing_verdict_without_gates_is_not_green(doc: dict[str, Any], tmp_path: Path) -> None:
    doc["gates"], doc["verdict"] = [], "fail"
    xml = _parse(doc, tmp_path)
    assert xml.failures == 2


def test_report_errors_become_error_cases(doc: dict[str, Any], tmp_path: Path) -> None:
    doc["errors"] = ["reference.npz: could not be read"]
    xml = _parse(doc, tmp_path)
    assert xml.errors == 2
    last = _cases(xml)[-1]
    assert (last.classname, last.result[0].message) == (
        "compaudit",
        "reference.npz: could not be read",
    )


def test_control_characters_do_not_break_the_xml(doc: dict[str, Any], tmp_path: Path) -> None:
    doc["gates"][0]["detail"] = "bad\x00byte \x1b[31m <&> done"
    case = _cases(_parse(doc, tmp_path))[0]
    assert case.result[0].text == "bad\\x00byte \\x1b[31m <&> done"  # shown escaped, as everywhere


def test_output_is_utf8_with_declaration(report: AuditReport) -> None:
    body = render_junit(report)
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<testsuites")


def test_unevaluable_gate_counted_as_failed_says_so(doc: dict[str, Any], tmp_path: Path) -> None:
    doc["gates"][2].update(passed=False, status="failed")  # on_unevaluable: fail
    case = _cases(_parse(doc, tmp_path))[2]
    (failure,) = case.result
    assert isinstance(failure, Failure)
    assert failure.message == FAILURE_UNMEASURED.format(
        name="subgroups.accuracy_gap", threshold="3.0 pp"
    )
