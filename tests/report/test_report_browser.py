"""The HTML report as a browser draws it (headless Chromium; skipped where it is not installed).

The same command is in docs/screenshots.md.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from compaudit.engine import AuditResult
from compaudit.report._plot import WORSE
from compaudit.report.base import ReportContext
from compaudit.report.html import HTMLReporter
from compaudit.results import AuditReport

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MARKER = (17, 200, 93)  # a colour nothing else on the page uses


def screenshot(html: Path, png: Path, profile: Path, *, height: int = 2400) -> None:
    """Photograph ``html`` with headless Chromium, offline, after every paint has finished."""
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=5000", f"--user-data-dir={profile}",
        f"--window-size=1280,{height}", f"--screenshot={png}", html.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return r, g, b


def _count(rgb: np.ndarray, colour: tuple[int, int, int], tol: int = 6) -> int:
    return int((np.abs(rgb.astype(int) - np.array(colour)).sum(axis=-1) <= tol).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_chromium_draws_the_plot_and_the_gallery(
    report: AuditReport, audit_result: AuditResult, tmp_path: Path
) -> None:
    images = np.broadcast_to(np.array(MARKER, np.uint8), (600, 8, 8, 3)).copy()
    ctx = ReportContext(console=Console(file=io.StringIO()), result=audit_result, images=images)
    html = HTMLReporter().write(report, out_dir=tmp_path, context=ctx)
    assert html is not None
    png = tmp_path / "shot.png"
    screenshot(html, png, tmp_path / "profile", height=6000)
    rgb = np.asarray(Image.open(png).convert("RGB"))
    assert rgb.shape == (6000, 1280, 3)
    # The significantly worse class's red bar of the per-class plot.
    assert _count(rgb, _rgb(WORSE)) > 2000
    # Every PIE thumbnail is drawn 96x96 CSS pixels: at least the first row of cards is visible.
    assert _count(rgb, MARKER) >= 5 * 96 * 96


# Counts, per gate-name span, the line boxes it was laid out in: one unless it broke.
_MEASURE = (
    "<script>window.addEventListener('load', () => {"
    "const n = [...document.querySelectorAll('.gate-name')].map(e => e.getClientRects().length);"
    "document.body.setAttribute('data-lines', n.join(','));});</script>"
)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_a_narrow_window_never_breaks_a_gate_name(report: AuditReport, tmp_path: Path) -> None:
    import re

    from compaudit.report.html import render_html

    page = render_html(report, ReportContext(console=Console(file=io.StringIO())))
    html = tmp_path / "narrow.html"
    html.write_text(page.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--virtual-time-budget=3000", f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=420,900", "--dump-dom", html.resolve().as_uri(),
    ]  # fmt: skip
    dom = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-lines="([\d,]*)"', dom)
    assert found is not None, dom[-500:]
    lines = [int(n) for n in found.group(1).split(",")]
    assert len(lines) == len(report.gates)
    assert lines == [1] * len(lines)
