"""Trainer overhead: ``compaudit train`` vs a plain hand-written PyTorch loop.

Both train the same model (the recipe's CNN, same seed, same initial
weights) on the same data in the same order with the same optimizer and
learning-rate schedule, in this process, one torch thread each, alternating
so that machine load hits both alike. The plain loop is what a person would
write; the trainer's loop additionally runs its schedule, pruning hook and
progress callbacks. Its weights must come out bit-identical, which checks
that the comparison is like for like.

Rows: the loop time ratio, the whole-member ratio (issue 14's target <= 1.10:
the trainer's member, i.e. training, checkpoint, ONNX export, one test-set
evaluation through the runners and the export's agreement check, against the
plain loop plus one plain test-set evaluation), where the member's seconds go,
and the cost of pruning's forward-pass mask.

Thread rows (``--threads``, or part of a full run): training steps and test-set
inference (torch and onnxruntime) of the digits and Fashion-MNIST cnn28 models
at 1 and 2 threads, and two members trained side by side at 1 thread each
against one after another at 2 threads; they set the trainer's thread defaults.

    python -m benchmarks.bench_trainer [--quick] [--threads]
"""

from __future__ import annotations

import math
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from benchmarks.common import markdown_table, row
from compaudit.data.loading import load_dataset
from compaudit.models.architectures import build
from compaudit.models.checkpoint import load_checkpoint
from compaudit.train import train_recipe
from compaudit.train.export import export_onnx
from compaudit.train.recipe import Recipe, recipe_from_dict
from compaudit.train.trainer import complete_arch_kwargs

__all__ = ["run"]


