"""Influence runs: the trainer side of Feldman & Zhang's subsampled estimator.

With a recipe section ``influence: {runs: R, subset_fraction: p, seed: s,
variant: v}``, ``compaudit train`` also trains ``R`` models of variant ``v``
(its architecture, training and pruning settings), run ``r`` on the exact-size
subset of ``round(p |S|)`` training examples that
``numpy.random.default_rng(SeedSequence([s, r]))`` draws without replacement;
the same sequence seeds the model's initialisation and data order. Each run
is evaluated on the training and evaluation splits through the model runners'
inference loop (a :class:`~compaudit.models.torch_runner.TorchRunner` around
the trained model, at the recipe's eval batch size) and written, bit-packed,
to ``RUN_DIR/influence/run-<r>.npz`` (one run of
:class:`~compaudit.analysis.influence.InfluenceRuns`). When all ``R`` are
done they are consolidated into ``RUN_DIR/influence/runs.npz``
(:func:`~compaudit.analysis.influence.load_runs` reads it).

Runs are executor jobs like members (a :class:`~compaudit.train.base.MemberJob`
whose variant is :data:`INFLUENCE_JOB`, a name no variant can have), so
``--jobs`` parallelises them, and the manifest records each finished run with
its file's sha256: a re-run skips them, and a killed run loses at most the
runs in progress.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compaudit._io import sha256_file
from compaudit.analysis.influence import InfluenceRuns, load_runs, save_runs
from compaudit.models.architectures import build
from compaudit.models.base import RunnerSettings
from compaudit.models.torch_runner import TorchRunner
from compaudit.train.base import MemberJob, MemberResult, ProgressEvent, ProgressFn
from compaudit.train.manifest import (
    INFLUENCE_DIR,
    INFLUENCE_RUNS,
    file_matches,
    write_manifest,
)
from compaudit.train.recipe import InfluenceConfig, Recipe, load_data
from compaudit.train.registry import pruners
from compaudit.train.trainer import auto_threads, complete_arch_kwargs, train_model

__all__ = [
    "INFLUENCE_JOB",
    "consolidate",
    "pending_runs",
    "record_run",
    "run_file",
    "run_influence_job",
    "run_mask",
    "run_seed",
    "subset_size",
]

INFLUENCE_JOB = "@influence"
"""The ``variant`` of an influence run's job (no variant name starts with ``@``)."""


def subset_size(cfg: InfluenceConfig, n: int) -> int:
    """Examples per run: ``round(subset_fraction * n)``, at least 1 and at most ``n - 1``."""
    return min(max(round(cfg.subset_fraction * n), 1), max(n - 1, 1))


def _rng(cfg: InfluenceConfig, run: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, run]))


def run_seed(cfg: InfluenceConfig, run: int) -> int:
    """Torch seed of run ``run`` (initialisation, data order): ``SeedSequence([seed, run])``."""
    return int(np.random.SeedSequence([cfg.seed, run]).generate_state(1, np.uint32)[0])


def run_mask(cfg: InfluenceConfig, run: int, n: int) -> np.ndarray:
    """Which of the ``n`` training examples run ``run`` trains on (bool, exactly
    :func:`subset_size` of them)."""
    mask = np.zeros(n, dtype=bool)
    mask[_rng(cfg, run).choice(n, size=subset_size(cfg, n), replace=False)] = True
    return mask


def run_file(run_dir: str | Path, run: int) -> Path:
    """``RUN_DIR/influence/run-<run>.npz``."""
    return Path(run_dir) / INFLUENCE_DIR / f"run-{run:04d}.npz"


