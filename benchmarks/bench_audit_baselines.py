"""What the audit benchmark measures compaudit against, timed in the same run.

* :func:`authors_baseline`: written the way Hooker et al.'s reference code
  (``aggregate_predictions.py``, ``gen_tstatistic.py``) works: a pandas
  ``Series.mode()`` per image (``mode().max()``, their tie rule; timed on a
  sample, extrapolated), pandas groupbys, one scipy Welch call per group, Holm.
* :func:`competent_baseline`: the same statistics vectorised: ``scipy.stats.mode``,
  ``np.bincount`` tables, one ``ttest_ind(axis=0)`` per family, Holm.
* :func:`old_engine_audit`: today's engine (``compaudit/`` at :data:`OLD_REV`,
  from ``git archive``) timed in a subprocess on the same arrays.
* :func:`cie_pairs`: one engine's mean-over-pairs CIE in a subprocess, with
  its peak memory (``tracemalloc``).
"""

from __future__ import annotations

import gc
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
from scipy import stats
from statsmodels.stats.multitest import multipletests

from benchmarks.common import Timing, best_of

if TYPE_CHECKING:
    from benchmarks.bench_audit import SyntheticCase

__all__ = [
    "ATTRIBUTES",
    "OLD_REV",
    "REPO_ROOT",
    "AuthorsResult",
    "CompetentResult",
    "EngineUnavailableError",
    "authors_baseline",
    "cie_pairs",
    "competent_baseline",
    "competent_pie_counts",
    "extract_engine",
    "fisher_reference",
    "frozen_heap",
    "modal_ties",
    "old_engine_audit",
    "save_case",
    "save_cie_case",
]

ATTRIBUTES = ("sex", "age")
OLD_REV = "590637b"
"""Last commit before issue 9's engine work: 'today's engine'."""
REPO_ROOT = Path(__file__).resolve().parent.parent

ERR_GIT = (
    "cannot extract compaudit/ at revision {rev} with 'git archive' ({detail}); "
    "the old-engine rows need the repository's history (a full clone)"
)
ERR_SUBPROCESS = "the {what} subprocess failed (exit {rc}):\n{tail}"
ERR_WRONG_PACKAGE = "the {what} subprocess imported compaudit from {got}, not from {want}"

# Run by `python -c` with PYTHONPATH at the engine's tree and the working directory
# elsewhere, so it imports exactly that compaudit; prints one JSON line.
_AUDIT_SCRIPT = """
import gc, json, sys, time
import numpy as np
import compaudit
try:  # the engine module was compaudit.audit before the Python front door took the name
    from compaudit.engine import AuditSettings, audit
except ImportError:
    from compaudit.audit import AuditSettings, audit
from compaudit.population import Population
d = np.load(sys.argv[1], allow_pickle=False)
names, attrs, repeat = json.loads(str(d["names"])), json.loads(str(d["attrs"])), int(sys.argv[2])
c, y = int(d["c"]), d["y"]
at = {a: d["attr_" + a] for a in attrs}
pop = lambda n, a: Population.create(d["p_" + n], y, num_classes=c, attributes=a,
                                     source="synthetic:" + n)
ref = pop("reference", at)
cands = {n: pop(n, None) for n in names}
settings = AuditSettings(attributes=tuple(attrs), correction="holm", seed=0)
once = lambda: audit(ref, cands, settings=settings).to_report()
once()
gc.collect(); gc.freeze()  # as frozen_heap() does for the in-process timings
runs, cpu = [], []
for _ in range(repeat):
    c0, t0 = time.process_time(), time.perf_counter()
    rep = once()
    runs.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
p = [[r["p_value"] for r in comp["classes"]] for comp in rep["comparisons"]]
print(json.dumps({"package": compaudit.__file__, "runs": runs, "cpu_runs": cpu,
                  "pie_counts": [comp["pie"]["count"] for comp in rep["comparisons"]],
                  "class_p": p}))
"""

