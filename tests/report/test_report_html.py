"""HTML report: self-contained, escaped, with the plot, the subgroup table and the PIE gallery."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from compaudit.engine import AuditResult
from compaudit.errors import InputError
from compaudit.report import _gallery as gallery
from compaudit.report._class_chart import BETTER, NEUTRAL, WORSE
from compaudit.report._common import NOT_GATED
from compaudit.report._svg import class_plot_svg
from compaudit.report.base import ReportContext
from compaudit.report.html import ERR_NO_OUT_DIR, HTMLReporter, render_html
from compaudit.results import AuditReport, ClassRow, PieExamples


class Page(HTMLParser):
    """Collects tags with their attributes and the visible text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.tags
            if t == tag and (cls is None or cls in a.get("class", "").split())
        ]


def _ctx(result: AuditResult | None = None, images: np.ndarray | None = None) -> ReportContext:
    return ReportContext(console=Console(file=io.StringIO()), result=result, images=images)


def _png(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


@pytest.fixture(scope="module")
def page_with_images(_fixed_report: AuditReport, audit_result: AuditResult, images: Any) -> str:
    return render_html(_fixed_report, _ctx(audit_result, images))


def test_self_contained_no_external_references(page_with_images: str, tmp_path: Path) -> None:
    page = Page(page_with_images)
    for _, attrs in page.tags:
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith(("data:", "#")), attrs[key]
    assert not re.search(r"https?://|url\(|@import", page_with_images)
    assert not page.all("script")
    assert not page.all("link")


def test_plot_is_an_inline_svg_per_comparison(page_with_images: str, report: AuditReport) -> None:
    plots = Page(page_with_images).all("svg", "plot")
    assert len(plots) == len(report.comparisons)
    assert plots[0]["role"] == "img"
    width, height = map(float, plots[0]["viewbox"].split()[2:])
    assert width >= 600
    assert height >= 300


def test_subgroup_table_has_the_paper_columns(page_with_images: str) -> None:
    page = Page(page_with_images)
    text = " ".join(page.text)
    for column in ("n non-PIE", "n PIE", "% non-PIE", "% PIE", "growth", "top-1 ref",
                   "top-1 cand", "shift Δ", "p adj", "testable"):  # fmt: skip
        assert column in text
    assert "sex=female, age=old" in text
    assert len(page.all("tr", "sig-worse")) >= 1


def test_gallery_shows_every_pie_as_an_image(
    page_with_images: str, report: AuditReport, images: np.ndarray, audit_result: AuditResult
) -> None:
    thumbs = Page(page_with_images).all("img", "thumb")
    counts = [c.pie.count for c in report.comparisons]
    assert len(thumbs) == sum(counts)
    # The first card of the first candidate is its most confident flip, and shows its image.
    examples = report.comparisons[0].pie.examples
    best = max(examples, key=lambda e: (e["share_candidate"], e["share_reference"]))
    row = [str(v) for v in audit_result.reference.population.ids.tolist()].index(str(best["id"]))
    assert np.array_equal(np.asarray(_png(thumbs[0]["src"])), images[row])
    assert f"Showing {counts[0]} of {counts[0]} PIEs" in page_with_images


def test_without_images_the_pies_are_table_rows(report: AuditReport) -> None:
    text = render_html(report, _ctx())
    page = Page(text)
    assert not page.all("img", "thumb")
    assert len(page.all("table", "pies")) == len(report.comparisons)
    n_rows = len(page.all("tr", "pie"))  # capped: the rest are in report.json
    assert n_rows == sum(min(c.pie.count, gallery.TABLE_CAP) for c in report.comparisons)


def test_text_is_escaped(page_with_images: str) -> None:
    assert "<wolf>" not in page_with_images
    assert "dog &amp; &lt;wolf&gt;" in page_with_images


def test_write_needs_an_out_dir(report: AuditReport, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(ERR_NO_OUT_DIR)):
        HTMLReporter().write(report, out_dir=None, context=_ctx())
    path = HTMLReporter().write(report, out_dir=tmp_path, context=_ctx())
    assert path == tmp_path / "report.html"
    assert path.read_text("utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((600, 8, 8), np.float32), gallery.ERR_IMAGES_DTYPE.format(dtype="float32")),
        (np.zeros((600, 8), np.uint8), gallery.ERR_IMAGES_SHAPE.format(shape=(600, 8))),
        (np.zeros((599, 8, 8), np.uint8), gallery.ERR_IMAGES_COUNT.format(got=599, n=600)),
    ],
)
def test_bad_images_fail_closed(
    report: AuditReport, audit_result: AuditResult, bad: np.ndarray, message: str
) -> None:
    with pytest.raises(InputError) as info:
        render_html(report, _ctx(audit_result, bad))
    assert str(info.value) == message


