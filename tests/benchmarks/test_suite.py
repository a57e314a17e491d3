"""The benchmark suite runs, reports failures as rows, and its audit benchmark is honest."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import benchmarks.__main__ as suite
from benchmarks import bench_audit
from benchmarks import bench_audit_baselines as bl
from benchmarks.common import ROW_KEYS
from compaudit.engine import AuditSettings, audit


def _has_old_engine() -> bool:
    """Whether this checkout has the history the old-engine rows need."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(bl.REPO_ROOT), "cat-file", "-e", f"{bl.OLD_REV}^{{commit}}"],
            capture_output=True,
            check=False,
        )
    except OSError:
        return False
    return proc.returncode == 0


def test_quick_audit_benchmark_agrees_with_its_baselines() -> None:
    rows = bench_audit.run(quick=True)  # raises BaselineMismatchError on any disagreement
    assert all(set(ROW_KEYS) <= r.keys() for r in rows)
    by_metric = {r["metric"]: r["value"] for r in rows}
    assert len(by_metric) == len(rows)
    for metric in ("audit_time", "baseline_time", "competent_time", "cie_votes_time_uint16"):
        assert float(by_metric[metric]) > 0
    assert float(by_metric["max_p_difference"]) <= bench_audit.P_TOLERANCE
    if _has_old_engine():
        for metric in ("old_engine_time", "new_over_old", "speedup_competent_old_engine"):
            assert float(by_metric[metric]) > 0
        assert float(by_metric["cie_pairs_time_int64"]) > 0
        assert float(by_metric["cie_max_difference"]) <= bench_audit.CIE_TOLERANCE
    else:
        assert by_metric["old_engine_time"] == bench_audit.NOT_MEASURED


def test_modal_ties_finds_every_shared_maximum() -> None:
    preds = np.array([[0, 1, 2, 3, 5], [0, 2, 2, 4, 5], [1, 1, 3, 3, 6], [1, 3, 3, 4, 6]])
    # columns: 2-2 tie, 2-1-1 clear, 2-2 tie, 2-2 tie, 2-2 tie
    assert bl.modal_ties(preds).tolist() == [True, False, True, True, True]
    assert bl.modal_ties(preds[:3]).tolist() == [False, False, False, False, False]
    assert bl.modal_ties(preds[:2]).tolist() == [False, True, False, True, False]


@pytest.fixture(scope="module")
def small() -> tuple[Any, ...]:
    case = bench_audit.synthetic_case(600, 12, 5, seed=3)
    settings = AuditSettings(attributes=bench_audit.ATTRIBUTES, correction="holm", seed=0)
    result = audit(case.reference, case.candidates, settings=settings)
    masks = result.pie_masks
    authors = bl.authors_baseline(case, sample_size=200, pie_masks=masks)
    competent = bl.competent_baseline(case)
    return case, result.to_report(), masks, authors, competent


def test_verify_accepts_the_baselines_and_counts_the_ties(small: tuple[Any, ...]) -> None:
    case, report, masks, authors, competent = small
    agreement = bench_audit.verify(case, report, masks, authors, competent)
    assert agreement.max_p_competent <= bench_audit.P_TOLERANCE
    assert agreement.checked_competent + agreement.tied == 600 * len(case.candidates)
    assert 0 < agreement.checked_authors <= 200 * len(case.candidates)
    assert agreement.checked_fisher > 0  # per-PIE p-values recomputed with scipy
    assert agreement.max_p_fisher <= bench_audit.P_TOLERANCE


def test_verify_rejects_a_wrong_pie_or_p_value(small: tuple[Any, ...]) -> None:
    case, report, masks, authors, competent = small
    name = next(iter(case.candidates))
    ties = bl.modal_ties(case.reference.predictions) | bl.modal_ties(
        case.candidates[name].predictions
    )
    flipped = dict(masks)
    flipped[name] = masks[name].copy()
    i = int(np.flatnonzero(~ties)[0])
    flipped[name][i] = not flipped[name][i]
    with pytest.raises(bench_audit.BaselineMismatchError, match="PIE"):
        bench_audit.verify(case, report, flipped, authors, competent)
    bad_p = dict(competent.class_p)
    bad_p[name] = bad_p[name] + 1e-6
    wrong = dataclasses.replace(competent, class_p=bad_p)
    with pytest.raises(bench_audit.BaselineMismatchError, match="class p_value"):
        bench_audit.verify(case, report, masks, authors, wrong)
    shifted = copy.deepcopy(report)
    for comp in shifted["comparisons"]:
        for example in comp["pie"]["examples"]:
            example["p_value"] += 0.01
    with pytest.raises(bench_audit.BaselineMismatchError, match="per-PIE Fisher"):
        bench_audit.verify(case, shifted, masks, authors, competent)


def test_a_missing_revision_is_reported_not_raised(tmp_path: Path) -> None:
    with pytest.raises(bl.EngineUnavailableError, match="git archive"):
        bl.extract_engine(tmp_path, "0" * 40)


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


def test_quick_lineage_benchmark_times_both_readings() -> None:
    from benchmarks import bench_lineage

    rows = {r["metric"]: r for r in bench_lineage.run(quick=True)}
    assert set(rows) == {
        "audit_paired_N1000_C10_K4",
        "audit_unpaired_N1000_C10_K4",
        "paired_over_unpaired_N1000_C10_K4",
    }
    assert rows["audit_paired_N1000_C10_K4"]["value"] > 0
    assert rows["audit_unpaired_N1000_C10_K4"]["unit"] == "s"
