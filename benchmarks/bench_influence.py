"""Feldman-Zhang estimator at scale: memorization and mean influence from stored bits.

Targets (issue 15), on the 2-core machine: from a runs file of R = 2,000
runs x (50,000 training + 10,000 test) examples, bit-packed
(:func:`compaudit.analysis.influence.save_runs`, 26 MiB), loading it and
computing every memorization and mean-influence estimate with standard errors
takes at most 5 s and 1 GB of memory; the top 10 influencers of each of 1,000
flagged test examples take at most 30 s. Timings are reported, not asserted.

* **Data**: seeded generator (:func:`synthetic_runs`), written in blocks of
  runs so the unpacked bits never exist whole. Subset fraction 0.7
  (Feldman & Zhang). Training examples are right with their own probability
  in [0.6, 1]; a 5% long tail is right (90%) only when trained on. Test
  examples are right with their own probability in [0.5, 1]; 2% are near
  duplicates of one long-tail example (right, 90%, only when it was trained on).
* **Estimator** (``estimator_*``): ``load_runs`` + ``memorization`` +
  ``mean_influence`` on the packed runs, best of 3 after a warm-up; its
  parts (``memorization_time``, ``mean_influence_time``) likewise. Memory is
  the ``tracemalloc`` peak of one more call (the loaded file included), and
  the process's peak resident set (``VmHWM``) for scale.
* **Top-k** (``top_k_*``): ``top_influencers(runs, flagged, k=10)`` for 1,000
  test examples (the planted duplicates first, then a seeded sample), timed
  once with ``tracemalloc`` on (its peak is ``top_k_peak_memory``).
* **Check** (:func:`verify`, raises :class:`InfluenceCheckError`): memorization
  of 20 sampled training examples equals the definition (means over the runs
  that did and did not include them) to 1e-12; the mean influence of 5 test
  examples equals the mean of their explicit influence rows to 1e-12; the
  top-k of 3 flagged examples equals a stable argsort of those rows; every
  planted duplicate's first influencer is its long-tail example.

Quick mode: R = 200, 5,000 + 1,000 examples, 100 flagged; targets do not apply.
"""

from __future__ import annotations

import gc
import re
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from benchmarks.common import best_of, row
from compaudit.analysis.influence import (
    InfluenceRuns,
    MeanInfluence,
    Memorization,
    TopInfluencers,
    influence,
    load_runs,
    mean_influence,
    memorization,
    save_runs,
    top_influencers,
)

__all__ = ["FULL", "QUICK", "InfluenceCheckError", "SyntheticRuns", "run", "synthetic_runs"]

NAME = "influence"
FULL = {"runs": 2_000, "train": 50_000, "test": 10_000, "flagged": 1_000}
QUICK = {"runs": 200, "train": 5_000, "test": 1_000, "flagged": 100}
SUBSET_FRACTION = 0.7
TAIL_SHARE = 0.05
DUPLICATE_SHARE = 0.02
K = 10
TOLERANCE = 1e-12
TARGET_ESTIMATOR_SECONDS = 5.0
TARGET_ESTIMATOR_MB = 1024.0
TARGET_TOP_K_SECONDS = 30.0

T = TypeVar("T")


class InfluenceCheckError(AssertionError):
    """The estimates disagree with the definitions: the timings are void."""


@dataclass(frozen=True, eq=False)
class SyntheticRuns:
    """Packed runs and what was planted in them."""

    runs: InfluenceRuns
    tail: np.ndarray
    """Long-tail training examples (right only when trained on)."""
    duplicates: np.ndarray
    """Test examples that copy one long-tail example."""
    duplicate_of: np.ndarray
    """The long-tail training example each duplicate copies."""


