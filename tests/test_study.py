"""Paper-form tables and figures of compaudit.study, on a real audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compaudit.engine import AuditSettings, audit
from compaudit.study import (
    level_rows,
    markdown_table,
    pie_gallery_png,
    subset_rows,
    write_class_figure,
)


def test_tables_count_what_the_report_says(small_case: dict[str, Any], tmp_path: Path) -> None:
    report = audit(
        small_case["reference"], {"pruned": small_case["candidate"]}, settings=AuditSettings()
    ).to_report()
    comp = report["comparisons"][0]
    ref_row, row = level_rows(report)
    assert ref_row["population"] == "reference"
    assert ref_row["pies"] is None
    assert row["pies"] == comp["pie"]["count"]
    assert row["sig_classes"] == sum(c["significant"] for c in comp["classes"])
    raw = [c for c in comp["classes"] if c["p_value"] <= 0.05]
    assert row["sig_classes_raw"] == len(raw)
    assert row["sig_classes_raw"] >= row["sig_classes"]  # correction only removes
    assert row["sig_classes_worse"] == 1  # the damaged class
    [sub] = subset_rows(report)
    assert sub["n_pie"] == comp["pie"]["count"]
    table = markdown_table([row], [("population", "pop", ""), ("top1", "top-1", "pct")])
    assert table.splitlines()[2] == f"| pruned | {100 * row['top1']:.2f}% |"

    png = write_class_figure(comp, tmp_path / "classes.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    images = np.random.default_rng(0).integers(0, 255, (2000, 8, 8), dtype=np.uint8)
    names = [str(i) for i in range(10)]
    gallery = pie_gallery_png(comp, images, small_case["reference"].ids, names, tmp_path / "g.png")
    assert gallery.stat().st_size > 1000
