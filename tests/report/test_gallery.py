"""The PIE gallery's filters (CSS only) and the capped table of tabular PIEs."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from compaudit._text import for_html
from compaudit.engine import AuditResult
from compaudit.report import _gallery as gallery
from compaudit.report.base import ReportContext
from compaudit.report.html import _css, render_html
from compaudit.results import (
    AuditReport,
    InfluencedExample,
    Influencer,
    InfluencersBlock,
    PieExamples,
)

from .test_report_browser import CHROMIUM, screenshot

# (label, modal reference, modal candidate): lost, lost, gained, swapped, lost (class 1).
FLIPS = [(0, 0, 1), (0, 0, 2), (2, 1, 2), (1, 0, 2), (1, 1, 0)]
NAMES = {0: "zero", 1: "one", 2: "two & <b>"}


def _examples(flips: list[tuple[int, int, int]] = FLIPS) -> PieExamples:
    return PieExamples.from_list([
        {"id": f"e{i}", "label": t, "modal_reference": r, "modal_candidate": c,
         "share_reference": 1.0, "share_candidate": 1.0 - i / 100}
        for i, (t, r, c) in enumerate(flips)
    ])  # fmt: skip


@pytest.mark.parametrize(
    ("flip", "kind"), [((3, 3, 1), "lost"), ((3, 1, 3), "gained"), ((3, 1, 2), "swapped")]
)
def test_pie_kind(flip: tuple[int, int, int], kind: str) -> None:
    assert gallery.pie_kind(*flip) == kind


def test_filters_name_every_kind_and_class_of_the_shown_pies() -> None:
    html = gallery.pie_gallery(
        _examples(), NAMES, images=np.zeros((5, 4, 4), np.uint8), indices=list(range(5)), uid="3"
    )
    chips = re.findall(r"<label for='(f3-[kc]-\w+)'>([^<]*)</label>", html)
    assert [c[1] for c in chips] == [
        "all (5)", "lost (3)", "gained (1)", "swapped (1)",
        "all classes", "zero (2)", "one (2)", "two &amp; &lt;b&gt; (1)",
    ]  # fmt: skip
    # Cards carry their kind and true class; each filter hides what does not match.
    cards = re.findall(r"<figure class='([^']*)'>", html)
    assert cards == ["pie lost c0", "pie lost c0", "pie gained c2", "pie swapped c1", "pie lost c1"]
    assert "#f3-k-lost:checked~.fbody .pie:not(.lost){display:none}" in html
    assert "#f3-c-2:checked~.fbody .pie:not(.c2){display:none}" in html
    assert html.count("type='radio'") == len(chips)
    assert len(re.findall(r"type='radio'[^>]*checked>", html)) == 2  # "all" of both groups
    assert "<script" not in html


def test_tabular_pies_show_attributes_and_are_capped() -> None:
    n = 50
    flips = [(i % 3, i % 3, (i + 1) % 3) for i in range(n)]
    attrs = {"sex": np.array(["f", "m"] * 40), "age": np.arange(80)}
    indices = [79 - i for i in range(n)]
    html = gallery.pie_gallery(
        _examples(flips), NAMES, images=None, indices=indices, attributes=attrs
    )
    rows = re.findall(r"<tr class='pie [^']*'>(.*?)</tr>", html)
    assert len(rows) == gallery.TABLE_CAP
    assert f"Showing {gallery.TABLE_CAP} of {n} PIEs" in html
    assert "report.json lists them all" in html
    assert "<th>sex</th><th>age</th>" in html
    # Row j is example e{j} (most confident first), at image row 79 - j: its attributes.
    cells = re.findall(r"<td>([^<]*)</td>", rows[2])
    assert cells[-3:] == ["lost", str(attrs["sex"][77]), "77"]
    # Without indices the attributes cannot be joined: no attribute columns.
    bare = gallery.pie_gallery(_examples(flips), NAMES, images=None, indices=None, attributes=attrs)
    assert "<th>sex</th>" not in bare


def test_report_tables_carry_the_fixture_attributes(
    report: AuditReport, audit_result: AuditResult
) -> None:
    page = render_html(
        report, ReportContext(console=Console(file=io.StringIO()), result=audit_result)
    )
    assert page.count("<table class='fbody pies'>") == len(report.comparisons)
    assert page.count("<th>age</th><th>sex</th>") + page.count("<th>sex</th><th>age</th>") == len(
        report.comparisons
    )


LOST, GAINED = (200, 30, 40), (20, 180, 60)  # marker colours of the thumbnails


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_chromium_applies_the_kind_filter(tmp_path: Path) -> None:
    # Lost cards are red images, the gained card green; with "lost" chosen, no green is drawn.
    images = np.zeros((5, 8, 8, 3), np.uint8)
    for i, (t, r, c) in enumerate(FLIPS):
        images[i] = LOST if gallery.pie_kind(t, r, c) == "lost" else GAINED
    html = gallery.pie_gallery(_examples(), NAMES, images=images, indices=list(range(5)))
    chosen = html.replace(" checked>", ">", 1).replace("id='f0-k-lost'>", "id='f0-k-lost' checked>")
    counts = []
    for i, page in enumerate((html, chosen)):
        path = tmp_path / f"g{i}.html"
        doc = f"<!DOCTYPE html><html><head><style>{_css()}</style></head><body>{page}</body></html>"
        path.write_text(doc, "utf-8")
        png = tmp_path / f"g{i}.png"
        screenshot(path, png, tmp_path / f"profile{i}", height=900)
        rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
        counts.append([int((np.abs(rgb - c).sum(-1) <= 6).sum()) for c in (LOST, GAINED)])
    (lost_all, gained_all), (lost_only, gained_only) = counts
    assert gained_all >= 2 * 96 * 96  # the gained and the swapped card
    assert lost_only == lost_all >= 3 * 96 * 96
    assert gained_only == 0


# -- "what it had memorized" (issue 15) ------------------------------------------------
def _influencers(ids: list[str], n_train: int, hostile: str = "") -> InfluencersBlock:
    """Example e{i}'s influencers: training rows 3i, 3i+1 (influence 0.9, 0.5), the
    second with a hostile id when ``hostile`` is given."""
    return InfluencersBlock(
        k=2,
        n_runs=40,
        n_train=n_train,
        train_data="toy:train",
        examples=tuple(
            InfluencedExample(
                id=key,
                flagged_as=("pie",),
                influencers=(
                    Influencer(train_index=3 * i, train_id=f"t{3 * i}", label=i % 3,
                               influence=0.9, se=0.05),
                    Influencer(train_index=3 * i + 1, train_id=hostile or f"t{3 * i + 1}",
                               label=2, influence=None if hostile else 0.5, se=None),
                ),
            )
            for i, key in enumerate(ids)
        ),
    )  # fmt: skip


def test_each_pie_card_shows_its_influencers_training_thumbnails() -> None:
    # Training image j is filled with the value j, so a thumbnail says which row it shows.
    train = np.repeat(np.arange(20, dtype=np.uint8)[:, None, None], 4, axis=1).repeat(4, axis=2)
    block = _influencers([f"e{i}" for i in range(4)], n_train=20)  # e4 has none listed
    html = gallery.pie_gallery(
        _examples(), NAMES, images=np.zeros((5, 4, 4), np.uint8), indices=list(range(5)),
        influencers=block, train_images=train,
    )  # fmt: skip
    cards = re.findall(r"<figure class='pie [^']*'>(.*?)</figure>", html)
    assert len(cards) == 5
    for i, card in enumerate(cards[:4]):
        minis = re.findall(r"<img class='mini px' src='([^']+)' alt='([^']*)'>", card)
        values = [_pixel(uri) for uri, _ in minis]
        assert values == [3 * i, 3 * i + 1]  # its own influencers, in order
        assert minis[0][1] == (
            f"training example t{3 * i}: {for_html(NAMES[i % 3])}, influence +0.90 ± 0.05"
        )
        assert re.findall(r"<span class='iv'>([^<]*)</span>", card) == ["+0.90", "+0.50"]
    assert "memorized" not in cards[4]
    assert "class='fbody gallery wide'" in html
    assert "from 40 runs" in html
    assert "of 20 in toy:train" in html
    # Without influencers nothing changes.
    plain = gallery.pie_gallery(
        _examples(), NAMES, images=np.zeros((5, 4, 4), np.uint8), indices=list(range(5))
    )
    assert "memorized" not in plain
    assert "gallery wide" not in plain


def _pixel(uri: str) -> int:
    raw = base64.b64decode(uri.split(",", 1)[1])
    values = np.unique(np.asarray(Image.open(io.BytesIO(raw))))
    assert values.size == 1
    return int(values[0])


def test_influencers_without_training_images_or_as_table_rows_are_text_and_escaped() -> None:
    hostile = "<script>alert(1)</script>\x1b[31m"
    block = _influencers([f"e{i}" for i in range(5)], n_train=20, hostile=hostile)
    cards = gallery.pie_gallery(
        _examples(), NAMES, images=np.zeros((5, 4, 4), np.uint8), indices=list(range(5)),
        influencers=block, train_images=None,
    )  # fmt: skip
    assert "<img class='mini" not in cards
    assert "<span class='tid'>#t0</span>" in cards
    table = gallery.pie_gallery(
        _examples(), NAMES, images=None, indices=list(range(5)), influencers=block
    )
    assert "<th>memorized (top influencers)</th>" in table
    rows = re.findall(r"<tr class='pie [^']*'>(.*?)</tr>", table)
    memo = re.findall(r"<td class='memo'>(.*?)</td>", rows[0])
    assert len(memo) == 1
    assert ">#t0 zero <b>+0.90</b></span><br>" in memo[0]
    assert "n/a" in memo[0]  # not estimable
    for html in (cards, table):
        assert "<script" not in html
        assert "\x1b" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[31m" in html
