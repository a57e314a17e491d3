"""Prediction cache: a first audit's inference against a cached re-run.

Target: re-running ``predict_population`` on a population whose predictions
are cached is at least 20x faster than the first run, which loads every model
and runs it. Both runs are timed in the same process, on an empty cache in a
temporary ``COMPAUDIT_CACHE_DIR``; the cached run is best of 3 and must return
exactly the first run's top-k (checked, else the run raises).

Population: K = 5 random-init CNN28 models (seeds 0-4; 3 ONNX fp32, 2
TorchScript), on the Fashion-MNIST test split (10,000 images) when found,
else synthetic images of the same shape. Quick mode: K = 3, 2,000 images.
The cached run still hashes every model file and the dataset (31 MB of
inputs) to build the keys; that is most of its time.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_runners import build_cnn_files, fashion_test
from benchmarks.common import best_of, row

__all__ = ["run"]

NAME = "cache"


@contextmanager
def _cache_dir(path: Path) -> Iterator[None]:
    old = os.environ.get("COMPAUDIT_CACHE_DIR")
    os.environ["COMPAUDIT_CACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COMPAUDIT_CACHE_DIR", None)
        else:
            os.environ["COMPAUDIT_CACHE_DIR"] = old


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Time a cold and a cached ``predict_population``; see the module docstring."""
    from compaudit.data.base import Dataset, Preprocessing
    from compaudit.models.base import RunnerSettings
    from compaudit.predictions import predict_population

    trusted = RunnerSettings(trust_model_code=True)  # the TorchScript members are ours

    n, k = (2_000, 3) if quick else (10_000, 5)
    x, y, data_note = fashion_test(n)
    data = Dataset(
        name="fashion-mnist:test",
        x=x,
        y=y,
        ids=np.arange(len(y)),
        class_names=tuple(str(c) for c in range(10)),
        preprocessing=Preprocessing(layout="NCHW", scaling="divide:255"),
    )
    with tempfile.TemporaryDirectory(prefix="compaudit-bench-cache-") as tmp:
        root = Path(tmp)
        models = root / "models"
        models.mkdir()
        n_onnx = (k + 1) // 2  # the rest TorchScript
        spec = [
            str(
                build_cnn_files(models, x, seed=seed, int8=False)[
                    "fp32_onnx" if seed < n_onnx else "torchscript"
                ]
            )
            for seed in range(k)
        ]
        with _cache_dir(root / "cache"):
            start = time.perf_counter()
            first = predict_population(spec, data, settings=trusted)
            cold = time.perf_counter() - start
            timing, cached = best_of(
                lambda: predict_population(spec, data, settings=trusted), repeat=3, warmup=0
            )
        if first.topk is None or cached.topk is None or not np.array_equal(first.topk, cached.topk):
            raise RuntimeError("cached predictions differ from the first run's")
        entries = list((root / "cache" / "predictions").glob("*/*.npz"))
        entry_kb = sum(e.stat().st_size for e in entries) / len(entries) / 1024
    note = f"K = {k} CNN28 ({n_onnx} ONNX, {k - n_onnx} TorchScript), {data_note}"
    return [
        row(NAME, "first_run", cold, "s", f"{note}; load + inference + cache write, once"),
        row(NAME, "cached_run", timing.best, "s", f"{note}; {timing.describe()}"),
        row(NAME, "speedup", cold / timing.best, "x", "first_run / cached_run; target >= 20x"),
        row(NAME, "entry_size", entry_kb, "KiB", f"one model's top-5 on {n} examples"),
    ]


if __name__ == "__main__":
    from benchmarks.common import markdown_table

    print(markdown_table(run()))
