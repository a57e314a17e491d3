"""Trainer health checks: a diverged member stops with a clear error, the others finish.

Real torch on the tiny digits MLP. At ``lr: 1000`` some members' weights blow
up to NaN within two epochs and others survive (seed-dependent, deterministic
on CPU); at ``lr: 1e5`` every member does, within a few steps.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from compaudit.cli.train import command
from compaudit.errors import CompauditWarning, InputError
from compaudit.train.base import MemberJob, MemberResult
from compaudit.train.manifest import load_run, member_finished, read_manifest
from compaudit.train.member import member_stem, run_job
from compaudit.train.pruning import achieved_sparsity
from compaudit.train.recipe import recipe_from_dict
from compaudit.train.run import _warn_sparsity, plan
from compaudit.train.trainer import NonFiniteError, check_weights, nonfinite_tensors

from .conftest import predict_file, tiny_dict, write_recipe

DIVERGED = re.compile(
    r"variant '(?P<variant>[\w-]+)', member (?P<member>\d): training diverged: "
    r"non-finite (loss \((nan|inf)\) at step \d+|weights \(.+\) after step \d+) of "
    r"(?P<total>\d+); likely fix: lower training\.lr \(now 1000\)(?P<scope>, prune with "
    r"scope: global instead of layer \(per-layer pruning cuts small layers hard\))? or a "
    r"longer schedule"
)


def _edge_dict() -> dict[str, Any]:
    """dense + per-layer 90% pruning + int8 of the dense, at a learning rate on the edge."""
    d = tiny_dict(k=3)
    d["training"]["lr"] = 1000.0
    d["variants"] = [
        {"name": "dense", "kind": "dense"},
        {
            "name": "p90",
            "kind": "prune",
            "prune": {"sparsity": 0.9, "scope": "layer", "end_step": 20, "frequency": 2},
        },
        {
            "name": "int8",
            "kind": "quantize",
            "from": "dense",
            "quantize": {"method": "onnx-dynamic"},
        },
    ]
    return d


@pytest.fixture(scope="module")
def diverged_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Path]:
    """``compaudit train`` of the edge recipe, in process (a failure is a result, not an
    exception, so every executor passes it on alike; the pool's start-up would
    triple this test's time)."""
    tmp = tmp_path_factory.mktemp("diverged")
    recipe = write_recipe(tmp / "edge.yaml", _edge_dict())
    out = tmp / "run"
    args = [str(recipe), "--out", str(out), "--threads", "1", "--quiet"]
    return out, CliRunner().invoke(command, args), recipe


def test_train_exits_2_naming_each_failure_after_finishing_the_others(
    diverged_run: tuple[Path, Any, Path],
) -> None:
    out, result, _ = diverged_run
    assert result.exit_code == 2, result.output
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith("compaudit: error:")]
    failures = [m.groupdict() for m in DIVERGED.finditer(line)]
    assert failures, line
    failed = {(f["variant"], int(f["member"])) for f in failures}
    assert all(f["total"] == "40" for f in failures)  # 2 epochs x 20 steps
    # The per-layer fix is suggested for the per-layer variant only.
    assert all(bool(f["scope"]) == (f["variant"] == "p90") for f in failures)
    # A quantized copy of a failed dense member is not attempted.
    skipped = {("int8", i) for v, i in failed if v == "dense"}
    for _, i in sorted(skipped):
        assert f"variant 'int8', member {i}: not made, its source dense/{i} failed" in line
    total = len(failed) + len(skipped)
    assert f"{total} of 9 member(s) failed and were not recorded" in line
    # The others ran and were recorded; the failed ones are not, and no files are left.
    info = load_run(out, require_complete=False)
    done = {(v.name, m.index) for v in info.variants.values() for m in v.members}
    assert done == {(v, i) for v in ("dense", "p90", "int8") for i in range(3)} - failed - skipped
    assert 0 < len(failed) < 6, "the recipe no longer sits on the edge: adjust lr"
    for v, i in failed:
        assert not list(member_stem(out, v, i).parent.glob(f"member-{i:03d}.*"))
    # The survivors are finite (at this rate most are dead networks at about 10% top-1:
    # a poor model, but a real one, which the audit judges).
    assert all(math.isfinite(x) for v in info.variants.values() for x in v.metric("eval_top1"))


def test_a_rerun_retries_only_the_failed_members(diverged_run: tuple[Path, Any, Path]) -> None:
    out, result, _ = diverged_run
    manifest = read_manifest(out)
    assert manifest is not None
    recipe = recipe_from_dict(manifest["recipe"])
    pending = {pair for wave in plan(recipe, out, manifest) for pair in wave}
    info = load_run(out, require_complete=False)
    missing = {(v, int(i)) for v, i in (m.split("/") for m in info.missing)}
    assert pending == missing != set()
    assert all(f"variant '{v}', member {i}" in result.output for v, i in pending)


def test_every_member_of_a_hopeless_recipe_fails_in_process(tmp_path: Path) -> None:
    d = tiny_dict(k=2, variants=[{"name": "dense", "kind": "dense"}])
    d["training"]["lr"] = 1e5
    recipe = recipe_from_dict(d)
    result = run_job(MemberJob(str(tmp_path), recipe.to_dict(), "dense", 1, "cpu", 1))
    assert result.entry == {"files": {}, "sha256": {}}
    assert result.error is not None
    assert re.fullmatch(
        r"variant 'dense', member 1: training diverged: non-finite loss \((nan|inf)\) at step "
        r"\d of 40; likely fix: lower training\.lr \(now 100000\) or a longer schedule "
        r"\(more epochs or warmup_steps, a later prune\.end_step\)",
        result.error,
    ), result.error
    assert not list(tmp_path.rglob("*.ckpt"))


