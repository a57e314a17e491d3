"""Run directories: files, manifest, runners, determinism, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from compaudit._io import sha256_file
from compaudit.data.loading import load_dataset
from compaudit.errors import InputError
from compaudit.models.checkpoint import load_checkpoint
from compaudit.train import load_run, train_recipe
from compaudit.train.manifest import ERR_CHANGED, ERR_INCOMPLETE, read_manifest
from compaudit.train.pruning import prunable_layers
from compaudit.train.recipe import recipe_from_dict
from compaudit.train.run import plan

from .conftest import TINY, predict_file, tiny_dict, tiny_recipe

CANONICAL = {
    "dense": ".ckpt",
    "p50": ".ckpt",
    "int8s": ".onnx",
    "int8d": ".onnx",
    "tdyn": ".ckpt",
    "half": ".ckpt",
}


def _state(path: Path) -> dict[str, torch.Tensor]:
    model, _ = load_checkpoint(path)
    return model.state_dict()


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = _state(a), _state(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_run_layout_and_manifest(trained_run: Path) -> None:
    info = load_run(trained_run)
    assert list(info.variants) == [v["name"] for v in TINY["variants"]]
    assert info.reference == "dense"
    assert info.candidates == ["p50", "int8s", "int8d", "tdyn", "half"]
    assert info.eval_data == "digits:test"
    assert info.complete
    manifest = read_manifest(trained_run)
    assert manifest is not None
    assert {"torch", "onnxruntime", "numpy", "compaudit"} <= set(manifest["versions"])
    for name, variant in info.variants.items():
        assert [m.index for m in variant.members] == [0, 1, 2]
        assert [m.seed for m in variant.members] == [0, 1, 2]
        for m in variant.members:
            assert m.path.suffix == CANONICAL[name]
            entry = manifest["variants"][name]["members"][str(m.index)]
            for kind, path in m.files.items():
                assert sha256_file(path) == entry["sha256"][kind]
            assert 0.7 < m.metrics["eval_top1"] <= 1.0
            assert m.timings["total_s"] > 0
    # Every trained member's ONNX export predicts what its checkpoint does.
    for name in ("dense", "p50"):
        assert info.variants[name].metric("onnx_eval_agreement") == [1.0, 1.0, 1.0]


def test_pruned_members_are_exactly_sparse(trained_run: Path) -> None:
    info = load_run(trained_run)
    for m in info.variants["p50"].members:
        model, ckpt = load_checkpoint(m.path)
        weights = [mod.weight for _, mod in prunable_layers(model)]
        total = sum(w.numel() for w in weights)
        assert sum(int((w == 0).sum()) for w in weights) == round(0.5 * total)
        assert ckpt["meta"]["sparsity"] == round(0.5 * total) / total
    assert info.variants["int8d"].metric("source_sparsity") == info.variants["p50"].metric(
        "sparsity"
    )


def test_every_member_runs_through_the_runners(trained_run: Path) -> None:
    """Quantized and float members load through the runners and reproduce their metrics."""
    data = load_dataset("digits:test")
    info = load_run(trained_run)
    dense_top1 = np.mean(info.variants["dense"].metric("eval_top1"))
    for variant in info.variants.values():
        for m in variant.members:
            pred = predict_file(m.path, data.x)
            top1 = float(np.mean(pred == data.y))
            # Batch sizes differ from the trainer's: allow one example to flip.
            assert top1 == pytest.approx(m.metrics["eval_top1"], abs=1.0 / data.n), m.path
            if "onnx" in m.files and m.path.suffix != ".onnx":
                onnx_pred = predict_file(m.files["onnx"], data.x)
                assert np.mean(onnx_pred == pred) >= 1 - 1.0 / data.n, m.files["onnx"]
        if variant.kind == "quantize":
            # Post-training quantization barely moves top-1 (Hooker et al.).
            assert abs(np.mean(variant.metric("eval_top1")) - dense_top1) < 0.1, variant.name


def test_same_seed_same_models_and_seeds_shift_members(tmp_path: Path, trained_run: Path) -> None:
    dense_only = [{"name": "dense", "kind": "dense"}]
    again = train_recipe(tiny_recipe(k=2, variants=dense_only), tmp_path / "a", progress=False)
    ref = load_run(trained_run).variants["dense"].members
    data = load_dataset("digits:test")
    for m in again.variants["dense"].members:
        assert _same_weights(m.path, ref[m.index].path)
        assert np.array_equal(predict_file(m.path, data.x), predict_file(ref[m.index].path, data.x))
    # Members differ only through their seeds: seed 1 + member 0 is seed 0 + member 1.
    shifted = train_recipe(
        tiny_recipe(k=1, seed=1, variants=dense_only), tmp_path / "b", progress=False
    )
    member = shifted.variants["dense"].members[0]
    assert not _same_weights(member.path, ref[0].path)
    assert _same_weights(member.path, ref[1].path)


def test_resume_after_a_member_fails_half_way(
    tmp_path: Path, trained_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import compaudit.train.executors as executors
    import compaudit.train.member as member

    recipe = tiny_recipe(variants=TINY["variants"][:1] + TINY["variants"][2:3])  # dense, int8s
    real_train = member.train_model

    def dies_in_member_2(*args: Any, **kwargs: Any) -> int:
        if kwargs["seed"] == 2:
            kwargs["on_epoch"](1)  # half-way through its two epochs
            raise RuntimeError("killed")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(member, "train_model", dies_in_member_2)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"):
        train_recipe(recipe, out, progress=False)
    manifest = read_manifest(out)
    assert manifest is not None
    assert sorted(manifest["variants"]["dense"]["members"]) == ["0", "1"]
    assert sorted(p.name for p in (out / "dense").iterdir()) == [
        "member-000.ckpt",
        "member-000.onnx",
        "member-001.ckpt",
        "member-001.onnx",
    ]  # nothing torn or temporary is left behind
    with pytest.raises(InputError) as info:
        load_run(out)
    assert str(info.value) == ERR_INCOMPLETE.format(
        run=out, count=4, examples="dense/2, int8s/0, int8s/1"
    )

    monkeypatch.setattr(member, "train_model", real_train)
    ran: list[str] = []
    real_run_job = executors.run_job

    def spy(job: Any, progress: Any = None) -> Any:
        ran.append(job.key)
        return real_run_job(job, progress)

    monkeypatch.setattr(executors, "run_job", spy)
    done = train_recipe(recipe, out, progress=False)
    assert ran == ["dense/2", "int8s/0", "int8s/1", "int8s/2"]
    assert done.complete
    ref = load_run(trained_run).variants["dense"].members[2].path
    assert _same_weights(done.variants["dense"].members[2].path, ref)
    ran.clear()
    train_recipe(recipe, out, progress=False)  # finished: nothing to do
    assert ran == []


def test_altered_member_and_its_derived_members_are_redone(trained_run: Path) -> None:
    manifest = read_manifest(trained_run)
    assert manifest is not None
    recipe = tiny_recipe()
    assert plan(recipe, trained_run, manifest) == []
    entry = json.loads(json.dumps(manifest))
    entry["variants"]["dense"]["members"]["1"]["sha256"]["onnx"] = "0" * 64
    assert plan(recipe, trained_run, entry) == [
        [("dense", 1)],
        [("int8s", 1), ("tdyn", 1), ("half", 1)],
    ]
    # Raising k resumes: only the new members are planned.
    bigger = recipe_from_dict(tiny_dict(k=4))
    assert plan(bigger, trained_run, manifest) == [
        [("dense", 3), ("p50", 3)],
        [("int8s", 3), ("int8d", 3), ("tdyn", 3), ("half", 3)],
    ]


def test_changed_recipe_is_refused(trained_run: Path) -> None:
    changed = tiny_dict()
    changed["training"] = {**changed["training"], "lr": 0.3}
    before = (trained_run / "manifest.json").read_bytes()
    with pytest.raises(InputError) as info:
        train_recipe(recipe_from_dict(changed), trained_run, progress=False)
    assert str(info.value) == ERR_CHANGED.format(run=trained_run, variant="dense")
    assert (trained_run / "manifest.json").read_bytes() == before


def test_end_step_beyond_training_is_refused(tmp_path: Path) -> None:
    d = tiny_dict()
    d["variants"][1]["prune"]["end_step"] = 41  # 2 epochs x 20 steps = 40
    with pytest.raises(InputError) as info:
        train_recipe(recipe_from_dict(d), tmp_path / "r", progress=False)
    assert "prune.end_step = 41 is beyond the 40 optimizer steps" in str(info.value)
    assert not (tmp_path / "r").exists()


def test_a_warmup_longer_than_training_is_refused(tmp_path: Path) -> None:
    """The learning rate would never reach its peak (warmup_steps: 1e23 trained silently)."""
    d = tiny_dict()
    d["training"]["warmup_steps"] = 41  # 2 epochs x 20 steps = 40
    with pytest.raises(InputError) as info:
        train_recipe(recipe_from_dict(d), tmp_path / "r", progress=False)
    assert "training.warmup_steps = 41 is beyond the 40 optimizer steps" in str(info.value)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("where", ["recipe", "quantize"])
def test_seeds_are_natural_numbers(where: str) -> None:
    d = tiny_dict()
    if where == "recipe":
        d["seed"] = -1
    else:
        d["variants"][2]["quantize"]["seed"] = -1
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        recipe_from_dict(d)


@pytest.mark.slow
def test_process_pool_gives_the_same_members(tmp_path: Path, trained_run: Path) -> None:
    recipe = tiny_recipe(k=2, variants=TINY["variants"][:1])
    info = train_recipe(recipe, tmp_path / "pool", jobs=2, progress=False)
    ref = load_run(trained_run).variants["dense"].members
    for m in info.variants["dense"].members:
        assert _same_weights(m.path, ref[m.index].path)


KILLER = """
import os, signal, sys
import compaudit.train.member as member
from compaudit.train import train_recipe
from compaudit.train.recipe import load_recipe

