"""Null comparisons for the calibration study: who faces whom, the audits, the rejected test.

Members of one dense population differ only in their seeds, so any two disjoint
groups of them form a null comparison: every class the audit flags between
them is a false alarm. This module draws such comparisons, runs them through
:func:`compaudit.audit` under each p-value correction (and the strict-release
policy's gates), and implements the unstudentized z-test that compaudit
rejected, for contrast.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import stats

import compaudit
from compaudit import Policy, Population, adjust_pvalues

Correction = Literal["holm", "bh", "bonferroni", "none"]
ALPHA = 0.05
CORRECTIONS: tuple[Correction, ...] = ("none", "bonferroni", "holm", "bh")
RATES = ("pie_rate", "cie_rate", "cie_u_rate", "top1_drop")
ERR_DRAWS = "disjoint groups of {k_ref} and {k_cand} need {need} members, have {have}"


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
    pop: Population,
    draws: np.ndarray,
    label: str,
    policy: Policy,
    *,
    progress: bool,
) -> NullRuns:
    """Audit group ``draws[i, 1]`` against group ``draws[i, 0]`` under every correction.

    One :func:`compaudit.audit` per draw under ``policy`` (with its settings, as
    ``compaudit check`` would use them), whose gates are counted. Raw class
    p-values do not depend on the correction or on alpha, so the classes each
    correction flags at :data:`ALPHA` are counted from them exactly as the engine
    flags them (``adjust_pvalues(p) <= alpha``, untested classes left out of the
    family).
    """
    from rich.progress import track

    p_raw: list[list[float]] = []
    n_sig: dict[str, list[int]] = {c: [] for c in CORRECTIONS}
    rates: dict[str, list[float]] = {r: [] for r in RATES}
    fails: dict[str, list[bool]] = {}
    for ref_idx, cand_idx in track(draws, description=label, disable=not progress, transient=True):
        ref, cand = subset(pop, ref_idx), subset(pop, cand_idx)
        report = compaudit.audit(ref, {"candidate": cand}, policy=policy)
        [comp] = report.comparisons
        for g in report.gates:
            fails.setdefault(g.name, []).append(g.status == "failed")
        p = np.array([np.nan if c.p_value is None else c.p_value for c in comp.classes])
        for corr in CORRECTIONS:
            n_sig[corr].append(int((adjust_pvalues(p, method=corr) <= ALPHA).sum()))
        p_raw.append(p.tolist())
        for key, value in (
            ("pie_rate", comp.pie.rate),
            ("cie_rate", comp.cie.rate),
            ("cie_u_rate", comp.cie.cie_u_rate),
            ("top1_drop", -comp.top1_delta),
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
    shown = shown or str(run_dir)
    if not (run_dir / "manifest.json").is_file():
        return None, f"skipped: no trainer run at `{shown}`"
    info = compaudit.load_run(run_dir, require_complete=False)
    dense = info.variants[info.reference]
    if dense.k < count:
        return None, (
            f"skipped: `{shown}` has {dense.k} finished '{dense.name}' members, "
            f"this part needs {count}"
        )
    try:
        compaudit.load_dataset(info.eval_data)  # can the data be found?
    except compaudit.CompauditError as exc:
        return None, f"skipped: {exc}"
    members = dense.members[:count]
    pop = compaudit.predict(
        [str(m.path) for m in members],
        info.eval_data,
        batch_size=info.recipe.training.eval_batch_size,
    )
    return pop, (
        f"members {members[0].index}-{members[-1].index} (seeds {members[0].seed}-"
        f"{members[-1].seed}) of the '{dense.name}' variant of `{shown}`, evaluated on "
        f"`{info.eval_data}` (N = {pop.n:,})"
    )


# -- the policy tables' draws and populations ------------------------------------------
def policy_draws(
    n_members: int, k_ref: int, k_cand: int, count: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` distinct draws of a reference and a disjoint candidate group.

    Returns ``(ref [D, k_ref], cand [D, k_cand])`` with sorted member indices.
    When there are at most ``count`` distinct draws, all of them (D = that
    number); else ``count`` distinct seeded ones.
    """
    need = k_ref + k_cand
    if need > n_members:
        raise ValueError(ERR_DRAWS.format(k_ref=k_ref, k_cand=k_cand, need=need, have=n_members))
    total = math.comb(n_members, k_ref) * math.comb(n_members - k_ref, k_cand)
    members = range(n_members)
    if total <= count:
        rows = [
            (r, c)
            for r in itertools.combinations(members, k_ref)
            for c in itertools.combinations([m for m in members if m not in r], k_cand)
        ]
    else:
        rng = np.random.default_rng([seed, k_ref, k_cand])
        seen: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
        rows = []
        while len(rows) < count:
            perm = rng.permutation(n_members)
            key = (tuple(sorted(perm[:k_ref].tolist())), tuple(sorted(perm[k_ref:need].tolist())))
            if key not in seen:
                seen.add(key)
                rows.append(key)
    ref = np.array([r for r, _ in rows], dtype=np.intp).reshape(len(rows), k_ref)
    cand = np.array([c for _, c in rows], dtype=np.intp).reshape(len(rows), k_cand)
    return ref, cand