def test_weights_check_names_the_tensors() -> None:
    linear, norm = nn.Linear(3, 2), nn.BatchNorm1d(2)
    model = nn.Sequential(linear, norm)
    assert nonfinite_tensors(model) == []
    check_weights(model, step=5, total=9)  # finite: no error
    with torch.no_grad():
        linear.weight[0, 1] = float("inf")
        cast(torch.Tensor, norm.running_var)[0] = float("nan")
    assert nonfinite_tensors(model) == ["0.weight", "1.running_var"]
    with pytest.raises(NonFiniteError) as err:
        check_weights(model, step=5, total=9)
    assert str(err.value) == "non-finite weights (0.weight, 1.running_var) after step 5 of 9"
    assert (err.value.step, err.value.total) == (5, 9)


def test_sparsity_counts_non_finite_weights_as_not_pruned() -> None:
    w = torch.tensor([[0.0, float("nan")], [0.0, float("inf")], [0.0, 0.0]])
    assert achieved_sparsity([w], structured=False) == {"sparsity": 4 / 6}
    assert achieved_sparsity([w], structured=True) == {"sparsity": 4 / 6, "unit_sparsity": 1 / 3}


def _pruned(target: float, **achieved: float) -> MemberResult:
    return MemberResult("p90", 2, {"metrics": {"target_sparsity": target, **achieved}})


def test_a_sparsity_off_target_by_more_than_a_point_warns_once() -> None:
    with pytest.warns(CompauditWarning) as record:
        _warn_sparsity(_pruned(0.9, sparsity=0.005))
    assert [str(w.message) for w in record] == [
        "variant 'p90', member 2: achieved sparsity 0.0050 differs from the target 0.9000 "
        "by 89.5 points"
    ]
    with pytest.warns(CompauditWarning, match="achieved unit sparsity 0.5000"):
        _warn_sparsity(_pruned(0.8, sparsity=0.79, unit_sparsity=0.5))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_sparsity(_pruned(0.9, sparsity=0.905))
        _warn_sparsity(MemberResult("dense", 0, {"metrics": {"eval_top1": 0.9}}))


def test_nan_metrics_are_never_a_finished_member(diverged_run: tuple[Path, Any, Path]) -> None:
    out = diverged_run[0]
    manifest = read_manifest(out)
    assert manifest is not None
    entry = next(iter(manifest["variants"]["dense"]["members"].values()))
    assert member_finished(out, entry)
    assert not member_finished(
        out, {**entry, "metrics": {**entry["metrics"], "eval_top1": math.nan}}
    )
    nested = {**entry["metrics"], "layer_sparsity": {"0": math.inf}}
    assert not member_finished(out, {**entry, "metrics": nested})


def test_manifest_timings_are_checked_and_old_manifests_load(
    diverged_run: tuple[Path, Any, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(diverged_run[0], run)
    manifest = json.loads((run / "manifest.json").read_text())
    entries = [e for v in manifest["variants"].values() for e in v["members"].values()]
    for e in entries:
        assert set(e["timings"]) >= {"setup_s", "eval_s", "total_s"}
        assert {"train_s", "export_s"} <= set(e["timings"]) or "quantize_s" in e["timings"]
        assert "train_top1" not in e["metrics"]  # training split evaluated on request only
    for e in entries:  # as written before the timings were split up
        e["timings"] = {"total_s": e["timings"]["total_s"]}
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert load_run(run, require_complete=False).variants["dense"].members
    entries[0]["timings"]["eval_s"] = "fast"
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"timings\.eval_s must be seconds, got 'fast'"):
        read_manifest(run)
    entries[0]["timings"]["eval_s"] = -1.0
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"timings\.eval_s must be finite seconds >= 0, got -1\.0"):
        read_manifest(run)


def test_the_training_split_is_evaluated_only_on_request(tmp_path: Path) -> None:
    d = tiny_dict(k=1, variants=[{"name": "dense", "kind": "dense"}])
    d["training"]["eval_train"] = True
    on, off = recipe_from_dict(d), recipe_from_dict(tiny_dict(k=1))
    # Evaluating does not change the members: the key is not fingerprinted, and the
    # fingerprint is what it was before the key existed (old runs still resume).
    blob = {
        "dataset": off.dataset.model_dump(mode="json"),
        "architecture": off.architecture.model_dump(mode="json"),
        "training": {
            k: v for k, v in off.training.model_dump(mode="json").items() if k != "eval_train"
        },
        "seed": off.seed,
        # The variant as it was dumped before its optional seed existed.
        "chain": [off.variant("dense").model_dump(mode="json", by_alias=True, exclude={"seed"})],
    }
    old = hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()
    assert on.variant_fingerprint("dense") == off.variant_fingerprint("dense") == old
    result = run_job(MemberJob(str(tmp_path), on.to_dict(), "dense", 0, "cpu", 1))
    assert result.error is None
    from compaudit.data.loading import load_dataset

    train = load_dataset("digits:train")
    ckpt = member_stem(tmp_path, "dense", 0).with_suffix(".ckpt")
    expected = float(np.mean(predict_file(ckpt, train.x) == train.y))
    assert result.entry["metrics"]["train_top1"] == expected
    assert {"train_s", "export_s", "eval_s", "total_s"} <= set(result.entry["timings"])