def _examples(n: int) -> PieExamples:
    rng = np.random.default_rng(3)
    return PieExamples.from_list([
        {"id": i, "label": 0, "modal_reference": 0, "modal_candidate": 1,
         "share_reference": float(rng.choice([0.4, 1.0])), "share_candidate": float(s)}
        for i, s in enumerate(rng.choice([0.2, 0.6, 1.0], n))
    ])  # fmt: skip


def test_gallery_is_capped_most_confident_first() -> None:
    examples = _examples(300)
    imgs = np.zeros((300, 4, 4, 3), np.uint8)
    html = gallery.pie_gallery(examples, {0: "a", 1: "b"}, images=imgs, indices=list(range(300)))
    ids = [int(m) for m in re.findall(r"alt='example (\d+)'", html)]
    assert len(ids) == gallery.GALLERY_CAP
    assert f"Showing {gallery.GALLERY_CAP} of 300 PIEs" in html
    keys = [(examples[i]["share_candidate"], examples[i]["share_reference"]) for i in ids]
    assert keys == sorted(keys, reverse=True)
    # Nothing left out ranks above anything shown.
    worst_shown = min(keys)
    rest = set(range(300)) - set(ids)
    assert all(
        (examples[i]["share_candidate"], examples[i]["share_reference"]) <= worst_shown
        for i in rest
    )


def test_pie_indices_fall_back_to_ids(audit_result: AuditResult, report: AuditReport) -> None:
    examples = report.comparisons[0].pie.examples
    direct = gallery.pie_indices(audit_result, "pruned-90", examples)
    assert direct == np.flatnonzero(audit_result.pie_masks["pruned-90"]).tolist()
    rows = examples.to_list()
    shuffled = PieExamples.from_list([*rows[::-1], {**rows[0], "id": "not-an-id"}])
    assert gallery.pie_indices(audit_result, "pruned-90", shuffled) == [*direct[::-1], None]


def test_gallery_order_is_the_same_for_rows_and_columns(report: AuditReport) -> None:
    from compaudit.report._common import gallery_order

    examples = report.comparisons[0].pie.examples
    assert gallery_order(examples) == gallery_order(examples.to_list())
    assert gallery_order(PieExamples({})) == []


def _bar_fills(svg: str) -> list[str]:
    """Fill colours of the chart's bars (the rects with a hover title)."""
    return re.findall(r"<rect [^>]*fill='(#[0-9a-f]{6})'><title>", svg)


def test_plot_colours_only_significant_bars(doc: dict[str, Any]) -> None:
    classes = doc["comparisons"][0]["classes"]
    for row in classes:
        row["significant"] = False
    plain = _bar_fills(class_plot_svg([ClassRow.from_dict(r) for r in classes], title="t"))
    assert plain
    assert set(plain) == {NEUTRAL}
    worst = min(classes, key=lambda r: r["normalized_recall_difference"])
    worst["significant"] = True
    marked = _bar_fills(class_plot_svg([ClassRow.from_dict(r) for r in classes], title="t"))
    assert marked[0] == WORSE  # sorted: the worst first
    assert BETTER not in marked
    assert marked.count(WORSE) == 1


def test_a_class_without_recall_renders_everywhere(
    doc: dict[str, Any], audit_result: AuditResult, images: np.ndarray
) -> None:
    from compaudit.report.junit import render_junit
    from compaudit.report.markdown import render_markdown

    row = doc["comparisons"][0]["classes"][2]
    row.update(recall_reference=None, recall_candidate=None, normalized_recall_difference=None)
    row.update(test=None, statistic=None, p_value=None, p_adjusted=None, significant=False)
    row.update(floor_difference=None, excess=None, p_floor=None)
    report = AuditReport.from_dict(doc)
    text = render_html(report, _ctx(audit_result, images))
    assert text.index(">automobile<") < text.index(">bird<")  # the empty class comes last
    assert "| bird | 100 | - | - | - | - | - | no |" in render_markdown(report)
    assert render_junit(report)


def test_without_a_policy_it_says_not_gated(ungated_report: AuditReport) -> None:
    text = render_html(ungated_report, _ctx())
    page = Page(text)
    (badge,) = page.all("span", "badge")
    assert badge["class"] == "badge b-ungated"
    assert page.all("header", "v-ungated")
    assert page.all("p", "not-gated")
    assert NOT_GATED in text
    assert "<title>compaudit report: NOT GATED</title>" in text
    assert "PASS" not in " ".join(page.text)
    assert not page.all("span", "b-pass")
