"""Audit engine at ImageNet scale: against today's engine and two baselines, in one run.

Target (issues 2 and 9): on the 2-core machine, a synthetic case of N = 50,000
examples, C = 1,000 classes, K = 30 models per population, one reference and
five candidates (the paper's pruning grid) and two attributes is audited as
``audit()`` runs by default (PIEs, class and subgroup tests with Holm, seed
floors, per-example PIE tests, ``to_report()``) in at most 2 s. In the same run
and on the same arrays (:mod:`benchmarks.bench_audit_baselines`): today's engine
(``590637b``, in a subprocess), an authors'-style baseline and a competent
vectorised one. Timings are reported, not asserted; :func:`verify` asserts that
the baselines compute compaudit's statistics (PIE flags on examples without a
modal tie, subgroup counts, p-values to 1e-8). Rows ``cie_*`` time the
mean-over-pairs CIE at K = 100, N = 1,000,000: the old ``O(K^2 N)`` pair loop
against the new vote-count computation, with peak memory.
"""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import bench_audit_baselines as bl
from benchmarks.common import Timing, best_of, row
from compaudit.engine import AuditSettings, audit
from compaudit.population import Population

__all__ = [
    "LEVELS",
    "BaselineMismatchError",
    "SyntheticCase",
    "run",
    "synthetic_case",
    "verify",
]

NAME = "audit"
LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)
"""Compression levels of the five candidates (the paper's pruning fractions)."""
ATTRIBUTES = bl.ATTRIBUTES
P_TOLERANCE = 1e-8
FISHER_SAMPLE = 200
"""PIEs per comparison whose per-example p-value is recomputed with scipy."""
CIE_TOLERANCE = 1e-9
"""Relative tolerance between the old and new mean-over-pairs CIE figures."""
TARGET_SECONDS = 2.0
TARGET_SPEEDUP = 50.0
"""Issue 2's target over the authors'-style baseline."""

FULL = {"n": 50_000, "c": 1_000, "k": 30, "sample": 4_000}
QUICK = {"n": 5_000, "c": 100, "k": 10, "sample": 1_000}
CIE_FULL = {"n": 1_000_000, "c": 1_000, "k": 100}
CIE_QUICK = {"n": 20_000, "c": 100, "k": 10}

ERR_MISMATCH = "baseline and compaudit disagree on {what}: {detail}; the comparison is void"
NOT_MEASURED = "not measured"


class BaselineMismatchError(AssertionError):
    """A baseline (or the old engine's CIE) and compaudit computed different statistics."""


