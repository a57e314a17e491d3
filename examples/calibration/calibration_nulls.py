"""Null comparisons for the calibration study: who faces whom, the audits, the rejected test.

Members of one dense population differ only in their seeds, so any two disjoint
groups of them form a null comparison: every class the audit flags between
them is a false alarm. This module draws such comparisons, runs them through
:func:`compaudit.audit.audit` under each p-value correction (and the
strict-release policy's gates), and implements the unstudentized z-test that
compaudit rejected, for contrast.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from compaudit.analysis.stats import Correction, adjust_pvalues
from compaudit.audit import AuditSettings, audit
from compaudit.gates import evaluate_gates
from compaudit.policy import Policy
from compaudit.population import Population

ALPHA = 0.05
CORRECTIONS: tuple[Correction, ...] = ("none", "bonferroni", "holm", "bh")
GATE_CORRECTION: Correction = "holm"  # the audits the policy's gates read (its correction)
RATES = ("pie_rate", "cie_rate", "cie_u_rate", "top1_drop")


# -- which members face which -------------------------------------------------------
def resample_draws(n_members: int, k: int, count: int, seed: int) -> np.ndarray:
    """``count`` draws of two disjoint groups of ``k`` members, shape ``[count, 2, k]``.

    Each draw is the first ``2 k`` entries of a seeded permutation; draws share
    members, so they are not independent of each other.
    """
    if 2 * k > n_members:
        raise ValueError(f"two disjoint groups of {k} need {2 * k} members, have {n_members}")
    rng = np.random.default_rng([seed, k])
    return np.stack([rng.permutation(n_members)[: 2 * k].reshape(2, k) for _ in range(count)])


def disjoint_draws(n_members: int, k: int, seed: int) -> np.ndarray:
    """One seeded partition of the members into groups of ``k``, paired off:
    ``n_members // (2 k)`` comparisons that share no member (independent draws)."""
    pairs = n_members // (2 * k)
    perm = np.random.default_rng([seed, k, 1]).permutation(n_members)
    return perm[: pairs * 2 * k].reshape(pairs, 2, k)


def all_splits(n_members: int) -> np.ndarray:
    """Every split of ``n_members`` (even) into two halves, each split once:
    the half holding member 0 is the reference. ``C(n, n/2) / 2`` rows."""
    if n_members < 2 or n_members % 2:
        raise ValueError(f"halves need an even number of members (>= 2), have {n_members}")
    half = n_members // 2
    rows = []
    for ref in itertools.combinations(range(1, n_members), half - 1):
        a = (0, *ref)
        rows.append((a, tuple(i for i in range(n_members) if i not in a)))
    return np.array(rows)


def all_pairs(n_members: int) -> np.ndarray:
    """Every pair of distinct members, lower index as reference, shape ``[n(n-1)/2, 2, 1]``."""
    return np.array(list(itertools.combinations(range(n_members), 2)))[:, :, None]


