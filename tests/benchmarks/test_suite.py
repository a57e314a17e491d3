"""The benchmark suite runs, reports failures as rows, and its audit benchmark is honest."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

import benchmarks.__main__ as suite
from benchmarks import bench_audit
from benchmarks.common import ROW_KEYS


def test_quick_audit_benchmark_agrees_with_its_baseline() -> None:
    rows = bench_audit.run(quick=True)
    assert all(set(ROW_KEYS) <= r.keys() for r in rows)
    by_metric = {r["metric"]: r["value"] for r in rows}
    # run() raises if compaudit and the reference-style baseline disagree; the
    # largest p-value difference is also reported.
    assert float(by_metric["max_p_difference"]) <= 1e-8
    assert float(by_metric["speedup"]) > 1


def test_unknown_benchmark_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        suite.main(["--only", "nope", "--out", str(tmp_path / "x.md")])
    assert exc.value.code == 2


def test_a_failing_benchmark_becomes_an_error_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = types.ModuleType("benchmarks.bench_broken")

    def run(quick: bool = False) -> list[dict[str, object]]:
        raise RuntimeError("boom")

    broken.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "benchmarks.bench_broken", broken)
    monkeypatch.setattr(suite, "available", lambda: ["broken"])
    out = tmp_path / "bench.md"
    assert suite.main(["--only", "broken", "--out", str(out)]) == 1
    text = out.read_text()
    assert "| broken | error |" in text
    assert "RuntimeError: boom" in text