def with_top1(topk: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Top-k rows whose first label is ``predictions``: where a damaged top-1 differs,
    it moves to the front and the other labels keep their order (the label it
    displaces, usually the true one, becomes second; a label never repeats).

    ``topk`` has shape (K, N, k) and ``predictions`` (K, N).
    """
    out = topk.copy()
    changed = out[..., 0] != predictions
    rows, w = out[changed], predictions[changed].astype(out.dtype)
    keep = rows != w[:, None]
    absent = keep.all(axis=1)
    keep[absent, -1] = False  # w was not in the row: the last label drops out
    rest = rows[keep].reshape(rows.shape[0], rows.shape[1] - 1)
    out[changed] = np.concatenate([w[:, None], rest], axis=1)
    return out


def members(pop: Population, rows: np.ndarray, predictions: np.ndarray | None = None) -> Population:
    """The population of members ``rows`` (top-k, ids, classes and attributes kept);
    ``predictions`` replaces their top-1 (a damaged copy; top-k follows it)."""
    preds = pop.predictions[rows] if predictions is None else predictions
    topk = pop.topk[rows] if pop.topk is not None else None
    if topk is not None and predictions is not None:
        topk = with_top1(topk, preds)
    return Population.create(
        preds,
        pop.y,
        topk=topk,
        ids=pop.ids,
        class_names=pop.class_names,
        num_classes=pop.num_classes,
        attributes=pop.attributes,
        source=pop.source,
    )


def random_group(n: int, size: int, seed: Sequence[int]) -> np.ndarray:
    """A seeded random set of ``size`` of ``n`` examples, as a mask."""
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).choice(n, size=size, replace=False)] = True
    return mask


def smallest_cell(
    attributes: Mapping[str, np.ndarray], names: Sequence[str], min_n: int
) -> tuple[np.ndarray, str]:
    """The smallest crossing of ``names`` with at least ``min_n`` examples: its mask
    and a label such as ``sex=Female, race=Other``."""
    columns = [np.asarray(attributes[a]).astype(str) for a in names]
    keys, codes, counts = np.unique(
        np.stack(columns, axis=1), axis=0, return_inverse=True, return_counts=True
    )
    ok = np.flatnonzero(counts >= min_n)
    if ok.size == 0:
        raise ValueError(f"no crossing of {list(names)} has {min_n} or more examples")
    best = int(ok[np.argmin(counts[ok])])
    label = ", ".join(f"{a}={v}" for a, v in zip(names, keys[best], strict=True))
    return np.asarray(codes).ravel() == best, label


# -- training the populations (resuming) --------------------------------------------------------
def train_population(recipe_path: Path, run_dir: Path, jobs: int, progress: bool) -> Population:
    """Train a recipe (resuming) and predict all its reference members on the eval split."""
    info = compaudit.train_recipe(recipe_path, run_dir, jobs=jobs, device="cpu", progress=progress)
    pop, note = load_members(run_dir, info.recipe.k)
    if pop is None:  # cannot happen after a finished train_recipe; fail closed anyway
        raise SystemExit(f"calibration: {note}")
    return pop


def train_dense_if_missing(
    recipe_path: Path, run_dir: Path, probe: str, *, jobs: int, progress: bool, note: str
) -> None:
    """Train only the dense variant of a recipe into ``run_dir`` when no run exists there.

    Nothing is trained when the run exists (it may be training elsewhere right
    now; :func:`load_members` says what is missing) or when the data set
    ``probe`` cannot be loaded (its rows are then skipped, with the reason).
    A later full run of the recipe into the same directory resumes.
    """
    import sys

    if (run_dir / "manifest.json").is_file():
        return
    try:
        compaudit.load_dataset(probe)
    except compaudit.CompauditError:
        return
    recipe = compaudit.load_recipe(recipe_path)
    dense = [v for v in recipe.variants if v.kind == "dense"][:1]
    print(f"training {recipe.k} dense members into {run_dir} ({note})", file=sys.stderr)
    compaudit.train_recipe(
        recipe.model_copy(update={"variants": dense}),
        run_dir,
        jobs=jobs,
        device="cpu",
        progress=progress,
    )