# -- the rejected alternative ----------------------------------------------------------
def naive_z_pvalues(d: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Unstudentized permutation z-test of each group's mean paired outcome (REJECTED).

    Treats all examples as exchangeable: the difference of the group's mean
    outcome and the rest's is referred to its permutation variance
    ``s^2 (1/n_g + 1/(N - n_g))`` (s^2 the sample variance of all outcomes,
    ddof 1), normal approximation, two-sided. compaudit does not use it: a hard
    class churns more in both directions under pure noise, which this test
    reads as a shift. Outcomes that are all equal give p = 1.
    """
    n = np.bincount(groups, minlength=n_groups).astype(np.float64)
    N = d.size
    s = np.bincount(groups, weights=d, minlength=n_groups)
    diff = s / n - (d.sum() - s) / (N - n)
    sd = np.sqrt(d.var(ddof=1) * (1.0 / n + 1.0 / (N - n)))
    z = np.divide(diff, sd, out=np.zeros_like(diff), where=sd > 0)
    return np.asarray(2.0 * stats.norm.sf(np.abs(z)), dtype=np.float64)


# -- running null comparisons ----------------------------------------------------------
@dataclass
class NullRuns:
    """Outcomes of D null comparisons (one row each) of one kind."""

    label: str
    p_raw: np.ndarray  # [D, C] raw class p-values
    n_sig: dict[str, np.ndarray]  # correction -> [D] classes significant
    rates: dict[str, np.ndarray] = field(default_factory=dict)  # RATES -> [D]
    gate_fail: dict[str, np.ndarray] = field(default_factory=dict)  # gate -> [D] failed

    @property
    def draws(self) -> int:
        """Number of comparisons D."""
        return int(self.p_raw.shape[0])

    def alarms(self, correction: str) -> int:
        """Comparisons where at least one class was flagged."""
        return int((self.n_sig[correction] > 0).sum())


def subset(pop: Population, members: np.ndarray) -> Population:
    """The population of the given members (rows)."""
    topk = pop.topk[members] if pop.topk is not None else None
    return Population.create(
        pop.predictions[members], pop.y, topk=topk, class_names=pop.class_names, source=pop.source
    )


def run_audits(
    pop: Population, draws: np.ndarray, label: str, policy: Policy, *, progress: bool
) -> NullRuns:
    """Audit group ``draws[i, 1]`` against group ``draws[i, 0]`` under every correction."""
    from rich.progress import track

    p_raw: list[list[float]] = []
    n_sig: dict[str, list[int]] = {c: [] for c in CORRECTIONS}
    rates: dict[str, list[float]] = {r: [] for r in RATES}
    fails: dict[str, list[bool]] = {}
    for ref_idx, cand_idx in track(draws, description=label, disable=not progress, transient=True):
        ref, cand = subset(pop, ref_idx), subset(pop, cand_idx)
        for corr in CORRECTIONS:
            settings = AuditSettings(alpha=ALPHA, correction=corr)
            report = audit(ref, {"candidate": cand}, settings=settings).to_report()
            comp = report["comparisons"][0]
            n_sig[corr].append(sum(c["significant"] for c in comp["classes"]))
            if corr == GATE_CORRECTION:
                for g in evaluate_gates(report, policy):
                    fails.setdefault(g.name, []).append(g.status == "failed")
        p_raw.append([c["p_value"] for c in comp["classes"]])
        for key, value in (
            ("pie_rate", comp["pie"]["rate"]),
            ("cie_rate", comp["cie"]["rate"]),
            ("cie_u_rate", comp["cie"]["cie_u_rate"]),
            ("top1_drop", -comp["top1_delta"]),
        ):
            rates[key].append(value)
    return NullRuns(
        label,
        np.array(p_raw, dtype=np.float64),
        {c: np.array(v) for c, v in n_sig.items()},
        {r: np.array(v) for r, v in rates.items()},
        {g: np.array(v) for g, v in fails.items()},
    )


def run_naive(pop: Population, pairs: np.ndarray, label: str) -> NullRuns:
    """The rejected z-test on the same one-vs-one pairs, under every correction."""
    correct = (pop.predictions == pop.y).astype(np.int8)
    y = pop.y.astype(np.intp)
    p = np.stack(
        [naive_z_pvalues(correct[j] - correct[i], y, pop.num_classes) for i, j in pairs[:, :, 0]]
    )
    n_sig: dict[str, np.ndarray] = {
        c: np.array([(adjust_pvalues(row, method=c) <= ALPHA).sum() for row in p])
        for c in CORRECTIONS
    }
    return NullRuns(label, p, n_sig)


def paired_spread(pop: Population, pairs: np.ndarray) -> np.ndarray:
    """Per class: root mean square over one-vs-one pairs of the class's paired shift
    (its mean outcome minus the other examples'), divided by the root mean square of
    the paired test's standard error for it. About 1 when the paired test's null
    (examples exchangeable, the two models fixed) describes seed noise; above 1 when
    seeds leave class-level biases that the test reads as real. NaN for a class that
    no pair classifies differently."""
    correct = (pop.predictions == pop.y).astype(np.float64)
    d = correct[pairs[:, 1, 0]] - correct[pairs[:, 0, 0]]  # [P, N]
    onehot = np.eye(pop.num_classes)[pop.y.astype(np.intp)]  # [N, C]
    n = onehot.sum(axis=0)
    N = d.shape[1]
    s, q = d @ onehot, (d * d) @ onehot  # per-class sums of d and d^2
    s_tot, q_tot = d.sum(axis=1, keepdims=True), (d * d).sum(axis=1, keepdims=True)
    shift = s / n - (s_tot - s) / (N - n)
    var_in = (q - s * s / n) / (n - 1)
    var_out = ((q_tot - q) - (s_tot - s) ** 2 / (N - n)) / (N - n - 1)
    se2 = (var_in / n + var_out / (N - n)).mean(axis=0)
    rms = np.sqrt((shift * shift).mean(axis=0))
    return np.asarray(
        np.divide(rms, np.sqrt(se2), out=np.full(n.shape, np.nan), where=se2 > 0),
        dtype=np.float64,
    )


# -- intervals and the optional second dataset ---------------------------------------
def binomial_interval(hits: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95% interval of a proportion (a rough guide when draws share members)."""
    ci = stats.binomtest(hits, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def load_members(
    run_dir: Path, count: int, *, shown: str | None = None
) -> tuple[Population | None, str]:
    """The first ``count`` finished members of a run's reference (dense) variant,
    predicted on its eval split, and a description; or None and a note saying why
    not (the run is missing, too small, or its data cannot be found). ``shown`` is
    how the notes name the run directory."""
    from compaudit.data.loading import load_dataset
    from compaudit.errors import CompauditError
    from compaudit.models.base import RunnerSettings
    from compaudit.predictions import predict_population
    from compaudit.train import load_run

    shown = shown or str(run_dir)
    if not (run_dir / "manifest.json").is_file():
        return None, f"skipped: no trainer run at `{shown}`"
    info = load_run(run_dir, require_complete=False)
    dense = info.variants[info.reference]
    if dense.k < count:
        return None, (
            f"skipped: `{shown}` has {dense.k} finished '{dense.name}' members, "
            f"this part needs {count}"
        )
    try:
        data = load_dataset(info.eval_data)
    except CompauditError as exc:
        return None, f"skipped: {exc}"
    members = dense.members[:count]
    settings = RunnerSettings(batch_size=info.recipe.training.eval_batch_size)
    pop = predict_population(
        [str(m.path) for m in members], data, settings=settings, name=dense.name
    )
    return pop, (
        f"members {members[0].index}-{members[-1].index} (seeds {members[0].seed}-"
        f"{members[-1].seed}) of the '{dense.name}' variant of `{shown}`, evaluated on "
        f"`{info.eval_data}` (N = {pop.n:,})"
    )
