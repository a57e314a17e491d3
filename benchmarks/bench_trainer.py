"""Trainer overhead: ``compaudit train`` vs a plain hand-written PyTorch loop.

Both train the same model (the recipe's CNN, same seed, same initial
weights) on the same data in the same order with the same optimizer and
learning-rate schedule, in this process, one torch thread each, alternating
so that machine load hits both alike. The plain loop is what a person would
write; the trainer's loop additionally runs its schedule, pruning hook and
progress callbacks. Its weights must come out bit-identical, which checks
that the comparison is like for like.

Rows: the loop time ratio (target <= 1.10), the whole-member time ratio
(the trainer also evaluates, checkpoints, exports to ONNX and checks the
export), and the cost of pruning's forward-pass mask.

    python -m benchmarks.bench_trainer [--quick]
"""

from __future__ import annotations

import math
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
from compaudit.train.recipe import Recipe, recipe_from_dict

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


def _plain_loop(epochs: int) -> tuple[float, dict[str, torch.Tensor]]:
    """The hand-written baseline: seed, build, SGD, cosine per step, shuffle per epoch."""
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
    return time.perf_counter() - t0, model.state_dict()


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
        plain, loop, total, pruned = [], [], [], []
        identical = True
        for _ in range(repeats):
            t_plain, weights = _plain_loop(epochs)
            t, ref = _trainer(epochs, prune=True)
            plain.append(t_plain)
            loop.append(t["dense_train"])
            total.append(t["dense_total"])
            pruned.append(t["prune_train"])
            identical &= all(torch.equal(weights[k], ref[k]) for k in weights)
    finally:
        torch.set_num_threads(previous)
    p, lo, to, pr = (statistics.median(v) for v in (plain, loop, total, pruned))
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
        row("trainer", "pruning_loop_ratio", round(pr / lo, 3), "x", "80% pruned / dense loop"),
        row(
            "trainer",
            "identical_weights",
            int(identical),
            "bool",
            "trainer weights == plain loop weights (same seed, order, schedule)",
        ),
    ]


if __name__ == "__main__":
    print(markdown_table(run(quick="--quick" in sys.argv[1:])))
