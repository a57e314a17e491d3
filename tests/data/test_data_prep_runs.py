"""A CSV model's preprocessing travels with it: trainer -> run dir -> audit, on real Adult rows."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from compaudit.cli import build_cli
from compaudit.data.loading import load_dataset
from compaudit.data.prep import ONNX_PREP_KEY, PREP_FILE, read_prep

COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
OPTS = "label=income&attributes=sex,race"

pytestmark = pytest.mark.shared_data


def _adult_csv(src: Path, dest: Path, *, rows: int, skip: int = 0) -> Path:
    """The first ``rows`` complete rows of a real UCI Adult file, as a CSV with a header."""
    out: list[list[str]] = []
    with open(src, encoding="utf-8") as fh:
        for line in fh:
            cells = [c.strip() for c in line.split(",")]
            if len(cells) != len(COLUMNS) or "?" in cells:
                continue  # the test file's comment line, rows with missing values
            cells[-1] = cells[-1].rstrip(".")  # adult.test labels end in '.'
            out.append(cells)
            if len(out) == skip + rows:
                break
    with open(dest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(out[skip:])
    return dest


@pytest.fixture(scope="module")
def adult_tables(adult_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adult-csv")
    return {
        "train": _adult_csv(adult_dir / "adult.data", root / "train.csv", rows=400),
        "test": _adult_csv(adult_dir / "adult.test", root / "test.csv", rows=300),
    }


@pytest.fixture(scope="module")
def csv_run(adult_tables: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from compaudit.train import train_recipe
    from compaudit.train.recipe import recipe_from_dict

    # 400 rows / batch 64 = 7 steps per epoch, 14 in all.
    recipe = recipe_from_dict(
        {
            "name": "adult-csv",
            "dataset": {
                "train": f"{adult_tables['train']}?{OPTS}",
                # 300 real test rows hold categories the 400 train rows lack.
                "eval": f"{adult_tables['test']}?{OPTS}&unknown=ignore",
            },
            "architecture": {"name": "mlp", "kwargs": {"hidden": [8]}},
            "training": {"epochs": 2, "batch_size": 64, "lr": 0.1},
            "k": 2,
            "seed": 0,
            "variants": [
                {"name": "dense", "kind": "dense"},
                {
                    "name": "p50",
                    "kind": "prune",
                    "prune": {"sparsity": 0.5, "begin_step": 2, "end_step": 10, "frequency": 2},
                },
            ],
        }
    )
    out = tmp_path_factory.mktemp("runs") / "adult-csv"
    train_recipe(recipe, out, progress=False, device="cpu")
    return out


def test_run_dir_carries_the_train_fitted_prep(
    csv_run: Path, adult_tables: dict[str, Path]
) -> None:
    from compaudit.models.checkpoint import load_checkpoint

    prep = read_prep(csv_run / PREP_FILE)
    train = load_dataset(f"{adult_tables['train']}?{OPTS}", fit=True)
    assert prep == train.preprocessing
    assert prep.params["fitted_on"] == "train.csv"
    _, info = load_checkpoint(csv_run / "dense" / "member-000.ckpt")
    assert info["preprocessing"] == json.loads(json.dumps(prep.to_dict()))


def test_audit_of_the_run_sees_what_the_trainer_evaluated(
    csv_run: Path, adult_tables: dict[str, Path], tmp_path: Path
) -> None:
    """Bitwise on CPU: the audit's inputs and predictions are the trainer's own evaluation."""
    from compaudit._model_data import _load_dataset
    from compaudit.models.base import RunnerSettings
    from compaudit.predictions import predict_population
    from compaudit.train.manifest import load_run
    from compaudit.train.member import predict_top1
    from compaudit.train.recipe import load_data

    info = load_run(csv_run)
    audited = _load_dataset(info.eval_data, run_dir=csv_run)
    _, trainer_eval = load_data(info.recipe)
    assert np.array_equal(audited.x, trainer_eval.x)
    assert audited.fingerprint() == info.manifest["data"]["eval_fingerprint"]
    # Re-fitting on the test table (the old behaviour) would change the inputs.
    refit = load_dataset(f"{adult_tables['test']}?{OPTS}&fit=eval")
    assert not np.array_equal(refit.x, audited.x) or refit.x.shape != audited.x.shape

    batch = info.recipe.training.eval_batch_size
    for variant in ("dense", "p50"):
        members = info.variants[variant].members
        pop = predict_population(
            [str(m.path) for m in members],
            audited,
            settings=RunnerSettings(batch_size=batch),
            cache=False,
        )
        for k, member in enumerate(members):
            own = predict_top1(member.path, (trainer_eval,), batch_size=batch, device="cpu")[0]
            np.testing.assert_array_equal(pop.predictions[k], own)
            assert float(np.mean(pop.predictions[k] == audited.y)) == member.metrics["eval_top1"]

    res = CliRunner().invoke(
        build_cli(), ["report", str(csv_run), "--out", str(tmp_path / "o"), "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    dense = info.variants["dense"].metric("eval_top1")
    assert report["populations"]["dense"]["top1"] == pytest.approx(np.mean(dense), abs=1e-12)


def test_csv_without_prep_for_a_model_that_needs_it_exits_2_with_the_command(
    csv_run: Path, adult_tables: dict[str, Path], tmp_path: Path
) -> None:
    test_spec = f"{adult_tables['test']}?{OPTS}&unknown=ignore"

    import onnx

    # ONNX exports copied out of the run: as they are (their metadata carries the
    # preprocessing), and stripped of it, like models trained elsewhere.
    copied, bare = tmp_path / "copied", tmp_path / "bare"
    for folder in (copied, bare):
        folder.mkdir()
    for v in ("dense", "p50"):
        shutil.copy(csv_run / v / "member-000.onnx", copied / f"{v}.onnx")
        proto = onnx.load(str(csv_run / v / "member-000.onnx"))
        assert [e.key for e in proto.metadata_props] == [ONNX_PREP_KEY]
        del proto.metadata_props[:]
        onnx.save(proto, str(bare / f"{v}.onnx"))

    def report(kind: str, data: str) -> Result:
        if kind == "ckpt":  # inside the run: the checkpoints (and the run dir) carry it
            ref, cand = (str(csv_run / v / "member-000.ckpt") for v in ("dense", "p50"))
        else:
            folder = bare if kind == "onnx" else copied
            ref, cand = str(folder / "dense.onnx"), str(folder / "p50.onnx")
        args = ["report", "-r", ref, "-c", f"p50={cand}", "--out", str(tmp_path / "o")]
        return CliRunner().invoke(build_cli(), [*args, "--data", data, "--format", "json"])

    # The CSV would be fitted on itself: exit 2, naming the command.
    res = report("onnx", test_spec)
    assert res.exit_code == 2
    assert "compaudit fit-data" in res.stderr
    assert "?prep=prep.json" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1

    # The fix it names: fit on the training table, apply with prep=.
    prep = tmp_path / "prep.json"
    fit = CliRunner().invoke(
        build_cli(), ["fit-data", f"{adult_tables['train']}?{OPTS}", "--out", str(prep)]
    )
    assert fit.exit_code == 0, fit.output
    assert read_prep(prep) == read_prep(csv_run / PREP_FILE)
    res = report("onnx", f"{test_spec}&prep={prep}")
    assert res.exit_code == 0, res.output
    onnx_top1 = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))

    # Trainer checkpoints carry it: the audit applies it by itself, with the same result.
    res = report("ckpt", test_spec)
    assert res.exit_code == 0, res.output
    ckpt_top1 = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    res = report("copied", test_spec)
    assert res.exit_code == 0, res.output
    copied_top1 = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    for name in ("reference", "p50"):  # the trainer verified its ONNX exports agree
        assert ckpt_top1["populations"][name]["top1"] == onnx_top1["populations"][name]["top1"]
        assert copied_top1["populations"][name]["top1"] == onnx_top1["populations"][name]["top1"]

    # A prep fitted on the test table disagrees with the checkpoint's: a short diff and the fix.
    wrong = tmp_path / "wrong.json"
    fit = CliRunner().invoke(build_cli(), ["fit-data", test_spec, "--out", str(wrong)])
    assert fit.exit_code == 0
    res = report("ckpt", f"{test_spec}&prep={wrong}")
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert "fitted_on: 'train.csv' vs 'test.csv'" in line
    assert f"{wrong}: the data are prepared differently from what {csv_run}" in line
    assert "mean[age]: " in line
    assert "Fix: " in line
    assert "fit-data" in line
    assert len(line) < 700, line


def test_predict_applies_the_prep_a_model_carries(
    csv_run: Path, adult_tables: dict[str, Path], tmp_path: Path
) -> None:
    """`compaudit predict` and `compaudit.predict` use a model's carried prep, as report does."""
    import compaudit
    from compaudit.population import load_population
    from compaudit.train.manifest import load_run

    test_spec = f"{adult_tables['test']}?{OPTS}&unknown=ignore"
    info = load_run(csv_run)
    member = info.variants["dense"].members[0]
    out = tmp_path / "preds.npz"
    for model in (csv_run / "dense" / "member-000.onnx", member.path):
        res = CliRunner().invoke(
            build_cli(), ["predict", str(model), "--data", test_spec, "--out", str(out)]
        )
        assert res.exit_code == 0, res.output
        pop = load_population(out)
        assert float(np.mean(pop.predictions[0] == pop.y)) == member.metrics["eval_top1"]
    api = compaudit.predict(str(member.path), test_spec, cache=False)
    assert float(np.mean(api.predictions[0] == api.y)) == member.metrics["eval_top1"]