@dataclass(frozen=True, eq=False)
class SyntheticCase:
    """One reference population and its compressed candidates on the same examples."""

    y: np.ndarray
    reference: Population
    candidates: dict[str, Population]

    @property
    def populations(self) -> dict[str, Population]:
        """Reference first, then candidates in level order."""
        return {"reference": self.reference, **self.candidates}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def synthetic_case(n: int, c: int, k: int, *, seed: int = 0) -> SyntheticCase:
    """A seeded ImageNet-like population grid.

    Each example has a difficulty made of its class's ease plus its own
    atypicality (and a small penalty for the rarest attribute combination).
    A model of compression level ``q`` is right with probability
    ``sigmoid(ease - damage_q)``, drawn independently per model; damage grows
    with ``q``, mostly on a few hard classes and on atypical examples, as the
    paper finds. A wrong prediction goes to one of five confusable classes,
    usually the example's own favourite confusion, so modal wrong labels are
    stable across models.

    Parameters
    ----------
    n, c, k : int
        Examples, classes (``n >= c``), models per population.
    seed : int
        Seed of every draw.
    """
    if n < c:
        raise ValueError(f"need at least one example per class, got n={n} < c={c}")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % c)
    sex = rng.choice(np.array(["female", "male"]), size=n, p=[0.35, 0.65])
    age = rng.choice(np.array(["old", "young", "middle"]), size=n, p=[0.15, 0.5, 0.35])
    class_ease = rng.normal(1.6, 0.8, size=c)
    atypical = rng.normal(0.0, 1.3, size=n)
    ease = class_ease[y] + atypical - 0.3 * ((sex == "male") & (age == "old"))
    # Damage lands on ~5% of classes, hard ones more likely, and on atypical examples.
    weights = _sigmoid(-class_ease)
    hit = np.zeros(c, dtype=bool)
    hit[rng.choice(c, size=max(1, c // 20), replace=False, p=weights / weights.sum())] = True
    concentrated = 2.0 * hit[y] + 0.6 * (atypical < np.quantile(atypical, 0.2))

    # Confusable classes: five other classes per class; each example prefers one.
    confusers = (np.arange(c)[:, None] + rng.choice(np.arange(1, c), size=(c, 5))) % c
    favourite = confusers[y, rng.integers(0, 5, size=n)]

    def population(level: float, name: str) -> Population:
        damage = level**2 * (0.15 + concentrated)
        shift = rng.normal(0.0, 0.05, size=(k, 1))  # seed-to-seed spread of a model
        correct = rng.random((k, n)) < _sigmoid(ease[None, :] - damage[None, :] + shift)
        other = confusers[y[None, :], rng.integers(0, 5, size=(k, n))]
        wrong = np.where(rng.random((k, n)) < 0.6, favourite[None, :], other)
        preds = np.where(correct, y[None, :], wrong)
        attrs = {"sex": sex, "age": age} if name == "reference" else None
        return Population.create(
            preds, y, num_classes=c, attributes=attrs, source=f"synthetic:{name}"
        )

    reference = population(0.0, "reference")
    candidates = {f"pruned_{q:.1f}": population(q, f"pruned_{q:.1f}") for q in LEVELS}
    return SyntheticCase(reference.y, reference, candidates)


# -- agreement ------------------------------------------------------------------------
def _mismatch(what: str, detail: str) -> BaselineMismatchError:
    return BaselineMismatchError(ERR_MISMATCH.format(what=what, detail=detail))


def _max_diff(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    both = ~np.isnan(a)
    return float(np.abs(a[both] - b[both]).max(initial=0.0))


def _check_p(what: str, mine: Any, theirs: Any) -> float:
    diff = _max_diff(mine, theirs)
    if not diff <= P_TOLERANCE:
        raise _mismatch(what, f"max |difference| {diff:.3g}")
    return diff


def _check_pies(what: str, ours: np.ndarray, theirs: np.ndarray, free: np.ndarray) -> None:
    differ = int((ours[free] != theirs[free]).sum())
    if differ:
        raise _mismatch(what, f"{differ} of {int(free.sum())} tie-free examples differ")


@dataclass(frozen=True)
class Agreement:
    """What :func:`verify` checked; counts are summed over comparisons (``tied``: left out)."""

    max_p_authors: float
    max_p_competent: float
    checked_authors: int
    checked_competent: int
    tied: int
    max_p_fisher: float = 0.0
    checked_fisher: int = 0


def verify(
    case: SyntheticCase,
    report: Mapping[str, Any],
    pie_masks: Mapping[str, np.ndarray],
    authors: bl.AuthorsResult,
    competent: bl.CompetentResult,
) -> Agreement:
    """Raise :class:`BaselineMismatchError` unless both baselines agree with compaudit.

    PIE flags must be equal on every example (all of them for the competent
    baseline, the timed sample for the authors') where neither population's
    modal label is tied: there every tie rule gives the same label, and the
    engine's seeded tie-break, ``scipy.stats.mode`` (smallest) and the
    authors' ``mode().max()`` (largest) differ only on ties. Subgroup PIE
    counts must be equal when the baselines count compaudit's PIE flags; raw
    and Holm-adjusted p-values of classes and subgroups within ``P_TOLERANCE``,
    and so the per-PIE p-values of a sample of PIEs (``scipy.stats.fisher_exact``
    on the votes for the pooled modal label, where that label is not tied).
    """
    ties = {name: bl.modal_ties(pop.predictions) for name, pop in case.populations.items()}
    worst_a = worst_c = 0.0
    checked_a = checked_c = tied = 0
    nan = float("nan")
    for comp in report["comparisons"]:
        name = comp["candidate"]
        free = ~(ties["reference"] | ties[name])
        tied += int((~free).sum())
        mask = np.asarray(pie_masks[name], dtype=bool)
        a_modes, s = authors.modes_sample, authors.sample
        _check_pies(
            f"{name} PIEs (authors')", mask[s], a_modes[name] != a_modes["reference"], free[s]
        )
        c_modes = competent.modes
        _check_pies(f"{name} PIEs (competent)", mask, c_modes[name] != c_modes["reference"], free)
        checked_a, checked_c = checked_a + int(free[s].sum()), checked_c + int(free.sum())
        for key, by_a, by_c in (
            ("p_value", authors.class_p, competent.class_p),
            ("p_adjusted", authors.class_p_holm, competent.class_p_holm),
        ):
            mine = np.array([nan if r[key] is None else r[key] for r in comp["classes"]])
            worst_a = max(worst_a, _check_p(f"{name} class {key} (authors')", mine, by_a[name]))
            worst_c = max(worst_c, _check_p(f"{name} class {key} (competent)", mine, by_c[name]))
        table, vec = authors.subgroups[name], competent.subgroups[name]
        counts = bl.competent_pie_counts(case, mask)
        if not len(comp["subgroups"]) == len(table) == len(vec):
            raise _mismatch("subgroups", f"{len(comp['subgroups'])}, {len(table)}, {len(vec)}")
        for g in comp["subgroups"]:
            group = tuple(str(g["group"][a]) for a in ATTRIBUTES)
            t_row = table.loc[group]
            mine_n = (g["n"], g["n_pie"])
            if (int(t_row["n"]), int(t_row["n_pie"])) != mine_n or counts[group] != mine_n:
                raise _mismatch("subgroup PIE counts", f"{name} {group}")
            for i, col in enumerate(("p_value", "p_adjusted"), start=2):
                mine_p = nan if g[col] is None else g[col]
                worst_a = max(worst_a, _check_p(f"{name} {group} {col}", mine_p, t_row[col]))
                worst_c = max(worst_c, _check_p(f"{name} {group} {col}", mine_p, vec[group][i]))
    worst_f, checked_f = _check_pie_tests(case, report)
    return Agreement(worst_a, worst_c, checked_a, checked_c, tied, worst_f, checked_f)


def _check_pie_tests(case: SyntheticCase, report: Mapping[str, Any]) -> tuple[float, int]:
    """Per-PIE p-values of up to ``FISHER_SAMPLE`` PIEs per comparison vs scipy's Fisher."""
    rng = np.random.default_rng(0)
    worst, checked = 0.0, 0
    for comp in report["comparisons"]:
        rows = [e for e in comp["pie"]["examples"] if e.get("p_value") is not None]
        if not rows:
            continue
        rows = [rows[i] for i in rng.permutation(len(rows))[:FISHER_SAMPLE]]
        ids = np.array([int(e["id"]) for e in rows])
        cand = case.candidates[comp["candidate"]].predictions[:, ids]
        theirs = bl.fisher_reference(case.reference.predictions[:, ids], cand)
        tested = ~np.isnan(theirs)
        mine = np.array([e["p_value"] for e in rows], dtype=float)
        worst = max(worst, _check_p("per-PIE Fisher p", mine[tested], theirs[tested]))
        checked += int(tested.sum())
    return worst, checked


# -- rows --------------------------------------------------------------------------
NOTES = {
    "n_classes": "",
    "n_examples": "1 reference + {levels} candidates, attributes {attrs} (crossed)",
    "k_per_population": "compression levels {level_list}",
    "audit_time": "audit() + to_report() with default settings (seed floors, per-example PIE "
    "tests), {levels} comparisons, {timing} after 1 warm-up; target <= {target} s: {met}",
    "audit_cpu_time": "process CPU time of the best-CPU repeat (insensitive to other load)",
    "pie_counts": "per candidate; beyond seed noise (BH): {beyond}",
    "baseline_time": "authors'-style; extrapolated: per-image modal loop timed on {frac}, "
    "x{scale:.3g}, plus tables at full size",
    "baseline_mode_time": "extrapolated from {au.mode_timing.best:.3g} s on {frac} "
    "(6 populations, one pandas Series.mode() per image), {mode_t}",
    "baseline_tables_time": "pandas groupbys; {c:,} scipy Welch calls per candidate; "
    "statsmodels holm; subgroup tables; {rest_t}",
    "speedup": "baseline_time / audit_time; issue 2's target >= {sp_target:g}x: {sp_met}",
    "competent_time": "vectorised: scipy.stats.mode, bincount recall tables, one "
    "ttest_ind(axis=0) per family, statsmodels holm, PIE tables, all at full size, {comp_t} "
    "after 1 warm-up; no floors, no per-example tests",
    "speedup_competent": "competent_time / audit_time (below 1: slower than the baseline)",
    "competent_time_unfrozen": "the same without gc.freeze(): statsmodels' Holm runs gc.collect() "
    "over this process's heap ({heap:,} objects) on each of its 10 calls; {unfrozen}",
    "predictions_memory": "{dtype} [K, N] x 6 populations (int64: {int64:.1f} MB)",
    "max_p_difference": "class and subgroup p (raw, holm) of both baselines vs compaudit "
    "(authors' {ag.max_p_authors:.2g}, competent {ag.max_p_competent:.2g}), tolerance {tol:g}; "
    "PIE flags equal on {ag.checked_competent:,} (competent) and {ag.checked_authors:,} "
    "(authors', sampled) tie-free example-comparisons; {ag.tied:,} with a tied modal label "
    "on either side not compared; per-PIE p of {ag.checked_fisher:,} sampled PIEs (pooled mode "
    "not tied) within {ag.max_p_fisher:.2g} of scipy.stats.fisher_exact",
    "old_engine_time": "compaudit {rev} (git archive), same arrays, in a subprocess, {old_t} "
    "after 1 warm-up; PIE counts {old_pies} (ties to the smallest label)",
    "new_over_old": "audit_time / old_engine_time; {extra}",
    "speedup_old_engine": "baseline_time / old_engine_time (issue 9 measured 74-83x)",
    "speedup_competent_old_engine": "competent_time / old_engine_time (issue 9: 2.2x)",
    "old_new_class_p_difference": "largest |class p (new) - p (old)|: both Welch on the same "
    "scores (reported, not asserted)",
    "cie_n_examples": "two populations of K = {k}, C = {c:,}",
    "cie_votes_time": "new agreement.cie ({basis}) from per-example vote counts, {dtype} inputs "
    "({mb:.0f} MB), subprocess, best of 3 (tracemalloc on)",
    "cie_votes_peak_memory": "tracemalloc peak of the call beyond its inputs; process VmHWM "
    "{rss:.0f} MB",
    "cie_pairs_time": "{rev} agreement.cie, O(K^2 N) pair loop, {dtype} inputs ({mb:.0f} MB), "
    "subprocess, timed once (tracemalloc on)",
    "cie_pairs_peak_memory": "tracemalloc peak of the call beyond its inputs; process VmHWM "
    "{rss:.0f} MB",
    "cie_speedup": "cie_pairs_time_{dtype} / cie_votes_time_{dtype}",
    "cie_max_difference": "largest relative difference of count, cie_u, cie_c, "
    "both_wrong_different, new vs old, both dtypes; tolerance {tol:g}; CIE rate {rate:.4f}",
}
EXTRA_WORK = (
    "the new engine also estimates seed-noise floors from the reference alone ({floors}), "
    "tests each PIE against the vote counts (Fisher's exact, BH; {pies} PIEs), lists CIE "
    "examples and breaks modal ties at random with the seed"
)


def _extra_work(report: Mapping[str, Any]) -> str:
    comps, fl = report["comparisons"], report["comparisons"][0].get("floors") or {}
    floors = f"{fl.get('n_splits')} disjoint splits of K = {fl.get('k_split')}"
    floors = floors if fl.get("available") else f"unavailable: {fl.get('reason')}"
    return EXTRA_WORK.format(floors=floors, pies=sum(cm["pie"]["count"] for cm in comps))


def _rows(
    case: SyntheticCase,
    timing: Timing,
    report: Mapping[str, Any],
    base: tuple[bl.AuthorsResult, bl.CompetentResult, Agreement],
    old: tuple[Timing, dict[str, Any]] | None,
    quick: bool,
    ctx_gc: dict[str, Any],
) -> list[dict[str, Any]]:
    authors, competent, agreement = base
    n, c, k = case.y.shape[0], case.reference.num_classes, case.reference.k
    comps, t_comp = report["comparisons"], competent.timing
    pred_bytes = sum(p.predictions.nbytes for p in case.populations.values())
    ok = "met" if timing.best <= TARGET_SECONDS else "NOT met"
    ctx: dict[str, Any] = {"ag": agreement, "au": authors, "c": c, "rev": bl.OLD_REV}
    ctx |= {"levels": len(LEVELS), "level_list": ", ".join(map(str, LEVELS))}
    ctx |= {"attrs": ", ".join(ATTRIBUTES), "target": f"{TARGET_SECONDS:g}", "tol": P_TOLERANCE}
    ctx |= {"timing": timing.describe(), "met": "not applicable at quick size" if quick else ok}
    ctx |= {"beyond": ", ".join(str(cm["pie"].get("n_beyond_noise")) for cm in comps)}
    ctx |= {"frac": f"{authors.sample.size:,} of {n:,} examples", "scale": n / authors.sample.size}
    ctx |= {"mode_t": authors.mode_timing.describe(), "rest_t": authors.rest_timing.describe()}
    ctx |= {"comp_t": t_comp.describe(), "dtype": case.reference.predictions.dtype}
    ctx |= {"int64": pred_bytes * 8 / case.reference.predictions.dtype.itemsize / 1e6}
    sp_ok = "met" if authors.seconds / timing.best >= TARGET_SPEEDUP else "NOT met"
    ctx |= {
        "sp_target": TARGET_SPEEDUP,
        "sp_met": "not applicable at quick size" if quick else sp_ok,
    }
    ctx |= {"extra": _extra_work(report), "heap": ctx_gc["heap"]}
    ctx["unfrozen"] = ctx_gc["unfrozen"].describe()
    values: list[tuple[str, Any, str]] = [
        ("n_examples", n, ""),
        ("n_classes", c, ""),
        ("k_per_population", k, ""),
        ("audit_time", timing.best, "s"),
        ("audit_cpu_time", timing.best_cpu, "s"),
        ("pie_counts", ", ".join(str(cm["pie"]["count"]) for cm in comps), ""),
        ("baseline_time", authors.seconds, "s"),
        ("baseline_mode_time", authors.mode_seconds_full, "s"),
        ("baseline_tables_time", authors.rest_timing.best, "s"),
        ("speedup", authors.seconds / timing.best, "x"),
        ("speedup_cpu", authors.cpu_seconds / timing.best_cpu, "x"),
        ("competent_time", t_comp.best, "s"),
        ("speedup_competent", t_comp.best / timing.best, "x"),
        ("speedup_competent_cpu", t_comp.best_cpu / timing.best_cpu, "x"),
        ("competent_time_unfrozen", ctx_gc["unfrozen"].best, "s"),
        ("predictions_memory", pred_bytes / 1e6, "MB"),
        ("max_p_difference", max(agreement.max_p_authors, agreement.max_p_competent), ""),
    ]
    if old is not None:
        t_old, out = old
        ctx["old_t"], ctx["old_pies"] = t_old.describe(), ", ".join(map(str, out["pie_counts"]))
        none_nan = [[np.nan if v is None else v for v in r] for r in out["class_p"]]
        mine = [
            [np.nan if r["p_value"] is None else r["p_value"] for r in cm["classes"]]
            for cm in comps
        ]
        values += [
            ("old_engine_time", t_old.best, "s"),
            ("old_engine_cpu_time", t_old.best_cpu, "s"),
            ("new_over_old", timing.best / t_old.best, "x"),
            ("new_over_old_cpu", timing.best_cpu / t_old.best_cpu, "x"),
            ("speedup_old_engine", authors.seconds / t_old.best, "x"),
            ("speedup_competent_old_engine", t_comp.best / t_old.best, "x"),
            ("old_new_class_p_difference", _max_diff(mine, none_nan), ""),
        ]
    cpu = "the same in process CPU time (extrapolations likewise)"
    return [row(NAME, m, v, u, NOTES.get(m, cpu).format(**ctx)) for m, v, u in values]


# -- the mean-over-pairs CIE ------------------------------------------------------------
CIE_KEYS = ("count", "cie_u", "cie_c", "both_wrong_different")
CIE_DTYPES = ("int64", "uint16")
"""int64: numpy's default (the issue's measurement); uint16: what ``Population`` stores."""


def _cie_rows(tmp: Path, old_tree: Path | None, quick: bool) -> list[dict[str, Any]]:
    size = CIE_QUICK if quick else CIE_FULL
    k, n, c = size["k"], size["n"], size["c"]
    ctx = {"k": k, "n": n, "c": c, "rev": bl.OLD_REV, "tol": CIE_TOLERANCE}
    rows = [row(NAME, "cie_n_examples", n, "", NOTES["cie_n_examples"].format(**ctx))]
    rows.append(row(NAME, "cie_k_per_population", k, ""))
    worst = 0.0

    def add(metric: str, dtype: str, value: Any, unit: str, **extra: Any) -> None:
        note = NOTES[metric].format(**ctx, **extra, dtype=dtype)
        rows.append(row(NAME, f"{metric}_{dtype}", value, unit, note))

    for dtype in CIE_DTYPES:
        npz, nbytes = bl.save_cie_case(tmp / "cie.npz", k=k, n=n, c=c, dtype=dtype)
        new = bl.cie_pairs(npz, bl.REPO_ROOT, repeat=3)
        best = int(np.argmin(new["runs"]))
        ctx |= {"basis": new["basis"], "rate": new["count"] / n}
        mb, rss = nbytes / 1e6, new["maxrss_kib"] / 2**10
        add("cie_votes_time", dtype, new["runs"][best], "s", mb=mb)
        add("cie_votes_peak_memory", dtype, new["peaks"][best] / 1e6, "MB", rss=rss)
        if old_tree is None:
            rows.append(row(NAME, f"cie_pairs_time_{dtype}", NOT_MEASURED, "", "no old engine"))
            continue
        old = bl.cie_pairs(npz, old_tree, repeat=1)
        npz.unlink()
        rel = {key: abs(new[key] - old[key]) / max(abs(old[key]), 1.0) for key in CIE_KEYS}
        for key, r in rel.items():
            if not r <= CIE_TOLERANCE:
                raise _mismatch(f"mean-over-pairs CIE {key}", f"new {new[key]}, old {old[key]}")
        worst = max(worst, *rel.values())
        add("cie_pairs_time", dtype, old["runs"][0], "s", mb=mb)
        add(
            "cie_pairs_peak_memory",
            dtype,
            old["peaks"][0] / 1e6,
            "MB",
            rss=old["maxrss_kib"] / 2**10,
        )
        add("cie_speedup", dtype, old["runs"][0] / new["runs"][best], "x")
    if old_tree is not None:
        rows.append(
            row(NAME, "cie_max_difference", worst, "", NOTES["cie_max_difference"].format(**ctx))
        )
    return rows


# -- the benchmark -------------------------------------------------------------------
def run(quick: bool = False) -> list[dict[str, Any]]:
    """Time compaudit's audit, today's engine and both baselines; return the result rows.

    ``quick``: N = 5,000, C = 100, K = 10 (CIE: K = 10, N = 20,000) instead of
    ImageNet scale. Raises :class:`BaselineMismatchError` when a baseline (or
    the old CIE) and compaudit disagree: the timing would be void.
    """
    size = QUICK if quick else FULL
    n, c, k = size["n"], size["c"], size["k"]
    case = synthetic_case(n, c, k, seed=0)
    settings = AuditSettings(attributes=ATTRIBUTES, correction="holm", seed=0)

    def full_audit() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        result = audit(case.reference, case.candidates, settings=settings)
        return result.to_report(), result.pie_masks

    with bl.frozen_heap():
        timing, (report, pie_masks) = best_of(full_audit, repeat=3, warmup=1)
    tiny = synthetic_case(300, 10, 3, seed=1)  # warm-up: pays pandas/scipy/statsmodels imports
    bl.authors_baseline(
        tiny, sample_size=50, pie_masks=dict.fromkeys(tiny.candidates, np.zeros(300))
    )
    with bl.frozen_heap():
        authors = bl.authors_baseline(case, sample_size=size["sample"], pie_masks=pie_masks)
    alpha, min_support = settings.alpha, settings.min_support
    with bl.frozen_heap():
        competent = bl.competent_baseline(case, alpha=alpha, min_support=min_support)
    # The same, paying statsmodels' gc.collect() over this process's heap (see README).
    unfrozen = bl.competent_baseline(case, alpha=alpha, min_support=min_support)
    ctx_gc = {"unfrozen": unfrozen.timing, "heap": len(gc.get_objects())}
    agreement = verify(case, report, pie_masks, authors, competent)

    with tempfile.TemporaryDirectory(prefix="compaudit-bench-") as tmp_name:
        tmp = Path(tmp_name)
        why = ""
        try:
            old_tree: Path | None = bl.extract_engine(tmp / "old", bl.OLD_REV)
        except bl.EngineUnavailableError as exc:
            old_tree, why = None, str(exc)
        old: tuple[Timing, dict[str, Any]] | None = None
        if old_tree is not None:
            old = bl.old_engine_audit(bl.save_case(case, tmp / "case.npz"), old_tree, repeat=3)
        cie_rows = _cie_rows(tmp, old_tree, quick)
    rows = _rows(case, timing, report, (authors, competent, agreement), old, quick, ctx_gc)
    if old is None:
        rows.append(row(NAME, "old_engine_time", NOT_MEASURED, "", why))
    return rows + cie_rows
