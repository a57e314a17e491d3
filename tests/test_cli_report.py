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


# -- compression metadata (NAME=SPEC@key=value) and the final line -------------------


def test_compression_given_after_at_reaches_report_json(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    res = invoke(
        "report", "-r", f"{files['ref']}@sparsity=0",
        "-c", f"p90={files['cand']}@sparsity=0.9,bits=8",
        "-c", f"{files['cand']}@sparsity=0.5", "--out", str(out), "-f", "json,md",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    validate_report(report)
    pops = report["populations"]
    assert pops["p90"]["compression"] == {
        "sparsity": 0.9, "bits": 8, "file_size": None, "parameters": None,
        "sources": {"sparsity": "given", "bits": "given"},
    }  # fmt: skip
    assert pops["pruned50"]["compression"]["sparsity"] == 0.5  # named without the tail
    assert pops["reference"]["compression"]["sparsity"] == 0.0
    md = (out / "report.md").read_text()
    curve = md.split("### Compression curve", 1)[1].split("###", 1)[0]
    assert [r.split(" | ")[:2] for r in curve.splitlines() if r.startswith("| `")] == [
        ["| `reference`", "0% sparse"], ["| `pruned50`", "50% sparse"],
        ["| `p90`", "90% sparse, 8-bit"],
    ]  # fmt: skip


def test_at_in_a_path_stays_a_path(files: dict[str, Path], tmp_path: Path) -> None:
    from compaudit._compression import split_spec

    odd = tmp_path / "v1@sparsity=0.9"  # an existing path whose name looks like a tail
    odd.mkdir()
    assert split_spec(str(odd)) == (str(odd), {})
    assert split_spec(f"v1={odd}") == (f"v1={odd}", {})
    assert split_spec(f"v1={odd}@bits=8") == (f"v1={odd}", {"bits": 8})
    assert split_spec("models/v1@2/m.onnx") == ("models/v1@2/m.onnx", {})
    assert split_spec("a@b.npz") == ("a@b.npz", {})
    assert split_spec("p=m/*.onnx@bits=8,file_size=1e6") == ("p=m/*.onnx", {"bits": 8,
                                                             "file_size": 1_000_000})  # fmt: skip
    inside = odd / "cand.npz"  # a predictions file under a folder with '@' in its name
    inside.write_bytes(files["cand"].read_bytes())
    out = tmp_path / "out"
    res = invoke("report", "-r", str(files["ref"]), "-c", f"odd={inside}", "--out", str(out))
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert "compression" not in report["populations"]["odd"]  # a predictions file: nothing measured


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        ("@sparsty=0.9", "unknown compression key 'sparsty'; known keys: sparsity, "
                         "bits, file_size, parameters"),
        ("@sparsity=1.5", "compression sparsity='1.5' must be a fraction in [0, 1)"),
        ("@bits=4.5", "compression bits='4.5' must be a positive integer"),
    ],
)  # fmt: skip
def test_a_bad_compression_tail_exits_2_naming_it(
    files: dict[str, Path], tmp_path: Path, tail: str, message: str
) -> None:
    res = invoke("report", "-r", str(files["ref"]), "-c", f"{files['cand']}{tail}",
                 "--out", str(tmp_path / "out"))  # fmt: skip
    assert res.exit_code == 2
    assert message in res.output
    assert f"{files['cand']}{tail}" in res.output


def _onnx(path: Path, weight: np.ndarray, bias: np.ndarray) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, weight.shape[1]])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_sparsity_bits_and_parameters_are_measured_from_onnx(tmp_path: Path) -> None:
    from compaudit._compression import measure_files, spec_compression

    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 10)).astype(np.float32)
    w[rng.random(w.shape) < 0.75] = 0.0
    dense = _onnx(tmp_path / "a.onnx", w, np.ones(10, np.float32))
    zeros = float(np.mean(w == 0))
    got = measure_files([dense])
    assert got == {"file_size": dense.stat().st_size, "parameters": 650, "sparsity": zeros,
                   "bits": 32}  # fmt: skip
    q = _onnx(tmp_path / "q.onnx", (w * 10).astype(np.int8), np.ones(10, np.float32))
    assert measure_files([q])["bits"] == 8
    # Given values win over measured ones, and each says where it came from.
    comp = spec_compression(str(dense), {"sparsity": 0.5})
    assert comp is not None
    assert (comp.sparsity, comp.bits, comp.parameters) == (0.5, 32, 650)
    assert comp.sources == {"sparsity": "given", "file_size": "measured",
                            "parameters": "measured", "bits": "measured"}  # fmt: skip


def test_the_final_line_wraps_at_80_columns() -> None:
    from compaudit.cli.report import wrap_line

    gates = ", ".join(f"subgroups.pie_share_growth_excess[model-{i}]" for i in range(5))
    text = wrap_line(f"verdict: fail (40 gates; failed: {gates})")
    lines = text.splitlines()
    assert len(lines) > 1
    assert max(map(len, lines)) <= 80
    assert all(line.startswith("  ") for line in lines[1:])
    assert " ".join(t.strip() for t in lines) == f"verdict: fail (40 gates; failed: {gates})"