_CIE_SCRIPT = """
import json, re, sys, time, tracemalloc
from pathlib import Path
import numpy as np
import compaudit
from compaudit.analysis.agreement import cie
d = np.load(sys.argv[1], allow_pickle=False)
ref, cand, y, repeat = d["ref"], d["cand"], d["y"], int(sys.argv[2])
runs, peaks = [], []
tracemalloc.start()
for _ in range(repeat):
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    res = cie(ref, cand, y)
    runs.append(time.perf_counter() - t0)
    peaks.append(tracemalloc.get_traced_memory()[1] - base)
print(json.dumps({"package": compaudit.__file__, "runs": runs, "peaks": peaks,
                  "maxrss_kib": int((re.search(r"VmHWM:\\s*(\\d+)", Path("/proc/self/status")
                                    .read_text()) or [0, 0])[1]),
                  "basis": res.basis, "count": res.count, "cie_u": res.cie_u,
                  "cie_c": res.cie_c, "both_wrong_different": res.both_wrong_different}))
"""


class EngineUnavailableError(RuntimeError):
    """The old engine's source could not be extracted (no git, or no history)."""


# -- shared helpers ----------------------------------------------------------------
def modal_ties(predictions: np.ndarray) -> np.ndarray:
    """Per example of ``predictions`` [K, N], whether two or more labels share the most votes."""
    s = np.sort(predictions, axis=0)
    run = np.ones(s.shape[1], dtype=np.int32)
    best = run.copy()
    n_best = run.copy()
    for i in range(1, s.shape[0]):
        run = np.where(s[i] == s[i - 1], run + 1, 1)
        n_best = np.where(run > best, 1, np.where(run == best, n_best + 1, n_best))
        best = np.maximum(best, run)
    return np.asarray(n_best > 1)


