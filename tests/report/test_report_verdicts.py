"""One verdict per candidate, first in every format; the compression curve."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from rich.console import Console

from compaudit.engine import AuditResult
from compaudit.gates import judge
from compaudit.policy import Policy
from compaudit.report._class_chart import BETTER
from compaudit.report._common import candidate_verdicts
from compaudit.report._curve import compression_curve, level_text
from compaudit.report._svg_curve import curve_plot_svg
from compaudit.report.base import ReportContext, validate_report
from compaudit.report.html import render_html
from compaudit.report.json_report import document
from compaudit.report.markdown import render_markdown
from compaudit.report.terminal import render
from compaudit.results import AuditReport, Compression

# A raw fraction (0.0153, -6.64e-05) where people read percent or percentage points.
RAW = re.compile(r"(?<![\d.])-?0\.\d{3,}(?! ?(?:pp|%))|\d[eE]-\d")


def _policy() -> Policy:
    # pruned-90 loses 6.4 pp of top-1 and fails; int8 gains and passes.
    return Policy.model_validate({"version": 1, "gates": {"top1_drop": 0.02, "pie_rate": 0.5}})


@pytest.fixture(scope="module")
def judged(audit_result: AuditResult) -> AuditReport:
    return judge(audit_result, _policy())


def _terminal(report: AuditReport) -> list[str]:
    console = Console(width=80, no_color=True, color_system=None, force_terminal=False,
                      record=True, file=io.StringIO(), _environ={})  # fmt: skip
    render(report, ReportContext(console=console))
    return console.export_text().splitlines()


def test_each_comparison_has_its_own_verdict(judged: AuditReport) -> None:
    assert judged.verdict == "fail"
    assert {c.candidate: c.verdict for c in judged.comparisons} == {
        "pruned-90": "fail",
        "int8": "pass",
    }
    doc = judged.to_dict()
    validate_report(doc)
    assert [c["verdict"] for c in doc["comparisons"]] == ["fail", "pass"]
    assert AuditReport.from_dict(doc) == judged


def test_a_report_without_verdicts_or_compression_still_loads(doc: dict[str, Any]) -> None:
    for comp in doc["comparisons"]:
        del comp["verdict"]
    assert all("compression" not in p for p in doc["populations"].values())
    old = AuditReport.from_dict(doc)
    assert {c.verdict for c in old.comparisons} == {"ungated"}
    # The lines fall back on each candidate's gates: an error, and a pass.
    assert [(v.candidate, v.verdict) for v in candidate_verdicts(old)] == [
        ("pruned-90", "error"),
        ("int8", "pass"),
    ]


def test_the_lines_put_failures_first_in_the_units_people_read(judged: AuditReport) -> None:
    lines = [v.text() for v in candidate_verdicts(judged)]
    assert lines[0].startswith("pruned-90: FAIL: top1_drop 6.4 pp > 2.0 pp; 1 of 2 gates passed")
    assert "excess over seed floor: PIE -17.15 pp, CIE +5.09 pp" in lines[0]
    assert lines[1].startswith("int8: PASS: 2 of 2 gates passed")
    for line in lines:
        assert not RAW.search(line), line


def test_every_format_opens_with_the_candidates(judged: AuditReport) -> None:
    terminal = _terminal(judged)
    assert max(map(len, terminal)) <= 80
    assert terminal[1].startswith("pruned-90 FAIL top1_drop 6.4 pp > 2.0 pp")
    assert next(i for i, t in enumerate(terminal) if t.startswith("int8 ")) < terminal.index(
        next(t for t in terminal if t.startswith("Compression curve"))
    )

    md = render_markdown(judged).splitlines()
    assert md[4].startswith("- ❌ `pruned-90` **FAIL**: top1\\_drop 6.4 pp \\> 2.0 pp")
    assert md[5].startswith("- ✅ `int8` **PASS**")
    text = "\n".join(md)
    # Failures first below too; per-class and per-group tables folded.
    assert text.index("### ❌ `pruned-90` vs") < text.index("### ✅ `int8` vs")
    assert text.count("<details><summary><b>Worst classes</b>") == 2
    assert text.count("<details><summary><b>Subgroups</b>") == 2
    assert text.count("<details>") == text.count("</details>")

    page = render_html(judged, ReportContext(console=Console(file=io.StringIO())))
    body = page.split("</header>", 1)[1]
    assert body.startswith("<ul class='verdicts'><li class='v-fail'><b class='cand'>pruned-90")
    gates = page.split("<section id='gates'>", 1)[1].split("</section>", 1)[0]
    assert "<span class='gate-name'>top1_drop</span>" in gates
    assert ".gate-name { white-space: nowrap;" in page
    assert "<td class='num'>6.4 pp</td><td class='num'>2.0 pp</td>" in gates
    assert "0.064" not in gates

    doc = document(judged)
    assert list(doc)[:4] == ["schema", "tool", "verdict", "summary"]
    assert doc["summary"][0].startswith("pruned-90: FAIL: top1_drop 6.4 pp > 2.0 pp")
    validate_report(doc)


def _with_levels(doc: dict[str, Any]) -> AuditReport:
    levels = {
        "reference": {"sparsity": 0.0, "bits": 32},
        "pruned-90": {"sparsity": 0.9, "bits": 32, "file_size": 1_200_000},
        "int8": {"sparsity": 0.0, "bits": 8, "parameters": 96_000},
    }
    for name, level in levels.items():
        doc["populations"][name]["compression"] = {
            **level,
            "sources": dict.fromkeys(level, "given"),
        }
    validate_report(doc)
    return AuditReport.from_dict(doc)


def test_the_curve_orders_candidates_by_compression_level(doc: dict[str, Any]) -> None:
    report = _with_levels(doc)
    points = compression_curve(report)
    assert [p.name for p in points] == ["reference", "int8", "pruned-90"]
    assert points[0].comparison is None
    pruned = points[2]
    assert pruned.comparison is not None
    # Excess PIEs: the PIE rate's excess over its floor, as examples (N = 600).
    excess = pruned.comparison.pie.floor.excess
    assert excess is not None
    assert pruned.excess_pies == pytest.approx(excess * 600)
    assert level_text(pruned.compression) == "90% sparse, 32-bit, 1.2 MB"
    assert level_text(points[1].compression) == "0% sparse, 8-bit, 96k params"
    assert level_text(points[1].compression, short=True) == "8-bit"
    assert level_text(points[0].compression, short=True) == "dense"

    md = render_markdown(report)
    curve = md.split("### Compression curve", 1)[1].split("###", 1)[0]
    rows = [r for r in curve.splitlines() if r.startswith("| `")]
    assert [r.split(" | ")[0] for r in rows] == ["| `reference`", "| `int8`", "| `pruned-90`"]
    assert "| 90% sparse, 32-bit, 1.2 MB | 83.00% | - | 1 of 6 | 23 | -103 | 25.55% |" in curve
    assert max(map(len, _terminal(report))) <= 80
    svg = ET.fromstring(curve_plot_svg(points))  # well-formed
    markers = [e for e in svg.iter("circle") if e.get("fill") == BETTER]  # top-1 line
    assert len(markers) == len(points) + 1  # one per population, plus the legend's
    texts = ["".join(t.itertext()) for t in svg.iter("text")]
    assert texts[-1] == "population (curve order)"  # two points share sparsity 0
    assert [t for t in texts if t in ("reference", "int8", "pruned-90")] == 2 * [
        "reference",
        "int8",
        "pruned-90",
    ]  # both bottom panels, in curve order
    page = render_html(report, ReportContext(console=Console(file=io.StringIO())))
    assert page.count("<svg class='plot-curve'") == 1


def test_no_curve_for_a_single_candidate(doc: dict[str, Any]) -> None:
    doc["comparisons"] = doc["comparisons"][:1]
    report = AuditReport.from_dict(doc)
    assert "Compression curve" not in render_markdown(report)
    assert not any(line.startswith("Compression curve") for line in _terminal(report))
    page = render_html(report, ReportContext(console=Console(file=io.StringIO())))
    assert "id='curve'" not in page


def test_compression_round_trips_and_the_schema_checks_it(doc: dict[str, Any]) -> None:
    report = _with_levels(doc)
    assert report.populations["int8"].compression == Compression(
        sparsity=0.0, bits=8, parameters=96_000, sources={"sparsity": "given", "bits": "given",
        "parameters": "given"},
    )  # fmt: skip
    assert AuditReport.from_dict(report.to_dict()) == report
    bad = report.to_dict()
    bad["populations"]["int8"]["compression"]["sparsity"] = 1.5
    with pytest.raises(Exception, match="sparsity"):
        validate_report(bad)
    bad = report.to_dict()
    bad["comparisons"][0]["verdict"] = "maybe"
    with pytest.raises(Exception, match="verdict"):
        validate_report(bad)


def test_the_library_takes_compression_levels() -> None:
    import numpy as np

    import compaudit
    from compaudit.errors import InputError

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 400)
    ref = np.where(rng.random((3, 400)) < 0.9, y, (y + 1) % 4)
    cands = {n: np.where(rng.random((3, 400)) < 0.85, y, (y + 1) % 4) for n in ("p50", "p90")}
    levels: dict[str, dict[str, float]] = {
        "reference": {"sparsity": 0},
        "p50": {"sparsity": 0.5},
        "p90": {"sparsity": 0.9},
    }
    report = compaudit.audit(ref, cands, y=y, compression=levels)
    pops = report.document.populations
    assert [pops[n].compression.sparsity for n in ("reference", "p50", "p90")] == [0.0, 0.5, 0.9]  # type: ignore[union-attr]
    assert [p.name for p in compression_curve(report.document)] == ["reference", "p50", "p90"]
    with pytest.raises(InputError, match="compression: no population named p99"):
        compaudit.audit(ref, cands, y=y, compression={"p99": {"sparsity": 0.9}})
    with pytest.raises(InputError, match=r"compression\['p90'\]: unknown compression key 'bit'"):
        compaudit.audit(ref, cands, y=y, compression={"p90": {"bit": 8}})


def test_one_gate_is_one_gate(audit_result: AuditResult) -> None:
    one = judge(audit_result, Policy.model_validate({"version": 1, "gates": {"pie_rate": 0.5}}))
    lines = [v.text() for v in candidate_verdicts(one)]
    assert "int8: PASS: 1 of 1 gate passed" in lines[-1]
    assert not any("1 gates" in line for line in lines)
