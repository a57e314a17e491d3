"""junit.xml against the Jenkins xunit plugin's junit-10.xsd (see junit-10.xsd here)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from compaudit.report.junit import render_junit
from compaudit.results import AuditReport

XSD = Path(__file__).with_name("junit-10.xsd")
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
SOURCES = {"policy": "policies/strict.yaml", "data": "digits:test"}


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


def _variants(doc: dict[str, Any]) -> dict[str, AuditReport]:
    """The fixed report and the shapes junit.py writes differently."""
    no_gates = {**doc, "gates": [], "verdict": "pass"}
    ungated = {**doc, "gates": [], "verdict": "ungated"}
    errors = {**doc, "errors": ["reference.npz: could not be read"], "verdict": "error"}
    hostile = {**doc, "gates": [{**doc["gates"][0], "detail": "bad\x00 <&> \x1b[31m"}]}
    return {
        name: AuditReport.from_dict(d)
        for name, d in {
            "fixed": doc,
            "no-gates": no_gates,
            "ungated": ungated,
            "errors": errors,
            "hostile": hostile,
        }.items()
    }


def test_every_shape_is_valid_against_junit_10(
    schema: xmlschema.XMLSchema, doc: dict[str, Any]
) -> None:
    for name, report in _variants(doc).items():
        body = render_junit(report, sources=SOURCES, timestamp=WHEN)
        errors = [str(e) for e in schema.iter_errors(body.decode("utf-8"))]
        assert errors == [], name


def test_the_schema_rejects_skipped_on_testsuites(schema: xmlschema.XMLSchema) -> None:
    # Why the root carries no `skipped`: the validation above can fail.
    assert not schema.is_valid('<testsuites skipped="1"/>')
    assert not schema.is_valid('<testsuites><testsuite name="a" tests="1"/></testsuites>')
    assert schema.is_valid('<testsuites tests="0" failures="0" errors="0" time="0"/>')


def test_suites_carry_timestamp_and_properties(report: AuditReport) -> None:
    root = ET.fromstring(render_junit(report, sources=SOURCES, timestamp=WHEN))
    assert "skipped" not in root.attrib
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "1")
    suites = root.findall("testsuite")
    assert sum(int(s.get("skipped", "0")) for s in suites) == 1
    first = suites[0]
    assert first.get("timestamp") == "2026-01-02T03:04:05+00:00"
    assert first[0].tag == "properties"
    props = {p.get("name"): p.get("value") for p in first.iter("property")}
    comparison = report.comparisons[0]
    assert props["compaudit.version"] == report.tool["version"]
    assert props["policy"] == "policies/strict.yaml"
    assert props["data"] == "digits:test"
    assert props["candidate"] == comparison.candidate
    for side in (comparison.reference, comparison.candidate):
        assert props[f"fingerprint.{side}"] == report.populations[side].fingerprint
        assert len(props[f"fingerprint.{side}"]) == 64


def test_timestamp_defaults_to_source_date_epoch(
    report: AuditReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    root = ET.fromstring(render_junit(report))
    assert {s.get("timestamp") for s in root} == {"1970-01-02T00:00:00+00:00"}
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["policy"] == "none"  # no sources given: said, not left blank


def test_naive_timestamp_is_refused(report: AuditReport) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_junit(report, timestamp=dt.datetime(2026, 1, 1))
