"""Influence runs (recipe section ``influence``): training, storage, resume, validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from compaudit.analysis.influence import InfluenceRuns, load_runs, mean_influence, memorization
from compaudit.cli.train import command
from compaudit.errors import InputError
from compaudit.train import load_run, train_recipe
from compaudit.train import member as member_module
from compaudit.train.influence import run_file, run_influence_job, run_mask, subset_size
from compaudit.train.manifest import ERR_INFLUENCE_CHANGED, INFLUENCE_RUNS, read_manifest
from compaudit.train.recipe import ERR_INFLUENCE_VARIANT, recipe_from_dict

from .conftest import TINY, tiny_dict, write_recipe

INFLUENCE = {"runs": 4, "subset_fraction": 0.7, "seed": 0, "variant": "dense"}


def _dict(**influence: Any) -> dict[str, Any]:
    """k = 1 dense member, one epoch, and the influence section (with changes)."""
    return tiny_dict(
        k=1,
        training={**TINY["training"], "epochs": 1},
        variants=TINY["variants"][:1],
        influence={**INFLUENCE, **influence},
    )


def _arrays(path: Path) -> dict[str, np.ndarray]:
    runs = load_runs(path).unpack()
    return {k: getattr(runs, k) for k in ("in_run", "train_correct", "test_correct")}


def _same(a: Path, b: Path) -> bool:
    x, y = _arrays(a), _arrays(b)
    return all(np.array_equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def influence_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("influence") / "run"
    train_recipe(recipe_from_dict(_dict()), out, progress=False)
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _count_runs(monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> list[int]:
    """Record the influence runs trained (and fail the one ``fail_at``)."""
    trained: list[int] = []

    def wrapped(job: Any, progress: Any = None) -> Any:
        if job.member == fail_at:
            raise RuntimeError("simulated failure")
        trained.append(job.member)
        return run_influence_job(job, progress)

    monkeypatch.setattr(member_module, "run_influence_job", wrapped)
    return trained


def test_runs_are_trained_stored_and_exposed(influence_run: Path) -> None:
    info = load_run(influence_run)
    assert info.influence == influence_run / INFLUENCE_RUNS
    runs = load_runs(info.influence)
    assert runs.packed
    n_train, n_test = info.manifest["data"]["train_n"], info.manifest["data"]["eval_n"]
    assert runs.shape == (4, n_train, n_test)
    bits = runs.unpack()
    m = subset_size(info.recipe.influence, n_train)  # type: ignore[arg-type]
    assert m == round(0.7 * n_train)
    assert (bits.in_run.sum(axis=1) == m).all()  # exact-size subsets
    assert abs(runs.subset_fraction - 0.7) < 1e-3
    assert len({row.tobytes() for row in bits.in_run}) == 4  # the runs' subsets differ
    for r in range(4):
        assert np.array_equal(bits.in_run[r], run_mask(info.recipe.influence, r, n_train))  # type: ignore[arg-type]
    # The models learnt something, and the estimators accept the file.
    assert bits.test_correct.mean() > 0.2
    assert memorization(runs).value.shape == (n_train,)
    assert mean_influence(runs).value.shape == (n_test,)
    section = info.manifest["influence"]
    assert section["n_runs"] == 4
    assert sorted(section["done"]) == ["0", "1", "2", "3"]
    assert section["file"] == INFLUENCE_RUNS
    assert section["variant"] == "dense"
    assert section["subset_fraction"] == 0.7
    for r, entry in section["done"].items():
        assert entry["file"] == f"influence/run-{int(r):04d}.npz"
        assert entry["subset_size"] == m
    assert not list(influence_run.glob("influence/*.tmp"))


def test_same_seed_same_runs_other_seed_other_masks(tmp_path: Path, influence_run: Path) -> None:
    again = train_recipe(recipe_from_dict(_dict()), tmp_path / "again", progress=False)
    assert again.influence is not None
    assert _same(again.influence, influence_run / INFLUENCE_RUNS)
    other = recipe_from_dict(_dict(seed=1)).influence
    same = recipe_from_dict(_dict()).influence
    assert other is not None
    assert same is not None
    assert not np.array_equal(run_mask(other, 0, 100), run_mask(same, 0, 100))


def test_resume_retrains_only_the_missing_run(
    tmp_path: Path, influence_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _copy(influence_run, tmp_path / "run")
    run_file(out, 3).unlink()
    (out / INFLUENCE_RUNS).unlink()
    trained = _count_runs(monkeypatch)
    info = train_recipe(recipe_from_dict(_dict()), out, progress=False)
    assert trained == [3]
    assert info.influence is not None
    assert _same(info.influence, influence_run / INFLUENCE_RUNS)
    trained.clear()
    train_recipe(recipe_from_dict(_dict()), out, progress=False)  # nothing left to do
    assert trained == []


def test_interrupted_runs_resume_to_identical_results(
    tmp_path: Path, influence_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    _count_runs(monkeypatch, fail_at=2)
    with pytest.raises(RuntimeError, match="simulated failure"):
        train_recipe(recipe_from_dict(_dict()), out, progress=False)
    assert load_run(out).influence is None  # members done, runs 0-1 done, no runs.npz
    manifest = read_manifest(out)
    assert manifest is not None
    assert sorted(manifest["influence"]["done"]) == ["0", "1"]
    assert not (out / INFLUENCE_RUNS).exists()
    trained = _count_runs(monkeypatch)
    info = train_recipe(recipe_from_dict(_dict()), out, progress=False)
    assert trained == [2, 3]
    assert info.influence is not None
    assert _same(info.influence, influence_run / INFLUENCE_RUNS)


def test_more_runs_resume_and_changed_settings_are_refused(
    tmp_path: Path, influence_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _copy(influence_run, tmp_path / "run")
    with pytest.raises(InputError) as exc:
        train_recipe(recipe_from_dict(_dict(seed=5)), out, progress=False)
    assert str(exc.value) == ERR_INFLUENCE_CHANGED.format(run=out, dir="influence")
    trained = _count_runs(monkeypatch)
    info = train_recipe(recipe_from_dict(_dict(runs=5)), out, progress=False)
    assert trained == [4]
    assert info.influence is not None
    five = _arrays(info.influence)
    four = _arrays(influence_run / INFLUENCE_RUNS)
    assert all(np.array_equal(five[k][:4], four[k]) for k in four)


def test_no_section_no_runs(trained_run: Path) -> None:
    info = load_run(trained_run)
    assert info.influence is None
    assert not (trained_run / "influence").exists()


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"variant": "nope"}, "influence.variant", "no variant named 'nope'; choose from"),
        ({"variant": "int8s"}, "influence.variant", ERR_INFLUENCE_VARIANT.format(variant="int8s")),
        ({"subset_fraction": 0}, "influence.subset_fraction", "greater than 0"),
        ({"subset_fraction": 1}, "influence.subset_fraction", "less than 1"),
        ({"runs": 1}, "influence.runs", "greater than or equal to 2"),
        ({"colour": "red"}, "influence.colour", "unknown key"),
    ],
)
def test_bad_sections_are_one_clear_error(
    tmp_path: Path, change: dict[str, Any], key: str, problem: str
) -> None:
    d = tiny_dict(influence={**INFLUENCE, **change})
    with pytest.raises(InputError) as exc:
        recipe_from_dict(d, source="r.yaml")
    message = str(exc.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"r.yaml: recipe key '{key}': ")
    assert problem in message
    recipe = write_recipe(tmp_path / "bad.yaml", d)
    result = CliRunner().invoke(command, [str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert f"recipe key '{key}'" in result.output
    assert problem in result.output
    assert not (tmp_path / "run").exists()


def test_manifest_records_the_section_as_json(influence_run: Path) -> None:
    manifest = json.loads((influence_run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["recipe"]["influence"] == INFLUENCE
    assert isinstance(load_runs(influence_run / INFLUENCE_RUNS), InfluenceRuns)


def test_cli_with_a_process_pool_gives_the_same_runs(tmp_path: Path, influence_run: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", _dict())
    out = tmp_path / "run"
    args = [str(recipe), "--out", str(out), "--jobs", "2", "--threads", "1", "--quiet"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    assert _same(out / INFLUENCE_RUNS, influence_run / INFLUENCE_RUNS)


def test_report_on_a_run_dir_adds_mean_influence_as_a_score(tmp_path: Path) -> None:
    # Dense (K = 3) and its fp16 child, with influence runs of dense: `compaudit report
    # RUN_DIR` tests its PIEs and CIEs against the runs' mean influence per eval example.
    from compaudit.pipeline import AuditRequest, execute

    variants = [v for v in TINY["variants"] if v["name"] in ("dense", "half")]
    data = tiny_dict(
        k=3, training={**TINY["training"], "epochs": 1}, variants=variants, influence=INFLUENCE
    )
    run = tmp_path / "run"
    train_recipe(recipe_from_dict(data), run, progress=False)
    outcome = execute(AuditRequest(run_dir=run, out=tmp_path / "out", formats=("json",)))
    (comp,) = outcome.document.comparisons
    rows = {(r.score, r.subset) for r in comp.long_tail}
    assert ("mean_influence", "pie") in rows
    assert ("mean_influence", "cie") in rows
    expected = mean_influence(load_runs(load_run(run).influence)).value  # type: ignore[arg-type]
    n_flagged = {r.subset: r.n for r in comp.long_tail}
    assert n_flagged["pie"] == comp.pie.count
    assert expected.shape == (outcome.result.reference.population.n,)
