"""The HTML report's charts (issue 12, point 3): what they compute and what they draw."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from scipy import stats

from compaudit.engine import AuditResult
from compaudit.report import _charts as charts
from compaudit.report import _views as views
from compaudit.report._plot import NEUTRAL, WORSE, class_plot_png, class_span
from compaudit.report.base import ReportContext
from compaudit.report.html import render_html
from compaudit.results import AuditReport, GroupRow

from .conftest import class_row


def test_confusion_shifts_hand_computed() -> None:
    # Six PIEs (true, modal reference, modal candidate). By hand, off-diagonal only:
    #   true 0 -> 2: after 3 (rows 0, 1, 2), before 0 -> +3
    #   true 0 -> 1: after 0, before 1 (row 2)    -> shrank, left out
    #   true 1 -> 0: after 1 (row 3), before 0     -> +1
    #   true 2 -> 1: after 1 (row 5), before 1 (row 4) -> 0, left out
    #   true 2 -> 0: after 1 (row 4), before 0     -> +1
    # Ties of growth: larger ``after`` first, then by (true, predicted): (1, 0) before (2, 0).
    labels = np.array([0, 0, 0, 1, 2, 2])
    ref = np.array([0, 0, 1, 1, 1, 2])
    cand = np.array([2, 2, 2, 0, 0, 1])
    got = charts.confusion_shifts(labels, ref, cand)
    assert got == [
        charts.ConfusionShift(true=0, predicted=2, before=0, after=3),
        charts.ConfusionShift(true=1, predicted=0, before=0, after=1),
        charts.ConfusionShift(true=2, predicted=0, before=0, after=1),
    ]
    assert [s.growth for s in got] == [3, 1, 1]
    assert charts.confusion_shifts(labels, ref, cand, limit=1) == got[:1]
    assert charts.confusion_shifts(np.array([]), np.array([]), np.array([])) == []


def test_confusion_shifts_equal_the_full_confusion_matrices_difference() -> None:
    # Non-PIEs have one modal prediction on both sides, so PIEs alone give the growth.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    ref = np.where(rng.random(400) < 0.7, y, rng.integers(0, 5, 400))
    cand = np.where(rng.random(400) < 0.3, rng.integers(0, 5, 400), ref)
    pie = ref != cand
    got = charts.confusion_shifts(y[pie], ref[pie], cand[pie], limit=100)
    full = np.zeros((5, 5), int)
    np.add.at(full, (y, cand), 1)
    np.add.at(full, (y, ref), -1)
    np.fill_diagonal(full, 0)
    assert {(s.true, s.predicted): s.growth for s in got} == {
        (int(t), int(p)): int(full[t, p]) for t, p in zip(*np.nonzero(full > 0), strict=True)
    }


def test_shift_errors_are_welch_standard_errors(audit_result: AuditResult) -> None:
    # Populations on both sides: (mean difference) / SE is scipy's Welch t statistic.
    ref, cand = audit_result.reference, audit_result.candidates[0]
    y, c = ref.population.y, ref.population.num_classes
    se = charts.shift_errors(ref.correct, cand.correct, y, c)
    comp = audit_result.comparisons[0]
    for row in comp.classes:
        m = y == row.class_index
        s_r = ref.correct[:, m].mean(1) - ref.correct.mean(1)
        s_c = cand.correct[:, m].mean(1) - cand.correct.mean(1)
        assert s_c.mean() - s_r.mean() == pytest.approx(row.normalized_recall_difference, abs=1e-12)
        t = stats.ttest_ind(s_c, s_r, equal_var=False).statistic
        assert se[row.class_index] == pytest.approx((s_c.mean() - s_r.mean()) / t, rel=1e-10)


def test_shift_errors_of_single_models_are_the_examples_sem() -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 3, 300)
    a, b = rng.random((1, 300)) < 0.8, rng.random((1, 300)) < 0.7
    se = charts.shift_errors(a, b, codes, 4)  # group 3 is empty
    change = b[0].astype(float) - a[0].astype(float)
    for g in range(3):
        assert se[g] == pytest.approx(stats.sem(change[codes == g]), rel=1e-10)
    assert np.isnan(se[3])


def _pixels(png: bytes, hex_colour: str, tol: int = 6) -> int:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target).sum(axis=1) <= tol).sum())


def test_class_chart_draws_the_gate_and_takes_a_shared_scale() -> None:
    rows = [class_row(i, d) for i, d in enumerate([-0.04, -0.01, 0.0, 0.02, 0.03])]
    plain = class_plot_png(rows, title="t")
    gated = class_plot_png(rows, title="t", threshold=0.05)
    # Nothing significant: no red at all, but the gate's dashed line (anti-aliased: near red).
    assert _pixels(plain, WORSE, tol=90) == 0
    assert _pixels(gated, WORSE, tol=90) > 200
    wide = class_plot_png(rows, title="t", span=40.0)  # another candidate dropped 40 pp
    assert _pixels(wide, NEUTRAL) < 0.3 * _pixels(plain, NEUTRAL)
    assert class_span(rows, [0.01] * 5, 0.02) == pytest.approx(5.0)  # |-4| + 1 pp
    assert class_span(rows, None, 0.08) == pytest.approx(8.0)  # the gate's line fits


def test_heatmap_puts_the_significantly_worse_first_and_caps(report: AuditReport) -> None:
    html = views.heatmap_html(report.comparisons, rows=3)
    names = re.findall(r"<tr><td>([^<]*)</td>", html)
    worst = report.comparisons[0].significantly_worse_classes
    assert worst
    assert names[0] == worst[0].name.replace("&", "&amp;")
    assert len(names) == 3
    assert f"Showing 3 of {len(report.comparisons[0].classes)} classes" in html
    assert html.count("<th class='num'>") == len(report.comparisons)
    assert "*</td>" in html  # significant cells are starred


def _group(label: str, d: float, *, sig: bool = False, testable: bool = True) -> GroupRow:
    return GroupRow(
        group={"g": label}, n=100, n_non_pie=90, n_pie=10, pct_non_pie=None, pct_pie=None,
        pct_growth=None, top1_reference=0.9, top1_candidate=0.9 + d, shift_difference=d,
        testable=testable, test=None, statistic=None, p_value=None, p_adjusted=None,
        significant=sig,
    )  # fmt: skip


def test_forest_places_dots_intervals_and_the_gate() -> None:
    rows = [_group("a", -0.04, sig=True), _group("b", 0.01), _group("c", 0.02, testable=False)]
    html = views.forest_html(rows, errors=[0.01, None, 0.005], threshold=0.03)
    # Axis end: 4 + 1 pp, times 1.1, rounded up to a nice number: 10 pp, so -4 pp is at 30%.
    assert "class='fd worse' style='left:30.00%'" in html
    assert "class='fi' style='left:25.00%;width:10.00%'" in html  # -5 .. -3 pp
    assert "class='fd ns' style='left:55.00%'" in html
    assert "class='fd ns hollow'" in html
    assert "(n small)" in html
    assert html.count("class='fi'") == 2  # group b has no interval
    assert "class='fgate' style='left:35.00%'" in html
    assert "gate -3 pp" in html
    assert "-4.0 ± 1.0" in html
    assert "+1.0</div>" in html
    assert "fgate" not in views.forest_html(rows)


def test_welch_rows_take_their_error_from_the_test(
    report: AuditReport, audit_result: AuditResult
) -> None:
    # pruned-90 (K=5 vs K=5) is Welch-tested: difference / statistic is its standard error,
    # with or without the predictions; int8 (one model) needs the predictions.
    pruned, int8 = report.comparisons
    assert {r.test for r in pruned.classes} == {"welch"}
    ref, cand = audit_result.reference, audit_result.candidates[0]
    se = charts.shift_errors(ref.correct, cand.correct, ref.population.y, 6)
    for spreads in (charts.Spreads(audit_result), charts.Spreads(None)):
        got = spreads.classes(pruned)
        assert got is not None
        want = [charts.Z95 * se[r.class_index] for r in pruned.classes]
        assert got == pytest.approx(want, rel=1e-9)
    assert charts.Spreads(None).classes(int8) is None
    computed = charts.Spreads(audit_result).classes(int8)
    assert computed is not None
    assert all(h is not None and h > 0 for h in computed)


def test_report_pictures_with_and_without_the_predictions(
    report: AuditReport, audit_result: AuditResult
) -> None:
    console = Console(file=io.StringIO())
    full = render_html(report, ReportContext(console=console, result=audit_result))
    bare = render_html(report, ReportContext(console=console))
    n_forests = sum(1 for c in report.comparisons for gs in c.subgroup_sets if gs.subgroups)
    for page in (full, bare):
        assert "<table class='heatmap'>" in page  # two candidates
        assert page.count("<table class='confusions'>") == len(report.comparisons)
        assert page.count("<div class='forest'>") == n_forests
        assert "<script" not in page
    forests = [f.split("<p class='caption'>")[1] for f in full.split("<div class='forest'>")[1:]]
    assert all("±1.96 standard errors from the models&#x27; spread" in f for f in forests)
    # From report.json alone: pruned-90's Welch rows keep their bars, int8's have none.
    pruned, int8 = bare.split("<section class='candidate' id='cand-1'>")
    assert "class='fi'" in pruned.split("<section class='candidate' id='cand-0'>")[1]
    assert "class='fi'" not in int8
    assert "no intervals" in int8
    # The accuracy_gap gate of the fixture (pruned-90, 3 pp) is drawn in pruned-90's forest.
    assert full.count("gate -3 pp") == 1


def test_single_candidate_report_has_no_heatmap(doc: dict[str, Any]) -> None:
    doc["comparisons"] = doc["comparisons"][:1]
    doc["gates"] = [g for g in doc["gates"] if g["candidate"] == "pruned-90"]
    page = render_html(
        AuditReport.from_dict(doc), ReportContext(console=Console(file=io.StringIO()))
    )
    assert "<table class='heatmap'>" not in page
    assert "<table class='confusions'>" in page