def synthetic_runs(n_runs: int, n_train: int, n_test: int, *, seed: int = 0) -> SyntheticRuns:
    """Seeded packed runs; see the module docstring. Built in blocks of runs."""
    rng = np.random.default_rng(seed)
    q_train = rng.uniform(0.6, 1.0, n_train).astype(np.float32)
    q_test = rng.uniform(0.5, 1.0, n_test).astype(np.float32)
    tail = np.sort(rng.choice(n_train, int(TAIL_SHARE * n_train), replace=False))
    duplicates = np.sort(rng.choice(n_test, int(DUPLICATE_SHARE * n_test), replace=False))
    duplicate_of = rng.choice(tail, duplicates.size)
    packed: dict[str, list[np.ndarray]] = {"in": [], "train": [], "test": []}
    step = max(1, (1 << 23) // (n_train + n_test))
    for r0 in range(0, n_runs, step):
        rows = min(step, n_runs - r0)
        in_run = rng.random((rows, n_train), dtype=np.float32) < SUBSET_FRACTION
        train = rng.random((rows, n_train), dtype=np.float32) < q_train
        train[:, tail] = in_run[:, tail] & (rng.random((rows, tail.size)) < 0.9)
        test = rng.random((rows, n_test), dtype=np.float32) < q_test
        test[:, duplicates] = in_run[:, duplicate_of] & (rng.random((rows, duplicates.size)) < 0.9)
        for key, bits in (("in", in_run), ("train", train), ("test", test)):
            packed[key].append(np.packbits(bits, axis=1))
    a, b, c = (np.concatenate(packed[key]) for key in ("in", "train", "test"))
    runs = InfluenceRuns(a, b, c, n_train=n_train, n_test=n_test)
    return SyntheticRuns(runs, tail, duplicates, duplicate_of)


def _estimate(path: Path) -> tuple[Memorization, MeanInfluence]:
    runs = load_runs(path)
    return memorization(runs), mean_influence(runs)


def _traced(fn: Callable[[], T]) -> tuple[T, float]:
    """Result and ``tracemalloc`` peak (bytes) of one call, beyond what was allocated before."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, float(peak)


def _vmhwm_mb() -> float | str:
    try:
        text = Path("/proc/self/status").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    found = re.search(r"VmHWM:\s*(\d+)", text)
    return int(found.group(1)) / 1024 if found else "unknown"


def verify(
    case: SyntheticRuns, mem: Memorization, mean: MeanInfluence, top: TopInfluencers
) -> float:
    """Check a sample against the definitions; return the largest difference seen.

    Raises
    ------
    InfluenceCheckError
        On any disagreement beyond :data:`TOLERANCE` or a planted duplicate
        whose first influencer is not its long-tail example.
    """
    runs = case.runs
    rng = np.random.default_rng(1)
    worst = 0.0
    n_train, n_test = runs.n_train or 0, runs.n_test or 0
    in_bits = runs.bits("in_run")  # unpacked once, for the check only
    train_bits = runs.bits("train_correct")
    for j in rng.choice(n_train, 20, replace=False):
        inc = in_bits[:, j]
        want = train_bits[inc, j].mean() - train_bits[~inc, j].mean()
        worst = max(worst, abs(float(mem.value[j]) - want))
    del train_bits
    rows = rng.choice(n_test, 5, replace=False)
    explicit = influence(runs, rows).value
    worst = max(worst, float(np.abs(np.nanmean(explicit, axis=1) - mean.value[rows]).max()))
    if worst > TOLERANCE:
        raise InfluenceCheckError(f"estimates differ from the definitions by {worst:.3g}")
    first = top.test_indices[:3]
    explicit = influence(runs, first).value
    order = np.argsort(-np.where(np.isnan(explicit), -np.inf, explicit), axis=1, kind="stable")
    if not np.array_equal(order[:, : top.train_indices.shape[1]], top.train_indices[:3]):
        raise InfluenceCheckError("top-k influencers differ from the argsort of the explicit rows")
    planted = np.isin(top.test_indices, case.duplicates)
    want_first = case.duplicate_of[np.searchsorted(case.duplicates, top.test_indices[planted])]
    if not np.array_equal(top.train_indices[planted, 0], want_first):
        raise InfluenceCheckError("a planted duplicate's first influencer is not its original")
    return worst


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Time the estimator and the top-k search; see the module docstring."""
    size = QUICK if quick else FULL
    case = synthetic_runs(size["runs"], size["train"], size["test"], seed=0)
    runs = case.runs
    rng = np.random.default_rng(2)
    rest = np.setdiff1d(np.arange(size["test"]), case.duplicates)
    n_sampled = size["flagged"] - case.duplicates.size
    flagged = np.concatenate([case.duplicates, np.sort(rng.choice(rest, n_sampled, False))])
    label = f"R={size['runs']}, |S|={size['train']:,}, |T|={size['test']:,}"
    with tempfile.TemporaryDirectory(prefix="compaudit-bench-influence-") as tmp:
        path = save_runs(Path(tmp) / "runs.npz", runs)
        stored_mb = path.stat().st_size / 2**20
        timing, (mem, mean) = best_of(lambda: _estimate(path), repeat=3, warmup=1)
        mem_timing, _ = best_of(lambda: memorization(runs), repeat=3, warmup=0)
        mean_timing, _ = best_of(lambda: mean_influence(runs), repeat=3, warmup=0)
        _, peak = _traced(lambda: _estimate(path))
    seconds_cpu: list[float] = []

    def timed_top() -> TopInfluencers:
        start, cpu = time.perf_counter(), time.process_time()
        result = top_influencers(runs, flagged, k=K)
        seconds_cpu[:] = [time.perf_counter() - start, time.process_time() - cpu]
        return result

    top, top_peak = _traced(timed_top)
    worst = verify(case, mem, mean, top)
    top_seconds, top_cpu = seconds_cpu
    target = "" if quick else " (target <= {t} s)"
    return [
        row(NAME, "n_runs", size["runs"]),
        row(NAME, "n_train", size["train"]),
        row(NAME, "n_test", size["test"]),
        row(NAME, "stored_size", stored_mb, "MB", "packed .npz written by save_runs"),
        row(
            NAME,
            "estimator_time",
            timing.best,
            "s",
            f"load_runs + memorization + mean_influence, {label}, {timing.describe()}"
            + target.format(t=TARGET_ESTIMATOR_SECONDS),
        ),
        row(NAME, "estimator_cpu_time", timing.best_cpu, "s", "process CPU time of the same"),
        row(NAME, "memorization_time", mem_timing.best, "s", mem_timing.describe()),
        row(NAME, "mean_influence_time", mean_timing.best, "s", mean_timing.describe()),
        row(
            NAME,
            "estimator_peak_memory",
            peak / 2**20,
            "MB",
            "tracemalloc peak of one estimator call, loaded file included"
            + ("" if quick else f" (target <= {TARGET_ESTIMATOR_MB:.0f} MB)"),
        ),
        row(
            NAME,
            "top_k_time",
            top_seconds,
            "s",
            f"top_influencers k={K} for {flagged.size:,} test examples, once, tracemalloc on"
            + target.format(t=TARGET_TOP_K_SECONDS),
        ),
        row(NAME, "top_k_cpu_time", top_cpu, "s", "process CPU time of the same"),
        row(NAME, "top_k_peak_memory", top_peak / 2**20, "MB", "tracemalloc peak of that call"),
        row(NAME, "process_peak_rss", _vmhwm_mb(), "MB", "VmHWM: data generation included"),
        row(
            NAME,
            "max_check_difference",
            worst,
            "",
            "largest difference from the definitions on the checked sample (must be <= 1e-12)",
        ),
    ]