def fisher_reference(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``scipy.stats.fisher_exact`` of the votes for the pooled modal label, per column.

    ``ref`` [Kr, M] and ``cand`` [Kc, M] are predictions on M examples; NaN
    where the pooled mode is tied (the engine breaks such ties with its seed).
    """
    pooled = np.concatenate([ref, cand])
    label = np.asarray(stats.mode(pooled, axis=0).mode)
    a, b = (np.count_nonzero(side == label, axis=0) for side in (ref, cand))
    kr, kc = ref.shape[0], cand.shape[0]
    p = [stats.fisher_exact([[x, kr - x], [z, kc - z]]).pvalue for x, z in zip(a, b, strict=True)]
    return np.where(modal_ties(pooled), np.nan, np.asarray(p, dtype=float))


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Exclude the objects alive now from garbage collection while timing.

    statsmodels' Holm calls ``gc.collect()`` on every call (~50 ms with
    scipy, pandas and statsmodels loaded); no timing should pay for scanning
    the benchmark's own objects, so every in-process timing runs inside this.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _holm(p: np.ndarray, alpha: float) -> np.ndarray:
    return np.asarray(multipletests(p, alpha=alpha, method="holm")[1])


# -- baseline: the authors' way -------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AuthorsResult:
    """What the authors'-style baseline computed; its loop timed on ``sample`` and extrapolated."""

    sample: np.ndarray
    modes_sample: dict[str, np.ndarray]
    class_p: dict[str, np.ndarray]
    class_p_holm: dict[str, np.ndarray]
    subgroups: dict[str, Any]
    mode_timing: Timing
    mode_seconds_full: float
    rest_timing: Timing

    @property
    def seconds(self) -> float:
        """Extrapolated total wall time at full size."""
        return self.mode_seconds_full + self.rest_timing.best

    @property
    def cpu_seconds(self) -> float:
        """Extrapolated total CPU time at full size."""
        scale = self.mode_seconds_full / self.mode_timing.best
        return self.mode_timing.best_cpu * scale + self.rest_timing.best_cpu


def _authors_modes(preds: Mapping[str, np.ndarray], sample: np.ndarray) -> dict[str, np.ndarray]:
    """Modal label of each sampled image in each population: one pandas call per image."""
    # The authors take mode().max(): the largest label among tied modes.
    return {
        name: np.array([pd.Series(p[:, i]).mode().max() for i in sample])
        for name, p in preds.items()
    }


def _welch_holm_loop(s_ref: Any, s_cand: Any, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """One scipy Welch call per row (class or subgroup), then Holm via statsmodels."""
    ref, cand = s_ref.to_numpy(), s_cand.to_numpy()
    p = np.array(
        [stats.ttest_ind(cand[g], ref[g], equal_var=False).pvalue for g in range(len(ref))]
    )
    return p, _holm(p, alpha)


def _authors_tables(
    case: SyntheticCase, pie_full: Mapping[str, np.ndarray], alpha: float
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Per-class and per-subgroup tables with pandas groupbys and one scipy call per group.

    Correctness is held wide (one row per image, one column per model), the
    cheapest pandas layout for these groupbys, not a long (model, image) frame
    as the authors' CSVs were: the baseline is made faster, not slower.
    """
    frame = pd.DataFrame({a: case.reference.attributes[a] for a in ATTRIBUTES})
    keys = [frame[a] for a in ATTRIBUTES]
    shifted: dict[str, tuple[Any, Any]] = {}
    for name, pop in case.populations.items():
        correct = pd.DataFrame(case.y[:, None] == pop.predictions.T)
        top1 = correct.mean()  # per model
        shifted[name] = (correct.groupby(case.y).mean() - top1, correct.groupby(keys).mean() - top1)
    class_p: dict[str, np.ndarray] = {}
    class_holm: dict[str, np.ndarray] = {}
    subgroups: dict[str, Any] = {}
    s_ref_c, s_ref_g = shifted["reference"]
    for name in case.candidates:
        s_c, s_g = shifted[name]
        class_p[name], class_holm[name] = _welch_holm_loop(s_ref_c, s_c, alpha)
        # Paper's Table 1: PIE and non-PIE counts per attribute combination.
        table = frame.assign(pie=pie_full[name]).groupby(keys)["pie"].agg(["size", "sum"])
        table.columns = ["n", "n_pie"]
        table["n_non_pie"] = table["n"] - table["n_pie"]
        table["pct_pie"] = table["n_pie"] / table["n_pie"].sum() * 100
        table["pct_non_pie"] = table["n_non_pie"] / table["n_non_pie"].sum() * 100
        table["pct_growth"] = (table["pct_pie"] / table["pct_non_pie"] - 1) * 100
        p, p_holm = _welch_holm_loop(s_ref_g, s_g, alpha)
        table["p_value"] = pd.Series(p, index=s_ref_g.index).reindex(table.index)
        table["p_adjusted"] = pd.Series(p_holm, index=s_ref_g.index).reindex(table.index)
        subgroups[name] = table
    return class_p, class_holm, subgroups


def authors_baseline(
    case: SyntheticCase,
    *,
    sample_size: int,
    pie_masks: Mapping[str, np.ndarray],
    alpha: float = 0.05,
    seed: int = 0,
) -> AuthorsResult:
    """Run the authors'-style baseline, timing its two parts.

    The per-image modal loop runs on ``sample_size`` examples (seeded draw),
    best of 3; the tables at full size, best of 2, counting ``pie_masks``
    (compaudit's: the table costs the same whichever flags it counts, and its
    counts are then checked exactly). ``alpha`` goes to ``multipletests``.
    """
    n = case.y.shape[0]
    sample = np.sort(np.random.default_rng(seed).choice(n, size=min(sample_size, n), replace=False))
    preds = {name: pop.predictions for name, pop in case.populations.items()}
    mode_t, modes = best_of(lambda: _authors_modes(preds, sample), repeat=3, warmup=0)
    rest_t, (class_p, class_holm, subgroups) = best_of(
        lambda: _authors_tables(case, pie_masks, alpha), repeat=2, warmup=0
    )
    full = mode_t.best * n / sample.size
    return AuthorsResult(sample, modes, class_p, class_holm, subgroups, mode_t, full, rest_t)


# -- baseline: competent and vectorised ------------------------------------------------
@dataclass(frozen=True, eq=False)
class CompetentResult:
    """What the vectorised baseline computed; ``subgroups[name][key] = (n, n_pie, p, p_holm)``."""

    modes: dict[str, np.ndarray]
    class_p: dict[str, np.ndarray]
    class_p_holm: dict[str, np.ndarray]
    subgroups: dict[str, dict[tuple[str, ...], tuple[int, int, float, float]]]
    timing: Timing


def _codes(case: SyntheticCase) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Dense subgroup code of every example and the attribute values of each code."""
    levels, inverse = zip(
        *(np.unique(case.reference.attributes[a], return_inverse=True) for a in ATTRIBUTES),
        strict=True,
    )
    combined = np.ravel_multi_index(inverse, tuple(len(v) for v in levels))
    present, codes = np.unique(combined, return_inverse=True)
    values = np.unravel_index(present, tuple(len(v) for v in levels))
    keys = [
        tuple(str(lv[i]) for lv, i in zip(levels, ix, strict=True))
        for ix in zip(*values, strict=True)
    ]
    return codes, keys


def _per_model_mean(correct: np.ndarray, codes: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Mean correctness of every model on every group, [K, G], with one bincount."""
    k, g = correct.shape[0], size.shape[0]
    flat = (np.arange(k)[:, None] * g + codes[None, :]).ravel()
    sums = np.bincount(flat, weights=correct.ravel(), minlength=k * g).reshape(k, g)
    return np.asarray(sums / size)


def _competent(
    case: SyntheticCase, alpha: float, min_support: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    y, c = case.y, case.reference.num_classes
    codes, keys = _codes(case)
    support, size = np.bincount(y, minlength=c), np.bincount(codes)
    modes: dict[str, np.ndarray] = {}
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, pop in case.populations.items():
        modes[name] = np.asarray(stats.mode(pop.predictions, axis=0).mode)  # ties: smallest
        correct = pop.predictions == y
        top1 = correct.mean(axis=1, keepdims=True)
        scores[name] = (
            _per_model_mean(correct, y, support) - top1,
            _per_model_mean(correct, codes, size) - top1,
        )
    testable = size >= min_support
    class_p, class_holm, subgroups = {}, {}, {}
    ref_c, ref_g = scores["reference"]
    for name in case.candidates:
        cand_c, cand_g = scores[name]
        class_p[name] = stats.ttest_ind(cand_c, ref_c, equal_var=False, axis=0).pvalue
        class_holm[name] = _holm(class_p[name], alpha)
        pie = modes[name] != modes["reference"]
        n_pie = np.bincount(codes, weights=pie, minlength=len(keys)).astype(np.int64)
        p_g = np.full(len(keys), np.nan)
        p_adj = p_g.copy()
        p_g[testable] = stats.ttest_ind(
            cand_g[:, testable], ref_g[:, testable], equal_var=False, axis=0
        ).pvalue
        p_adj[testable] = _holm(p_g[testable], alpha)
        subgroups[name] = {
            key: (int(size[i]), int(n_pie[i]), float(p_g[i]), float(p_adj[i]))
            for i, key in enumerate(keys)
        }
    return modes, class_p, class_holm, subgroups


def competent_baseline(
    case: SyntheticCase, *, alpha: float = 0.05, min_support: int = 30
) -> CompetentResult:
    """Run the vectorised baseline at full size, best of 3 after one warm-up.

    ``alpha`` goes to ``multipletests``; subgroups with fewer than
    ``min_support`` examples are not tested (as compaudit's default).
    """
    timing, (modes, class_p, class_holm, subgroups) = best_of(
        lambda: _competent(case, alpha, min_support), repeat=3, warmup=1
    )
    return CompetentResult(modes, class_p, class_holm, subgroups, timing)


def competent_pie_counts(
    case: SyntheticCase, pie: np.ndarray
) -> dict[tuple[str, ...], tuple[int, int]]:
    """The competent baseline's subgroup counting fed other PIE flags: ``(n, n_pie)`` per key."""
    codes, keys = _codes(case)
    n, n_pie = np.bincount(codes), np.bincount(codes, weights=pie, minlength=len(keys))
    return {key: (int(n[i]), int(n_pie[i])) for i, key in enumerate(keys)}


# -- other engines in subprocesses -----------------------------------------------------
def extract_engine(dest: Path, rev: str = OLD_REV) -> Path:
    """``git archive REV compaudit | tar -x -C dest``; returns ``dest`` (the PYTHONPATH).

    Raises :class:`EngineUnavailableError` without git or the revision (shallow clone, sdist).
    """
    try:
        proc = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", rev, "compaudit"],
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise EngineUnavailableError(ERR_GIT.format(rev=rev, detail=exc)) from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip() or f"exit {proc.returncode}"
        raise EngineUnavailableError(ERR_GIT.format(rev=rev, detail=detail))
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _run_script(what: str, script: str, args: list[str], tree: Path) -> dict[str, Any]:
    """Run ``script`` with ``compaudit`` imported from ``tree``; return its JSON line."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # cwd is not the repo root: '' on sys.path must not find the working tree's compaudit.
    cmd = [sys.executable, "-c", script, *args]
    proc = subprocess.run(cmd, cwd=Path(args[0]).parent, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr[-3000:]
        raise RuntimeError(ERR_SUBPROCESS.format(what=what, rc=proc.returncode, tail=tail))
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    got = Path(out["package"]).resolve()
    if not got.is_relative_to(tree.resolve()):
        raise RuntimeError(ERR_WRONG_PACKAGE.format(what=what, got=got, want=tree))
    return out


def save_case(case: SyntheticCase, path: Path) -> Path:
    """Write the case's arrays to an uncompressed ``.npz`` the audit script reads."""
    arrays: dict[str, Any] = {f"p_{n}": pop.predictions for n, pop in case.populations.items()}
    arrays |= {f"attr_{a}": np.asarray(case.reference.attributes[a]) for a in ATTRIBUTES}
    arrays |= {"y": case.y, "c": np.int64(case.reference.num_classes)}
    arrays |= {"names": np.str_(json.dumps(list(case.candidates)))}
    np.savez(path, attrs=np.str_(json.dumps(list(ATTRIBUTES))), **arrays)
    return path


def old_engine_audit(npz: Path, tree: Path, *, repeat: int = 3) -> tuple[Timing, dict[str, Any]]:
    """Time ``audit() + to_report()`` of the engine in ``tree`` (best of ``repeat``, 1 warm-up);
    return the timing and the script's output (PIE counts, class p-values)."""
    out = _run_script("old-engine audit", _AUDIT_SCRIPT, [str(npz), str(repeat)], tree)
    return Timing(tuple(out["runs"]), tuple(out["cpu_runs"])), out


def cie_pairs(npz: Path, tree: Path, *, repeat: int = 1) -> dict[str, Any]:
    """``agreement.cie(ref, cand, y)`` of the engine in ``tree`` on the arrays in ``npz``: ``runs``
    (s), ``peaks`` (bytes the call allocated beyond its inputs, ``tracemalloc``),
    ``maxrss_kib`` (the process's peak resident set, ``VmHWM``, inputs included; not
    ``ru_maxrss``, which keeps the forking parent's) and the CIE figures."""
    return _run_script("CIE", _CIE_SCRIPT, [str(npz), str(repeat)], tree)


def save_cie_case(
    path: Path, *, k: int, n: int, c: int, dtype: str = "uint16", seed: int = 0
) -> tuple[Path, int]:
    """Two populations of ``k`` models on ``n`` examples of ``c`` classes (CIE timing).

    A reference model is right with probability ``sigmoid(ease)``, a candidate
    with ``sigmoid(ease - 0.3)``, else one of five confusable classes; drawn
    as ``uint16``, stored as ``dtype`` (the same values for every dtype).
    Returns the path and the predictions' bytes.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, size=n)
    ease = rng.normal(1.5, 1.5, size=n)
    arrays: dict[str, Any] = {}
    for side, damage in (("ref", 0.0), ("cand", 0.3)):
        p_right = 1.0 / (1.0 + np.exp(-(ease - damage)))
        out = np.empty((k, n), dtype=np.uint16 if c <= 2**16 else np.int64)
        for i in range(k):
            wrong = (y + rng.integers(1, 6, size=n)) % c
            out[i] = np.where(rng.random(n) < p_right, y, wrong)
        arrays[side] = out.astype(dtype, copy=False)
    nbytes = int(sum(a.nbytes for a in arrays.values()))
    np.savez(path, y=y, **arrays)
    return path, nbytes
