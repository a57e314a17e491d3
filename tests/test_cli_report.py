"""`compaudit report` / `check` on predictions files: outputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from compaudit.cli import build_cli
from compaudit.population import Population, save_population
from compaudit.report.base import validate_report


@pytest.fixture
def files(tmp_path: Path, small_case: dict[str, Any]) -> dict[str, Path]:
    paths = {"ref": tmp_path / "ref.npz", "cand": tmp_path / "pruned50.npz"}
    save_population(small_case["reference"], paths["ref"])
    save_population(small_case["candidate"], paths["cand"])
    return paths


def invoke(*args: str) -> Any:
    return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)


def test_report_writes_schema_v1_and_prints_summary(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = invoke(
        "report",
        "--reference",
        str(files["ref"]),
        "--candidate",
        str(files["cand"]),
        "--candidate",
        f"again={files['cand']}",
        "--subgroups",
        "sex",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    validate_report(report)
    assert report["schema"] == "compaudit.report/v1"
    assert [c["candidate"] for c in report["comparisons"]] == ["pruned50", "again"]
    assert report["comparisons"][0]["subgroup_attributes"] == ["sex"]
    assert "pruned50 vs reference" in res.output
    assert "Worst classes" in res.output


def test_report_without_a_policy_says_not_gated_in_every_format(
    files: dict[str, Path], tmp_path: Path
) -> None:
    from compaudit.report._common import NOT_GATED

    out = tmp_path / "out"
    res = invoke(
        "report", "-r", str(files["ref"]), "-c", str(files["cand"]),
        "-f", "terminal,json,markdown,html,junit", "--out", str(out),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    validate_report(report)
    assert report["verdict"] == "ungated"
    assert report["gates"] == []
    assert "compaudit NOT GATED" in res.output
    assert NOT_GATED in res.output
    markdown = (out / "report.md").read_text("utf-8")
    assert markdown.startswith("## compaudit: ➖ NOT GATED")
    html = (out / "report.html").read_text("utf-8")
    assert "<span class='badge b-ungated'>NOT GATED</span>" in html
    assert NOT_GATED in html
    for text in (res.output, markdown, html):
        assert "PASS" not in text
    assert "<skipped message=" in (out / "junit.xml").read_text("utf-8")


def test_attributes_csv_is_joined_by_id(
    files: dict[str, Path], tmp_path: Path, small_case: dict[str, Any]
) -> None:
    pytest.importorskip("compaudit.data.loading")
    csv = tmp_path / "attrs.csv"
    rng = np.random.default_rng(0)
    rows = [f"{i},{rng.choice(['a', 'b'])}" for i in range(2000)]
    csv.write_text("id,site\n" + "\n".join(rows[::-1]) + "\n")
    out = tmp_path / "out"
    res = invoke(
        "report",
        "-r",
        str(files["ref"]),
        "-c",
        str(files["cand"]),
        "--attributes",
        str(csv),
        "-g",
        "site",
        "--out",
        str(out),
        "--format",
        "json",
    )
    assert res.exit_code == 0, res.output
    groups = json.loads((out / "report.json").read_text())["comparisons"][0]["subgroups"]
    assert sum(g["n"] for g in groups) == 2000
    assert [g["group"]["site"] for g in groups] == ["a", "b"]


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p.write_bytes(b"garbage"), "not a readable .npz"),
        (
            lambda p: np.savez(p, predictions=np.array([[0, 1, 2]]), y=np.array([0, 1])),
            "'predictions' has 3 examples but 'y' has 2",
        ),
        (
            lambda p: np.savez(p, predictions=np.array([[0, -1]]), y=np.array([0, 1])),
            "negative values",
        ),
        (
            lambda p: np.savez(p, predictions=np.zeros((0, 2), dtype=int), y=np.array([0, 1])),
            "K = 0",
        ),
        (
            lambda p: np.savez(p, predictions=np.array([[0.5, 1.0]]), y=np.array([0, 1])),
            "must hold integer class indices",
        ),
    ],
)
def test_bad_candidate_exits_2_naming_the_file(
    files: dict[str, Path], tmp_path: Path, make: Any, fragment: str
) -> None:
    bad = tmp_path / "bad.npz"
    make(bad)
    res = invoke("report", "-r", str(files["ref"]), "-c", str(bad), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    assert str(bad) in res.output
    assert fragment in res.output


def test_mismatched_lengths_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.npz"
    save_population(Population.create([[0, 1, 1]], [0, 1, 1]), other)
    res = invoke("report", "-r", str(files["ref"]), "-c", str(other), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    assert "not predictions on the same examples (N = 2000 vs 3)" in res.output


def test_unknown_attribute_and_format_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    res = invoke(
        "report",
        "-r",
        str(files["ref"]),
        "-c",
        str(files["cand"]),
        "-g",
        "race",
        "--out",
        str(tmp_path),
    )
    assert res.exit_code == 2
    assert "no attribute 'race'" in res.output
    res = invoke(
        "report",
        "-r",
        str(files["ref"]),
        "-c",
        str(files["cand"]),
        "-f",
        "pdf",
        "--out",
        str(tmp_path),
    )
    assert res.exit_code == 2
    assert "unknown format 'pdf'" in res.output


def test_check_without_policy_is_an_error(files: dict[str, Path], tmp_path: Path) -> None:
    res = invoke("check", "-r", str(files["ref"]), "-c", str(files["cand"]), "--out", str(tmp_path))
    assert res.exit_code == 2
    assert "check needs a policy" in res.output


def test_duplicate_candidate_names(files: dict[str, Path], tmp_path: Path) -> None:
    res = invoke(
        "report",
        "-r",
        str(files["ref"]),
        "-c",
        f"x={files['cand']}",
        "-c",
        f"x={files['ref']}",
        "--out",
        str(tmp_path),
    )
    assert res.exit_code == 2
    assert "two candidates are named 'x'" in res.output