real = member.train_model

def train(*args, **kwargs):
    if kwargs["seed"] == 2:
        kwargs["on_epoch"](1)
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception handlers
    return real(*args, **kwargs)

member.train_model = train
train_recipe(load_recipe(sys.argv[1]), sys.argv[2], progress=False, threads=1)
"""


def test_resume_after_sigkill(tmp_path: Path, trained_run: Path) -> None:
    import signal
    import subprocess
    import sys

    from .conftest import write_recipe

    recipe = write_recipe(tmp_path / "r.yaml", tiny_dict(variants=TINY["variants"][:1]))
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(recipe), str(out)], capture_output=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    partial = load_run(out, require_complete=False)
    assert [m.index for m in partial.variants["dense"].members] == [0, 1]
    assert partial.missing == ("dense/2",)
    done = train_recipe(recipe, out, progress=False)
    ref = load_run(trained_run).variants["dense"].members
    assert all(_same_weights(m.path, ref[m.index].path) for m in done.variants["dense"].members)


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    from compaudit.train.run import ERR_NOT_RUN_DIR

    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(InputError) as info:
        train_recipe(tiny_recipe(k=1), tmp_path, progress=False)
    assert str(info.value) == ERR_NOT_RUN_DIR.format(run=tmp_path, manifest="manifest.json")


def test_data_given_as_two_specs(tmp_path: Path) -> None:
    """Without a dataset name, train and eval are whole data specs (here .npz files)."""
    for split in ("train", "test"):
        d = load_dataset(f"digits:{split}")
        np.savez(tmp_path / f"{split}.npz", x=d.x, y=d.y)
    dataset = {"train": str(tmp_path / "train.npz"), "eval": str(tmp_path / "test.npz")}
    info = train_recipe(
        tiny_recipe(k=1, dataset=dataset, variants=TINY["variants"][:1]),
        tmp_path / "run",
        progress=False,
    )
    assert info.eval_data == str(tmp_path / "test.npz")
    assert info.variants["dense"].metric("eval_top1")[0] > 0.7
    with pytest.raises(InputError) as err:
        recipe_from_dict(tiny_dict(dataset={"eval": "x.npz"}), source="r.yaml")
    assert str(err.value) == (
        "r.yaml: recipe key 'dataset.name': "
        "give a dataset name, or whole data specs as 'train' and 'eval'"
    )


def test_adding_variants_resumes_and_trains_only_the_new_ones(tmp_path: Path) -> None:
    # The calibration study trains the Fashion-MNIST recipe's dense variant alone;
    # the Fashion-MNIST study then runs the whole recipe into the same directory.
    out = tmp_path / "run"
    dense_only = [{"name": "dense", "kind": "dense"}]
    first = train_recipe(tiny_recipe(k=2, variants=dense_only), out, progress=False)
    dense_files = {m.index: sha256_file(m.path) for m in first.variants["dense"].members}
    dense_mtimes = {m.index: m.path.stat().st_mtime_ns for m in first.variants["dense"].members}
    full = tiny_dict(k=2, variants=[*dense_only, TINY["variants"][2]])  # + int8 of dense
    second = train_recipe(recipe_from_dict(full), out, progress=False)
    assert set(second.variants) == {"dense", "int8s"}
    assert second.complete
    for m in second.variants["dense"].members:
        assert sha256_file(m.path) == dense_files[m.index]
        assert m.path.stat().st_mtime_ns == dense_mtimes[m.index]  # not retrained
    assert second.variants["int8s"].k == 2


def test_report_on_a_run_dir_pairs_derived_variants_by_lineage(trained_run: Path) -> None:
    """Variants made `from` the reference (directly or through a chain) are paired."""
    from compaudit.pipeline import AuditRequest, execute

    outcome = execute(AuditRequest(run_dir=trained_run, out=None, formats=()))
    lineage = {c["candidate"]: c["lineage"] for c in outcome.report["comparisons"]}
    # int8s, tdyn and half are made from dense; p50 is trained from scratch; int8d from p50.
    assert lineage == {
        "p50": "none",
        "int8s": "paired",
        "int8d": "none",
        "tdyn": "paired",
        "half": "paired",
    }
    by_name = {c["candidate"]: c for c in outcome.report["comparisons"]}
    assert by_name["int8s"]["cie"]["basis"] == "paired"
    assert by_name["p50"]["cie"]["basis"] == "mean-over-pairs"


def test_report_runs_the_verified_onnx_exports_and_reproduces_the_manifest(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`compaudit report RUN_DIR` runs the ONNX beside a .ckpt where the trainer verified it,
    and every member's top-1 there is exactly the manifest's eval_top1."""
    from compaudit.pipeline import AuditRequest, _load_run_dir

    monkeypatch.setenv("COMPAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    manifest = read_manifest(trained_run)
    assert manifest is not None
    info = load_run(trained_run)
    # fp16 members record their export's agreement too (dense and p50 always have).
    assert info.variants["half"].metric("onnx_eval_agreement") == [1.0, 1.0, 1.0]

    def run(**kw: Any) -> tuple[dict[str, Any], Any]:
        ref_name, ref, candidates, dataset, _ = _load_run_dir(
            AuditRequest(run_dir=trained_run, out=None, formats=(), **kw)
        )
        return {ref_name: ref, **candidates}, dataset

    pops, dataset = run()
    expect_kind = {"dense": "onnx", "p50": "onnx", "half": "onnx", "int8s": "onnx"}
    expect_kind |= {"int8d": "onnx", "tdyn": "ckpt"}  # torch-dynamic has no ONNX file
    for name, pop in pops.items():
        members = info.variants[name].members
        entries = manifest["variants"][name]["members"]
        kind = expect_kind[name]
        assert pop.meta["model_fingerprints"] == [
            entries[str(m.index)]["sha256"][kind] for m in members
        ]
        top1 = [float(np.mean(pop.predictions[i] == dataset.y)) for i in range(len(members))]
        assert top1 == [m.metrics["eval_top1"] for m in members], name

    # Another batch size: the exports were verified at the recipe's, so checkpoints run.
    pops, _ = run(batch_size=100)
    dense = manifest["variants"]["dense"]["members"]
    assert pops["dense"].meta["model_fingerprints"] == [
        dense[str(i)]["sha256"]["ckpt"] for i in range(3)
    ]


def test_every_onnx_export_carries_the_run_preprocessing(trained_run: Path) -> None:
    """Float, fp16 and ONNX Runtime int8 exports all name the prep the run was trained with,
    so any one of them audits on its own (copied out of the run directory)."""
    import json

    import onnx

    from compaudit.data.prep import ONNX_PREP_KEY, PREP_FILE, read_prep

    want = read_prep(trained_run / PREP_FILE).to_dict()
    exports = sorted(trained_run.glob("*/member-*.onnx"))
    assert {p.parent.name for p in exports} >= {"dense", "p50", "half", "int8s", "int8d"}
    for path in exports:
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert ONNX_PREP_KEY in meta, path
        assert json.loads(meta[ONNX_PREP_KEY]) == json.loads(json.dumps(want, default=str)), path
