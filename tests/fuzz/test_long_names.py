"""A 3,000-character candidate name goes through every writer (it crashed the
HTML/PNG writers, and ``Path.exists`` raised ENAMETOOLONG on ``NAME=SPEC``)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fuzz.conftest import run_cli


def test_a_3000_character_candidate_name(good_preds: dict[str, Path], tmp_path: Path) -> None:
    name = "x" * 3000
    out = tmp_path / "out"
    run = run_cli(
        [
            "report",
            "-r",
            good_preds["ref"],
            "-c",
            f"{name}={good_preds['cand']}",
            "--out",
            out,
            "--format",
            "terminal,json,md,html,junit",
        ]
    )
    assert run.code == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert doc["comparisons"][0]["candidate"] == name  # JSON is data: kept exactly
    for f in ("report.md", "report.html", "junit.xml"):
        assert (out / f).stat().st_size > 0
    assert all(len(p.name) <= 255 for p in out.rglob("*"))