def _section(manifest: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    cfg = recipe.influence
    assert cfg is not None
    section: dict[str, Any] = manifest.setdefault("influence", {})
    if section.get("fingerprint") != recipe.influence_fingerprint():
        section.clear()  # made from another recipe: check_compatible allowed it (none done)
    section.update(
        variant=cfg.variant,
        subset_fraction=cfg.subset_fraction,
        seed=cfg.seed,
        runs=cfg.runs,
        fingerprint=recipe.influence_fingerprint(),
    )
    section.setdefault("done", {})
    section.setdefault("file", None)
    section.setdefault("sha256", None)
    section.setdefault("n_runs", 0)
    return section


def pending_runs(recipe: Recipe, run_dir: str | Path, manifest: dict[str, Any]) -> list[int]:
    """Indices of the influence runs not finished (entry present, file hash-matching)."""
    if recipe.influence is None:
        return []
    done = _section(manifest, recipe)["done"]
    return [
        r
        for r in range(recipe.influence.runs)
        if not (
            (entry := done.get(str(r))) is not None
            and file_matches(run_dir, entry["file"], entry["sha256"])
        )
    ]


def record_run(
    run_dir: str | Path, manifest: dict[str, Any], recipe: Recipe, entry: dict[str, Any]
) -> None:
    """Add a finished influence run to the manifest and write it at once."""
    _section(manifest, recipe)["done"][str(entry["run"])] = entry
    write_manifest(run_dir, manifest)


def consolidate(run_dir: str | Path, manifest: dict[str, Any], recipe: Recipe) -> Path | None:
    """Write ``influence/runs.npz`` from the finished runs (when all are), record it.

    Returns the file, or None when the recipe has no influence section or runs
    are missing. An up-to-date file (same runs, hash-matching) is kept.
    """
    cfg = recipe.influence
    if cfg is None or pending_runs(recipe, run_dir, manifest):
        return None
    section = _section(manifest, recipe)
    path = Path(run_dir) / INFLUENCE_RUNS
    if section["n_runs"] == cfg.runs and file_matches(run_dir, section["file"], section["sha256"]):
        return path
    parts = [load_runs(run_file(run_dir, r)).unpack() for r in range(cfg.runs)]
    runs = InfluenceRuns(
        np.concatenate([p.in_run for p in parts]),
        np.concatenate([p.train_correct for p in parts]),
        np.concatenate([p.test_correct for p in parts]),
    )
    save_runs(path, runs)
    section.update(file=INFLUENCE_RUNS, sha256=sha256_file(path), n_runs=cfg.runs)
    write_manifest(run_dir, manifest)
    return path


def _predict(model: nn.Module, x: np.ndarray, key: str, bs: int, device: str, c: int) -> np.ndarray:
    """Top-1 labels through the runners' inference loop (as members' files are run)."""
    runner = TorchRunner(model, path=key, name=key, fingerprint="", meta={})
    settings = RunnerSettings(batch_size=bs, k=1, device=device, progress=False)
    return np.asarray(runner.predict(x, settings, num_classes=c).topk[:, 0])


def run_influence_job(job: MemberJob, progress: ProgressFn | None = None) -> MemberResult:
    """Train influence run ``job.member``, write its file; return its manifest entry.

    Called by :func:`compaudit.train.member.run_job` (under its thread and
    determinism settings) for jobs whose variant is :data:`INFLUENCE_JOB`.
    """
    from compaudit.train.recipe import recipe_from_dict

    recipe = recipe_from_dict(job.recipe, source=f"{job.run_dir}/manifest.json")
    cfg = recipe.influence
    assert cfg is not None  # the run layer makes these jobs only for such recipes
    variant = recipe.variant(cfg.variant)
    epochs = variant.epochs or recipe.training.epochs
    if progress is not None:
        progress(ProgressEvent("start", job.key, 0, epochs))
    t0 = time.perf_counter()
    train, evalset = load_data(recipe)
    seed = run_seed(cfg, job.member)
    mask = run_mask(cfg, job.member, train.n)
    arch_kwargs = complete_arch_kwargs(
        recipe.architecture.name,
        recipe.architecture.kwargs,
        tuple(train.x.shape[1:]),
        train.num_classes,
    )
    torch.manual_seed(seed)
    model: nn.Module = build(recipe.architecture.name, **arch_kwargs)
    model.to(job.device)
    session = None
    if variant.prune is not None:  # from scratch (the recipe's checks): prune while training
        session = pruners()[variant.prune.method].attach(model, variant.prune)
    x = torch.from_numpy(np.ascontiguousarray(train.x)).to(job.device)
    y = torch.from_numpy(np.asarray(train.y, dtype=np.int64)).to(job.device)
    indices = torch.from_numpy(np.flatnonzero(mask)).to(job.device)
    if job.threads is None and job.device == "cpu":
        torch.set_num_threads(auto_threads(model, x, recipe.training.batch_size))

    def on_epoch(done: int) -> None:
        if progress is not None:
            progress(ProgressEvent("epoch", job.key, done, epochs))

    steps = train_model(
        model,
        x,
        y,
        recipe.training,
        epochs=epochs,
        seed=seed,
        pruning=session,
        on_epoch=on_epoch,
        indices=indices,
    )
    if session is not None:
        session.finalize()
    train_s = time.perf_counter() - t0

    t = time.perf_counter()
    bs, c = recipe.training.eval_batch_size, train.num_classes
    train_ok = _predict(model, train.x, job.key, bs, job.device, c) == train.y
    eval_ok = _predict(model, evalset.x, job.key, bs, job.device, c) == evalset.y
    path = run_file(job.run_dir, job.member)
    save_runs(path, InfluenceRuns(mask[None], train_ok[None], eval_ok[None]))
    entry = {
        "run": job.member,
        "seed": seed,
        "subset_size": int(mask.sum()),
        "file": path.relative_to(job.run_dir).as_posix(),
        "sha256": sha256_file(path),
        "device": job.device,
        "metrics": {
            "steps": steps,
            "epochs": epochs,
            "in_top1": float(train_ok[mask].mean()),
            "out_top1": float(train_ok[~mask].mean()),
            "eval_top1": float(eval_ok.mean()),
        },
        "timings": {
            "train_s": train_s,
            "eval_s": time.perf_counter() - t,
            "total_s": time.perf_counter() - t0,
        },
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if progress is not None:
        progress(ProgressEvent("end", job.key, epochs, epochs))
    return MemberResult(variant=INFLUENCE_JOB, member=job.member, entry=entry)