def _recipe(epochs: int, prune: bool) -> Recipe:
    variants: list[dict[str, Any]] = [{"name": "dense", "kind": "dense"}]
    if prune:
        steps = 20 * epochs  # digits:train at batch 64
        variants.append(
            {
                "name": "prune",
                "kind": "prune",
                "prune": {"sparsity": 0.8, "end_step": steps * 3 // 4, "frequency": 10},
            }
        )
    return recipe_from_dict(
        {
            "name": "bench",
            "dataset": {"name": "digits"},
            "architecture": {"name": "cnn28", "kwargs": {"channels": [16, 32], "hidden": 64}},
            "training": {
                "epochs": epochs,
                "batch_size": 64,
                "lr": 0.05,
                "momentum": 0.9,
                "weight_decay": 5e-4,
                "lr_schedule": "cosine",
            },
            "k": 1,
            "seed": 0,
            "variants": variants,
        }
    )


def _plain_loop(epochs: int) -> tuple[float, float, dict[str, torch.Tensor]]:
    """The hand-written baseline: seed, build, SGD, cosine per step, shuffle per epoch;
    then one test-set evaluation (batches of 1024, the recipe's eval batch size).

    Returns training seconds, evaluation seconds and the trained weights.
    """
    data = load_dataset("digits:train")
    x = torch.from_numpy(data.x)
    y = torch.from_numpy(data.y.astype(np.int64))
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = build("cnn28", in_channels=1, in_size=8, channels=[16, 32], hidden=64, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    order = torch.Generator().manual_seed(0)
    n, bs = len(y), 64
    steps = math.ceil(n / bs)
    total = steps * epochs
    step = 0
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=order)
        for b in range(steps):
            idx = perm[b * bs : (b + 1) * bs]
            for g in opt.param_groups:
                g["lr"] = 0.05 * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            step += 1
    t_train = time.perf_counter() - t0
    test = load_dataset("digits:test")
    t0 = time.perf_counter()
    model.eval()
    with torch.no_grad():
        xt = torch.from_numpy(test.x)
        pred = torch.cat([model(xt[i : i + 1024]).argmax(1) for i in range(0, len(xt), 1024)])
    float((pred.numpy() == test.y).mean())
    return t_train, time.perf_counter() - t0, model.state_dict()


def _trainer(epochs: int, prune: bool) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Train the recipe in a temporary run directory; return timings and dense weights."""
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        t0 = time.perf_counter()
        info = train_recipe(
            _recipe(epochs, prune), Path(tmp) / "run", progress=False, threads=1, device="cpu"
        )
        wall = time.perf_counter() - t0
        times = {name: v.members[0].timings for name, v in info.variants.items()}
        weights = load_checkpoint(info.variants["dense"].members[0].path)[0].state_dict()
    result = {
        "wall": wall,
        "dense_train": times["dense"]["train_s"],
        "dense_total": times["dense"]["total_s"],
        "dense_export": times["dense"]["export_s"],
        "dense_eval": times["dense"]["eval_s"],
    }
    if prune:
        result["prune_train"] = times["prune"]["train_s"]
    return result, weights


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure; return rows ``{benchmark, metric, value, unit, note}``."""
    epochs, repeats = (3, 2) if quick else (30, 5)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load_dataset("digits:train"), load_dataset("digits:test")  # warm caches and imports
        _trainer(1, prune=False)
        plain, plain_eval, loop, total, pruned, export, evals = [], [], [], [], [], [], []
        identical = True
        for _ in range(repeats):
            t_plain, t_plain_eval, weights = _plain_loop(epochs)
            t, ref = _trainer(epochs, prune=True)
            plain.append(t_plain)
            plain_eval.append(t_plain + t_plain_eval)
            loop.append(t["dense_train"])
            total.append(t["dense_total"])
            export.append(t["dense_export"])
            evals.append(t["dense_eval"])
            pruned.append(t["prune_train"])
            identical &= all(torch.equal(weights[k], ref[k]) for k in weights)
    finally:
        torch.set_num_threads(previous)
    p, pe, lo, to, pr = (statistics.median(v) for v in (plain, plain_eval, loop, total, pruned))
    ex, ev = statistics.median(export), statistics.median(evals)
    setup = (
        f"cnn28 (16/32 ch) on digits:train, {epochs} epochs, batch 64, "
        f"1 thread, median of {repeats}"
    )
    return [
        row("trainer", "plain_loop_time", round(p, 3), "s", setup),
        row("trainer", "trainer_loop_time", round(lo, 3), "s", "train_model, dense member"),
        row("trainer", "loop_overhead", round(lo / p, 3), "x", "trainer / plain; target <= 1.10"),
        row(
            "trainer",
            "member_total_ratio",
            round(to / p, 3),
            "x",
            "whole member (train, eval, checkpoint, ONNX export + check) / plain loop",
        ),
        row(
            "trainer",
            "member_vs_plain_train_eval",
            round(to / pe, 3),
            "x",
            f"whole member / plain loop + one test-set eval ({pe:.3f} s); target <= 1.10",
        ),
        row(
            "trainer",
            "member_split",
            f"train {lo:.3f}, export {ex:.3f}, eval {ev:.3f}",
            "s",
            "manifest timings train_s / export_s / eval_s (eval: test split + ONNX check)",
        ),
        row("trainer", "pruning_loop_ratio", round(pr / lo, 3), "x", "80% pruned / dense loop"),
        row(
            "trainer",
            "identical_weights",
            int(identical),
            "bool",
            "trainer weights == plain loop weights (same seed, order, schedule)",
        ),
    ]


# -- thread defaults -------------------------------------------------------------------
# name: (dataset, cnn28 kwargs, train batch, eval batch, training steps timed)
_THREAD_MODELS: dict[str, tuple[str, dict[str, Any], int, int, int]] = {
    "digits": ("digits", {"channels": [16, 32], "hidden": 64}, 64, 1024, 60),
    "fashion-mnist": ("fashion-mnist", {"channels": [8, 16], "hidden": 64}, 128, 2048, 150),
}


def _model_and_data(name: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, np.ndarray]:
    ds, kwargs, *_ = _THREAD_MODELS[name]
    train, test = load_dataset(f"{ds}:train"), load_dataset(f"{ds}:test")
    kw = complete_arch_kwargs("cnn28", kwargs, tuple(train.x.shape[1:]), train.num_classes)
    torch.manual_seed(0)
    model = build("cnn28", **kw)
    return model, torch.from_numpy(train.x), torch.from_numpy(train.y.astype(np.int64)), test.x


def _steps_fn(name: str, threads: int, steps: int | None = None) -> Any:
    """A function that takes ``steps`` SGD steps of a fresh model (data loaded beforehand)."""
    torch.set_num_threads(threads)
    model, x, y, _ = _model_and_data(name)
    bs, n = _THREAD_MODELS[name][2], steps or _THREAD_MODELS[name][4]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def loop() -> None:
        for s in range(n):
            i = (s * bs) % (len(y) - bs)
            loss = F.cross_entropy(model(x[i : i + bs]), y[i : i + bs])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()

    return loop


def _train_steps(name: str, threads: int, steps: int | None = None) -> float:
    """Seconds for ``steps`` SGD steps of the model at ``threads`` torch threads."""
    loop = _steps_fn(name, threads, steps)
    t0 = time.perf_counter()
    loop()
    return time.perf_counter() - t0


def _infer(name: str, threads: int, onnx: Path | None) -> float:
    """Seconds to predict the test split in eval batches (torch, or onnxruntime on ``onnx``)."""
    torch.set_num_threads(threads)
    model, _, _, xt = _model_and_data(name)
    bs = _THREAD_MODELS[name][3]
    t0 = time.perf_counter()
    if onnx is None:
        model.eval()
        with torch.no_grad():
            for i in range(0, len(xt), bs):
                model(torch.from_numpy(xt[i : i + bs])).argmax(1)
        return time.perf_counter() - t0
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    for i in range(0, len(xt), bs):
        sess.run(None, {"input": xt[i : i + bs]})
    return time.perf_counter() - t0


def _pair_worker(name: str, ready: Any, go: Any, out: Any) -> None:
    loop = _steps_fn(name, 1)  # imports, data and model ready before the clock starts
    ready.set()
    go.wait()
    loop()
    out.put(time.monotonic())  # system-wide clock: comparable across processes


def _side_by_side(name: str) -> float:
    """Wall seconds for two members' steps trained at once, one process and thread each."""
    ctx = mp.get_context("spawn")
    ready, go, out = [ctx.Event(), ctx.Event()], ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_pair_worker, args=(name, r, go, out)) for r in ready]
    for proc in procs:
        proc.start()
    for r in ready:
        r.wait()
    t0 = time.monotonic()
    go.set()
    # Until the last loop ends (not the processes' exit, which tears torch down).
    wall = max(float(out.get()) for _ in procs) - t0
    for proc in procs:
        proc.join()
    return wall


