"""The per-class chart as inline SVG (HTML report): the same content as the PNG,
drawn as markup, escaped, and bounded at any class count."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest

from compaudit.report._class_chart import (
    BETTER,
    NEUTRAL,
    WORSE,
    WORST_SHOWN,
    class_chart,
)
from compaudit.report._svg import class_plot_svg
from compaudit.report._svg_curve import curve_plot_svg, ticks
from compaudit.results import AuditReport

from .conftest import class_row


def _tree(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def _bars(svg: str) -> list[ET.Element]:
    """The bar rectangles: the ones that carry a hover title."""
    return [r for r in _tree(svg).iter("rect") if r.find("title") is not None]


def _height(rect: ET.Element) -> float:
    return float(rect.get("height", "0"))


def test_bars_are_sorted_coloured_by_significance_and_titled() -> None:
    rows = [
        class_row(0, 0.02),
        class_row(1, -0.05, sig=True),
        class_row(2, 0.0),
        class_row(3, 0.04, sig=True),
    ]
    bars = _bars(class_plot_svg(rows, title="int8 vs dense"))
    assert [b.get("fill") for b in bars] == [WORSE, NEUTRAL, NEUTRAL, BETTER]
    tips = [b.find("title").text for b in bars]  # type: ignore[union-attr]
    assert tips[0] == "class1: -5 pp (significant)"
    assert tips[1] == "class2: +0 pp"
    # Bars grow with |value| (class1's 5 pp against class0's 2 pp), on one axis.
    assert _height(bars[0]) == pytest.approx(2.5 * _height(bars[2]), rel=1e-3)


def test_stars_mark_only_significant_bars_and_the_gate_draws_a_dashed_line() -> None:
    rows = [class_row(i, d) for i, d in enumerate([-0.04, -0.01, 0.0, 0.02, 0.03])]
    plain = class_plot_svg(rows, title="t")
    gated = class_plot_svg(rows, title="t", threshold=0.05)
    assert not [p for p in _tree(plain).iter("path") if p.get("stroke") in (WORSE, BETTER)]
    assert "stroke-dasharray" not in plain
    dashed = [e for e in _tree(gated).iter() if e.get("stroke-dasharray")]
    assert len(dashed) == 2  # the line and its legend sample
    assert "gate class_recall_drop: -5 pp" in gated
    starred = class_plot_svg([class_row(0, -0.04, sig=True), class_row(1, 0.01)], title="t")
    assert len([p for p in _tree(starred).iter("path") if p.get("stroke") == WORSE]) == 1


def test_a_shared_span_puts_charts_on_one_scale() -> None:
    rows = [class_row(i, d) for i, d in enumerate([-0.04, -0.01, 0.0, 0.02, 0.03])]
    own, wide = class_plot_svg(rows, title="t"), class_plot_svg(rows, title="t", span=40.0)
    # Another candidate dropped 40 pp: the same bars are 10x shorter (own span: 4 pp).
    assert _height(_bars(wide)[0]) == pytest.approx(_height(_bars(own)[0]) / 10, rel=1e-3)


def test_error_bars_span_two_errors() -> None:
    rows = [class_row(0, -0.04), class_row(1, 0.02)]
    svg = class_plot_svg(rows, title="t", errors=[0.01, None])
    lines = [e for e in _tree(svg).iter("line") if e.get("stroke") == "#1c2833"]
    assert len(lines) == 1  # class 1 has none
    bar = _bars(svg)[0]  # -4 pp: 4 pp tall; its error bar is 2 x 1 pp
    length = abs(float(lines[0].get("y2", 0)) - float(lines[0].get("y1", 0)))
    assert length == pytest.approx(_height(bar) / 2, rel=1e-3)


def test_many_classes_are_summarised_with_bounded_markup() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0, 0.02, 10_000)
    rows = [class_row(i, float(v), sig=bool(v < -0.06)) for i, v in enumerate(values)]
    svg = class_plot_svg(rows, title="t")
    worse = int((values < -0.06).sum())
    assert 0 < worse < WORST_SHOWN
    bars = _bars(svg)
    assert len(bars) == WORST_SHOWN
    assert sum(b.get("fill") == WORSE for b in bars) == worse
    assert f"10000 classes, too many for a bar each: the {worse} significantly worse" in svg
    assert len(svg) < 40_000  # a few kB at 10,000 classes: no bar per class
    hist = [
        r for r in _tree(svg).iter("rect") if r.find("title") is None and r.get("fill") != "white"
    ]
    assert len(hist) >= 20  # the histogram's bins (legend squares included)


def test_hostile_names_and_titles_are_escaped_and_cut() -> None:
    name = "<script>alert(1)</script>\x1b[2J" + "x" * 3000
    svg = class_plot_svg([class_row(0, -0.05, sig=True, name=name)], title=f"{name} & co")
    root = _tree(svg)  # parses: nothing broke out of its element
    assert not [e for e in root.iter() if e.tag == "script"]
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "\x1b" not in svg
    texts = ["".join(t.itertext()) for t in root.iter("text")]
    assert max(map(len, texts)) <= 160


def test_the_svg_draws_the_chart_model() -> None:
    # The PNG (studies) draws the same ClassChart; the SVG must show its bars, in order.
    rows = [class_row(i, v, sig=v < -0.03) for i, v in enumerate(np.linspace(-0.05, 0.03, 80))]
    chart = class_chart(rows, threshold=0.02)
    assert chart.summary  # 80 classes: more than SUMMARY_OVER
    assert len(chart.values) == 80
    assert chart.values[0] == pytest.approx(-5.0)
    svg = class_plot_svg(rows, title="t", threshold=0.02)
    names = [re.sub(r":.*", "", b.find("title").text or "") for b in _bars(svg)]  # type: ignore[union-attr]
    assert names == [chart.names[i] for i in chart.shown]


def test_curve_ticks_cover_the_range_in_nice_steps() -> None:
    assert ticks(94.4, 100.0) == [94.0, 96.0, 98.0, 100.0]
    assert ticks(-6.0, 14.0) == [-10.0, -5.0, 0.0, 5.0, 10.0, 15.0]
    assert ticks(0.0, 0.0) == [-1.0, -0.5, 0.0, 0.5, 1.0]  # a flat series still gets an axis
    assert ticks(0.0, 2.3, integer=True) == [0.0, 1.0, 2.0, 3.0]
    t = ticks(0.0093, 2.97)
    assert t[0] <= 0.0093
    assert t[-1] >= 2.97


def test_curve_names_are_escaped(doc: dict[str, Any]) -> None:
    from compaudit.report._curve import compression_curve

    hostile = "<img src=x onerror=alert(1)>"
    for c in doc["comparisons"]:
        c["candidate"] = hostile + c["candidate"]
    doc["populations"] = {
        (hostile + k if k != doc["comparisons"][0]["reference"] else k): v
        for k, v in doc["populations"].items()
    }
    svg = curve_plot_svg(compression_curve(AuditReport.from_dict(doc)))
    ET.fromstring(svg)
    assert "<img" not in svg
    assert "&lt;img src=x" in svg
