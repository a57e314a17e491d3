"""What lineage pairing costs: ``audit()`` of one candidate with and without ``--paired``.

A lineage pair (int8 made member by member, the common CI case) is judged by the
lineage class and group test (:func:`~compaudit.analysis.stats.paired_population_shift_test`),
whose small-count path is a parametric bootstrap: 1,999 replicates per distinct class,
each a restricted maximum-likelihood fit on a lattice of ``2K + 1`` points. The same
populations audited without pairing use Welch's test. Rows: CPU seconds of both in the
same run and their ratio, on seeded populations (per-example difficulty, a skill noise
per member and class) whose candidate flips 0.1% of each member's predictions, as
int8 rounding does. No target: the rows say where the lineage test's cost stands.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.common import row

NAME = "lineage"
FULL = ((3_000, 10, 4), (3_000, 60, 6), (10_000, 100, 10), (50_000, 1_000, 30))
QUICK = ((1_000, 10, 4),)


def _case(n: int, c: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference member predictions ``[K, N]``, labels and their 0.1%-flipped children."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    difficulty = rng.uniform(0.75, 0.99, n)
    preds = np.empty((k, n), dtype=np.int64)
    for i in range(k):
        ok = rng.random(n) < np.clip(difficulty + rng.normal(0, 0.02, c)[y], 0, 1)
        preds[i] = np.where(ok, y, (y + rng.integers(1, c, n)) % c)
    flip = rng.random(preds.shape) < 0.001
    child = np.where(flip, (y + rng.integers(1, c, preds.shape)) % c, preds)
    return preds, y, child


def _cpu(fn: Any, *args: Any, **kwargs: Any) -> float:
    start = time.process_time()
    fn(*args, **kwargs).to_report()
    return time.process_time() - start


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Paired and unpaired audit CPU seconds per size, and their ratio."""
    from compaudit.engine import audit
    from compaudit.population import Population

    rows = []
    for n, c, k in QUICK if quick else FULL:
        preds, y, child = _case(n, c, k)
        ref = Population.create(preds, y, source="reference")
        cand = {"int8": Population.create(child, y, source="int8")}
        paired = _cpu(audit, ref, cand, lineage={"int8": True})
        unpaired = _cpu(audit, ref, cand)
        size = f"N={n}, C={c}, K={k}, one candidate; CPU seconds, one run each"
        rows += [
            row(NAME, f"audit_paired_N{n}_C{c}_K{k}", round(paired, 2), "s", size),
            row(NAME, f"audit_unpaired_N{n}_C{c}_K{k}", round(unpaired, 3), "s", size),
            row(NAME, f"paired_over_unpaired_N{n}_C{c}_K{k}", round(paired / unpaired), "x", size),
        ]
    return rows