def thread_rows(quick: bool = False) -> list[dict[str, Any]]:
    """Threads 1 vs 2 for training and inference, and 2 members x 1 thread vs 1 x 2."""
    repeats = 1 if quick else 3
    previous = torch.get_num_threads()
    rows: list[dict[str, Any]] = []
    try:
        for name in _THREAD_MODELS:
            _train_steps(name, 1, steps=5)  # warm imports and the data cache
            with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
                model, x, *_ = _model_and_data(name)
                onnx = Path(tmp) / "m.onnx"
                export_onnx(model.eval(), x[:1].numpy(), onnx)
                best: dict[str, float] = {}
                for _ in range(repeats):  # alternating, so that load hits all alike
                    for t in (1, 2):
                        for what, took in (
                            ("train", _train_steps(name, t)),
                            ("torch_infer", _infer(name, t, None)),
                            ("onnx_infer", _infer(name, t, onnx)),
                        ):
                            key = f"{what}_{t}"
                            best[key] = min(best.get(key, math.inf), took)
                    key = "pair_1x2"
                    best[key] = min(best.get(key, math.inf), _side_by_side(name))
            steps, bs = _THREAD_MODELS[name][4], _THREAD_MODELS[name][2]
            for what in ("train", "torch_infer", "onnx_infer"):
                one, two = best[f"{what}_1"], best[f"{what}_2"]
                note = f"best of {repeats}: 1 thread {one:.3f} s, 2 threads {two:.3f} s"
                if what == "train":
                    note += f" ({steps} steps of batch {bs})"
                rows.append(row("threads", f"{name}_{what}_2_vs_1", round(two / one, 3), "x", note))
            seq2 = 2 * best["train_2"]
            rows.append(
                row(
                    "threads",
                    f"{name}_two_members_parallel_vs_sequential",
                    round(best["pair_1x2"] / seq2, 3),
                    "x",
                    f"2 members side by side at 1 thread ({best['pair_1x2']:.3f} s wall) / "
                    f"one after another at 2 threads ({seq2:.3f} s); 1 thread sequential "
                    f"{2 * best['train_1']:.3f} s",
                )
            )
    finally:
        torch.set_num_threads(previous)
    return rows


if __name__ == "__main__":
    args = sys.argv[1:]
    rows = thread_rows("--quick" in args) if "--threads" in args else run("--quick" in args)
    print(markdown_table(rows))
