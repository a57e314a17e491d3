"""Ray executor overhead: a 16-member digits recipe, ``--executor ray`` against ``--jobs 2``.

Both run on this machine with 2 members at a time and one torch thread each:
the process pool (``--jobs 2``) and a local Ray instance with 2 CPUs
(``ray.init(num_cpus=2)``, what ``--executor ray`` starts without an address).
Rows: wall time of each, the ratio (issue 14's target: ray within 1.3x of
``--jobs 2``), cold (the Ray instance started inside the timing, every worker
importing torch) and warm (a second run on the same instance), and a task
timing model fitted to the warm run:

    wall(N workers, n tasks) ~ start + ceil(n / N) * (task + overhead)

where ``task`` is the members' own mean ``total_s`` (from the manifest) and
``overhead`` the per-task cost the Ray run adds over it (scheduling, shipping
files, the driver's writes). The model's predictions for more workers are rows
too (no second machine exists here to measure them). Needs the plugin
(``pip install -c constraints.txt -e ./plugins/compaudit-ray``).

    python -m benchmarks.bench_ray [--quick]
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import markdown_table, row
from compaudit.train import train_recipe
from compaudit.train.recipe import recipe_from_dict

__all__ = ["run"]

NAME = "ray"


def _recipe(k: int, epochs: int) -> dict[str, Any]:
    return {
        "name": "bench-ray",
        "dataset": {"name": "digits", "train": "train", "eval": "test"},
        "architecture": {"name": "mlp", "kwargs": {"hidden": [64]}},
        "training": {"epochs": epochs, "batch_size": 64, "lr": 0.1, "weight_decay": 0.0005},
        "k": k,
        "seed": 0,
        "variants": [{"name": "dense", "kind": "dense"}],
    }


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _task_seconds(run_dir: Path) -> list[float]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    members = manifest["variants"]["dense"]["members"].values()
    return [float(m["timings"]["total_s"]) for m in members]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Time both executors on the same recipe; return the rows."""
    import ray

    k, epochs = (8, 2) if quick else (16, 5)
    recipe = recipe_from_dict(_recipe(k, epochs))
    note = f"digits mlp[64], k={k}, {epochs} epochs, 1 thread per member, 2 at a time"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pool_s = _timed(
            lambda: train_recipe(recipe, root / "pool", jobs=2, threads=1, progress=False)
        )

        def cold() -> None:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            train_recipe(recipe, root / "ray-cold", executor="ray", threads=1, progress=False)

        try:
            cold_s = _timed(cold)
            warm_s = _timed(
                lambda: train_recipe(
                    recipe, root / "ray-warm", executor="ray", threads=1, progress=False
                )
            )
            pool2_s = _timed(
                lambda: train_recipe(recipe, root / "pool2", jobs=2, threads=1, progress=False)
            )
        finally:
            ray.shutdown()
        tasks = _task_seconds(root / "ray-warm")
    pool_best = min(pool_s, pool2_s)
    rows += [
        row(NAME, "pool_wall", round(pool_best, 2), "s", f"--jobs 2 (best of 2); {note}"),
        row(NAME, "ray_cold_wall", round(cold_s, 2), "s", "ray.init(num_cpus=2) included"),
        row(NAME, "ray_warm_wall", round(warm_s, 2), "s", "second run, same Ray instance"),
        row(NAME, "ray_cold_vs_pool", round(cold_s / pool_best, 2), "x", "target <= 1.3"),
        row(NAME, "ray_warm_vs_pool", round(warm_s / pool_best, 2), "x", "target <= 1.3"),
    ]
    # Task timing model, fitted to the warm run (2 workers).
    workers = 2
    task = sum(tasks) / len(tasks)
    waves = math.ceil(len(tasks) / workers)
    overhead = max(0.0, warm_s / waves - task)
    rows += [
        row(NAME, "task_mean", round(task, 3), "s", "members' own total_s (manifest)"),
        row(NAME, "task_overhead", round(overhead, 3), "s", "warm wall / waves - task"),
    ]
    for n_workers in (2, 8, 32, 128):
        for n_tasks in (k, 2000):
            predicted = math.ceil(n_tasks / n_workers) * (task + overhead)
            rows.append(
                row(
                    NAME,
                    f"model_{n_tasks}_tasks_{n_workers}_workers",
                    round(predicted, 1),
                    "s",
                    "predicted by the task timing model (not measured)",
                )
            )
    return rows


if __name__ == "__main__":
    print(markdown_table(run(quick="--quick" in sys.argv[1:])))
