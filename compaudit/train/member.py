"""One job: train, prune or quantize one member of one variant, write its files.

Executors call :func:`run_job`, in this process or another; it reads only
the job (a picklable :class:`~compaudit.train.base.MemberJob`) and the
files of the member it derives from, and returns the member's manifest entry.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compaudit._io import sha256_file
from compaudit.data.base import Dataset
from compaudit.data.prep import onnx_prep_metadata
from compaudit.errors import ModelError
from compaudit.models.architectures import build
from compaudit.models.base import MemberSpec, RunnerSettings
from compaudit.models.checkpoint import load_checkpoint, save_checkpoint
from compaudit.models.spec import load_member
from compaudit.train.base import (
    MemberJob,
    MemberResult,
    ProgressEvent,
    ProgressFn,
    SourceMember,
)
from compaudit.train.export import export_onnx
from compaudit.train.influence import INFLUENCE_JOB, run_influence_job
from compaudit.train.manifest import ONNX_AGREEMENT
from compaudit.train.quantization import draw_calibration
from compaudit.train.recipe import Recipe, VariantConfig, load_data, recipe_from_dict
from compaudit.train.registry import pruners, quantizers
from compaudit.train.trainer import (
    NonFiniteError,
    auto_threads,
    check_weights,
    complete_arch_kwargs,
    deterministic,
    train_model,
)

__all__ = [
    "ERR_DIVERGED",
    "ERR_NONFINITE_METRIC",
    "load_data",
    "member_seed",
    "member_stem",
    "run_job",
]

ERR_NO_PRUNER = "variant '{variant}': unknown prune.method '{method}'; known: {known}"
ERR_NO_QUANTIZER = "variant '{variant}': unknown quantize.method '{method}'; known: {known}"
ERR_DIVERGED = "{who}: training diverged: {problem}; likely fix: {fix}"
ERR_NONFINITE_METRIC = "{who}: metric '{metric}' is not finite ({value}); not recorded"
FIX_LR = "lower training.lr (now {lr:g})"
FIX_SCOPE = "prune with scope: global instead of layer (per-layer pruning cuts small layers hard)"
FIX_SCHEDULE = "a longer schedule (more epochs or warmup_steps, a later prune.end_step)"


def member_stem(run_dir: str | Path, variant: str, member: int) -> Path:
    """``RUN_DIR/<variant>/member-<index>`` (without suffix)."""
    return Path(run_dir) / variant / f"member-{member:03d}"


def member_seed(recipe: Recipe, member: int, variant: VariantConfig | None = None) -> int:
    """Seed of member ``member``: the variant's ``seed`` (else the recipe's) ``+ member``."""
    base = variant.seed if variant is not None and variant.seed is not None else recipe.seed
    return base + member


def predict_top1(
    path: Path, splits: tuple[Dataset, ...], *, batch_size: int, device: str
) -> list[np.ndarray]:
    """Top-1 labels of the model file ``path`` on each split, through the model runners.

    The file is loaded by the loader ``compaudit report`` uses for it and run
    by the same inference loop (:func:`compaudit.models.inference.run_batches`),
    so the manifest's metrics are what the report computes from the same file
    with the same batch size and device. onnxruntime gets this job's share of
    threads (``torch.get_num_threads()``), so parallel jobs do not oversubscribe.
    """
    member = MemberSpec(
        path=str(path), name=path.stem, options={"threads": torch.get_num_threads()}
    )
    runner = load_member(member, RunnerSettings(device=device))
    settings = RunnerSettings(batch_size=batch_size, k=1, device=device, progress=False)
    return [
        np.asarray(runner.predict(d.x, settings, num_classes=d.num_classes).topk[:, 0])
        for d in splits
    ]


def _top1(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(pred == y))


def _ckpt_args(recipe: Recipe, arch_kwargs: dict[str, Any], data: Dataset) -> dict[str, Any]:
    return {
        "arch": recipe.architecture.name,
        "arch_kwargs": arch_kwargs,
        "class_names": list(data.class_names),
        "preprocessing": data.preprocessing.to_dict(),
    }


def _train_member(
    job: MemberJob, recipe: Recipe, variant: VariantConfig, progress: ProgressFn | None
) -> dict[str, Any]:
    t0 = time.perf_counter()
    train, evalset = load_data(recipe)
    seed = member_seed(recipe, job.member, variant)
    epochs = variant.epochs or recipe.training.epochs
    timings: dict[str, float] = {}
    arch_kwargs = complete_arch_kwargs(
        recipe.architecture.name,
        recipe.architecture.kwargs,
        tuple(train.x.shape[1:]),
        train.num_classes,
    )
    torch.manual_seed(seed)
    model: nn.Module = build(recipe.architecture.name, **arch_kwargs)
    if variant.from_ is not None:  # fine-tune (and prune) a trained member instead
        source, _ = load_checkpoint(
            member_stem(job.run_dir, variant.from_, job.member).with_suffix(".ckpt")
        )
        model.load_state_dict(source.state_dict())
    model.to(job.device)
    session = None
    if variant.prune is not None:
        method = variant.prune.method
        found = pruners()
        if method not in found:
            raise ModelError(
                ERR_NO_PRUNER.format(variant=variant.name, method=method, known=sorted(found))
            )
        session = found[method].attach(model, variant.prune)
    x = torch.from_numpy(np.ascontiguousarray(train.x)).to(job.device)
    y = torch.from_numpy(np.asarray(train.y, dtype=np.int64)).to(job.device)
    if job.threads is None and job.device == "cpu":
        torch.set_num_threads(auto_threads(model, x, recipe.training.batch_size))

    def on_epoch(done: int) -> None:
        if progress is not None:
            progress(ProgressEvent("epoch", job.key, done, epochs))

    t = time.perf_counter()
    timings["setup_s"] = t - t0  # data (loaded once per process), model, source weights
    steps = train_model(
        model, x, y, recipe.training, epochs=epochs, seed=seed, pruning=session, on_epoch=on_epoch
    )
    metrics: dict[str, Any] = {"steps": steps, "epochs": epochs}
    if session is not None:
        metrics.update(session.finalize())
        check_weights(model, step=steps, total=steps)  # the mask baked in: still finite?
    timings["train_s"] = time.perf_counter() - t

    t = time.perf_counter()
    model.cpu()
    stem = member_stem(job.run_dir, variant.name, job.member)
    ckpt, onnx_path = stem.with_suffix(".ckpt"), stem.with_suffix(".onnx")
    meta = {"variant": variant.name, "member": job.member, "seed": seed, "recipe": recipe.name}
    if "sparsity" in metrics:
        meta["sparsity"] = metrics["sparsity"]
    save_checkpoint(
        ckpt, model, quantization=None, meta=meta, **_ckpt_args(recipe, arch_kwargs, train)
    )
    prep = onnx_prep_metadata(train.preprocessing.to_dict())
    export_onnx(model, train.x[:1], onnx_path, metadata=prep)
    timings["export_s"] = time.perf_counter() - t

    # Evaluate the files as saved (on the training device), not the model in memory.
    t = time.perf_counter()
    bs = recipe.training.eval_batch_size
    metrics.update(_evaluate(ckpt, recipe, train, evalset, device=job.device))
    # The ONNX file must compute what the checkpoint does: record their agreement
    # (``compaudit report`` runs the ONNX file in its place only when it is 1.0).
    metrics[ONNX_AGREEMENT] = _agreement(onnx_path, evalset, metrics.pop("_eval_pred"), bs)
    timings["eval_s"] = time.perf_counter() - t
    return {
        "files": {"ckpt": _rel(ckpt, job), "onnx": _rel(onnx_path, job)},
        "canonical": "ckpt",
        "metrics": metrics,
        "timings": timings,
    }


def _quantize_member(
    job: MemberJob, recipe: Recipe, variant: VariantConfig, progress: ProgressFn | None
) -> dict[str, Any]:
    # Both are guaranteed by the recipe's checks.
    assert variant.quantize is not None
    assert variant.from_ is not None
    cfg = variant.quantize
    found = quantizers()
    if cfg.method not in found:
        raise ModelError(
            ERR_NO_QUANTIZER.format(variant=variant.name, method=cfg.method, known=sorted(found))
        )
    t0 = time.perf_counter()
    train, evalset = load_data(recipe)
    src_stem = member_stem(job.run_dir, variant.from_, job.member)
    model, info = load_checkpoint(src_stem.with_suffix(".ckpt"))
    onnx_src = src_stem.with_suffix(".onnx")
    source = SourceMember(
        model=model,
        checkpoint=src_stem.with_suffix(".ckpt"),
        onnx=onnx_src if onnx_src.is_file() else None,
        info=info,
        example_input=np.ascontiguousarray(train.x[:1]),
    )
    stem = member_stem(job.run_dir, variant.name, job.member)
    stem.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    calibration = draw_calibration(train.x, cfg.calibration_examples, cfg.seed)
    out = found[cfg.method].quantize(source, cfg, calibration, stem)
    timings = {"setup_s": t - t0, "quantize_s": time.perf_counter() - t}
    if progress is not None:
        progress(ProgressEvent("epoch", job.key, 1, 1))

    t = time.perf_counter()
    bs = recipe.training.eval_batch_size
    canonical = Path(out.files[out.canonical])
    # Quantized members are evaluated on CPU (dynamic-quantized layers are CPU-only).
    metrics: dict[str, Any] = _evaluate(canonical, recipe, train, evalset, device="cpu")
    eval_pred = metrics.pop("_eval_pred")
    metrics.update(source_sparsity=float(info.get("meta", {}).get("sparsity", 0.0)), **out.meta)
    if "onnx" in out.files and out.canonical != "onnx":  # fp16: a .ckpt and its export
        metrics[ONNX_AGREEMENT] = _agreement(Path(out.files["onnx"]), evalset, eval_pred, bs)
    timings["eval_s"] = time.perf_counter() - t
    return {
        "files": {k: _rel(Path(v), job) for k, v in out.files.items()},
        "canonical": out.canonical,
        "metrics": metrics,
        "timings": timings,
    }


def _evaluate(
    path: Path, recipe: Recipe, train: Dataset, evalset: Dataset, *, device: str
) -> dict[str, Any]:
    """``eval_top1`` (and ``train_top1`` when ``training.eval_train``) of the file ``path``.

    The training split is evaluated only on request: it costs about one epoch of
    training (7.8 s vs 8.6 s for a one-epoch Fashion-MNIST cnn28 member). Both
    splits go through one runner, loaded once. ``_eval_pred`` holds the eval
    predictions for the ONNX agreement check (the caller pops it).
    """
    splits = (evalset, train) if recipe.training.eval_train else (evalset,)
    preds = predict_top1(path, splits, batch_size=recipe.training.eval_batch_size, device=device)
    out: dict[str, Any] = {"eval_top1": _top1(preds[0], evalset.y), "_eval_pred": preds[0]}
    if recipe.training.eval_train:
        out["train_top1"] = _top1(preds[1], train.y)
    return out


def _agreement(onnx_path: Path, evalset: Dataset, canonical_pred: np.ndarray, bs: int) -> float:
    """Share of eval examples where the ONNX export's top-1 is the canonical file's (CPU)."""
    (onnx_pred,) = predict_top1(onnx_path, (evalset,), batch_size=bs, device="cpu")
    return float(np.mean(onnx_pred == canonical_pred))


def _rel(path: Path, job: MemberJob) -> str:
    return path.relative_to(job.run_dir).as_posix()


def run_job(job: MemberJob, progress: ProgressFn | None = None) -> MemberResult:
    """Make one member and write its files; return its manifest entry.

    Parameters
    ----------
    job : MemberJob
        What to make (the run directory, recipe, variant, member, device).
    progress : callable, optional
        Receives ``start`` / ``epoch`` / ``end`` events.

    Returns
    -------
    MemberResult
        The entry: files (relative to the run directory) and their sha256,
        the canonical file, seed, device, metrics (train/eval top-1, sparsity)
        and timings.
    """
    previous_threads = torch.get_num_threads()
    if job.threads is not None:
        torch.set_num_threads(job.threads)
    try:
        return _run_job(job, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _run_job(job: MemberJob, progress: ProgressFn | None) -> MemberResult:
    recipe = recipe_from_dict(job.recipe, source=f"{job.run_dir}/manifest.json")
    try:
        if job.variant == INFLUENCE_JOB:  # an influence run (compaudit.train.influence)
            with deterministic(job.device):
                return run_influence_job(job, progress)
        return _make_member(job, recipe, progress)
    except NonFiniteError as exc:
        # The member's own failure, not the run's: reported as a result, so that
        # every executor carries on with the other members (and none retries it).
        if progress is not None:
            progress(ProgressEvent("end", job.key, 0, 0))
        # No files: an executor that ships a result's files ships none.
        entry: dict[str, Any] = {"files": {}, "sha256": {}}
        return MemberResult(
            job.variant, job.member, entry, error=diverged_message(job, recipe, exc)
        )


def _make_member(job: MemberJob, recipe: Recipe, progress: ProgressFn | None) -> MemberResult:
    variant = recipe.variant(job.variant)
    epochs = 1 if variant.kind == "quantize" else variant.epochs or recipe.training.epochs
    if progress is not None:
        progress(ProgressEvent("start", job.key, 0, epochs))
    t0 = time.perf_counter()
    with deterministic(job.device):
        if variant.kind == "quantize":
            entry = _quantize_member(job, recipe, variant, progress)
        else:
            entry = _train_member(job, recipe, variant, progress)
    bad = _nonfinite_metric(entry["metrics"])
    if bad is not None:
        who = f"variant '{variant.name}', member {job.member}"
        raise NonFiniteError(
            ERR_NONFINITE_METRIC.format(who=who, metric=bad[0], value=bad[1]), step=-1, total=-1
        )
    entry["timings"]["total_s"] = time.perf_counter() - t0
    entry.update(
        member=job.member,
        seed=member_seed(recipe, job.member, variant),
        device=job.device if variant.kind != "quantize" else "cpu",
        variant_fingerprint=recipe.variant_fingerprint(variant.name),
        sha256={k: sha256_file(Path(job.run_dir) / v) for k, v in entry["files"].items()},
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if progress is not None:
        progress(ProgressEvent("end", job.key, epochs, epochs))
    return MemberResult(variant=variant.name, member=job.member, entry=entry)


def _nonfinite_metric(metrics: dict[str, Any], prefix: str = "") -> tuple[str, float] | None:
    """The first metric (nested ones as ``a.b``) that is a NaN or an infinity, if any."""
    for key, value in metrics.items():
        if isinstance(value, dict):
            found = _nonfinite_metric(value, f"{prefix}{key}.")
            if found is not None:
                return found
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{prefix}{key}", value
    return None


def diverged_message(job: MemberJob, recipe: Recipe, exc: NonFiniteError) -> str:
    """One line: which member, what was not finite at which step, and the likely fix."""
    if job.variant == INFLUENCE_JOB:
        assert recipe.influence is not None
        variant = recipe.variant(recipe.influence.variant)
        who = f"influence run {job.member} (variant '{variant.name}')"
    else:
        variant = recipe.variant(job.variant)
        who = f"variant '{variant.name}', member {job.member}"
    if exc.step < 0:  # a metric, already worded in full
        return str(exc)
    fixes = [FIX_LR.format(lr=recipe.training.lr)]
    if variant.prune is not None and variant.prune.scope == "layer":
        fixes.append(FIX_SCOPE)
    fixes.append(FIX_SCHEDULE)
    fix = ", ".join(fixes[:-1]) + f" or {fixes[-1]}"
    return ERR_DIVERGED.format(who=who, problem=exc, fix=fix)
